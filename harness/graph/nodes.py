"""The graph's nodes. Each takes the state (and the run's resources as runtime context) and
returns the update it makes. Side effects that run before an `interrupt()` are idempotent,
because LangGraph runs the node again from the top when the run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from harness.agents.trajectory import Trajectory
from harness.graph import routing, tasks
from harness.graph.answers import AnswerError, answer_for_agent, coerce_answer, human_interrupt
from harness.graph.config import RunConfig, configured
from harness.graph.faults import RunFault
from harness.graph.resources import RunResources, resources_for
from harness.graph.state import RunState
from harness.graph.validation import validate_run_input

Update = dict[str, Any]


# ----- helpers ------------------------------------------------------------------------------


def _res(state: RunState, runtime: Runtime | None) -> RunResources:
    ctx = getattr(runtime, "context", None) if runtime is not None else None
    if isinstance(ctx, RunResources):
        return ctx
    # Loaded by LangGraph's own tools (no context given): rebuild from the state.
    return resources_for(RunConfig.from_json(state["config"]), state["run_id"], state.get("run_dir"))


def _packet(state: RunState) -> Any:
    from harness.contracts import ComponentContext

    return ComponentContext.model_validate(state["packet"])


def _jsonable(obj: Any) -> Any:
    """Plain JSON of a pydantic model, dataclass or plain value (for the checkpointed state)."""
    if obj is None:
        return None
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def parity_dict(run: Any, source: str, commit: str | None) -> dict[str, Any]:
    """A ParityRun as JSON, plus where it came from and the commit it tested."""
    data = _jsonable(run)
    data["summary_line"] = run.summary_line()
    data["source"] = source
    data["commit"] = commit
    return data


def parity_from_dict(data: dict[str, Any] | None) -> Any:
    """Rebuild the ParityRun a dict was made from (the extra keys are dropped)."""
    if not data:
        return None
    from harness.sandbox.pytest_runner import ParityRun

    names = set(ParityRun.model_fields)
    return ParityRun.model_validate({k: v for k, v in data.items() if k in names})


def timed(name: str) -> Callable:
    """Wrap a node: emit start/end events and add its wall, model and test seconds."""

    def wrap(fn: Callable[[RunState, RunResources], Update]) -> Callable:
        def node(state: RunState, runtime: Runtime) -> Update:
            res = _res(state, runtime)
            res.model_s = res.test_s = 0.0
            res.emit("node_start", node=name)
            start = time.monotonic()
            update = fn(state, res) or {}
            total = time.monotonic() - start
            update["timings"] = {name: {"total_s": total, "model_s": res.model_s, "test_s": res.test_s, "calls": 1}}
            res.emit("node_end", node=name, seconds=round(total, 3), update=_summary_of(update))
            return update

        node.__name__ = name
        node.__doc__ = fn.__doc__
        return node

    return wrap


def _summary_of(update: Update) -> dict[str, Any]:
    keep = ("outcome", "blocker", "debug_rounds", "asked_by")
    out = {k: update[k] for k in keep if update.get(k) is not None}
    if update.get("last_parity"):
        out["parity"] = update["last_parity"].get("summary_line")
    return out


def _spent(state: RunState) -> tuple[float, float]:
    """Dollars and seconds used so far in this run."""
    usd = sum(float(v.get("cost_usd", 0)) for v in (state.get("usage") or {}).values())
    secs = sum(float(v.get("total_s", 0)) for v in (state.get("timings") or {}).values())
    return usd, secs


def budget_spent_reason(state: RunState) -> str | None:
    """The run-level money or time limit that is used up, or None."""
    cfg = state.get("config") or {}
    factor = 1 + int(state.get("budget_extensions") or 0)
    usd, secs = _spent(state)
    if cfg.get("max_usd") is not None and usd >= float(cfg["max_usd"]) * factor:
        return f"max_usd ${float(cfg['max_usd']) * factor:.2f} reached (${usd:.2f} spent)"
    if cfg.get("max_seconds") is not None and secs >= float(cfg["max_seconds"]) * factor:
        return f"max_seconds {float(cfg['max_seconds']) * factor:.0f}s reached ({secs:.0f}s used)"
    return None


# ----- nodes --------------------------------------------------------------------------------


@timed("validate_packet")
def validate_packet(state: RunState, res: RunResources) -> Update:
    """Load and check the packet; a bad packet ends the run with every problem listed."""
    packet, problems = validate_run_input(res.cfg)
    if problems:
        return {"problems": problems, "outcome": "invalid"}
    return {"packet": packet.model_dump(mode="json"), "problems": []}


@timed("prepare_workspace")
def prepare_workspace(state: RunState, res: RunResources) -> Update:
    """Make (or reopen) the run's worktree and start the executor for the whole run."""
    from harness.skills import skill_for

    packet = _packet(state)
    ws = res.create_workspace(_official_ref_dir(packet, res.cfg.repo))
    for notice in getattr(ws, "notices", []):
        res.log.warning(notice)
    executor = res.executor  # start it now: one sandbox, kept warm for every test of the run
    workspace = {"path": str(ws.path), "branch": ws.branch, "base_commit": ws.base_commit}
    blocked = _preflight(res, executor, packet)
    if blocked:
        return {"workspace": workspace, **blocked}
    # The skill text comes from the user's checkout, which agents cannot write, never from the worktree.
    skill = skill_for(packet.component_type, res.cfg.repo)
    res.log.info(skill.describe_source())
    return {
        "workspace": workspace,
        "skill": {"name": skill.name, "bucket": str(skill.bucket), "source": skill.describe_source()},
        "debug_rounds": 0,
        "debug_attempts": [],
        # The packet's concerns_or_unknowns are instructions the agents get with the packet;
        # the run's concerns are what its roles find.
        "concerns": [],
        "resolved_concerns": {},
    }


def _preflight(res: RunResources, executor: Any, packet: Any) -> Update:
    """Check the sandbox before any model call; an update ending the run blocked, or {}."""
    from harness.sandbox.preflight import blocker_text, failures, run_preflight
    from harness.sandbox.preflight_cache import PreflightCache

    for line in (getattr(getattr(executor, "python", None), "notice", ""), getattr(executor, "notice", "")):
        if line:
            res.log.info(line)
    if res.cfg.network:
        res.log.warning("network: on (--network); tests may download weights")
    checks = run_preflight(executor, packet, gpus=res.cfg.gpus, repo=res.cfg.repo, cache=PreflightCache())
    for check in checks:
        res.log.info("preflight %s %s: %s", "ok" if check.ok else "FAILED", check.name, check.detail)
    res.emit("preflight", failed=len(failures(checks)), checks=len(checks))
    if not failures(checks):
        return {"preflight": [c.to_json() for c in checks]}
    return {"preflight": [c.to_json() for c in checks], "outcome": "blocked", "blocker": blocker_text(checks)}


def _official_ref_dir(packet: Any, repo: Path) -> Path | None:
    raw = str(getattr(packet, "official_ref_dir", "") or "")
    if not raw or raw in ("unknown", "none"):
        return None
    path = Path(raw) if Path(raw).is_absolute() else Path(repo) / raw
    return path.resolve() if path.is_dir() else None


@timed("plan")
def plan(state: RunState, res: RunResources) -> Update:
    """The planner (read-only tools): reuse vs port, target files, steps, concerns."""
    update = _run_agent_node("plan", state, res, tasks.plan_task(state))
    finish = update.pop("finish_args", None) or None
    log = update.pop("work_log", None)
    if not update.get("pending_hatch"):
        update["planner_log"] = None if finish else log  # a cut planner hands on what it did
        update["planner_reads"] = update.pop("kept_reads", [])
    if finish:
        update["plan"] = finish
        # Concerns given in finish count like record_concern: they reach the handoff.
        from harness.agents.concerns import merge
        from harness.agents.memory import RunMemory

        given = RunMemory.from_state({"plan": update["plan"]}).concerns()
        update["concerns"] = merge(update.get("concerns") or [], given, _instructions(state))
    return update


@timed("implement")
def implement(state: RunState, res: RunResources) -> Update:
    """The implementer writes the component; the guards then read its diff."""
    from harness.agents.worklog import carried_text

    carried, _changed = carried_text(list(state.get("planner_reads") or []), res.workspace)
    update = _run_agent_node("implement", state, res, tasks.implement_task(state, config_map=_config_map(state, res),
                                                                           carried=carried))
    finish = update.pop("finish_args", None) or None
    if not update.get("pending_hatch"):
        log = update.pop("work_log", None)
        update["implementer_finish"] = {"finish": finish, "reason": update.get("agent_stop") or update.get("last_agent_reason"),
                                        "log": None if finish else log}  # a cut implementer hands on what it did
    if not update.get("pending_hatch"):
        update["guard_findings"] = _guards(state, res, update)
    return update


@timed("debug")
def debug(state: RunState, res: RunResources) -> Update:
    """One parity-debug round: the debugger gets the last result, the checklist and history."""
    from harness.skills import skill_for

    resuming = state.get("asked_by") == "debug" and bool(state.get("hatch_answer"))
    skill = skill_for(state["packet"]["component_type"], res.cfg.repo)
    before = state.get("debug_round_start") if resuming else None
    before = before or res.workspace.head()
    update = _run_agent_node("debug", state, res, tasks.debug_task(state, skill.drift_checklist,
                                                                   config_map=_config_map(state, res)))
    finish = update.pop("finish_args", None) or {}
    rounds = int(state.get("debug_rounds") or 0) + (0 if resuming else 1)
    update["debug_rounds"] = rounds
    log = update.pop("work_log", None)
    if update.get("pending_hatch"):
        update["debug_round_start"] = before  # the answered round goes on from the same start
        return update
    files = _changed_between(res.workspace, before)
    attempts = list(state.get("debug_attempts") or [])
    attempts.append({
        "round": rounds,
        "summary": str(finish.get("summary") or update.get("agent_stop") or "no summary"),
        "finish": finish or None,  # the debugger's own record (diagnosis, fix, blocker)
        "files": files,
        "reason": update.get("last_agent_reason"),
        "parity_after": None,
        # A round that ended without finish hands on what it did, and its fix as the diff shows it.
        "log": None if finish else log,
        "diff_fix": None if finish or not files else _diff_fix(res.workspace, before),
    })
    update["debug_round_start"] = None
    update["debug_attempts"] = attempts
    update["guard_findings"] = _guards(state, res, update)
    return update


@timed("run_parity")
def run_parity(state: RunState, res: RunResources) -> Update:
    """Run the parity test in the executor after the last edit, and read what it means."""
    from harness.graph.parity_reuse import reuse_reason
    from harness.verify.evidence import classify_conversion_failure, prototype_evidence

    packet = _packet(state)
    ws = res.workspace
    ws.checkpoint("run_parity: state before the test")
    commit = ws.head()
    agent_test = _agent_test(state, ws, packet)
    reused = reuse_reason(dict(state), ws, agent_test)
    attempts = list(state.get("debug_attempts") or [])
    if reused:
        # Nothing the test sees changed: the same verdict again would only cost test time.
        parity = {**(state.get("last_parity") or {}), "reused": reused}
        update: Update = {"last_parity": parity}
        res.log.info("parity not re-run: %s", reused)
        if attempts and attempts[-1].get("parity_after") is None:
            attempts[-1] = {**attempts[-1], "parity_after": f"{parity['summary_line']} (not re-run: nothing the test "
                                                             "can see changed)"}
            update["debug_attempts"] = attempts
        res.emit("parity", status=parity.get("status"), summary=parity["summary_line"], reused=True)
        return _budget_check(state, update, ws)
    run, verdict_test, judged = _run_verdict_test(state, res, packet, agent_test)
    parity = parity_dict(run, "harness", commit)
    parity["verdict_test"] = verdict_test
    parity["agent_test"] = agent_test
    parity["judged"] = judged  # what the verdict saw, so an eval grader can reuse it on the same tree
    update = {"last_parity": parity, "parity_runs": [parity], "parity_commit": commit}
    if packet.mode == "prototype":
        update["prototype"] = _prototype_dict(prototype_evidence(ws, packet, res.new_executor))
    retry = classify_conversion_failure(run, packet)
    update["retry_request"] = _jsonable(retry)
    if attempts and attempts[-1].get("parity_after") is None:
        attempts[-1] = {**attempts[-1], "parity_after": parity["summary_line"]}
        update["debug_attempts"] = attempts
    res.emit("parity", status=parity.get("status"), summary=parity["summary_line"])
    return _budget_check(state, update, ws)


def _budget_check(state: RunState, update: Update, ws: Any) -> Update:
    """After a parity result: note a spent run budget, and ask the cost question when due."""
    merged: RunState = {**state, **update}  # type: ignore[typeddict-item]
    spent = budget_spent_reason(merged)
    if spent:
        update["budget_spent"] = merged["budget_spent"] = spent
    if routing.needs_budget_question(merged):
        update["pending_hatch"] = budget_hatch(merged, ws)
        update["asked_by"] = "budget"
    return update


def _prototype_dict(evidence: Any) -> dict[str, Any]:
    data = _jsonable(evidence) or {}
    complete = getattr(evidence, "complete", None)
    if complete is None:
        complete = getattr(evidence, "ok", False)
    data["complete"] = bool(complete() if callable(complete) else complete)
    return data


@timed("ask_human")
def ask_human(state: RunState, res: RunResources) -> Update:
    """Record the question in PORT_STATUS.md (idempotent), pause, and check the answer."""
    from harness.contracts import EscapeHatch
    from harness.verify.evidence import record_escape_hatch, resolve_escape_hatch

    hatch = state["pending_hatch"] or {}
    packet = _packet(state)
    ws = res.workspace
    hatch_id = record_escape_hatch(ws, packet, EscapeHatch.model_validate(hatch))
    ws.checkpoint(f"escape hatch {hatch_id}: recorded")
    res.emit("question", hatch_id=hatch_id, hatch=hatch)
    raw = interrupt(human_interrupt(state["run_id"], hatch_id, state.get("asked_by"), hatch))
    try:
        answer = coerce_answer(hatch, raw)
    except AnswerError as err:
        res.log.warning("answer to %s refused: %s; asking again", hatch_id, err)
        return {"hatch_id": hatch_id}  # pending_hatch stays, so routing asks again
    resolve_escape_hatch(ws, packet, hatch_id, answer["text"])
    ws.checkpoint(f"escape hatch {hatch_id}: answered")
    update: Update = {
        "pending_hatch": None,
        "hatch_id": hatch_id,
        "hatch_answer": answer,
        "accepted_hatches": [{**hatch, "id": hatch_id, "answer": answer}],
    }
    if state.get("asked_by") == "budget":
        update.update(_budget_decision(state, answer))
    return update


def _budget_decision(state: RunState, answer: dict[str, Any]) -> Update:
    """Option 1 extends the budget by one more allowance; anything else stops (the safe default)."""
    text = str(answer.get("text", "")).lower()
    extend = answer.get("option") == 1 or (answer.get("option") is None and text.startswith(("extend", "yes", "continue")))
    if not extend:
        return {"budget_decision": "stop", "hatch_answer": None, "asked_by": None}
    cfg = state.get("config") or {}
    return {
        "budget_decision": "extend",
        "budget_extensions": int(state.get("budget_extensions") or 0) + 1,
        "extra_debug_rounds": int(state.get("extra_debug_rounds") or 0) + max(1, int(configured(cfg, "max_debug_rounds"))),
        "budget_spent": None,
        "hatch_answer": None,
        "asked_by": "budget",
    }


@timed("finalize")
def finalize(state: RunState, res: RunResources) -> Update:
    """Build the handoff from evidence, update PORT_STATUS.md, commit, and write it out."""
    from harness.verify.evidence import build_handoff, clean_text, parity_is_current, update_port_status
    from harness.verify.guards import check_guards

    packet = _packet(state)
    ws = res.workspace
    ws.checkpoint("finalize: last agent changes")
    last = parity_from_dict(state.get("last_parity"))
    current = bool(state.get("parity_commit")) and parity_is_current(ws, state["parity_commit"])
    findings = check_guards(
        ws, packet, mode=packet.mode,
        accepted_hatches=_accepted(state),
        parity_claimed=bool(last is not None and last.status == "non_skip_pass" and current),
        parity_ran=last is not None,
    )
    from harness.agents import concerns as ledger

    passed = bool(last is not None and last.status == "non_skip_pass" and current)
    all_concerns = list(state.get("concerns") or [])
    resolved = dict(state.get("resolved_concerns") or {})
    if passed:  # "still red" is history once the harness has seen the test pass
        resolved = ledger.close_still_red(all_concerns, resolved, last.summary_line())
    handoff = build_handoff(
        packet=packet, workspace=ws, mode=packet.mode, last_parity=last, parity_current=current,
        concerns=[text for _n, text in ledger.open_concerns(all_concerns, resolved)], findings=findings,
        escape_hatch=None, retry_request=_retry_from(state), prototype=_prototype_from(res, packet),
        budget_blocker=_budget_blocker(state),
    )
    notes, disagreements = _memory_findings(state, handoff, findings)
    notes, disagreements = [clean_text(n) for n in notes], [clean_text(d) for d in disagreements]
    # A round's note that parity was still red after it is history once the test passed: it stays
    # in PORT_STATUS.md's notes, not among the handoff's concerns.
    shown = [n for n in notes if not (passed and ledger.still_red(n))]
    if shown or disagreements:
        handoff.concerns_or_unknowns = ledger.merge(
            list(handoff.concerns_or_unknowns), [*shown, *(f"claim vs evidence: {d}" for d in disagreements)])
    closed = [clean_text(f"resolved concern ({r.get('by')}): {text}: {r.get('resolution')}") for text, r in resolved.items()]
    handoff = update_port_status(ws, packet, handoff, notes=[*notes, *disagreements, *closed])  # sets readme_updated
    ws.checkpoint(f"finalize: handoff {handoff.parity_status}, next step {handoff.next_step}")
    _write_handoff(res.run_dir, handoff)
    outcome = "completed" if is_success(handoff, packet.mode) else "blocked"
    return {
        "handoff": handoff.model_dump(mode="json"),
        "guard_findings": [_jsonable(f) for f in findings],
        "outcome": outcome,
        "blocker": None if handoff.blocker in (None, "none") else str(handoff.blocker),
        "claim_disagreements": disagreements,
        "resolved_concerns": resolved,
    }


def _memory_findings(state: RunState, handoff: Any, findings: Any) -> tuple[list[str], list[str]]:
    """The debug rounds' diagnoses and fixes, and where the roles' claims differ from the evidence."""
    from harness.agents.memory import RunMemory

    memory = RunMemory.from_state(dict(state))
    dumps_ok = None
    if handoff.mode == "prototype":
        dumps_ok = handoff.prototype_key_dumps != "none"
    disagreements = memory.disagreements(files_changed=list(handoff.files_changed), strict_load=handoff.strict_load,
                                         parity_status=handoff.parity_status, key_dumps_ok=dumps_ok)
    return memory.handoff_notes(), disagreements


def is_success(handoff: Any, mode: str) -> bool:
    if mode == "prototype":
        # phase_6_continue: the conversion already strict-loads and parity passed (see build_handoff).
        return handoff.next_step in ("phase_5_conversion", "phase_6_continue")
    return handoff.parity_status == "non_skip_pass" and handoff.next_step in ("phase_6_continue", "phase_5_conversion")


def _write_handoff(run_dir: Path, handoff: Any) -> None:
    """Write both forms atomically: a reader never sees half a handoff."""
    for name, text in (
        ("handoff.json", handoff.model_dump_json(indent=2)),
        ("handoff.md", handoff.to_text() + "\n"),
    ):
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(run_dir / name)


def _accepted(state: RunState) -> list[dict[str, Any]]:
    """Answered hatches as the guards read them: the hatch fields plus "answer"."""
    return list(state.get("accepted_hatches") or [])


def _retry_from(state: RunState) -> Any:
    from harness.contracts import ConversionRetryRequest

    data = state.get("retry_request")
    return ConversionRetryRequest.model_validate(data) if data else None


def _prototype_from(res: RunResources, packet: Any) -> Any:
    if packet.mode != "prototype":
        return None
    from harness.verify.evidence import prototype_evidence

    return prototype_evidence(res.workspace, packet, res.new_executor)  # fresh: files may have changed


def _budget_blocker(state: RunState) -> str | None:
    """The precise reason the run stops short, when the budget (or an agent failure) is why."""
    if state.get("agent_stop"):
        return str(state["agent_stop"])
    parity = state.get("last_parity") or {}
    if parity.get("status") == "non_skip_pass" and not routing.blocking_findings(state):
        return None
    if state.get("budget_decision") == "stop" or state.get("budget_spent") or (
        int(state.get("debug_rounds") or 0) >= routing.rounds_allowed(state)
    ):
        spent = state.get("budget_spent") or f"{int(state.get('debug_rounds') or 0)} of {routing.rounds_allowed(state)} debug rounds used"
        return f"debug budget spent ({spent}); last parity: {parity.get('summary_line') or 'not run'}"
    return None


def budget_hatch(state: RunState, ws: Any) -> dict[str, Any]:
    """The harness's own `cost` question when the debug budget is spent and parity is not green."""
    from harness.contracts import EscapeHatch

    return EscapeHatch.model_validate(_budget_hatch_fields(state, ws)).model_dump(mode="json")


def _budget_hatch_fields(state: RunState, ws: Any) -> dict[str, Any]:
    cfg = state.get("config") or {}
    parity = state.get("last_parity") or {}
    rounds = int(state.get("debug_rounds") or 0)
    why = state.get("budget_spent") or f"all {rounds} debug rounds are used"
    more = max(1, int(configured(cfg, "max_debug_rounds")))
    return {
        "needs_user_input": "yes",
        "decision_type": "cost",
        "question": (
            f"The parity-debug budget is spent ({why}) and parity is still "
            f"{parity.get('status', 'not run')}. Extend the budget by {more} more debug rounds "
            "(and the same money/time allowance again), or stop with a blocked handoff?"
        ),
        "recommended_option": "Stop",
        "options": [
            f"Extend the budget by {more} debug rounds: more model cost and test time",
            "Stop: finalize a blocked handoff naming the last parity failure",
        ],
        "safe_default": "Stop and return a blocked handoff",
        "blocked_until_answered": "yes",
        "state_snapshot": {
            "phase": f"{(state.get('packet') or {}).get('mode')} debug round {rounds}",
            "files_changed": list(ws.files_changed()),
            # The contract's command and the log's name: no machine-local paths in PORT_STATUS.md.
            "command_or_test": f"pytest {parity['parity_test']} -v -s" if parity.get("parity_test") else "not_run",
            "evidence": f"{parity.get('summary_line') or 'no parity run'}; log {Path(str(parity.get('log_path'))).name}",
        },
    }


def _agent_test(state: RunState, ws: Any, packet: Any) -> str:
    """Which version of the parity test the verdict runs: the base commit's; the agent's when a
    person approved loosening its tolerance through an escape hatch; the agent's own (run
    without isolation, said so) when the base had none."""
    from harness.verify.guards import hatch_covers_tolerance
    from harness.verify.verdict import APPROVED_TEST, BASE_TEST, OWN_TEST

    if ws.file_at_base(packet.parity_test) is None:
        return OWN_TEST  # the agent wrote the test: its evidence is said to be the agent's own
    if hatch_covers_tolerance(_accepted(state)):
        return APPROVED_TEST  # a person approved the agent's version of the test
    return BASE_TEST


def _run_verdict_test(state: RunState, res: RunResources, packet: Any, agent_test: str) -> tuple[Any, str, dict[str, Any]]:
    """The harness's own verdict (harness.verify.verdict): the test in a trusted sandbox on the
    base commit, the port in its own; `agent_test` says which version of the test (_agent_test)."""
    from harness.verify.judged import judged_record
    from harness.verify.verdict import run_verdict

    ws = res.workspace
    commit = ws.head()
    start = time.monotonic()
    try:
        # An InfrastructureError suspends the run (graph/faults.py); the resumed node makes a new sandbox.
        verdict = run_verdict(ws, packet, res.new_executor, res.logs_dir, agent_test=agent_test, commit=commit,
                              timeout_s=res.cfg.test_timeout_s)
    finally:
        res.test_s += time.monotonic() - start
    for problem in verdict.problems:
        res.log.warning("verdict: %s", problem)
    judged = judged_record(ws.path, packet, base=ws.base_commit, commit=commit, test=packet.parity_test,
                           agent_test=agent_test, environment=_verdict_environment(res))
    return verdict.run, f"{verdict.evidence} verdict: {verdict.test_source} of the test", judged


def _verdict_environment(res: RunResources) -> dict[str, Any]:
    from harness.sandbox.interpreter import choose_interpreter
    from harness.sandbox.registry import get_sandbox
    from harness.verify.judged import environment_record

    cfg = res.cfg
    python = None if get_sandbox(cfg.sandbox).runs_image_python else str(choose_interpreter(Path(cfg.repo), cfg.python).path)
    return environment_record(cfg.sandbox, image=cfg.image, python=python)


def _run_test(res: RunResources, packet: Any) -> Any:
    from harness.sandbox.pytest_runner import run_parity_test

    from harness.sandbox.executors import InfrastructureError

    start = time.monotonic()
    try:
        return run_parity_test(res.executor, packet.parity_test, res.logs_dir, timeout_s=res.cfg.test_timeout_s)
    except InfrastructureError:
        # The agent stops on it (infra_error); whatever runs next must get a live sandbox, not the dead one.
        res.restart_executor()
        raise
    finally:
        res.test_s += time.monotonic() - start


def _changed_between(ws: Any, before: str) -> list[str]:
    return ws.changed_between(before)


def _guards(state: RunState, res: RunResources, update: Update) -> list[dict[str, Any]]:
    from harness.verify.guards import check_guards

    packet = _packet(state)
    findings = check_guards(res.workspace, packet, mode=packet.mode, accepted_hatches=_accepted(state))
    if findings:
        res.emit("guards", findings=[f"{f.name}: {f.path}" for f in findings])
    return [_jsonable(f) for f in findings]


# ----- running an agent inside a node ---------------------------------------------------------


def _instructions(state: RunState) -> list[str]:
    """The packet's concerns_or_unknowns: what the agents were told, not what they found."""
    return [str(c) for c in (state.get("packet") or {}).get("concerns_or_unknowns") or []]


def _config_map(state: RunState, res: RunResources) -> str:
    from harness.verify.conversion_state import config_key_map

    try:
        return config_key_map(res.workspace, _packet(state))
    except Exception as err:  # a map the harness cannot read is left out, never a stopped run
        res.log.warning("config key map: %s", err)
        return ""


def _diff_fix(ws: Any, before: str) -> str | None:
    from harness.agents.worklog import diff_gist

    try:
        return diff_gist(ws.diff_between(before, ws.head()))
    except Exception:  # the round's files are recorded either way
        return None


def _harness_paths(res: RunResources, ws: Any) -> list[str]:
    """Paths the harness made: never altered by redaction, whatever they contain."""
    paths = [str(ws.path), str(res.run_dir), str(res.home), res.run_id]
    if getattr(ws, "official_ref_dir", None):
        paths.append(str(ws.official_ref_dir))
    for p in list(paths):
        try:
            paths.append(str(Path(p).resolve()))
        except OSError:
            pass
    return paths


def _run_agent_node(node: str, state: RunState, res: RunResources, task: str) -> Update:
    from harness.agents.loop import FAULT_REASONS, run_agent
    from harness.contracts.secrets import Redactor
    from harness.agents.tools import ToolContext
    from harness.graph.hatch_policy import review_escape_hatch
    from harness.skills import skill_for

    role = tasks.ROLE_FOR_NODE[node]
    packet = _packet(state)
    ws = res.workspace
    resuming = state.get("asked_by") == node and bool(state.get("hatch_answer"))
    saved = (state.get("saved_messages") or {}).get(node) if resuming else None
    agent_runs: list[Any] = []
    last_parity = parity_from_dict(state.get("last_parity"))

    def agent_parity() -> Any:
        run = _run_test(res, packet)
        agent_runs.append(run)
        return run

    def policy(hatch: Any) -> str | None:
        latest = agent_runs[-1] if agent_runs else last_parity
        return review_escape_hatch(hatch, last_parity=latest)

    concerns = list(state.get("concerns") or [])
    ctx = ToolContext(ws, res.executor, role, run_parity=agent_parity, hatch_policy=policy,
                      concerns=concerns, resolved=dict(state.get("resolved_concerns") or {}),
                      instructions=_instructions(state), phase=f"{packet.mode} {node}", logs_dir=res.logs_dir)
    skill = skill_for(packet.component_type, res.cfg.repo)
    model = res.model(state)
    progress = _progress_path(res, node, state)
    # A conversation a killed or suspended process left continues as it was (an answer it was
    # given is in it already).
    crashed = _load_progress(progress, res)
    if crashed is not None:
        saved, resuming = crashed, False
        res.log.warning("continuing the %s conversation a stopped process left (%d messages)", role, len(saved))
    res.emit("agent_start", node=node, role=role, resuming=resuming or crashed is not None)
    fresh = not (resuming or crashed is not None)
    result = run_agent(
        role, model, ctx,
        system=tasks.system_prompt(role, skill, state.get("packet") or {},
                                   _environment(ws, res.executor if role != "planner" else None),
                                   parity_test_exists=(ws.path / packet.parity_test).is_file()),
        task=task if fresh else None,
        budget=_budget(state),
        trajectory=CheckpointingTrajectory(res.run_dir / "trajectory.jsonl", ws, node,
                                           Redactor(keep=_harness_paths(res, ws))),
        messages=_messages_from(saved) if saved else None,
        resume_answer=answer_for_agent(state["hatch_answer"]) if resuming else None,
        on_messages=ProgressLog(progress, res),
    )
    res.model_s += model.seconds
    if result.reason in FAULT_REASONS:
        # The environment's stop: the conversation stays on disk for `harness resume`, and the
        # node raises, so the checkpoint before it is where the run continues.
        ws.checkpoint(f"{node}: {role} stopped by a fault ({result.reason})")
        raise RunFault(f"{role}: {result.detail}")
    progress.unlink(missing_ok=True)  # the result now lives in the graph state
    if result.reason in STOPPING_LIMITS:  # said where the person watching sees it, not only in the log
        res.emit("cap", text=f"{role} stopped: {STOPPING_LIMITS[result.reason]} reached ({result.detail})")
    ws.checkpoint(f"{node}: {role} ended ({result.reason})")
    return _agent_update(node, state, res, result, ctx, agent_runs)


# The limits that can end an agent before it finishes, by the option that sets each.
STOPPING_LIMITS = {"budget_turns": "--max-turns", "budget_usd": "--max-usd", "budget_time": "--max-seconds",
                   "budget_tokens": "the token budget", "context_overflow": "the model's context window (--context-window)"}


def _environment(ws: Any, executor: Any) -> str:
    from harness.agents.prompts import environment_text

    official = str(ws.official_ref_dir) if getattr(ws, "official_ref_dir", None) else None
    return environment_text(str(ws.path), official, executor)


def _progress_path(res: RunResources, node: str, state: RunState) -> Path:
    """Where one visit of an agent node keeps its conversation while it runs."""
    visit = int(state.get("debug_rounds") or 0) if node == "debug" else 0
    return res.run_dir / "agents" / f"{node}-{visit}.jsonl"


class ProgressLog:
    """One agent node visit's conversation, kept on disk while it runs, so a killed process
    can continue it. JSON lines, appended: each turn writes only its new messages (and the
    scripted model's place), so the cost per turn stays flat however long the run gets. The
    first save of a process rewrites the file once (a resumed conversation may be repaired)."""

    def __init__(self, path: Path, res: RunResources) -> None:
        self.path, self.res = path, res
        self.saved: int | None = None

    def __call__(self, messages: list[Any]) -> None:
        positions = json.dumps({"model_positions": self.res.model_positions()})
        if self.saved is None or self.saved > len(messages):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps({"message": _jsonable(m)}) + "\n" for m in messages) + positions + "\n")
            os.replace(tmp, self.path)  # atomic: a kill leaves the old or the new conversation, never half
        else:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps({"message": _jsonable(m)}) + "\n" for m in messages[self.saved:])
                         + positions + "\n")
        self.saved = len(messages)


def _load_progress(path: Path, res: RunResources) -> list[Any] | None:
    """The conversation a killed process left for this node visit, if any. A tool call it made
    without a result is answered "interrupted" by the agent loop; a line torn by the kill is
    dropped."""
    if not path.is_file():
        return None
    messages: list[Any] = []
    positions: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if "message" in record:
            messages.append(record["message"])
        else:
            positions = record.get("model_positions") or positions
    res.restore_model_positions(positions)
    return messages or None


class CheckpointingTrajectory(Trajectory):
    """The run's trajectory, plus a commit after every tool call that may have changed files,
    so a killed run loses no agent step."""

    WRITES = frozenset({"edit_file", "write_file", "run", "run_parity_test"})

    def __init__(self, path: Path, workspace: Any, node: str, redactor: Any = None) -> None:
        super().__init__(path, redactor)
        self.workspace = workspace
        self.node = node

    def tool_result(self, role: str, call_id: str, name: str, *args: Any, **kwargs: Any) -> None:
        super().tool_result(role, call_id, name, *args, **kwargs)
        if name in self.WRITES:
            self.workspace.checkpoint(f"{self.node}: {role} {name}")


def _agent_update(node: str, state: RunState, res: RunResources, result: Any, ctx: Any, agent_runs: list[Any]) -> Update:
    from harness.agents import worklog
    from harness.agents.concerns import merge

    usage = result.usage
    update: Update = {
        "agent_results": [{
            "node": node, "role": tasks.ROLE_FOR_NODE[node], "reason": result.reason,
            "turns": result.turns, "cost_usd": result.cost_usd, "finish_args": _jsonable(result.finish_args),
        }],
        "usage": {node: {
            "input_tokens": getattr(usage, "input_tokens", 0), "output_tokens": getattr(usage, "output_tokens", 0),
            "cost_usd": float(result.cost_usd or 0), "turns": int(result.turns or 0),
        }},
        "concerns": merge(list(ctx.concerns), [str(c) for c in result.concerns], _instructions(state)),
        "resolved_concerns": dict(ctx.resolved),
        "finish_args": _jsonable(result.finish_args) or {},
        "last_agent_reason": result.reason,
        "model_positions": res.model_positions(),
    }
    if agent_runs:
        update["parity_runs"] = [parity_dict(r, f"agent:{node}", None) for r in agent_runs]
    if result.reason != "asked":
        # What the role did, read from its conversation: handed on when it ended without finish.
        update["work_log"] = worklog.build(tasks.ROLE_FOR_NODE[node], result.reason, result.turns, result.messages,
                                           res.workspace).model_dump(mode="json")
        if node == "plan":
            update["kept_reads"] = worklog.kept_reads(result.messages, res.workspace)
    saved = dict(state.get("saved_messages") or {})
    if result.reason == "asked" and result.escape_hatch is not None:
        saved[node] = [_jsonable(m) for m in result.messages]
        update.update(pending_hatch=_jsonable(result.escape_hatch), asked_by=node, saved_messages=saved)
        return update
    saved.pop(node, None)
    update.update(saved_messages=saved, hatch_answer=None, asked_by=None)
    if result.reason in ("model_error", "context_overflow"):
        detail = result.detail
        update["agent_stop"] = f"{tasks.ROLE_FOR_NODE[node]} stopped: {result.reason}{': ' + str(detail) if detail else ''}"
    elif result.reason in ("budget_usd", "budget_time", "budget_tokens"):
        update["budget_spent"] = f"{tasks.ROLE_FOR_NODE[node]} stopped on {result.reason}"
    return update


def _messages_from(saved: list[Any]) -> list[Any]:
    from pydantic import TypeAdapter

    from harness.agents.models.base import Message

    return TypeAdapter(list[Message]).validate_python(saved)


def _budget(state: RunState) -> Any:
    """Per-agent turn budget, and what is left of the run's money and time."""
    from harness.agents.loop import Budget

    cfg = state.get("config") or {}
    factor = 1 + int(state.get("budget_extensions") or 0)
    usd, secs = _spent(state)
    kwargs: dict[str, Any] = {"max_turns": int(cfg.get("max_turns", 30))}
    if cfg.get("max_usd") is not None:
        kwargs["max_usd"] = max(0.0, float(cfg["max_usd"]) * factor - usd)
    if cfg.get("max_seconds") is not None:
        kwargs["max_seconds"] = max(1.0, float(cfg["max_seconds"]) * factor - secs)
    return Budget(**kwargs)
