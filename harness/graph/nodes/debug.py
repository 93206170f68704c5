"""debug: one parity-debug round, the debugger given the last result, the skill's drift
checklist and what the earlier rounds tried."""

from __future__ import annotations

from typing import Any

from harness.agents.worklog import diff_gist
from harness.graph.nodes import tasks
from harness.graph.nodes.agent_runner import run_agent_node
from harness.graph.nodes.common import Update, config_map, guard_findings, timed
from harness.graph.state import RunState
from harness.runs.resources import RunResources
from harness.skills import skill_for


@timed("debug")
def debug(state: RunState, res: RunResources) -> Update:
    """One parity-debug round: the debugger gets the last result, the checklist and history."""
    resuming = state.get("asked_by") == "debug" and bool(state.get("hatch_answer"))
    skill = skill_for(state["packet"]["component_type"], res.cfg.repo)
    before = state.get("debug_round_start") if resuming else None
    before = before or res.workspace.head()
    update = run_agent_node("debug", state, res, tasks.debug_task(state, skill.drift_checklist,
                                                                  config_map=config_map(state, res)))
    finish = update.pop("finish_args", None) or {}
    rounds = int(state.get("debug_rounds") or 0) + (0 if resuming else 1)
    update["debug_rounds"] = rounds
    log = update.pop("work_log", None)
    if update.get("pending_hatch"):
        update["debug_round_start"] = before  # the answered round goes on from the same start
        return update
    files = res.workspace.changed_between(before)
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
    update["guard_findings"] = guard_findings(state, res)
    return update


def _diff_fix(ws: Any, before: str) -> str | None:
    try:
        return diff_gist(ws.diff_between(before, ws.head()))
    except Exception:  # the round's files are recorded either way
        return None
