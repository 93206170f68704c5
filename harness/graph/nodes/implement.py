"""implement: the implementer writes the component; the guards then read its diff."""

from __future__ import annotations

from harness.agents.worklog import carried_text
from harness.graph.nodes import tasks
from harness.graph.nodes.agent_runner import run_agent_node
from harness.graph.nodes.common import Update, config_map, guard_findings, timed
from harness.graph.state import RunState
from harness.runs.resources import RunResources


@timed("implement")
def implement(state: RunState, res: RunResources) -> Update:
    """The implementer writes the component; the guards then read its diff."""
    carried, _changed = carried_text(list(state.get("planner_reads") or []), res.workspace)
    update = run_agent_node("implement", state, res, tasks.implement_task(state, config_map=config_map(state, res),
                                                                          carried=carried))
    finish = update.pop("finish_args", None) or None
    if not update.get("pending_hatch"):
        log = update.pop("work_log", None)
        update["implementer_finish"] = {"finish": finish, "reason": update.get("agent_stop") or update.get("last_agent_reason"),
                                        "log": None if finish else log}  # a cut implementer hands on what it did
    if not update.get("pending_hatch"):
        update["guard_findings"] = guard_findings(state, res)
    return update
