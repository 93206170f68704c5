"""run_parity: the harness's own clean-room verdict after the last edit (or the last result
again when nothing the test sees changed), what it means, and the budget check after it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.graph.nodes.budget import budget_check
from harness.graph.nodes.common import Update, accepted, jsonable, packet_of, parity_dict, timed
from harness.graph.parity_reuse import reuse_reason
from harness.graph.state import RunState
from harness.runs.resources import RunResources
from harness.sandbox.interpreter import choose_interpreter
from harness.sandbox.registry import get_sandbox
from harness.verify.evidence import classify_conversion_failure, prototype_evidence
from harness.verify.guards import hatch_covers_tolerance
from harness.verify.judged import environment_record, judged_record
from harness.verify.verdict import APPROVED_TEST, BASE_TEST, OWN_TEST, run_verdict


@timed("run_parity")
def run_parity(state: RunState, res: RunResources) -> Update:
    """Run the parity test in the executor after the last edit, and read what it means."""
    packet = packet_of(state)
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
        return budget_check(state, update, ws)
    run, verdict_test, judged = _run_verdict_test(state, res, packet, agent_test)
    parity = parity_dict(run, "harness", commit)
    parity["verdict_test"] = verdict_test
    parity["agent_test"] = agent_test
    parity["judged"] = judged  # what the verdict saw, so an eval grader can reuse it on the same tree
    update = {"last_parity": parity, "parity_runs": [parity], "parity_commit": commit}
    if packet.mode == "prototype":
        update["prototype"] = _prototype_dict(prototype_evidence(ws, packet, res.new_executor))
    retry = classify_conversion_failure(run, packet)
    update["retry_request"] = jsonable(retry)
    if attempts and attempts[-1].get("parity_after") is None:
        attempts[-1] = {**attempts[-1], "parity_after": parity["summary_line"]}
        update["debug_attempts"] = attempts
    res.emit("parity", status=parity.get("status"), summary=parity["summary_line"])
    return budget_check(state, update, ws)


def _prototype_dict(evidence: Any) -> dict[str, Any]:
    data = jsonable(evidence) or {}
    complete = getattr(evidence, "complete", None)
    if complete is None:
        complete = getattr(evidence, "ok", False)
    data["complete"] = bool(complete() if callable(complete) else complete)
    return data


def _agent_test(state: RunState, ws: Any, packet: Any) -> str:
    """Which version of the parity test the verdict runs: the base commit's; the agent's when a
    person approved loosening its tolerance through an escape hatch; the agent's own (run
    without isolation, said so) when the base had none."""
    if ws.file_at_base(packet.parity_test) is None:
        return OWN_TEST  # the agent wrote the test: its evidence is said to be the agent's own
    if hatch_covers_tolerance(accepted(state)):
        return APPROVED_TEST  # a person approved the agent's version of the test
    return BASE_TEST


def _run_verdict_test(state: RunState, res: RunResources, packet: Any, agent_test: str) -> tuple[Any, str, dict[str, Any]]:
    """The harness's own verdict (harness.verify.verdict): the test in a trusted sandbox on the
    base commit, the port in its own; `agent_test` says which version of the test (_agent_test)."""
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
    cfg = res.cfg
    python = None if get_sandbox(cfg.sandbox).runs_image_python else str(choose_interpreter(Path(cfg.repo), cfg.python).path)
    return environment_record(cfg.sandbox, image=cfg.image, python=python)
