"""Where the run goes next. Pure functions of the state, so every rule is unit-testable.

The nodes compute the facts (parity result, prototype evidence, conversion classification,
guard findings, budget use); routing only reads them.
"""

from __future__ import annotations

from typing import Any

from harness.graph.state import RunState
from harness.run_config.config import configured

END = "__end__"
AGENT_NODES = ("plan", "implement", "debug")


def after_validate(state: RunState) -> str:
    return END if state.get("problems") else "prepare_workspace"


def after_prepare(state: RunState) -> str:
    """A failed preflight ends the run before any model call."""
    return END if state.get("outcome") == "blocked" else "plan"


def after_agent(next_node: str):
    """An agent node goes to ask_human when its agent raised an accepted escape hatch."""

    def route(state: RunState) -> str:
        if state.get("pending_hatch"):
            return "ask_human"
        if state.get("agent_stop"):
            return "finalize"  # model or infrastructure failure: a precise blocker, not a retry loop
        return next_node

    route.__name__ = f"after_agent_to_{next_node}"
    return route


def blocking_findings(state: RunState) -> list[dict[str, Any]]:
    return [f for f in state.get("guard_findings") or [] if f.get("blocking")]


def rounds_allowed(state: RunState) -> int:
    cfg = state.get("config") or {}
    return int(configured(cfg, "max_debug_rounds")) + int(state.get("extra_debug_rounds") or 0)


def budget_left(state: RunState) -> bool:
    """Debug rounds remain, and the run's money and time are not spent."""
    if state.get("budget_decision") == "stop":
        return False
    if state.get("budget_spent"):
        return False
    return int(state.get("debug_rounds") or 0) < rounds_allowed(state)


def environment_stop(state: RunState) -> str | None:
    """The environment problem that ends the run without debugging: any blocked run, and in
    parity-debug a skip that only the machine explains (no CUDA, no weights, no reference)."""
    from harness.verify.environment import environment_problem

    parity = state.get("last_parity") or {}
    if parity.get("status") == "scaffold_skip" and _mode(state) != "parity-debug":
        return None  # a prototype's parity test may skip; the prototype evidence decides
    return environment_problem(parity)


def after_parity(state: RunState) -> str:
    parity = state.get("last_parity") or {}
    status = parity.get("status")
    clean = not blocking_findings(state)
    if status == "non_skip_pass" and clean:
        return "finalize"
    if environment_stop(state):
        return "finalize"  # no debug round can fix the machine; the handoff names the problem
    if _mode(state) == "prototype" and (state.get("prototype") or {}).get("complete") and clean:
        return "finalize"  # next_step=phase_5_conversion: parity is not chased in prototype mode
    if state.get("retry_request"):
        return "finalize"  # conversion is implicated: hand back to conversion, do not debug it
    if budget_left(state):
        return "debug"
    if _on_budget(state) == "blocked" or state.get("budget_decision") == "stop":
        return "finalize"
    return "ask_human" if state.get("pending_hatch") else "finalize"


def needs_budget_question(state: RunState) -> bool:
    """True when run_parity should raise the harness's own `cost` escape hatch."""
    parity = state.get("last_parity") or {}
    if parity.get("status") == "non_skip_pass" and not blocking_findings(state):
        return False
    if _mode(state) == "prototype" and (state.get("prototype") or {}).get("complete"):
        return False
    if state.get("retry_request") or budget_left(state) or environment_stop(state):
        return False
    return _on_budget(state) == "ask" and state.get("budget_decision") != "stop"


def after_ask_human(state: RunState) -> str:
    """Back to the node that asked once the answer is in; ask again if it was not valid."""
    if state.get("pending_hatch"):
        return "ask_human"
    asked_by = state.get("asked_by")
    if asked_by in AGENT_NODES:
        return asked_by
    if asked_by == "budget":
        return "debug" if budget_left(state) else "finalize"
    return "finalize"


def _mode(state: RunState) -> str:
    return str((state.get("packet") or {}).get("mode", ""))


def _on_budget(state: RunState) -> str:
    return str((state.get("config") or {}).get("on_budget", "ask"))
