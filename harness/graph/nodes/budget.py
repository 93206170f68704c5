"""The run's budget: money and time spent so far, what an agent may still spend, and the
harness's own `cost` question (asked through ask_human, `asked_by="budget"`) when the debug
budget is spent and parity is not green."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.agents.loop import Budget
from harness.contracts import EscapeHatch
from harness.graph import routing
from harness.graph.nodes.common import Update
from harness.graph.state import RunState
from harness.run_config.config import configured


def spent(state: RunState) -> tuple[float, float]:
    """Dollars and seconds used so far in this run."""
    usd = sum(float(v.get("cost_usd", 0)) for v in (state.get("usage") or {}).values())
    secs = sum(float(v.get("total_s", 0)) for v in (state.get("timings") or {}).values())
    return usd, secs


def budget_spent_reason(state: RunState) -> str | None:
    """The run-level money or time limit that is used up, or None."""
    cfg = state.get("config") or {}
    factor = 1 + int(state.get("budget_extensions") or 0)
    usd, secs = spent(state)
    if cfg.get("max_usd") is not None and usd >= float(cfg["max_usd"]) * factor:
        return f"max_usd ${float(cfg['max_usd']) * factor:.2f} reached (${usd:.2f} spent)"
    if cfg.get("max_seconds") is not None and secs >= float(cfg["max_seconds"]) * factor:
        return f"max_seconds {float(cfg['max_seconds']) * factor:.0f}s reached ({secs:.0f}s used)"
    return None


def agent_budget(state: RunState) -> Budget:
    """Per-agent turn budget, and what is left of the run's money and time."""
    cfg = state.get("config") or {}
    factor = 1 + int(state.get("budget_extensions") or 0)
    usd, secs = spent(state)
    kwargs: dict[str, Any] = {"max_turns": int(cfg.get("max_turns", 30))}
    if cfg.get("max_usd") is not None:
        kwargs["max_usd"] = max(0.0, float(cfg["max_usd"]) * factor - usd)
    if cfg.get("max_seconds") is not None:
        kwargs["max_seconds"] = max(1.0, float(cfg["max_seconds"]) * factor - secs)
    return Budget(**kwargs)


def budget_check(state: RunState, update: Update, ws: Any) -> Update:
    """After a parity result: note a spent run budget, and ask the cost question when due."""
    merged: RunState = {**state, **update}  # type: ignore[typeddict-item]
    reason = budget_spent_reason(merged)
    if reason:
        update["budget_spent"] = merged["budget_spent"] = reason
    if routing.needs_budget_question(merged):
        update["pending_hatch"] = budget_hatch(merged, ws)
        update["asked_by"] = "budget"
    return update


def budget_decision(state: RunState, answer: dict[str, Any]) -> Update:
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


def budget_blocker(state: RunState) -> str | None:
    """The precise reason the run stops short, when the budget (or an agent failure) is why."""
    if state.get("agent_stop"):
        return str(state["agent_stop"])
    parity = state.get("last_parity") or {}
    if parity.get("status") == "non_skip_pass" and not routing.blocking_findings(state):
        return None
    if state.get("budget_decision") == "stop" or state.get("budget_spent") or (
        int(state.get("debug_rounds") or 0) >= routing.rounds_allowed(state)
    ):
        used = state.get("budget_spent") or f"{int(state.get('debug_rounds') or 0)} of {routing.rounds_allowed(state)} debug rounds used"
        return f"debug budget spent ({used}); last parity: {parity.get('summary_line') or 'not run'}"
    return None


def budget_hatch(state: RunState, ws: Any) -> dict[str, Any]:
    """The harness's own `cost` question when the debug budget is spent and parity is not green."""
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
