"""plan: the planner (read-only tools) decides reuse vs port, the target files, the steps and
its concerns."""

from __future__ import annotations

from harness.agents.concerns import merge
from harness.agents.memory import RunMemory
from harness.graph.nodes import tasks
from harness.graph.nodes.agent_runner import run_agent_node
from harness.graph.nodes.common import Update, instructions, timed
from harness.graph.state import RunState
from harness.runs.resources import RunResources


@timed("plan")
def plan(state: RunState, res: RunResources) -> Update:
    """The planner (read-only tools): reuse vs port, target files, steps, concerns."""
    update = run_agent_node("plan", state, res, tasks.plan_task(state))
    finish = update.pop("finish_args", None) or None
    log = update.pop("work_log", None)
    if not update.get("pending_hatch"):
        update["planner_log"] = None if finish else log  # a cut planner hands on what it did
        update["planner_reads"] = update.pop("kept_reads", [])
    if finish:
        update["plan"] = finish
        # Concerns given in finish count like record_concern: they reach the handoff.
        given = RunMemory.from_state({"plan": update["plan"]}).concerns()
        update["concerns"] = merge(update.get("concerns") or [], given, instructions(state))
    return update
