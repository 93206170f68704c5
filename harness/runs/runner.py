"""Start, resume and answer runs; used by the CLI, `harness demo` and the eval suite.

Exit codes: 0 success handoff, 2 invalid input, 3 paused on an escape hatch, 4 blocked
handoff, 5 suspended by an infrastructure fault (graph/faults.py; `harness resume` continues
once the cause is gone), 1 internal error, 130 interrupted (Ctrl-C or SIGTERM; `harness resume`
continues).

LangGraph loads only where a graph is built (`_graph`), so listing runs and reporting bad
input answer at once.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from harness.graph.checkpoint import CHECKPOINT_DB, RunBusyError, open_checkpointer, run_lock, thread_config
from harness.graph.faults import SUSPENDED_EXIT_CODE, fault_reason, resume_command
from harness.run_config.config import RunConfig, harness_home, home_problems, new_run_id, run_dir as run_dir_for, runs_dir
from harness.run_config.validation import validate_run_input
from harness.runs.answers import AnswerError, validate_answer
from harness.runs.resources import EventSink, RunResources

SERVER_DRIVER = "langgraph-server"  # run.json's driver for runs LangGraph's server started

Status = Literal["completed", "paused", "blocked", "invalid", "error", "interrupted", "suspended"]
EXIT_CODES: dict[str, int] = {"completed": 0, "error": 1, "invalid": 2, "paused": 3, "blocked": 4,
                              "suspended": SUSPENDED_EXIT_CODE, "interrupted": 130}
RUNNING = "running"  # summary.json's status while a process drives the run

__all__ = [
    "AnswerError", "RunBusyError", "RunConfig", "RunError", "RunOutcome",
    "answer_run", "list_runs", "resume_run", "run_details", "start_run",
]


class RunError(RuntimeError):
    """The run cannot be resumed or answered (unknown id, not waiting, ...); exit code 2."""


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path | None
    status: Status
    exit_code: int
    handoff: Any = None            # ComponentSkillHandoff
    handoff_path: Path | None = None
    branch: str | None = None
    worktree: Path | None = None
    pending_question: Any = None   # EscapeHatch
    summary: dict[str, Any] = field(default_factory=dict)


# ----- public API -------------------------------------------------------------------------------


def start_run(cfg: RunConfig, *, events: EventSink | None = None) -> RunOutcome:
    """Validate, then run the graph until it ends or pauses. Nothing is written for bad input."""
    cfg = absolute_config(cfg)
    packet, problems = validate_run_input(cfg)
    run_id = cfg.run_id or (new_run_id(packet.model_family, packet.component) if packet is not None else "")
    if not problems and run_dir_for(run_id, cfg.home).exists():
        problems.append(f"run_id: run {run_id!r} already exists; resume it or choose another id")
    if problems:
        return RunOutcome(run_id, None, "invalid", 2, summary={"status": "invalid", "problems": problems})
    cfg.run_id = run_id
    try:
        rdir = create_run_dir(cfg, run_id)
    except OSError as err:  # the home went read-only or full after the check
        problem = f"harness home: cannot create the run directory: {err}"
        return RunOutcome(run_id, None, "invalid", 2, summary={"status": "invalid", "problems": [problem]})
    res = RunResources(cfg, run_id, rdir, events)
    first = {"run_id": run_id, "run_dir": str(rdir), "config": cfg.to_json()}
    return _drive(res, first)


def resume_run(run_id: str, home: Path | None = None, *, events: EventSink | None = None) -> RunOutcome:
    """Continue a crashed, killed, interrupted or suspended run from its last checkpoint (a
    paused run stays paused). RunError for a run that has finished, and for one LangGraph's
    server drives."""
    _refuse_served(run_id, home, "resume")
    res = _reopen(run_id, home, events, writing=True)
    _refuse_finished(res, "there is nothing to resume")
    with open_checkpointer(res.run_dir) as saver:
        snapshot = _graph(saver).get_state(thread_config(run_id))
    if not snapshot.values:  # killed before the first checkpoint: start the graph again
        return _drive(res, {"run_id": run_id, "run_dir": str(res.run_dir), "config": res.cfg.to_json()})
    if not snapshot.next and not snapshot.interrupts:
        ended = (snapshot.values or {}).get("outcome") or "finished"
        raise RunError(f"run {run_id} has finished ({ended}); there is nothing to resume. "
                       f"`harness show {run_id}` shows it")
    if snapshot.interrupts:
        return _drive(res, None, only_report=True)
    return _drive(res, None)


def answer_run(
    run_id: str,
    option: int | None = None,
    text: str | None = None,
    home: Path | None = None,
    *,
    events: EventSink | None = None,
) -> RunOutcome:
    """Answer the run's pending escape hatch and continue. Raises AnswerError for an answer
    that does not fit the question, RunError when the run is not waiting for one."""
    _refuse_served(run_id, home, "answer")
    res = _reopen(run_id, home, events, writing=True)
    _refuse_finished(res, "it is not waiting for an answer")
    with open_checkpointer(res.run_dir) as saver:
        snapshot = _graph(saver).get_state(thread_config(run_id))
    if not snapshot.interrupts:
        if snapshot.next:  # answered already; the process that went on stopped before the end
            raise RunError(f"run {run_id} is not waiting for an answer: its question was answered and the run went "
                           f"on, then stopped; `{resume_command(run_id)}` continues it")
        raise RunError(f"run {run_id} is not waiting for an answer (it has ended; `harness show {run_id}`)")
    hatch = snapshot.interrupts[0].value.get("hatch", {})
    answer = validate_answer(hatch, option=option, text=text)
    from langgraph.types import Command

    return _drive(res, Command(resume=answer))


def list_runs(home: Path | None = None) -> list[dict[str, Any]]:
    """Every run under the home: its summary.json, or run.json for a run with no summary yet."""
    rows = []
    root = runs_dir(home)
    for rdir in sorted(root.iterdir()) if root.is_dir() else []:
        summary = _read_json(rdir / "summary.json") or {}
        meta = _read_json(rdir / "run.json") or {}
        if not summary and not meta:
            continue
        status = summary.get("status")
        if not status and meta.get("driver") == SERVER_DRIVER:
            status = "served"
        elif not status or status == RUNNING:
            status = _unfinished_status(rdir)
        rows.append({
            "run_id": rdir.name,
            "status": status,
            "packet": (meta.get("config") or {}).get("packet", ""),
            "started": meta.get("started", ""),
            "outcome": summary.get("outcome_line", ""),
            "run_dir": str(rdir),
        })
    return rows


def _refuse_served(run_id: str, home: Path | None, verb: str) -> None:
    """A run LangGraph's server started keeps its checkpoints in the server: driving it from here
    would start it again from nothing."""
    try:
        meta = _read_json(run_dir_for(run_id, home) / "run.json") or {}
    except ValueError:
        return  # a bad id: _reopen says so
    if meta.get("driver") == SERVER_DRIVER:
        raise RunError(f"run {run_id} is driven by LangGraph's server (`langgraph dev`), which keeps its checkpoints; "
                       f"{verb} it through the server (its thread), not `harness {verb}`")


def _refuse_finished(res: RunResources, why: str) -> None:
    """A run that ended with a handoff never moves again, so its summary is final: said at once,
    without loading the graph."""
    summary = _read_json(res.run_dir / "summary.json") or {}
    if summary.get("status") in ("completed", "blocked"):
        raise RunError(f"run {res.run_id} has finished ({summary.get('outcome_line') or summary['status']}); {why}. "
                       f"`harness show {res.run_id}` shows it")


def _unfinished_status(rdir: Path) -> str:
    """A run whose driving process has not written its end: driven right now (its lock is
    held), waiting for an answer (killed right after it paused), or killed."""
    try:
        with run_lock(rdir):
            if not (rdir / CHECKPOINT_DB).is_file():
                return "killed"  # before its first checkpoint
            with open_checkpointer(rdir) as saver:
                snapshot = _graph(saver).get_state(thread_config(rdir.name))
            return "paused" if snapshot.interrupts else "killed"
    except RunBusyError:
        return RUNNING
    except Exception:  # an unreadable checkpoint: it was certainly not finished
        return "killed"


def run_details(run_id: str, home: Path | None = None) -> dict[str, Any]:
    """What `harness show` prints: the summary, the run dir and the diff of the run's branch."""
    res = _reopen(run_id, home, None)
    summary = _read_json(res.run_dir / "summary.json") or {
        "run_id": run_id, "status": RUNNING, "outcome_line": "no summary yet (`harness resume` continues it)",
    }
    if summary.get("status") == RUNNING:
        status = _unfinished_status(res.run_dir)
        summary = {**summary, "status": status,
                   "outcome_line": f"{status}: `{resume_command(run_id)}` continues it" if status == "killed"
                   else summary.get("outcome_line", "")}
    diff = ""
    try:
        from harness.sandbox.workspace import Workspace

        diff = Workspace.open(res.cfg.repo, run_id, root=harness_home(res.cfg.home)).diff()
    except Exception as err:  # the worktree may have been removed; the summary still shows
        diff = f"(no diff: {err})"
    return {"summary": summary, "run_dir": str(res.run_dir), "diff": diff}


# ----- driving the graph ------------------------------------------------------------------------


def _graph(saver: Any) -> Any:
    from harness.graph.build import build_graph

    return build_graph(saver)


def _drive(res: RunResources, graph_input: Any, *, only_report: bool = False) -> RunOutcome:
    error: str | None = None
    fault: str | None = None
    interrupted: str | None = None
    res.emit("run", run_id=res.run_id, run_dir=str(res.run_dir))
    try:
        with run_lock(res.run_dir), open_checkpointer(res.run_dir) as saver:
            graph = _graph(saver)
            config = thread_config(res.run_id)
            if not only_report:
                from harness.graph.build import recursion_limit

                _mark_running(res)
                state = graph.get_state(config).values or {}
                config["recursion_limit"] = recursion_limit(
                    res.cfg.max_debug_rounds, int(state.get("budget_extensions") or 0) + 1
                )
                try:
                    for _ in graph.stream(graph_input, config, context=res, stream_mode="updates"):
                        pass
                except Exception as err:  # the checkpoint before the failing node survives: resumable
                    fault = fault_reason(err)
                    if fault is not None:  # the environment's: suspended, never the verdict
                        res.log.warning("suspended by an infrastructure fault: %s; `%s` continues once it is "
                                        "fixed\n%s", fault, resume_command(res.run_id), traceback.format_exc())
                        res.emit("fault", fault=fault)
                    else:
                        error = f"{type(err).__name__}: {err}"
                        res.log.error("run failed: %s\n%s", error, traceback.format_exc())
                        res.emit("error", error=error)
                except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: recorded, resumable from the last checkpoint
                    interrupted = str(stop.args[0]) if stop.args and str(stop.args[0]).startswith("SIG") else "SIGINT"
                    res.log.warning("interrupted (%s); `harness resume %s` continues", interrupted, res.run_id)
            snapshot = graph.get_state(config)
        outcome = _outcome(res, snapshot, error, interrupted, fault)
    except RunBusyError:
        raise
    finally:
        _release(res, error)
    _write_json(res.run_dir / "summary.json", outcome.summary)
    res.emit("outcome", status=outcome.status, exit_code=outcome.exit_code)
    if res.cfg.notify or res.cfg.notify_url:
        from harness.graph.notify import build_event, send

        send(build_event(outcome.summary, (snapshot.values or {}).get("packet")), res.cfg.notify, res.cfg.notify_url, res.log)
    return outcome


def _release(res: RunResources, error: str | None) -> None:
    """Stop the sandbox: closed at the end of a run, only stopped when it may continue."""
    try:
        res.pause()
    except Exception:
        res.log.exception("stopping the executor failed")


def _mark_running(res: RunResources) -> None:
    """While a process drives the run, its summary says so; a summary that still says it after
    the process is gone (`harness runs`) means it was killed, not paused or suspended."""
    summary = _read_json(res.run_dir / "summary.json")
    if summary is None:
        return
    summary.update(status=RUNNING, updated=_now(), exit_code=None,
                   outcome_line=f"running (if its process was killed: `{resume_command(res.run_id)}`)")
    _write_json(res.run_dir / "summary.json", summary)


def _outcome(res: RunResources, snapshot: Any, error: str | None, interrupted: str | None = None,
             fault: str | None = None) -> RunOutcome:
    values = snapshot.values or {}
    ws = values.get("workspace") or {}
    common = dict(
        run_id=res.run_id, run_dir=res.run_dir,
        branch=ws.get("branch"), worktree=Path(ws["path"]) if ws.get("path") else None,
    )
    pending = None
    if interrupted:
        status: Status = "interrupted"
    elif fault is not None:
        status = "suspended"
    elif error is not None:
        status = "error"
    elif snapshot.interrupts:
        status = "paused"
        pending = _hatch_model(snapshot.interrupts[0].value.get("hatch"))
    elif values.get("outcome") == "invalid":
        status = "invalid"
    elif not snapshot.next and (values.get("handoff") or values.get("outcome") == "blocked"):
        status = "completed" if values.get("outcome") == "completed" else "blocked"
    else:
        status, error = "error", "the run stopped before it finished; `harness resume` continues it"
    handoff, handoff_path = None, None
    if values.get("handoff"):
        from harness.contracts import ComponentSkillHandoff

        handoff = ComponentSkillHandoff.model_validate(values["handoff"])
        handoff_path = res.run_dir / "handoff.json"
    if status in ("completed", "blocked"):
        res.close()
    outcome = RunOutcome(status=status, exit_code=EXIT_CODES[status], handoff=handoff,
                         handoff_path=handoff_path, pending_question=pending, **common)
    outcome.summary = _summary(res, values, outcome, error, snapshot)
    if fault is not None:
        outcome.summary.update(fault=fault, resume_command=resume_command(res.run_id))
    if interrupted:
        outcome.summary.update(interrupted_by=interrupted, resume_command=resume_command(res.run_id))
    outcome.summary["outcome_line"] = _outcome_line(outcome.summary)
    return outcome


def _hatch_model(hatch: dict | None) -> Any:
    from harness.contracts import EscapeHatch

    return EscapeHatch.model_validate(hatch) if hatch else None


def node_table(values: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per node: seconds split into model, test and harness overhead; tokens and cost."""
    table: dict[str, dict[str, float]] = {}
    usage = values.get("usage") or {}
    for node, t in (values.get("timings") or {}).items():
        total, model_s, test_s = (float(t.get(k, 0)) for k in ("total_s", "model_s", "test_s"))
        u = usage.get(node) or {}
        table[node] = {
            "calls": int(t.get("calls", 1)),
            "total_s": round(total, 3), "model_s": round(model_s, 3), "test_s": round(test_s, 3),
            "overhead_s": round(max(0.0, total - model_s - test_s), 3),
            "input_tokens": int(u.get("input_tokens", 0)), "output_tokens": int(u.get("output_tokens", 0)),
            "cost_usd": round(float(u.get("cost_usd", 0)), 6), "turns": int(u.get("turns", 0)),
        }
    return table


def _summary(res: RunResources, values: dict, outcome: RunOutcome, error: str | None, snapshot: Any) -> dict[str, Any]:
    nodes = node_table(values)
    totals = {k: round(sum(n[k] for n in nodes.values()), 6)
              for k in ("total_s", "model_s", "test_s", "overhead_s", "input_tokens", "output_tokens", "cost_usd", "turns")}
    parity = values.get("last_parity") or {}
    handoff = values.get("handoff") or {}
    summary: dict[str, Any] = {
        "run_id": res.run_id, "status": outcome.status, "exit_code": outcome.exit_code,
        "updated": _now(), "packet": str(res.cfg.packet), "repo": str(res.cfg.repo),
        "model": res.cfg.model, "sandbox": res.cfg.sandbox, "mode": (values.get("packet") or {}).get("mode"),
        "run_dir": str(res.run_dir), "branch": outcome.branch,
        "worktree": str(outcome.worktree) if outcome.worktree else None,
        "handoff_path": str(outcome.handoff_path) if outcome.handoff_path else None,
        "parity_status": handoff.get("parity_status") or parity.get("status"),
        "last_parity": parity.get("summary_line"), "next_step": handoff.get("next_step"),
        # The last clean-room verdict and what it judged (an eval grader reuses it on the same tree).
        "verdict": {"status": parity.get("status"), "summary_line": parity.get("summary_line"),
                    "judged": parity.get("judged")} if parity.get("judged") else None,
        "blocker": handoff.get("blocker") if handoff else values.get("blocker"),
        "debug_rounds": int(values.get("debug_rounds") or 0),
        "preflight": values.get("preflight") or [],
        "agent_stop": values.get("agent_stop"), "budget_spent": values.get("budget_spent"),
        "debug_attempts": values.get("debug_attempts") or [],
        "parity_runs": len(values.get("parity_runs") or []),
        "guard_findings": values.get("guard_findings") or [],
        "claim_disagreements": values.get("claim_disagreements") or [],
        "nodes": nodes, "totals": totals, "error": error,
    }
    if outcome.status == "paused":
        value = snapshot.interrupts[0].value
        summary["question"] = {"hatch_id": value.get("hatch_id"), "asked_by": value.get("asked_by"), **(value.get("hatch") or {})}
        summary["answer_command"] = answer_command(res.run_id, value.get("hatch") or {})
    summary["outcome_line"] = _outcome_line(summary)
    return summary


def answer_command(run_id: str, hatch: dict[str, Any]) -> str:
    from harness.runs.answers import option_labels

    n = len(option_labels(hatch))
    return f"harness answer {run_id} --option N  (N = 1..{n})" if n else f'harness answer {run_id} --text "..."'


def _outcome_line(summary: dict[str, Any]) -> str:
    status = summary["status"]
    if status == "paused":
        return f"paused: {summary['question'].get('hatch_id')} {summary['question'].get('decision_type')}"
    if status == "blocked" and not summary.get("next_step") and summary.get("blocker"):
        return f"blocked: {summary['blocker']}"[:300]  # stopped before a handoff (a failed preflight)
    if status in ("completed", "blocked"):
        return f"{status}: {summary.get('parity_status')} -> {summary.get('next_step')}"
    if status == "interrupted":
        return f"interrupted: `harness resume {summary['run_id']}` continues"
    if status == "suspended":
        return f"suspended by an infrastructure fault: {summary.get('fault')}"[:600]
    return f"{status}: {summary.get('error') or ''}".strip()


# ----- small helpers ------------------------------------------------------------------------------


def _reopen(run_id: str, home: Path | None, events: EventSink | None, *, writing: bool = False) -> RunResources:
    try:
        rdir = run_dir_for(run_id, home)
    except ValueError as err:
        raise RunError(str(err)) from None
    meta = _read_json(rdir / "run.json")
    if meta is None:
        raise RunError(f"no run {run_id!r} under {runs_dir(home)}")
    if writing and (problems := home_problems(rdir)):  # read-only or full: say so, not a traceback
        raise RunError("; ".join(problems))
    cfg = RunConfig.from_json(meta["config"])
    cfg.home = harness_home(home) if home is not None else cfg.home
    return RunResources(cfg, run_id, rdir, events)


def create_run_dir(cfg: RunConfig, run_id: str, driver: str = "harness") -> Path:
    """The run's directory with its run.json; FileExistsError when the id is taken. `driver`
    says who runs it: the harness's own runner, or LangGraph's server (which keeps its own
    checkpoints and writes no summary.json)."""
    rdir = run_dir_for(run_id, cfg.home)
    rdir.mkdir(parents=True)
    (rdir / "logs").mkdir()
    _write_json(rdir / "run.json", {"run_id": run_id, "started": _now(), "driver": driver, "config": cfg.to_json()})
    return rdir


def absolute_config(cfg: RunConfig) -> RunConfig:
    data = cfg.to_json()
    data["packet"] = str(Path(cfg.packet).expanduser().resolve())
    data["repo"] = str(Path(cfg.repo).expanduser().resolve())
    data["home"] = str(harness_home(cfg.home))
    from harness.agents.providers import provider_of

    found = provider_of(cfg.model)
    if found and found[0].argument == "file":  # a resumed run may start from another directory
        data["model"] = f"{found[0].name}:{Path(found[1]).expanduser().resolve()}"
    return RunConfig.from_json(data)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
