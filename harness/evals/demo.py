"""`harness demo`: the bundled TinyVid example, ported end to end by a scripted model.

The demo writes the example (a FastVideo-shaped repo, the official reference, packets) to a
temporary folder and, in the user's harness home (so `harness runs` / `show` find it), runs the VAE parity-debug port through the real graph: plan,
implement (with a planted numerical bug), parity red, debug, fix, parity pass, validated
handoff. The model is a bundled script, so no API key is needed and no LLM is called; the
sandbox, git worktree, pytest run and handoff checks are all real. `--ask` adds an
escape hatch that the demo answers as a person would.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml

from harness.evals.fixtures.bugs import BUGS_BY_ID, buggy_files
from harness.evals.fixtures.gold import gold_files
from harness.sandbox.registry import sandbox_choices

DEMO_DIR = Path(__file__).resolve().parent / "fixtures" / "demo"
SCRIPT = DEMO_DIR / "vae_parity_debug.yaml"
ASK_PLANNER = DEMO_DIR / "vae_ask_planner.yaml"
SECOND_CONFIG = DEMO_DIR / "vae_hd.json"
PACKET_KEY = "vae:parity-debug"
DEMO_ANSWER_OPTION = 1  # the recommended option: what a person reading the evidence would pick


class DemoError(RuntimeError):
    """The demo could not be set up or rendered."""


# ----- rendering the scripted model ---------------------------------------------------------


def _directive(value: str) -> str | None:
    """Expand one `@...` directive of the demo template; None when `value` is not one."""
    parts = value.split()
    if not parts or not parts[0].startswith("@"):
        return None
    kind, args = parts[0], parts[1:]
    if kind == "@gold" and len(args) == 1:
        component = "vae" if "/vaes/" in args[0] else "text_encoder"
        files = gold_files(component)
    elif kind == "@buggy" and len(args) == 2:
        files = buggy_files(_bug(args[0]))
        args = args[1:]
    elif kind in ("@bug.old", "@bug.new") and len(args) == 1:
        bug = _bug(args[0])
        return bug.old if kind == "@bug.old" else bug.new
    else:
        raise DemoError(f"demo script: cannot read directive {value!r}")
    if args[0] not in files:
        raise DemoError(f"demo script: {args[0]} is not a reference-port file")
    return files[args[0]]


def _bug(bug_id: str):
    if bug_id not in BUGS_BY_ID:
        raise DemoError(f"demo script: unknown seeded bug {bug_id!r}")
    return BUGS_BY_ID[bug_id]


def _render(node: Any, official: str) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, official) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, official) for v in node]
    if isinstance(node, str):
        expanded = _directive(node)
        return expanded if expanded is not None else node.replace("{official}", official)
    return node


def render_script(official_dir: Path, ask: bool = False) -> dict[str, list]:
    """The demo's scripted-model data: the template with contents and paths filled in."""
    data = yaml.safe_load(SCRIPT.read_text())
    if ask:
        data["planner"] = yaml.safe_load(ASK_PLANNER.read_text())["planner"]
    return _render(data, str(Path(official_dir).resolve()))


def write_script(official_dir: Path, dest: Path, ask: bool = False) -> Path:
    dest.write_text(yaml.safe_dump(render_script(official_dir, ask), sort_keys=False, width=1_000_000))
    return dest


# ----- sandbox choice -------------------------------------------------------------------------


def bwrap_works() -> bool:
    """True when bubblewrap can create the namespaces the bwrap executor uses."""
    if shutil.which("bwrap") is None:
        return False
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
            "--unshare-pid", "--die-with-parent", "true"]
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def choose_sandbox(requested: str | None) -> tuple[str, str | None]:
    """(sandbox, notice): the requested one, else bwrap when it works, else local with a notice."""
    if requested:
        from harness.sandbox.registry import sandbox_names

        if requested not in sandbox_names():
            raise typer.BadParameter(f"--sandbox must be one of {', '.join(sandbox_names())}, not {requested!r}")
        return requested, None
    if bwrap_works():
        return "bwrap", None
    return "local", ("bubblewrap is not usable here, so the parity test runs as a plain local "
                     "subprocess (no isolation). Install bubblewrap or pass --sandbox docker.")


# ----- the demo -------------------------------------------------------------------------------


def _events(console: Any):
    def sink(kind: str, data: dict[str, Any]) -> None:
        if kind == "node_start":
            console.print(f"  [dim]node[/dim] {data.get('node')}", highlight=False)
        elif kind == "parity":
            console.print(f"  [bold]parity[/bold] {data.get('summary')}", highlight=False)
        elif kind == "error":
            console.print(f"  [red]error:[/red] {data.get('error')}", highlight=False)

    return sink


def _show_question(console: Any, hatch: Any) -> None:
    console.print("\n[bold yellow]The planner raised an escape hatch (the run is paused):[/bold yellow]")
    console.print(f"  decision_type: {hatch.decision_type}", highlight=False)
    console.print(f"  question:      {hatch.question}", highlight=False)
    for i, option in enumerate(hatch.options, 1):
        console.print(f"  option {i}:      {option}", highlight=False, markup=False)
    console.print(f"  recommended:   {hatch.recommended_option}", highlight=False, markup=False)


def _report(console: Any, outcome: Any) -> None:
    from harness.runs.live import print_summary

    print_summary(console, outcome.summary)
    handoff = outcome.handoff
    console.print("\n[bold]Where things are[/bold]")
    rows = [
        ("run", outcome.run_dir),
        ("branch", outcome.branch),
        ("worktree", outcome.worktree),
        ("handoff", outcome.handoff_path),
        ("PORT_STATUS.md", (outcome.worktree / handoff.port_state_file) if handoff and outcome.worktree else None),
    ]
    for name, value in rows:
        console.print(f"  {name:<15} {value}", highlight=False)
    if handoff is not None:
        console.print(f"  parity_status   {handoff.parity_status}   next_step {handoff.next_step}", highlight=False)
        status_file = outcome.worktree / handoff.port_state_file if outcome.worktree else None
        if status_file is not None and status_file.is_file():
            console.print("\n[bold]PORT_STATUS.md parity row[/bold]")
            for line in status_file.read_text().splitlines():
                if handoff.parity_test in line and line.startswith("|"):
                    console.print(f"  {line}", highlight=False, markup=False)


def run_demo(console: Any, sandbox: str | None, ask: bool, keep: bool, workdir: Path | None = None,
             gpus: str = "none", image: str | None = None) -> int:
    """Run the demo; returns the run's exit code (0 when the port ends with a validated handoff)."""
    from harness.evals.fixtures import write_example_repo
    from harness.run_config.config import harness_home
    from harness.runs.runner import RunConfig, answer_run, start_run

    kind, notice = choose_sandbox(sandbox)
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="harness-demo-"))
    console.print("[bold]harness demo[/bold]: the model is SCRIPTED (a bundled script plays the planner, "
                  "implementer and debugger; no LLM is called).")
    console.print("The sandbox, git worktree, pytest runs and handoff checks are real.", highlight=False)
    if notice:
        console.print(f"[yellow]notice:[/yellow] {notice}", highlight=False)
    outcome = None
    try:
        example = write_example_repo(tmp / "example")
        if ask:
            # A second, disagreeing official config: the planner must not pick one silently.
            shutil.copyfile(SECOND_CONFIG, example.official_dir / "configs" / SECOND_CONFIG.name)
        script = write_script(example.official_dir, tmp / "scripted_model.yaml", ask)
        console.print(f"example repo: {example.repo}\nsandbox: {kind}\nscript: {script}\n", highlight=False)
        # The user's own harness home, so `harness runs` and `harness show` find the demo's run.
        home = harness_home()
        console.print(f"runs live in {home} (HARNESS_HOME, default ./.harness): "
                      "`harness runs` lists them, `harness show <id>` opens one\n", highlight=False)
        cfg = RunConfig(packet=example.packets[PACKET_KEY], repo=example.repo, model=f"scripted:{script}",
                        sandbox=kind, non_interactive=True, home=home, gpus=gpus, image=image)
        outcome = start_run(cfg, events=_events(console))
        if outcome.status == "paused" and ask and outcome.pending_question is not None:
            _show_question(console, outcome.pending_question)
            chosen = outcome.pending_question.options[DEMO_ANSWER_OPTION - 1]
            console.print(f"\n[bold]The demo answers as a person would:[/bold] option {DEMO_ANSWER_OPTION}", highlight=False)
            console.print(f"  {chosen}", highlight=False, markup=False)
            console.print(f"  (same as: harness answer {outcome.run_id} --option {DEMO_ANSWER_OPTION})\n", highlight=False)
            outcome = answer_run(outcome.run_id, option=DEMO_ANSWER_OPTION, home=home, events=_events(console))
        _report(console, outcome)
    finally:
        ok = outcome is not None and outcome.status == "completed" and outcome.handoff is not None \
            and outcome.handoff.parity_status == "non_skip_pass"
        # Kept by default so the branch, handoff and PORT_STATUS.md printed above can be read.
        if ok and not keep and workdir is None:
            from harness.runs.cleanup import clean_run

            clean_run(outcome.run_id)  # its worktree points into the folder removed next
            shutil.rmtree(tmp, ignore_errors=True)
            console.print("(the demo folder was removed: --clean)", highlight=False)
        else:
            console.print(f"Files kept in {tmp} (remove the folder when done, or pass --clean)", highlight=False)
    if ok:
        console.print("\n[bold green]Demo finished: the scripted port ends with a non-skip parity pass "
                      "and a validated handoff.[/bold green]")
        return 0
    console.print(f"\n[bold red]Demo did not finish as expected: status {outcome.status}.[/bold red]")
    return outcome.exit_code or 1


def init_example(console: Any, dest: Path) -> int:
    from harness.evals.fixtures import write_example_repo

    example = write_example_repo(dest)
    console.print(f"Wrote the TinyVid example to {example.root}", highlight=False)
    console.print(f"  repo:      {example.repo}\n  official:  {example.official_dir}", highlight=False)
    for key, path in sorted(example.packets.items()):
        console.print(f"  packet {key:<26} {path}", highlight=False)
    vae = example.packets[PACKET_KEY]
    console.print("\nRun a port with a real model, for example:", highlight=False)
    console.print(f"  harness validate {vae} --repo {example.repo}", highlight=False)
    console.print(f"  harness run --packet {vae} --repo {example.repo} --model anthropic:claude-sonnet-4-5 "
                  f"--sandbox bwrap", highlight=False)
    console.print("(set ANTHROPIC_API_KEY, or use --model openai:<model> with OPENAI_API_KEY)", highlight=False)
    return 0


def register(app: typer.Typer) -> None:
    """Add `harness demo` to the app."""

    @app.command("demo", epilog="Example:  harness demo --ask   (or: harness demo --init ./tinyvid)")
    def demo(
        sandbox: Annotated[Optional[str], typer.Option(
            "--sandbox", help=f"{sandbox_choices()} (default: bwrap when it works, else local).")] = None,
        ask: Annotated[bool, typer.Option("--ask", help="Show an escape hatch being raised and answered.")] = False,
        init: Annotated[Optional[Path], typer.Option(
            "--init", help="Only write the example repo and packets to DIR and print how to run on it.")] = None,
        keep: Annotated[bool, typer.Option("--keep/--clean", help="Keep the demo folder to read its branch, handoff and PORT_STATUS.md, or remove it after a successful run.")] = True,
        gpus: Annotated[str, typer.Option("--gpus", help="all | N | none: run the parity test on CUDA (scripts/gpu-check.sh).")] = "none",
        image: Annotated[Optional[str], typer.Option("--image", help="Docker image for --sandbox docker.")] = None,
    ) -> None:
        """Port the bundled TinyVid VAE end to end with a scripted model (no API key needed)."""
        from harness.graph.commands import wide_console

        console = wide_console()
        try:
            code = init_example(console, init) if init is not None else run_demo(console, sandbox, ask, keep, gpus=gpus, image=image)
        except (DemoError, FileExistsError, NotADirectoryError, ModuleNotFoundError) as err:
            console.print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(2)
        raise typer.Exit(code)


__all__ = ["DemoError", "choose_sandbox", "init_example", "register", "render_script", "run_demo", "write_script"]
