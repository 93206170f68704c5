"""`harness run / answer / resume / runs / show / graph`: start, steer and inspect runs."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer

from harness.agents.providers import spec_help
from harness.run_config import config
from harness.run_config.config import run_default, run_help
from harness.sandbox.registry import sandbox_choices


# The run's options, their defaults and help texts: all from RunConfig (harness.run_config.config).
OnBudget = Enum("OnBudget", {v: v for v in get_args(config.OnBudget)}, type=str)  # type: ignore[misc]


def _opt(name: str, *decls: str, help: str | None = None) -> Any:
    """The typer option for RunConfig's `name`, with its help text (or `help`)."""
    return typer.Option(*decls, help=help or run_help(name))


def _sandbox_help(then: str = "") -> str:
    return f"{run_help('sandbox').rstrip('.')}: {sandbox_choices()}{then}."


# Sandbox options shared by `run` and `doctor` (and mirrored by `demo`).
SandboxOpt = Annotated[str, _opt("sandbox", help=_sandbox_help())]
ImageOpt = Annotated[Optional[str], _opt("image")]
GpusOpt = Annotated[str, _opt("gpus")]
PythonOpt = Annotated[Optional[str], _opt("python", "--python")]
UserOpt = Annotated[str, _opt("sandbox_user", "--sandbox-user")]
MemoryOpt = Annotated[str, _opt("memory", "--memory")]
ShmOpt = Annotated[str, _opt("shm_size", "--shm-size")]
PidsOpt = Annotated[int, _opt("pids_limit", "--pids-limit")]
HfCacheOpt = Annotated[Optional[Path], _opt("hf_cache", "--hf-cache")]
PassEnvOpt = Annotated[Optional[list[str]], _opt("pass_env", "--pass-env")]
NetworkOpt = Annotated[bool, _opt("network", "--network")]
PacketOpt = Annotated[Path, _opt("packet", "--packet")]
RepoOpt = Annotated[Path, _opt("repo", "--repo")]


EXAMPLES = {
    "run": "harness run --packet packet.json --repo ~/FastVideo --model anthropic:claude-sonnet-4-5 "
           "--sandbox bwrap --max-usd 5",
    "doctor": "harness doctor --packet packet.json --repo ~/FastVideo --sandbox docker --image my-fastvideo:latest",
    "answer": "harness answer 20250101-120000-tinyvid-vae-1a2b --option 1",
    "resume": "harness resume 20250101-120000-tinyvid-vae-1a2b",
    "runs": "harness runs --json",
    "show": "harness show 20250101-120000-tinyvid-vae-1a2b --no-diff",
    "clean": "harness clean --finished",
    "graph": "harness graph > graph.mmd",
}


def example(command: str) -> str:
    """The `--help` epilog of a command: one line to copy."""
    return f"Example:  {command}"


def register(app: typer.Typer) -> None:
    """Add this part's commands to the app."""
    for name, command in (("run", run_command), ("doctor", doctor_command), ("answer", answer_command),
                          ("resume", resume_command), ("runs", runs_command), ("show", show_command),
                          ("clean", clean_command), ("graph", graph_command)):
        app.command(name, epilog=example(EXAMPLES[name]))(command)


def run_command(
    packet: PacketOpt,
    repo: RepoOpt,
    model: Annotated[Optional[str], _opt("model", help=f"{spec_help()} (none given: human at a terminal, said so; an error otherwise)")] = None,
    base_url: Annotated[Optional[str], _opt("base_url", "--base-url")] = None,
    price: Annotated[Optional[str], _opt("price", "--price")] = None,
    context_window: Annotated[Optional[int], _opt("context_window", "--context-window")] = None,
    sandbox: Annotated[Optional[str], _opt("sandbox", help=_sandbox_help(" (none given: docker with --image, else bwrap when it works; said so)"))] = None,
    image: ImageOpt = run_default("image"),
    gpus: GpusOpt = run_default("gpus"),
    python: PythonOpt = run_default("python"),
    sandbox_user: UserOpt = run_default("sandbox_user"),
    memory: MemoryOpt = run_default("memory"),
    shm_size: ShmOpt = run_default("shm_size"),
    pids_limit: PidsOpt = run_default("pids_limit"),
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    network: NetworkOpt = run_default("network"),
    max_turns: Annotated[int, _opt("max_turns", "--max-turns")] = run_default("max_turns"),
    max_debug_rounds: Annotated[int, _opt("max_debug_rounds", "--max-debug-rounds")] = run_default("max_debug_rounds"),
    max_usd: Annotated[Optional[float], _opt("max_usd", "--max-usd")] = run_default("max_usd"),
    max_seconds: Annotated[Optional[float], _opt("max_seconds", "--max-seconds")] = run_default("max_seconds"),
    non_interactive: Annotated[bool, _opt("non_interactive", "--non-interactive")] = run_default("non_interactive"),
    on_budget: Annotated[OnBudget, _opt("on_budget", "--on-budget")] = OnBudget(run_default("on_budget")),
    run_id: Annotated[Optional[str], _opt("run_id", "--run-id")] = run_default("run_id"),
    notify: Annotated[Optional[str], _opt("notify", "--notify")] = run_default("notify"),
    notify_url: Annotated[Optional[str], _opt("notify_url", "--notify-url")] = run_default("notify_url"),
    max_file_mb: Annotated[float, _opt("max_file_mb", "--max-file-mb")] = run_default("max_file_mb"),
    model_timeout: Annotated[float, _opt("model_timeout_s", "--model-timeout")] = run_default("model_timeout_s"),
    test_timeout: Annotated[float, _opt("test_timeout_s", "--test-timeout")] = run_default("test_timeout_s"),
) -> None:
    """Port one component: plan, implement, run parity, debug, and end with a handoff."""
    from harness.runs.runner import RunConfig, start_run

    interactive = not non_interactive and _interactive()
    model = _chosen_model(model, interactive)
    sandbox_kind = _chosen_sandbox(sandbox, image)
    cfg = RunConfig(
        packet=packet, repo=repo, model=model, base_url=base_url, price=price, context_window=context_window,
        sandbox=sandbox_kind, image=image,
        gpus=gpus, max_turns=max_turns, max_debug_rounds=max_debug_rounds, max_usd=max_usd,
        max_seconds=max_seconds, non_interactive=non_interactive or not _interactive(), on_budget=on_budget.value,
        run_id=run_id, notify=notify, notify_url=notify_url, max_file_mb=max_file_mb,
        python=python, sandbox_user=sandbox_user, memory=memory, shm_size=shm_size,
        pids_limit=pids_limit, hf_cache=str(hf_cache) if hf_cache else None, pass_env=list(pass_env or []),
        network=network, model_timeout_s=model_timeout, test_timeout_s=test_timeout,
    )
    outcome = _with_view(lambda events: start_run(cfg, events=events), live=model != "human")
    _finish(outcome, interactive=not cfg.non_interactive, live=model != "human")


def doctor_command(
    packet: PacketOpt,
    repo: Annotated[Path, _opt("repo", "--repo", help="The FastVideo checkout (never written).")],
    sandbox: SandboxOpt = run_default("sandbox"),
    image: ImageOpt = run_default("image"),
    gpus: GpusOpt = run_default("gpus"),
    python: PythonOpt = run_default("python"),
    sandbox_user: UserOpt = run_default("sandbox_user"),
    memory: MemoryOpt = run_default("memory"),
    shm_size: ShmOpt = run_default("shm_size"),
    pids_limit: PidsOpt = run_default("pids_limit"),
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    network: NetworkOpt = run_default("network"),
) -> None:
    """Check the sandbox a run would get (interpreter, imports, CUDA, reference, weights, the
    parity test) without calling a model; exit 0 when a run could start, 4 when it could not."""
    from rich.console import Console
    from rich.table import Table

    from harness.graph.doctor import run_doctor
    from harness.runs.runner import RunConfig

    cfg = RunConfig(packet=packet, repo=repo, sandbox=sandbox, image=image, gpus=gpus, python=python,
                    sandbox_user=sandbox_user, memory=memory, shm_size=shm_size, pids_limit=pids_limit,
                    hf_cache=str(hf_cache) if hf_cache else None, pass_env=list(pass_env or []), network=network)
    report = run_doctor(cfg)
    console = Console()
    if report.problems:
        console.print("[bold red]Invalid input:[/bold red]")
        for problem in report.problems:
            console.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(2)
    for line in report.notices:
        console.print(line, highlight=False, markup=False)
    table = Table(title=f"harness doctor ({cfg.sandbox})")
    for col in ("check", "result", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for check in report.checks:
        table.add_row(check.name, "ok" if check.ok else "[red]FAILED[/red]", check.detail, check.fix)
    console.print(table)
    raise typer.Exit(4 if report.failed else 0)


def answer_command(
    run: Annotated[str, typer.Argument(help="The run id.")],
    option: Annotated[Optional[int], typer.Option("--option", help="The option number to choose.")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="A free-text answer.")] = None,
    non_interactive: Annotated[bool, _opt("non_interactive", "--non-interactive")] = False,
) -> None:
    """Answer a paused run's escape-hatch question and continue the run."""
    from harness.runs.runner import AnswerError, RunBusyError, RunError, answer_run

    try:
        outcome = _with_view(lambda events: answer_run(run, option=option, text=text, events=events))
    except (AnswerError, RunError, RunBusyError) as err:
        _fail(str(err))
    _finish(outcome, interactive=not non_interactive and _interactive())


def resume_command(
    run: Annotated[str, typer.Argument(help="The run id.")],
    non_interactive: Annotated[bool, _opt("non_interactive", "--non-interactive")] = False,
) -> None:
    """Continue a crashed or killed run from its last checkpoint."""
    from harness.runs.runner import RunBusyError, RunError, resume_run

    try:
        outcome = _with_view(lambda events: resume_run(run, events=events))
    except (RunError, RunBusyError) as err:
        _fail(str(err))
    _finish(outcome, interactive=not non_interactive and _interactive())


def runs_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as a JSON list.")] = False,
) -> None:
    """List runs: id, status, packet, started, outcome (whole ids; plain rows when piped)."""
    import json

    from rich.table import Table

    from harness.runs.runner import list_runs

    from rich.text import Text

    from harness.printable import printable_data

    rows = printable_data(list_runs())
    columns = ("run_id", "status", "packet", "started", "outcome")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = wide_console()
    if not rows:
        console.print("No runs yet.")
        return
    if not console.is_terminal:  # one tab-separated row per run, nothing cut, for scripts and logs
        for r in [dict(zip(columns, columns))] + rows:
            typer.echo("\t".join(str(r[c]) for c in columns))
        return
    table = Table(title="Runs")
    for col in columns:
        # Ids must stay whole to be copied; long packet paths and outcomes wrap instead.
        table.add_column("id" if col == "run_id" else col, no_wrap=col == "run_id",
                         min_width=max(len(r["run_id"]) for r in rows) if col == "run_id" else None,
                         overflow="fold")
    for r in rows:
        table.add_row(*(Text(str(r[c])) for c in columns))
    console.print(table)


def clean_command(
    runs: Annotated[Optional[list[str]], typer.Argument(help="Run ids to clean.")] = None,
    finished: Annotated[bool, typer.Option("--finished", help="Clean every run that ended with a handoff (completed or blocked).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also clean a run paused on a question.")] = False,
) -> None:
    """Remove runs' worktrees and harness/<id> branches; the run records stay for `show`."""
    from harness.runs.cleanup import CleanError, clean_run, finished_runs

    ids = list(runs or []) + (finished_runs() if finished else [])
    if not ids:
        _fail("name a run id, or pass --finished")
    failed = False
    for run_id in dict.fromkeys(ids):
        try:
            removed = clean_run(run_id, force=force)
        except CleanError as err:
            typer.echo(f"error: {err}", err=True)
            failed = True
            continue
        typer.echo(f"{run_id}: " + ("; ".join(f"removed {r}" for r in removed) if removed else "nothing to remove"))
    if failed:
        raise typer.Exit(2)


def show_command(
    run: Annotated[str, typer.Argument(help="The run id.")],
    diff: Annotated[bool, typer.Option("--diff/--no-diff", help="Show the run's diff.")] = True,
) -> None:
    """Show a run: summary, trajectory and diff."""
    from rich.syntax import Syntax

    from harness.agents.trajectory import render_trajectory
    from harness.runs.live import print_summary
    from harness.runs.runner import RunError, run_details

    from harness.printable import printable

    try:
        details = run_details(run)
    except RunError as err:
        _fail(str(err))
    console = wide_console()
    print_summary(console, details["summary"])
    trajectory = Path(details["run_dir"]) / "trajectory.jsonl"
    if trajectory.is_file():
        console.rule("Trajectory")
        console.print(render_trajectory(trajectory))
    if diff and details.get("diff"):
        console.rule("Diff")
        console.print(Syntax(printable(details["diff"]), "diff", word_wrap=True))


def graph_command() -> None:
    """Print the state machine as a Mermaid diagram."""
    from harness.graph.build import build_graph

    typer.echo(build_graph().get_graph().draw_mermaid())


# ----- shared pieces ------------------------------------------------------------------------------


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _chosen_model(model: str | None, interactive: bool) -> str:
    """--model, or at a terminal the human model, said so; without a terminal "" (the run's
    input check lists it with every other problem)."""
    if model:
        return model
    if not interactive:
        return ""
    _say("model: human (no --model given): you type each agent's tool calls; pass --model anthropic:<m> or "
         "openai:<m> for an LLM")
    return "human"


def _chosen_sandbox(sandbox: str | None, image: str | None) -> str:
    """--sandbox, or docker when --image names an image, or bwrap when it works here, said so;
    never docker with the harness's own test image without saying it."""
    from harness.sandbox.executors.docker import DEFAULT_IMAGE

    if sandbox is None:
        from harness.evals.demo import bwrap_works

        if image:
            sandbox = "docker"
            _say(f"sandbox: docker (no --sandbox given; --image {image} names a container image)")
        elif bwrap_works():
            sandbox = "bwrap"
            _say("sandbox: bwrap (no --sandbox given; bubblewrap works here); pass --sandbox docker --image IMAGE "
                 "to run in FastVideo's container")
        else:
            _fail("no --sandbox given and bubblewrap does not work here: pass --sandbox docker --image IMAGE "
                  "(FastVideo's dev image), install bubblewrap, or pass --sandbox local (no isolation)")
    if sandbox == "docker" and not image:
        _say(f"image: {DEFAULT_IMAGE} (no --image given): the harness's small test image, without FastVideo's "
             "dependencies; pass --image with your FastVideo image")
    return str(sandbox)


def wide_console() -> Any:
    """A rich console; when output is piped, wide enough that tables never cut ids or numbers."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 200))


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _with_view(call: Any, live: bool = True) -> Any:
    """Run `call(events)` under a live rich view when stdout is a terminal. SIGTERM stops it
    as Ctrl-C does (recorded `interrupted`, resumable)."""
    from rich.live import Live

    from harness.graph.signals import terminate_as_interrupt
    from harness.runs.live import LiveView

    console = wide_console()
    with terminate_as_interrupt():
        if not (live and console.is_terminal):
            return call(_plain_events(console))
        view = LiveView()
        try:
            with Live(view, console=console, refresh_per_second=4, transient=True):
                return call(view)
        finally:  # the live view goes away; what stopped a role stays on the screen
            for line in view.caps:
                console.print(line, highlight=False, markup=False)


def _plain_events(console: Any) -> Any:
    """Without a terminal: one line per node and per parity result, for logs and CI."""

    from harness.printable import printable_data

    def sink(kind: str, data: dict[str, Any]) -> None:
        data = printable_data(data)
        if kind == "node_start":
            console.print(f"[harness] {data.get('node')}", highlight=False, markup=False)
        elif kind == "parity":
            console.print(f"[harness] parity {data.get('summary')}", highlight=False, markup=False)
        elif kind == "error":
            console.print(f"[harness] error: {data.get('error')}", highlight=False, markup=False)
        elif kind == "cap":
            console.print(f"[harness] {data.get('text')}", highlight=False, markup=False)
        elif kind == "fault":
            console.print(f"[harness] infrastructure fault: {data.get('fault')}", highlight=False, markup=False)

    return sink


def _finish(outcome: Any, *, interactive: bool, live: bool = True) -> None:
    """Print the outcome; ask the question at the terminal when there is one and we may."""

    from harness.runs.live import print_summary
    from harness.runs.runner import AnswerError, answer_run

    console = wide_console()
    while outcome.status == "paused" and interactive:
        _show_question(console, outcome)
        option, text = _prompt_answer(console, outcome.summary.get("question") or {})
        try:
            outcome = _with_view(lambda events: answer_run(outcome.run_id, option=option, text=text, events=events), live)
        except AnswerError as err:
            console.print(f"[red]{err}[/red]")
    from harness.printable import printable, printable_data

    if outcome.status == "invalid":
        console.print("[bold red]Invalid input:[/bold red]")
        for problem in printable_data(outcome.summary.get("problems", [])):
            console.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(outcome.exit_code)
    print_summary(console, outcome.summary)
    if outcome.status == "interrupted":
        console.print("Interrupted. Continue the run with:", highlight=False, markup=False)
        console.print(f"  harness resume {outcome.run_id}", highlight=False, markup=False)
    if outcome.status == "suspended":
        fault = printable(str(outcome.summary.get("fault")))  # a server's words: never raw to a terminal
        console.print(f"Suspended by an infrastructure fault (not a verdict on the port): {fault}",
                      highlight=False, markup=False)
        console.print("Every step so far is kept. Once the cause is fixed, continue the run with:",
                      highlight=False, markup=False)
        console.print(f"  harness resume {outcome.run_id}", highlight=False, markup=False)
    failed = [c for c in printable_data(outcome.summary.get("preflight") or []) if not c.get("ok")]
    if failed:
        console.print("[bold red]Preflight failed; no model was called:[/bold red]")
        for check in failed:
            console.print(f"  - {check['name']}: {check['detail']}\n    fix: {check['fix']}", highlight=False, markup=False)
    if outcome.status == "paused":
        _show_question(console, outcome)
        console.print("Answer it with:", highlight=False, markup=False)
        console.print(f"  {_exact_answer_command(outcome)}", highlight=False, markup=False)
    raise typer.Exit(outcome.exit_code)


def _exact_answer_command(outcome: Any) -> str:
    question = outcome.summary.get("question") or {}
    options = question.get("options") or []
    if options:
        from harness.runs.answers import option_labels

        labels = option_labels(question)
        recommended = str(question.get("recommended_option", "")).lower()
        n = next((i + 1 for i, o in enumerate(labels) if o.lower().startswith(recommended)), 1)
        return f"harness answer {outcome.run_id} --option {n}"
    return f'harness answer {outcome.run_id} --text "..."'


def _show_question(console: Any, outcome: Any) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from harness.printable import printable_data
    from harness.runs.answers import option_labels

    q = {k: escape(str(v)) if isinstance(v, str) else v for k, v in printable_data(outcome.summary.get("question") or {}).items()}
    lines = [f"[bold]{q.get('question', '')}[/bold]", ""]
    lines += [f"  {i}. {escape(o)}" for i, o in enumerate(option_labels(q), start=1)]
    lines += ["", f"recommended: {q.get('recommended_option')}", f"safe default: {q.get('safe_default')}",
              f"decision type: {q.get('decision_type')}   asked by: {q.get('asked_by')}   id: {q.get('hatch_id')}"]
    console.print(Panel("\n".join(lines), title="A person must decide", border_style="yellow"))


def _prompt_answer(console: Any, question: dict[str, Any]) -> tuple[int | None, str | None]:
    from rich.prompt import Prompt

    raw = Prompt.ask("Your answer (option number, or text)", console=console).strip()
    return (int(raw), None) if raw.isdigit() else (None, raw)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
