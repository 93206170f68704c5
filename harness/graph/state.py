"""The graph's state: plain JSON values only, so the SQLite checkpointer can store every step.

Live objects (the workspace, the executor, the model) are never kept here; nodes rebuild them
from `config` through `harness.runs.resources`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

# pydantic (LangGraph's server builds the schemas with it) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict


def merge_dicts(left: dict | None, right: dict | None) -> dict:
    """Reducer for per-node maps (usage, timings): a node's update adds to what is there."""
    merged = dict(left or {})
    for key, value in (right or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _add_numbers(merged[key], value)
        else:
            merged[key] = value
    return merged


def _add_numbers(old: dict, new: dict) -> dict:
    out = dict(old)
    for key, value in new.items():
        if isinstance(value, (int, float)) and isinstance(out.get(key), (int, float)):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out


class RunState(TypedDict, total=False):
    # Input, set once by the runner.
    run_id: str
    run_dir: str
    config: dict[str, Any]          # RunConfig as JSON (paths as strings)
    # validate_packet
    packet: dict[str, Any]          # ComponentContext.model_dump(mode="json")
    problems: list[str]
    # prepare_workspace
    workspace: dict[str, str]       # {path, branch, base_commit}
    skill: dict[str, str]           # {name, bucket, source}
    preflight: list[dict[str, Any]]  # the sandbox checks: {name, ok, detail, fix}
    # Agents: last finish_args per role, and the saved conversation of an agent that asked.
    plan: dict[str, Any]            # the planner's finish (harness.agents.finish.PlannerFinish)
    planner_log: dict[str, Any] | None   # a planner cut before finish: its work log (harness.agents.worklog)
    planner_reads: list[dict[str, Any]]  # the planner's read results, carried to the implementer when unchanged
    implementer_finish: dict[str, Any]  # {"finish": ImplementerFinish | None, "reason": why it ended, "log": WorkLog}
    agent_results: Annotated[list[dict[str, Any]], operator.add]
    saved_messages: dict[str, list[Any]]   # node name -> conversation kept for resume
    last_agent_reason: str | None
    model_positions: dict[str, int]  # a scripted/replay model's place per role, for a new process
    # Parity: every run the harness saw, and the one that counts.
    parity_runs: Annotated[list[dict[str, Any]], operator.add]
    last_parity: dict[str, Any] | None
    parity_commit: str | None
    prototype: dict[str, Any] | None
    retry_request: dict[str, Any] | None
    # Debug loop
    debug_rounds: int
    debug_attempts: list[dict[str, Any]]   # whole list written by debug / run_parity
    debug_round_start: str | None   # the commit a round paused on a question started from
    extra_debug_rounds: int
    budget_extensions: int          # how many times a person extended the budget
    budget_spent: str | None        # "max_usd ... reached" / "max_seconds ... reached"
    guard_findings: list[dict[str, Any]]
    concerns: list[str]             # every concern the roles recorded, in order (C1 first; harness.agents.concerns)
    resolved_concerns: dict[str, Any]  # concern text -> {"resolution", "by"}
    # Escape hatches: the pending one, who asked, the answer, and every accepted hatch.
    pending_hatch: dict[str, Any] | None
    asked_by: str | None            # node name, or "budget" for the harness's own cost question
    hatch_id: str | None
    hatch_answer: dict[str, Any] | None
    accepted_hatches: Annotated[list[dict[str, Any]], operator.add]
    budget_decision: str | None     # "extend" | "stop" after a cost question
    # Accounting per node: {"input_tokens", "output_tokens", "cost_usd", "turns"} and
    # {"total_s", "model_s", "test_s"}; harness overhead = total - model - test.
    usage: Annotated[dict[str, dict[str, float]], merge_dicts]
    timings: Annotated[dict[str, dict[str, float]], merge_dicts]
    # End
    blocker: str | None
    agent_stop: str | None          # why an agent stopped early (budget, model or infra error)
    handoff: dict[str, Any] | None
    claim_disagreements: list[str]  # where an agent's finish claims differ from the evidence
    outcome: str | None             # completed | blocked | invalid
