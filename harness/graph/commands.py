"""`harness run / answer / resume / runs / show / graph`: start, steer and inspect runs."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from harness.agents.providers import spec_help
from harness.sandbox.registry import sandbox_choices
from harness.sandbox.executors.limits import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MEMORY,
    DEFAULT_MODEL_TIMEOUT_S,
    DEFAULT_PIDS,
    DEFAULT_SHM_SIZE,
    DEFAULT_TEST_TIMEOUT_S,
)


class OnBudget(str, Enum):
    ask = "ask"
    blocked = "blocked"


# Sandbox options shared by `run` and `doctor` (and mirrored by `demo`).
SandboxOpt = Annotated[str, typer.Option(help=f"Where commands and tests run: {sandbox_choices()}.")]
ImageOpt = Annotated[Optional[str], typer.Option(help="Docker image for the sandbox (e.g. FastVideo's dev image).")]
GpusOpt = Annotated[str, typer.Option(help="all | N | device=0,1 | none (bwrap: all or none).")]
PythonOpt = Annotated[Optional[str], typer.Option("--python", help="bwrap/local: the project's python (default: the checkout's .venv, else the harness's own).")]
UserOpt = Annotated[str, typer.Option("--sandbox-user", help="docker: auto | root | UID[:GID] (auto checks the image's python first).")]
MemoryOpt = Annotated[str, typer.Option("--memory", help="Memory limit (docker, bwrap), e.g. 8g, 64g.")]
ShmOpt = Annotated[str, typer.Option("--shm-size", help="docker: /dev/shm size (torch DataLoader workers need more than 64m).")]
PidsOpt = Annotated[int, typer.Option("--pids-limit", help="Process limit (docker, bwrap).")]
HfCacheOpt = Annotated[Optional[Path], typer.Option("--hf-cache", help="A Hugging Face cache folder, mounted read-only (HF_HOME).")]
PassEnvOpt = Annotated[Optional[list[str]], typer.Option("--pass-env", help="Pass a token variable by name to the parity test only: HF_TOKEN, HUGGINGFACE_HUB_TOKEN or HF_API_KEY.")]
NetworkOpt = Annotated[bool, typer.Option("--network", help="Allow network in the sandbox (off by default; said in the run log).")]


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
    packet: Annotated[Path, typer.Option("--packet", help="The component packet (component_context), YAML or JSON.")],
    repo: Annotated[Path, typer.Option("--repo", help="The FastVideo checkout to port into (never written).")],
    model: Annotated[Optional[str], typer.Option(help=f"{spec_help()} (none given: human at a terminal, said so; an error otherwise)")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server URL.")] = None,
    price: Annotated[Optional[str], typer.Option("--price", help="USD per million tokens 'in,out[,cache_read,cache_write]' for a model not in the price table.")] = None,
    context_window: Annotated[Optional[int], typer.Option("--context-window", help="The model's context window in tokens (any provider; e.g. a local server's limit).")] = None,
    sandbox: Annotated[Optional[str], typer.Option(help=f"Where commands and tests run: {sandbox_choices()} (none given: docker with --image, else bwrap when it works; said so).")] = None,
    image: ImageOpt = None,
    gpus: GpusOpt = "none",
    python: PythonOpt = None,
    sandbox_user: UserOpt = "auto",
    memory: MemoryOpt = DEFAULT_MEMORY,
    shm_size: ShmOpt = DEFAULT_SHM_SIZE,
    pids_limit: PidsOpt = DEFAULT_PIDS,
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    network: NetworkOpt = False,
    max_turns: Annotated[int, typer.Option("--max-turns", help="Turn budget per agent.")] = 30,
    max_debug_rounds: Annotated[int, typer.Option("--max-debug-rounds", help="Parity-debug rounds.")] = 4,
    max_usd: Annotated[Optional[float], typer.Option("--max-usd", help="Money budget for the run.")] = None,
    max_seconds: Annotated[Optional[float], typer.Option("--max-seconds", help="Time budget for the run.")] = None,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Never prompt; exit 3 on a question.")] = False,
    on_budget: Annotated[OnBudget, typer.Option("--on-budget", help="When the budget is spent: ask a cost question, or stop blocked.")] = OnBudget.ask,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Name the run (default: time-family-component-random).")] = None,
    notify: Annotated[Optional[str], typer.Option("--notify", help="Shell command run when the run pauses on a question or ends; the event JSON is on its stdin.")] = None,
    notify_url: Annotated[Optional[str], typer.Option("--notify-url", help="URL the pause/end event JSON is POSTed to.")] = None,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", help="Largest file a checkpoint commits (MB); bigger files are a blocking finding.")] = DEFAULT_MAX_FILE_MB,
    model_timeout: Annotated[float, typer.Option("--model-timeout", help="Seconds one model request may take; a server that hangs is cut there.")] = DEFAULT_MODEL_TIMEOUT_S,
    test_timeout: Annotated[float, typer.Option("--test-timeout", help="Seconds one parity test run may take.")] = DEFAULT_TEST_TIMEOUT_S,
) -> None:
    """Port one component: plan, implement, run parity, debug, and end with a handoff."""
    from harness.graph.runner import RunConfig, start_run

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
    packet: Annotated[Path, typer.Option("--packet", help="The component packet (component_context), YAML or JSON.")],
    repo: Annotated[Path, typer.Option("--repo", help="The FastVideo checkout (never written).")],
    sandbox: SandboxOpt = "docker",
    image: ImageOpt = None,
    gpus: GpusOpt = "none",
    python: PythonOpt = None,
    sandbox_user: UserOpt = "auto",
    memory: MemoryOpt = DEFAULT_MEMORY,
    shm_size: ShmOpt = DEFAULT_SHM_SIZE,
    pids_limit: PidsOpt = DEFAULT_PIDS,
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    network: NetworkOpt = False,
) -> None:
    """Check the sandbox a run would get (interpreter, imports, CUDA, reference, weights, the
    parity test) without calling a model; exit 0 when a run could start, 4 when it could not."""
    from rich.console import Console
    from rich.table import Table

    from harness.graph.doctor import run_doctor
    from harness.graph.runner import RunConfig

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
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Never prompt; exit 3 on a question.")] = False,
) -> None:
    """Answer a paused run's escape-hatch question and continue the run."""
    from harness.graph.runner import AnswerError, RunBusyError, RunError, answer_run

    try:
        outcome = _with_view(lambda events: answer_run(run, option=option, text=text, events=events))
    except (AnswerError, RunError, RunBusyError) as err:
        _fail(str(err))
    _finish(outcome, interactive=not non_interactive and _interactive())


def resume_command(
    run: Annotated[str, typer.Argument(help="The run id.")],
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Never prompt; exit 3 on a question.")] = False,
) -> None:
    """Continue a crashed or killed run from its last checkpoint."""
    from harness.graph.runner import RunBusyError, RunError, resume_run

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

    from harness.graph.runner import list_runs

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
    from harness.graph.cleanup import CleanError, clean_run, finished_runs

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
    from harness.graph.live import print_summary
    from harness.graph.runner import RunError, run_details

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

    from harness.graph.live import LiveView
    from harness.graph.signals import terminate_as_interrupt

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

    from harness.graph.live import print_summary
    from harness.graph.runner import AnswerError, answer_run

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
        from harness.graph.answers import option_labels

        labels = option_labels(question)
        recommended = str(question.get("recommended_option", "")).lower()
        n = next((i + 1 for i, o in enumerate(labels) if o.lower().startswith(recommended)), 1)
        return f"harness answer {outcome.run_id} --option {n}"
    return f'harness answer {outcome.run_id} --text "..."'


def _show_question(console: Any, outcome: Any) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from harness.graph.answers import option_labels
    from harness.printable import printable_data

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
