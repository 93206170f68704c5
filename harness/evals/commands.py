"""`harness eval` (run a suite), `harness eval score DIR`, `harness eval report DIR`; and the
demo command of the example, when that module is present."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from harness.graph.commands import GpusOpt, HfCacheOpt, ImageOpt, PassEnvOpt, PythonOpt
from harness.agents.providers import spec_help
from harness.sandbox.registry import sandbox_choices

eval_app = typer.Typer(
    help="Run eval tasks x models x attempts through the real graph and sandbox, then score them.",
    invoke_without_command=True,
    no_args_is_help=False,
    epilog="Example:  harness eval --suite core --model oracle --attempts 3 --workers 2 --sandbox bwrap",
)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(code)


def _parse_prices(values: list[str]) -> dict[str, str]:
    prices = {}
    for value in values:
        model, sep, price = value.rpartition("=")
        if not sep or not model:
            _fail(f"--price {value!r}: expected MODEL=IN,OUT (USD per million tokens)")
        prices[model] = price
    return prices


def _parse_base_urls(values: list[str]) -> dict[str, str]:
    """`URL` (every API model) or `MODEL=URL` (one model), as `harness run --base-url` takes it."""
    urls: dict[str, str] = {}
    for value in values:
        model, sep, url = value.partition("=")
        if sep and "://" not in model:
            urls[model] = url
        else:
            urls["*"] = value
    return urls


@eval_app.callback()
def run(
    ctx: typer.Context,
    suite: Annotated[str, typer.Option(help="bundled suite name (core) or a directory of task dirs")] = "core",
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="only tasks whose id matches this glob")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help=f"model spec (repeatable): a baseline (oracle, null, cheater) or {spec_help(unattended=True)}")] = None,
    attempts: Annotated[int, typer.Option(help="attempts per task and model")] = 1,
    workers: Annotated[int, typer.Option(
        help="attempts in flight at once (local: processes; ray: tasks submitted, placed as resources free up)")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="results directory (re-use it to resume)")] = None,
    sandbox: Annotated[str, typer.Option(help=sandbox_choices())] = "docker",
    image: ImageOpt = None,
    python: PythonOpt = None,
    gpus: Annotated[str, typer.Option(help="every attempt's GPUs, as harness run takes them: all | N | none "
                                           "(--gpus-per-task gives each attempt its own instead)")] = "none",
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    gpus_per_task: Annotated[int, typer.Option(help="GPUs each attempt holds (0: none)")] = 0,
    max_gpu_tasks: Annotated[int, typer.Option(help="attempts that may hold GPUs at once (local backend)")] = 0,
    backend: Annotated[str, typer.Option(help="local (process pool) | ray (a Ray cluster places attempts)")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="Ray cluster to join, e.g. HEAD_IP:6379 (default: start Ray on this machine)")] = None,
    cpus_per_task: Annotated[float, typer.Option(help="CPUs each attempt asks Ray for")] = 1.0,
    memory_per_task: Annotated[float, typer.Option(help="GiB of memory each attempt asks Ray for")] = 1.0,
    worker_retries: Annotated[int, typer.Option(help="re-runs of an attempt whose Ray worker or node died")] = 1,
    worker_dir: Annotated[Optional[str], typer.Option(
        help="where Ray workers unpack attempts on their node (default: the worker's temp dir)")] = None,
    max_total_usd: Annotated[Optional[float], typer.Option(
        help="spend cap for the whole eval: no new attempt starts once it is reached")] = None,
    price: Annotated[Optional[list[str]], typer.Option(
        "--price", help="MODEL=IN,OUT price in USD per million tokens, for a model missing from the table")] = None,
    base_url: Annotated[Optional[list[str]], typer.Option(
        "--base-url", help="OpenAI/Anthropic-compatible server URL for every API model, or MODEL=URL for one "
                           "(repeatable); kept in each attempt's run.json, so answer/resume reuse it")] = None,
    context_window: Annotated[Optional[int], typer.Option(
        "--context-window", help="the models' context window in tokens (as for harness run)")] = None,
    max_debug_rounds: Annotated[Optional[int], typer.Option(help="override every task's debug-round limit")] = None,
    progress: Annotated[bool, typer.Option(help="show live progress (plain lines when not a terminal)")] = True,
) -> None:
    """Run a suite: `harness eval --suite core --model oracle --attempts 1 --workers 2`."""
    if ctx.invoked_subcommand is not None:
        return
    if not model:
        _fail("give at least one --model (e.g. --model oracle)")
    from harness.agents.models.pricing import UnknownPriceError
    from harness.evals.report import load_summary, render_terminal
    from harness.evals.runner import EvalConfig
    from harness.evals.tasks import TaskError

    if out is None:
        out = Path("eval-results") / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    cfg = EvalConfig(suite=suite, models=list(model), out=out, tasks_glob=tasks, attempts=attempts,
                     workers=workers, sandbox=sandbox, image=image, gpus_per_task=gpus_per_task,
                     max_gpu_tasks=max_gpu_tasks, prices=_parse_prices(price or []),
                     max_debug_rounds=max_debug_rounds, backend=backend, ray_address=ray_address,
                     cpus_per_task=cpus_per_task, memory_per_task_gb=memory_per_task, worker_retries=worker_retries,
                     worker_dir=worker_dir, max_total_usd=max_total_usd, base_urls=_parse_base_urls(base_url or []),
                     context_window=context_window, python=python, gpus=gpus,
                     hf_cache=str(hf_cache) if hf_cache else None, pass_env=list(pass_env or []))
    try:
        # Everything that can be wrong with the request is reported before anything runs.
        from harness.evals.provenance import price_table
        from harness.evals.runner import check_config
        from harness.evals.tasks import load_suite

        check_config(cfg)
        tasks = load_suite(cfg.suite, cfg.tasks_glob)
        price_table(cfg.models, cfg.prices)
        # The project's environment, once, before the first attempt (on Ray each node checks its sandbox).
        problems = cfg.environment().problems()
        if cfg.backend == "ray":
            problems = [p for p in problems if not p.startswith("sandbox:")]
        if problems:
            raise TaskError("; ".join(problems))
        _say_left_out(cfg, tasks)
        from harness.graph.signals import terminate_as_interrupt

        with terminate_as_interrupt():  # SIGTERM stops the eval as Ctrl-C does
            results = _run(cfg, progress)
    except (TaskError, UnknownPriceError, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.secho(f"interrupted: finished attempts are in {cfg.out}/results.jsonl; run the same command "
                    "again to resume", err=True, fg="yellow")
        raise typer.Exit(130)
    render_terminal(load_summary(results.parent))
    typer.echo(f"results: {results}")


def _say_left_out(cfg, tasks) -> None:
    """Tasks validation excluded are never run or scored: say which."""
    from harness.evals.tasks import TaskError, load_suite

    try:
        every = load_suite(cfg.suite, cfg.tasks_glob, include_excluded=True)
    except TaskError:
        return
    left = [t for t in every if t.spec.excluded]
    for task in left[:20]:
        typer.secho(f"excluded (never scored): {task.id}: {task.spec.excluded}", err=True, fg="yellow")
    if len(left) > 20:
        typer.secho(f"... and {len(left) - 20} more excluded tasks", err=True, fg="yellow")


def _run(cfg, progress: bool) -> Path:
    from harness.evals.progress import EvalProgress
    from harness.evals.runner import EvalEvents, run_eval

    class Quiet(EvalEvents):
        """--no-progress: only say why the eval stopped early."""

        def stopped(self, reason: str) -> None:
            typer.secho(f"stopped: {reason}", err=True, fg="yellow")

        def close(self) -> None:
            pass

    display = EvalProgress() if progress else Quiet()
    try:
        return run_eval(cfg, events=display)
    finally:
        display.close()


@eval_app.command("score", epilog="Example:  harness eval score eval-results/20250101-120000 --sandbox bwrap")
def score(
    run_dir: Annotated[Path, typer.Argument(help="an eval results directory")],
    sandbox: Annotated[Optional[str], typer.Option(help="grade in this sandbox instead of the run's")] = None,
) -> None:
    """Re-grade every finished attempt from its saved outcome, without re-running agents."""
    from harness.evals.report import render_terminal, summarize
    from harness.evals.runner import rescore
    from harness.evals.tasks import TaskError

    if not (run_dir / "results.jsonl").is_file() or not (run_dir / "provenance.json").is_file():
        _fail(f"{run_dir} is not an eval results directory (no results.jsonl / provenance.json)")
    try:
        rows = rescore(run_dir, sandbox)
    except TaskError as exc:
        _fail(str(exc))
    changed = sum(1 for r in rows if r.get("previous_outcome") not in (None, r.get("outcome")))
    render_terminal(summarize(rows))
    typer.echo(f"re-graded {len(rows)} attempts; {changed} changed outcome")


@eval_app.command("report", epilog="Example:  harness eval report eval-results/20250101-120000 --html report.html")
def report(
    run_dir: Annotated[Path, typer.Argument(help="an eval results directory")],
    html: Annotated[Optional[Path], typer.Option(help="also write a self-contained HTML report here")] = None,
) -> None:
    """Print the score tables; with --html, write the HTML report with plots."""
    from harness.evals.report import load_summary, render_terminal
    from harness.evals.report_html import render_html
    from harness.evals.tasks import TaskError

    try:
        summary = load_summary(run_dir)
    except TaskError as exc:
        _fail(str(exc))
    render_terminal(summary)
    if html is not None:
        path = render_html(summary, html, title=f"Eval report: {run_dir.resolve().name}")
        typer.echo(f"html report: {path}")


@eval_app.command("build-suite")
def build_suite_command(
    repo: Annotated[Path, typer.Option(help="a FastVideo checkout (git); read at --commit, never written")],
    out: Annotated[Path, typer.Option(help="the suite folder to write (new or empty)")],
    commit: Annotated[str, typer.Option(help="the commit of the checkout to mine")] = "HEAD",
    official: Annotated[Optional[list[Path]], typer.Option(
        "--official", help="an official reference folder the tests read, besides the git-ignored folders at the "
                           "checkout root (repeatable)")] = None,
    components: Annotated[Optional[str], typer.Option(help="only component modules matching this glob")] = None,
    sandbox: Annotated[str, typer.Option(help=f"{sandbox_choices()} (where the checks run)")] = "docker",
    image: ImageOpt = None,
    python: PythonOpt = None,
    gpus: GpusOpt = "none",
    hf_cache: HfCacheOpt = None,
    pass_env: PassEnvOpt = None,
    probe: Annotated[bool, typer.Option(help="run the run's preflight on each runnable base")] = True,
    validate: Annotated[bool, typer.Option(help="validate each runnable task: null and oracle through the verdict")] = True,
    twins: Annotated[bool, typer.Option(help="write an impossible twin of each task")] = True,
) -> None:
    """Mine an eval suite of real ports from a FastVideo checkout:
    `harness eval build-suite --repo ~/src/FastVideo --out suites/fastvideo --sandbox bwrap --python .venv/bin/python`."""
    from harness.evals.environment import Environment
    from harness.evals.suite_build import BuildOptions, build_suite, render_table
    from harness.evals.tasks import TaskError

    if not (repo / ".git").exists():
        _fail(f"{repo} is not a git checkout")
    env = Environment(sandbox=sandbox, image=image, python=python, gpus=gpus,
                      hf_cache=str(hf_cache) if hf_cache else None, pass_env=tuple(pass_env or []))
    if (probe or validate) and (problems := env.problems(repo)):
        _fail("; ".join(problems))
    opts = BuildOptions(repo=repo, out=out, commit=commit, official=list(official or []), env=env, probe=probe,
                        validate=validate, twins=twins, components=components)
    try:
        entries = build_suite(opts, say=lambda line: typer.echo(line, err=True))
    except TaskError as exc:
        _fail(str(exc))
    render_table(entries)
    typer.echo(f"suite: {out / 'suite.json'}")


def register(app: typer.Typer) -> None:
    """Add `harness eval` (and `harness demo`, when the demo module is there) to the app."""
    app.add_typer(eval_app, name="eval")
    if importlib.util.find_spec("harness.evals.demo") is not None:
        from harness.evals import demo

        demo.register(app)
