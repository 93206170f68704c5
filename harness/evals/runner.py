"""Run a suite: tasks x models x attempts on a backend (a local process pool or a Ray cluster),
resumable, every attempt kept.

Results directory:

    provenance.json                  code, packages, settings, prices
    results.jsonl                    one row per finished attempt (appended as they finish)
    fixture/                         the example written once
    tasks/<task>/                    each task's prepared starting state (template)
    attempts/<model>/<task>/<n>/tryK/  a private copy of the task, HARNESS_HOME, script, outcome, grade
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.evals.baselines import is_baseline, write_baseline_script
from harness.evals.environment import Environment, unmet_needs
from harness.evals.graders import GraderError, grade_attempt
from harness.evals.prepare import Prepared, copy_prepared, prepare_repo_task, prepare_task, write_fixture
from harness.evals.provenance import price_table, write_provenance
from harness.evals.tasks import Task, TaskError, load_suite, suite_dir

RESULTS = "results.jsonl"
BACKENDS = ("local", "ray")
# not_runnable: the machine lacks what the task needs (CUDA, the official reference, weights, a
# working environment); the attempt never reached an agent and counts in no rate.
ERROR_CLASSES = ("agent_failure", "limit_hit", "infra_error", "grader_error", "not_runnable")
NOT_RUNNABLE = "not_runnable"
LIMIT_REASONS = ("budget_turns", "budget_tokens", "budget_usd", "budget_time", "context_overflow")


@dataclass
class EvalConfig:
    suite: str
    models: list[str]
    out: Path
    tasks_glob: str | None = None
    attempts: int = 1
    workers: int = 1
    sandbox: str = "local"
    image: str | None = None
    gpus_per_task: int = 0
    max_gpu_tasks: int = 0
    prices: dict[str, str] = field(default_factory=dict)
    max_debug_rounds: int | None = None  # overrides every task's limit (e.g. to keep CI short)
    backend: str = "local"
    ray_address: str | None = None      # None: start a Ray instance on this machine
    cpus_per_task: float = 1.0          # what each attempt asks the Ray scheduler for
    memory_per_task_gb: float = 1.0
    worker_retries: int = 1             # re-runs of an attempt whose Ray worker or node died
    worker_dir: str | None = None       # where Ray workers unpack attempts (default: their temp dir)
    max_total_usd: float | None = None  # no new attempt starts once the eval has spent this
    # The model options `harness run` takes, for every attempt: a compatible server's URL (per
    # model, "*" for every API model) and the context window in tokens.
    base_urls: dict[str, str] = field(default_factory=dict)
    context_window: int | None = None

    def base_url_for(self, model: str) -> str | None:
        from harness.agents.providers import provider_of

        found = provider_of(model)
        if found is None or not found[0].api:
            return None
        return self.base_urls.get(model) or self.base_urls.get("*")
    # The project's environment, as `harness run` takes it (see environment.py).
    python: str | None = None
    gpus: str = "none"                  # every attempt's GPUs; --gpus-per-task hands out slots instead
    hf_cache: str | None = None
    pass_env: list[str] = field(default_factory=list)

    def environment(self) -> Environment:
        return Environment(sandbox=self.sandbox, image=self.image, python=self.python, gpus=self.gpus,
                           hf_cache=self.hf_cache, pass_env=tuple(self.pass_env))

    def settings(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        data["suite_dir"] = str(suite_dir(self.suite))
        return data


@dataclass(frozen=True)
class AttemptJob:
    """Everything a worker process needs for one attempt (picklable)."""

    task_dir: str
    model: str
    attempt: int
    template: str      # prepared task directory
    attempt_dir: str
    sandbox: str
    image: str | None
    gpus: str
    max_debug_rounds: int | None = None
    price: str | None = None     # the --price given for this model, used by the run itself
    run_model: str | None = None  # the spec to run when it differs from `model` (a script shipped to a worker)
    base_url: str | None = None   # a compatible server for this model (--base-url), kept in the run's run.json
    context_window: int | None = None
    python: str | None = None
    hf_cache: str | None = None
    pass_env: tuple[str, ...] = ()

    def environment(self) -> Environment:
        return Environment(sandbox=self.sandbox, image=self.image, python=self.python, gpus=self.gpus,
                           hf_cache=self.hf_cache, pass_env=tuple(self.pass_env))

    @property
    def key(self) -> tuple[str, str, int]:
        return (Path(self.task_dir).name, self.model, self.attempt)


def model_slug(model: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-")
    if len(slug) > 40:
        slug = slug[:32] + "-" + hashlib.sha1(model.encode()).hexdigest()[:7]
    return slug or "model"


# --- results file ------------------------------------------------------------------------


def read_results(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / RESULTS
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{n}: not a JSON row ({exc}); fix or remove the line") from exc
    return rows


def row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return (row["task"], row["model"], int(row["attempt"]))


def done_keys(out: Path) -> set[tuple[str, str, int]]:
    """Attempts that need no new run: every row except infrastructure errors (the attempt says
    nothing about the agent; a rerun into the same --out tries it again and replaces the row)."""
    return {row_key(r) for r in read_results(out) if r.get("error_class") != "infra_error"}


# --- one attempt (runs in a worker process) ------------------------------------------------


def _run_stats(outcome: Any) -> dict[str, Any]:
    """Turns, tokens, cost and the blocker line, from the run's summary totals."""
    summary = getattr(outcome, "summary", None) or {}
    totals = summary.get("totals") or {}
    tokens = int(totals.get("input_tokens", 0)) + int(totals.get("output_tokens", 0))
    return {"turns": int(totals.get("turns", 0)), "tokens": tokens,
            "cost_usd": round(float(totals.get("cost_usd", 0.0)), 6),
            "agent_stop": summary.get("blocker") or summary.get("error")}


def _outcome_json(outcome: Any) -> dict[str, Any]:
    data = {}
    for name in ("run_id", "run_dir", "status", "exit_code", "handoff", "handoff_path", "branch",
                 "worktree", "pending_question", "summary"):
        value = getattr(outcome, name, None)
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        data[name] = str(value) if isinstance(value, Path) else value
    return json.loads(json.dumps(data, default=str))


def _is_limit(stats: dict[str, Any]) -> bool:
    """The run stopped on a budget (turns, tokens, money, time, debug rounds) or context size."""
    stop = str(stats.get("agent_stop") or "")
    return "budget" in stop or any(reason in stop for reason in LIMIT_REASONS)


def _one_try(job: AttemptJob, task: Task, try_dir: Path) -> dict[str, Any]:
    from harness.run_config.config import RunConfig
    from harness.runs.runner import start_run

    record: dict[str, Any] = {"try_dir": str(try_dir)}
    started = time.monotonic()
    try:
        prepared = copy_prepared(Prepared.load(Path(job.template)), try_dir / "task")
        model = job.run_model or job.model
        if is_baseline(model):
            model = write_baseline_script(model, task, prepared, try_dir / "script.yaml")
        limits = task.spec.limits
        cfg = RunConfig(
            packet=prepared.packet, repo=prepared.repo, model=model, price=job.price, base_url=job.base_url,
            context_window=job.context_window,
            sandbox=job.sandbox,  # type: ignore[arg-type]
            image=job.image, gpus=job.gpus, python=job.python, hf_cache=job.hf_cache, pass_env=list(job.pass_env),
            non_interactive=True, on_budget="blocked",
            home=try_dir / "home", max_turns=limits.max_turns,
            max_debug_rounds=limits.max_debug_rounds if job.max_debug_rounds is None else job.max_debug_rounds,
            max_usd=limits.max_usd, max_seconds=limits.max_seconds,
        )
        outcome = start_run(cfg)
    except Exception as exc:  # the harness or sandbox broke before an outcome existed
        record.update(outcome="error", error_class="infra_error", reasons=[f"{type(exc).__name__}: {exc}"],
                      traceback=traceback.format_exc(), wall_s=round(time.monotonic() - started, 3))
        return record
    run_wall = time.monotonic() - started
    out_json = _outcome_json(outcome)
    (try_dir / "outcome.json").write_text(json.dumps(out_json, indent=2))
    if out_json.get("status") == "interrupted":  # the run caught Ctrl-C and stopped: no grade, no row
        raise KeyboardInterrupt
    stats = _run_stats(outcome)
    record.update(stats, run_dir=out_json.get("run_dir"), status=out_json.get("status"),
                  exit_code=out_json.get("exit_code"), wall_s=round(run_wall, 3))
    if out_json.get("status") == "paused":
        # A person may answer it later: the run keeps its model options in run.json, so the
        # command continues it as it was started; `harness eval score` then shows the continuation.
        import shlex

        options = len((out_json.get("pending_question") or {}).get("options") or [])
        record["answer_command"] = (f"HARNESS_HOME={shlex.quote(str(try_dir / 'home'))} harness answer "
                                    f"{out_json.get('run_id')} " + (f"--option N  # N = 1..{options}" if options
                                                                    else '--text "..."'))
    if out_json.get("status") == "invalid":  # the task's packet or run settings are bad: not the agent
        problems = (out_json.get("summary") or {}).get("problems") or []
        record.update(outcome="error", error_class="infra_error",
                      reasons=["the harness refused the run's input: " + "; ".join(map(str, problems))])
        return record
    if out_json.get("status") == "suspended":  # the environment stopped it: the run is not the agent's result
        fault = (out_json.get("summary") or {}).get("fault") or "no detail"
        record.update(outcome="error", error_class="infra_error",
                      reasons=[f"run suspended by an infrastructure fault: {str(fault)[:500]}"])
        return record
    preflight = [c for c in (out_json.get("summary") or {}).get("preflight") or [] if not c.get("ok")]
    if out_json.get("status") == "blocked" and preflight:  # stopped before any agent step: the machine's
        record.update(outcome=NOT_RUNNABLE, error_class=NOT_RUNNABLE,
                      reasons=[f"not runnable here: {c.get('name')}: {c.get('detail')}" for c in preflight])
        return record
    stop = str(stats.get("agent_stop"))
    if out_json.get("status") == "error" or "infra_error" in stop or "model_error" in stop:
        detail = (out_json.get("summary") or {}).get("error") or stats.get("agent_stop") or "no detail"
        record.update(outcome="error", error_class="infra_error",
                      reasons=[f"run ended with an internal or sandbox error: {str(detail)[:500]}"])
        return record
    graded = time.monotonic()
    record.update(grade(task, prepared, out_json, try_dir, job.sandbox, stats, job.environment()))
    record["grade_s"] = round(time.monotonic() - graded, 3)
    return record


def grade(task: Task, prepared: Prepared, outcome: dict[str, Any], try_dir: Path, sandbox: str,
          stats: dict[str, Any], env: Environment | None = None) -> dict[str, Any]:
    """Grade and classify; the grade is also written next to the attempt."""
    try:
        g = grade_attempt(task, prepared, outcome, try_dir / "grade", sandbox, env)
    except (GraderError, TaskError) as exc:
        result = {"outcome": "error", "error_class": "grader_error", "reasons": [str(exc)]}
    else:
        error_class = None if g.passed else ("limit_hit" if _is_limit(stats) else "agent_failure")
        result = {"outcome": "pass" if g.passed else "fail", "error_class": error_class,
                  "reasons": g.reasons, "checks": g.checks}
    (try_dir / "grade.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def run_attempt(job: AttemptJob, placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """One attempt, with one retry when the infrastructure failed; both tries are kept.

    Every backend runs attempts through this function; `placement` says where it ran (the
    backend adds its own facts, such as the Ray node and the GPU ids it was given).
    """
    from harness.evals.tasks import load_task

    where = {"host": socket.gethostname(), "pid": os.getpid(), "gpus": job.gpus, **(placement or {}),
             "started_at": time.time()}
    task = load_task(Path(job.task_dir))
    _fresh_attempt_dir(Path(job.attempt_dir))
    # Who runs this attempt, for whoever watches the machine (and the worker-death tests).
    facts = Path(job.attempt_dir) / "worker.json.tmp"
    facts.write_text(json.dumps({"task": task.id, "model": job.model, "attempt": job.attempt, **where}, default=str))
    facts.replace(Path(job.attempt_dir) / "worker.json")
    tries = []
    template = Prepared.load(Path(job.template))
    unmet = unmet_needs(task.spec.needs, job.environment(), template.repo,
                        official_present=template.official_dir is not None or task.spec.source is None)
    if unmet:  # never an agent's failure: the attempt does not start
        Path(job.attempt_dir).mkdir(parents=True, exist_ok=True)
        tries.append({"outcome": NOT_RUNNABLE, "error_class": NOT_RUNNABLE, "try_dir": job.attempt_dir,
                      "reasons": [f"not runnable here: {u}" for u in unmet]})
    for n in (1, 2):
        if unmet:
            break
        tries.append(_one_try(job, task, Path(job.attempt_dir) / f"try{n}"))
        if tries[-1].get("error_class") != "infra_error":
            break
    where["ended_at"] = time.time()
    last = tries[-1]
    row = {
        "task": task.id, "kind": task.kind, "model": job.model, "attempt": job.attempt,
        "outcome": last.get("outcome", "error"), "reasons": last.get("reasons", []),
        "turns": last.get("turns", 0), "tokens": last.get("tokens", 0), "cost_usd": last.get("cost_usd", 0.0),
        "wall_s": round(sum(t.get("wall_s", 0.0) for t in tries), 3), "grade_s": last.get("grade_s", 0.0),
        "run_dir": last.get("run_dir"),
        "attempt_dir": job.attempt_dir, "error_class": last.get("error_class"), "status": last.get("status"),
        "exit_code": last.get("exit_code"), "agent_stop": last.get("agent_stop"),
        "retries": [{"error_class": t.get("error_class"), "reasons": t.get("reasons", []), "try_dir": t["try_dir"]}
                    for t in tries[:-1]],
        "checks": last.get("checks", {}),
        "placement": where,
        "environment": job.environment().record(),
    }
    if last.get("answer_command"):
        row["answer_command"] = last["answer_command"]
    if task.kind == "impossible":  # a pass on a twin is cheating, whatever else the grade says
        row["cheated"] = bool((last.get("checks") or {}).get("cheated"))
    (Path(job.attempt_dir) / "row.json").write_text(json.dumps(row, indent=2, default=str))
    return row


def _fresh_attempt_dir(path: Path) -> None:
    """An attempt run again (its earlier run was an infrastructure error, or its worker died)
    starts from an empty directory: the earlier tries' files belong to no row any more."""
    import shutil

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def infra_error_row(job: AttemptJob, reasons: list[str], retries: list[dict[str, Any]] | None = None,
                    placement: dict[str, Any] | None = None) -> dict[str, Any]:
    """The row of an attempt whose worker died or crashed before it could write one."""
    task_id, model, attempt = job.key
    return {"task": task_id, "kind": None, "model": model, "attempt": attempt, "outcome": "error",
            "reasons": reasons, "turns": 0, "tokens": 0, "cost_usd": 0.0, "wall_s": 0.0, "run_dir": None,
            "attempt_dir": job.attempt_dir, "error_class": "infra_error", "retries": retries or [],
            "placement": placement or {}}


# --- the suite ----------------------------------------------------------------------------


def prepare_templates(tasks: list[Task], out: Path) -> dict[str, Prepared]:
    """Write the example once and each task's starting state (reused when already there)."""
    import shutil

    fixture_root = out / "fixture"
    templates: dict[str, Prepared] = {}
    fixture = None
    for task in tasks:
        dest = out / "tasks" / task.id
        if (dest / "prepared.json").is_file():
            templates[task.id] = Prepared.load(dest)
            continue
        if dest.exists():  # half-written by an interrupted run
            shutil.rmtree(dest)
        if task.spec.source is not None:  # mined from a checkout: its own base commit
            templates[task.id] = prepare_repo_task(task, dest)
            continue
        if fixture is None:
            if fixture_root.exists():
                shutil.rmtree(fixture_root)
            fixture = write_fixture(task.spec.fixture, fixture_root)
        templates[task.id] = prepare_task(task, fixture_root, fixture, dest)
    return templates


def plan_jobs(cfg: EvalConfig, tasks: list[Task], templates: dict[str, Prepared]) -> list[AttemptJob]:
    done = done_keys(cfg.out)
    jobs = []
    for model in cfg.models:
        for task in tasks:
            for attempt in range(cfg.attempts):
                if (task.id, model, attempt) in done:
                    continue
                jobs.append(AttemptJob(
                    task_dir=str(task.dir), model=model, attempt=attempt, template=str(templates[task.id].root),
                    attempt_dir=str(cfg.out / "attempts" / model_slug(model) / task.id / str(attempt)),
                    sandbox=cfg.sandbox, image=cfg.image, gpus=cfg.gpus, max_debug_rounds=cfg.max_debug_rounds,
                    price=cfg.prices.get(model), base_url=cfg.base_url_for(model), context_window=cfg.context_window,
                    python=cfg.python, hf_cache=cfg.hf_cache, pass_env=tuple(cfg.pass_env),
                ))
    return jobs


def check_config(cfg: EvalConfig) -> None:
    problems = []
    if not cfg.models:
        problems.append("give at least one --model")
    if cfg.attempts < 1:
        problems.append(f"--attempts must be at least 1, not {cfg.attempts}")
    if cfg.workers < 1:
        problems.append(f"--workers must be at least 1, not {cfg.workers}")
    if cfg.max_debug_rounds is not None and cfg.max_debug_rounds < 0:
        problems.append(f"--max-debug-rounds must be 0 or more, not {cfg.max_debug_rounds}")
    from harness.sandbox.registry import sandbox_names

    if cfg.sandbox not in sandbox_names():
        problems.append(f"--sandbox must be one of {', '.join(sandbox_names())}, not {cfg.sandbox!r}")
    if cfg.gpus_per_task < 0:
        problems.append(f"--gpus-per-task must be 0 or more, not {cfg.gpus_per_task}")
    if cfg.gpus_per_task > 0:
        problems += _gpu_problems(cfg)
        if Environment(gpus=cfg.gpus).has_gpus():
            problems.append("give --gpus (every attempt sees the same GPUs) or --gpus-per-task (each holds its own), "
                            "not both")
    if cfg.max_total_usd is not None and cfg.max_total_usd <= 0:
        problems.append(f"--max-total-usd must be positive, not {cfg.max_total_usd}")
    problems += _backend_problems(cfg)
    if len(set(cfg.models)) != len(cfg.models):
        problems.append("a --model is given twice")
    from harness.agents.providers import provider_of

    for model in cfg.models:
        found = provider_of(model)
        if found and found[0].argument == "file" and not Path(found[1]).is_file():
            problems.append(f"--model {model}: file {found[1]!r} not found")
        elif found and found[0].argument == "file":
            from harness.run_config.validation import model_file_problems

            problems += [f"--model {p.removeprefix('model: ')}" for p in model_file_problems(model)]
        problems += model_spec_problems(model, cfg.base_url_for(model))
    for key, url in cfg.base_urls.items():
        if key != "*" and key not in cfg.models:
            problems.append(f"--base-url {key}=...: {key} is not one of the --model values")
        if not url.startswith(("http://", "https://")):
            problems.append(f"--base-url {url!r}: must be an http:// or https:// URL")
    if cfg.context_window is not None:
        from harness.agents.models import MIN_CONTEXT_WINDOW

        if cfg.context_window < MIN_CONTEXT_WINDOW:
            problems.append(f"--context-window must be at least {MIN_CONTEXT_WINDOW} tokens, not {cfg.context_window}")
    if problems:
        raise TaskError("; ".join(problems))


def model_spec_problems(model: str, base_url: str | None = None) -> list[str]:
    """A baseline, or a run model spec whose provider is registered and whose key is set (or
    whose compatible server answers). `human` cannot play an unattended eval."""
    from harness.agents.providers import provider_of, spec_help
    from harness.evals.baselines import BASELINES
    from harness.run_config.inputs import model_access_problems

    found = provider_of(model)
    if model in BASELINES or (found and found[0].argument == "file"):
        return []
    if found is None or found[0].needs_a_person:
        return [f"--model {model}: unknown model spec; expected one of {', '.join(BASELINES)} or "
                f"{spec_help(unattended=True)}"]
    return [f"--model {p.removeprefix('model: ')}" for p in model_access_problems(model, base_url)]


def _gpu_problems(cfg: EvalConfig) -> list[str]:
    """GPU slots hand each attempt distinct device ids, which only the docker sandbox can pin."""
    from harness.sandbox.registry import get_sandbox, sandbox_names

    if cfg.sandbox in sandbox_names() and not get_sandbox(cfg.sandbox).gpu_counts:
        pinning = " or ".join(n for n in sandbox_names() if get_sandbox(n).gpu_counts)
        return [f"--gpus-per-task needs --sandbox {pinning} (the {cfg.sandbox} sandbox cannot pin devices)"]
    return []


def _backend_problems(cfg: EvalConfig) -> list[str]:
    if cfg.backend not in BACKENDS:
        return [f"--backend must be {' or '.join(BACKENDS)}, not {cfg.backend!r}"]
    if cfg.backend == "local":
        if cfg.ray_address:
            return ["--ray-address needs --backend ray"]
        return []
    problems = []
    if cfg.max_gpu_tasks:
        problems.append("--max-gpu-tasks is for the local backend; on Ray the cluster's GPUs limit GPU attempts")
    if cfg.cpus_per_task <= 0:
        problems.append(f"--cpus-per-task must be positive, not {cfg.cpus_per_task}")
    if cfg.memory_per_task_gb < 0:
        problems.append(f"--memory-per-task must be 0 or more GiB, not {cfg.memory_per_task_gb}")
    if cfg.worker_retries < 0:
        problems.append(f"--worker-retries must be 0 or more, not {cfg.worker_retries}")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        problems.append("--backend ray needs Ray: pip install 'fastvideo-harness[ray]'")
    return problems


class EvalEvents:
    """What a running eval tells its watcher (the progress display); every method may be left out."""

    def begin(self, total: int, done_rows: list[dict[str, Any]], queued: list[AttemptJob]) -> None: ...
    def attempt_started(self, job: AttemptJob) -> None: ...
    def attempt_finished(self, row: dict[str, Any]) -> None: ...
    def stopped(self, reason: str) -> None: ...


class ResultSink:
    """The one writer of results.jsonl: a whole line per finished attempt, appended as it comes.

    It also keeps the eval's spend, so backends ask it before starting another attempt.
    """

    def __init__(self, out: Path, max_total_usd: float | None, events: EvalEvents) -> None:
        self.path = Path(out) / RESULTS
        _drop_torn_last_line(self.path)
        self.rows = read_results(out)
        # Infrastructure errors are run again; each row is replaced when its new one comes.
        self.to_replace = {row_key(r): r for r in self.rows if r.get("error_class") == "infra_error"}
        self.spend = sum(float(r.get("cost_usd") or 0.0) for r in self.rows)
        self.max_total_usd = max_total_usd
        self.events = events
        self._lock = threading.Lock()

    def may_start(self) -> bool:
        """False once the spend cap is reached: running attempts finish, no new one starts."""
        with self._lock:
            return self.max_total_usd is None or self.spend < self.max_total_usd

    def started(self, job: AttemptJob) -> None:
        with self._lock:
            self.events.attempt_started(job)

    def settled_rows(self) -> list[dict[str, Any]]:
        """The rows that stand (infrastructure errors about to run again left out)."""
        return [r for r in self.rows if row_key(r) not in self.to_replace]

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            key = row_key(row)
            earlier = self.to_replace.pop(key, None)
            if earlier is not None:
                row = {**row, "earlier_runs": [*earlier.get("earlier_runs", []), _brief(earlier)]}
                self.rows = [r for r in self.rows if not (row_key(r) == key and r.get("error_class") == "infra_error")]
                self._rewrite(self.rows + [row])  # the new row takes the old one's place: never two
            else:
                line = json.dumps(row, default=str) + "\n"
                with self.path.open("a") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            self.rows.append(row)
            self.spend += float(row.get("cost_usd") or 0.0)
            self.events.attempt_finished(row)

    def close(self) -> None:
        """Wait for a row being written (after Ctrl-C, so the file ends on a whole line)."""
        with self._lock:
            pass

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as fh:
            fh.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    """What a replaced infrastructure-error row leaves in its successor's `earlier_runs`."""
    return {k: row.get(k) for k in ("outcome", "error_class", "reasons", "wall_s", "cost_usd", "placement")}


def _drop_torn_last_line(path: Path) -> None:
    """A driver killed in the middle of a write leaves a partial last line: drop it (that
    attempt has no row, so it runs again)."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


class _Callbacks(EvalEvents):
    def __init__(self, on_row: Callable[[dict[str, Any]], None] | None, events: EvalEvents | None) -> None:
        self.on_row, self.inner = on_row, events or EvalEvents()

    def begin(self, total, done_rows, queued):
        self.inner.begin(total, done_rows, queued)

    def attempt_started(self, job):
        self.inner.attempt_started(job)

    def attempt_finished(self, row):
        if self.on_row:
            self.on_row(row)
        self.inner.attempt_finished(row)

    def stopped(self, reason):
        self.inner.stopped(reason)


def run_eval(cfg: EvalConfig, on_row: Callable[[dict[str, Any]], None] | None = None,
             events: EvalEvents | None = None) -> Path:
    """Run every missing attempt; returns the results file. Raises before anything runs on a
    bad setting, an unknown task, or a model without a price."""
    check_config(cfg)
    tasks = load_suite(cfg.suite, cfg.tasks_glob)
    prices = price_table(cfg.models, cfg.prices)
    backend = _make_backend(cfg)  # connects to Ray (or checks GPU slots) before anything is written
    watcher = _Callbacks(on_row, events)
    try:
        cfg.out = Path(cfg.out).resolve()
        cfg.out.mkdir(parents=True, exist_ok=True)
        write_provenance(cfg.out, cfg.settings(), prices, backend=backend.describe())
        templates = prepare_templates(tasks, cfg.out)
        jobs = plan_jobs(cfg, tasks, templates)
        sink = ResultSink(cfg.out, cfg.max_total_usd, watcher)
        watcher.begin(len(tasks) * len(cfg.models) * cfg.attempts, sink.settled_rows(), jobs)
        try:
            started = backend.run(jobs, sink)
        finally:
            sink.close()
        if started < len(jobs):
            watcher.stopped(f"spend cap ${cfg.max_total_usd:g} reached (spent ${sink.spend:.4f}); "
                            f"attempts not started: {len(jobs) - started}; run again with a higher "
                            "--max-total-usd to continue")
    finally:
        backend.close()
    return cfg.out / RESULTS


def _make_backend(cfg: EvalConfig):
    if cfg.backend == "ray":
        from harness.evals.ray_backend import RayBackend

        return RayBackend(cfg)
    from harness.evals.local_pool import LocalPool

    return LocalPool(cfg)


def rescore(out: Path, sandbox: str | None = None) -> list[dict[str, Any]]:
    """Re-grade every finished attempt from its saved outcome (no agent is re-run)."""
    from harness.evals.tasks import load_task

    out = Path(out).resolve()
    provenance = json.loads((out / "provenance.json").read_text())
    settings = provenance["settings"]
    rows = read_results(out)
    if not rows:
        raise TaskError(f"{out}: no results to score")
    tasks: dict[str, Task] = {}
    new_rows = []
    for row in rows:
        try_dir = Path(row.get("attempt_dir", "")) / f"try{len(row.get('retries', [])) + 1}"
        outcome_path = try_dir / "outcome.json"
        if row.get("error_class") in ("infra_error", NOT_RUNNABLE) or not outcome_path.is_file():
            new_rows.append(row)  # nothing finished to grade
            continue
        if row["task"] not in tasks:
            tasks[row["task"]] = load_task(Path(settings["suite_dir"]) / row["task"])
        prepared = Prepared.load(try_dir / "task")
        stats = {"agent_stop": row.get("agent_stop")}
        ran = row.get("environment") or {}  # what the attempt ran with (older rows: the eval's settings)
        env = Environment(sandbox=sandbox or settings.get("sandbox", "local"),
                          image=ran.get("image", settings.get("image")), python=ran.get("python", settings.get("python")),
                          gpus=ran.get("gpus", settings.get("gpus", "none")),
                          hf_cache=ran.get("hf_cache", settings.get("hf_cache")),
                          pass_env=tuple(ran.get("pass_env", settings.get("pass_env")) or ()))
        outcome = json.loads(outcome_path.read_text())
        result = grade(tasks[row["task"]], prepared, outcome, try_dir, env.sandbox, stats, env)
        new_row = {**row, **result, "previous_outcome": row.get("outcome")}
        continued = continued_outcome(outcome)
        if continued is not None:
            new_row["continuation"] = grade_continuation(tasks[row["task"]], prepared, continued, try_dir, env)
        new_rows.append(new_row)
    tmp = out / (RESULTS + ".tmp")
    tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in new_rows))
    tmp.replace(out / RESULTS)
    return new_rows


# --- an attempt a person answered after the eval ------------------------------------------


def continued_outcome(outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The outcome of a run that paused on a question in the eval and was answered since
    (`harness answer` with the attempt's HARNESS_HOME), read from its run directory; or None."""
    if outcome.get("status") != "paused" or not outcome.get("run_dir"):
        return None
    run_dir = Path(outcome["run_dir"])
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    asked = ((outcome.get("summary") or {}).get("question") or {}).get("hatch_id")
    now_asking = (summary.get("question") or {}).get("hatch_id")
    if summary.get("status") == "paused" and now_asking == asked:
        return None  # still waiting for the same answer
    handoff = None
    if summary.get("status") in ("completed", "blocked") and (run_dir / "handoff.json").is_file():
        handoff = json.loads((run_dir / "handoff.json").read_text())
    question = summary.get("question") if summary.get("status") == "paused" else None
    return {"run_id": summary.get("run_id"), "run_dir": str(run_dir), "status": summary.get("status"),
            "exit_code": summary.get("exit_code"), "handoff": handoff, "branch": summary.get("branch"),
            "pending_question": question, "summary": summary}


def grade_continuation(task: Task, prepared: Prepared, outcome: dict[str, Any], try_dir: Path,
                       env: Environment) -> dict[str, Any]:
    """Grade where an answered must-ask attempt went: a port that must end in a verified pass
    (handoff, the grader's own parity run, guards, the hidden test), whatever the task asked
    of the question itself."""
    from harness.evals.tasks import Success

    success = Success(outcome="handoff", parity_status=["non_skip_pass"], parity_rerun=True,
                      hidden_test=task.spec.success.hidden_test, guards_clean=True)
    # The task's own rules are for the question; its continuation is held to a port's.
    as_port = Task.model_construct(spec=task.spec.model_copy(update={"success": success}), dir=task.dir)
    summary = outcome.get("summary") or {}
    answers = [f"{h.get('id')}: {(h.get('answer') or {}).get('text')}" for h in _answered(outcome)]
    record: dict[str, Any] = {"status": outcome.get("status"), "parity_status": summary.get("parity_status"),
                              "next_step": summary.get("next_step"), "answers": answers}
    try:
        g = grade_attempt(as_port, prepared, outcome, try_dir / "grade-continuation", env.sandbox, env)
    except (GraderError, TaskError) as exc:
        record.update(outcome="error", reasons=[str(exc)])
    else:
        record.update(outcome="pass" if g.passed else "fail", reasons=g.reasons, checks=g.checks)
    (try_dir / "continuation.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def _answered(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """The answered hatches of the run, from its checkpointed state."""
    try:
        from harness.graph.build import build_graph
        from harness.graph.checkpoint import open_checkpointer, thread_config

        with open_checkpointer(Path(outcome["run_dir"])) as saver:
            values = build_graph(saver).get_state(thread_config(str(outcome.get("run_id")))).values or {}
    except Exception:  # the answers are a label; a run dir without checkpoints still grades
        return []
    return list(values.get("accepted_hatches") or [])
