"""ask_human: record an accepted escape hatch in PORT_STATUS.md, pause with interrupt() for a
person's answer, and check it; the answer goes back to whoever asked."""

from __future__ import annotations

from langgraph.types import interrupt

from harness.contracts import EscapeHatch
from harness.graph.nodes.budget import budget_decision
from harness.graph.nodes.common import Update, packet_of, timed
from harness.graph.state import RunState
from harness.runs.answers import AnswerError, coerce_answer, human_interrupt
from harness.runs.resources import RunResources
from harness.verify.evidence import record_escape_hatch, resolve_escape_hatch


@timed("ask_human")
def ask_human(state: RunState, res: RunResources) -> Update:
    """Record the question in PORT_STATUS.md (idempotent), pause, and check the answer."""
    hatch = state["pending_hatch"] or {}
    packet = packet_of(state)
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
        update.update(budget_decision(state, answer))
    return update
