"""finalize: the handoff from evidence (never from an agent's word), PORT_STATUS.md updated,
the last commit, and handoff.json/.md written for the person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.agents import concerns as ledger
from harness.agents.memory import RunMemory
from harness.contracts import ComponentSkillHandoff, ConversionRetryRequest
from harness.graph.nodes.budget import budget_blocker
from harness.graph.nodes.common import Update, accepted, jsonable, packet_of, parity_from_dict, timed
from harness.graph.state import RunState
from harness.runs.resources import RunResources
from harness.verify.evidence import (
    build_handoff,
    clean_text,
    parity_is_current,
    prototype_evidence,
    update_port_status,
)
from harness.verify.guards import check_guards


@timed("finalize")
def finalize(state: RunState, res: RunResources) -> Update:
    """Build the handoff from evidence, update PORT_STATUS.md, commit, and write it out."""
    packet = packet_of(state)
    ws = res.workspace
    ws.checkpoint("finalize: last agent changes")
    last = parity_from_dict(state.get("last_parity"))
    current = bool(state.get("parity_commit")) and parity_is_current(ws, state["parity_commit"])
    findings = check_guards(
        ws, packet, mode=packet.mode,
        accepted_hatches=accepted(state),
        parity_claimed=bool(last is not None and last.status == "non_skip_pass" and current),
        parity_ran=last is not None,
    )
    passed = bool(last is not None and last.status == "non_skip_pass" and current)
    all_concerns = list(state.get("concerns") or [])
    resolved = dict(state.get("resolved_concerns") or {})
    if passed:  # "still red" is history once the harness has seen the test pass
        resolved = ledger.close_still_red(all_concerns, resolved, last.summary_line())
    handoff = build_handoff(
        packet=packet, workspace=ws, mode=packet.mode, last_parity=last, parity_current=current,
        concerns=[text for _n, text in ledger.open_concerns(all_concerns, resolved)], findings=findings,
        escape_hatch=None, retry_request=_retry_from(state), prototype=_prototype_from(res, packet),
        budget_blocker=budget_blocker(state),
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
        "guard_findings": [jsonable(f) for f in findings],
        "outcome": outcome,
        "blocker": None if handoff.blocker in (None, "none") else str(handoff.blocker),
        "claim_disagreements": disagreements,
        "resolved_concerns": resolved,
    }


def _memory_findings(state: RunState, handoff: Any, findings: Any) -> tuple[list[str], list[str]]:
    """The debug rounds' diagnoses and fixes, and where the roles' claims differ from the evidence."""
    memory = RunMemory.from_state(dict(state))
    dumps_ok = None
    if handoff.mode == "prototype":
        dumps_ok = handoff.prototype_key_dumps != "none"
    disagreements = memory.disagreements(files_changed=list(handoff.files_changed), strict_load=handoff.strict_load,
                                         parity_status=handoff.parity_status, key_dumps_ok=dumps_ok)
    return memory.handoff_notes(), disagreements


def is_success(handoff: ComponentSkillHandoff, mode: str) -> bool:
    if mode == "prototype":
        # phase_6_continue: the conversion already strict-loads and parity passed (see build_handoff).
        return handoff.next_step in ("phase_5_conversion", "phase_6_continue")
    return handoff.parity_status == "non_skip_pass" and handoff.next_step in ("phase_6_continue", "phase_5_conversion")


def _write_handoff(run_dir: Path, handoff: ComponentSkillHandoff) -> None:
    """Write both forms atomically: a reader never sees half a handoff."""
    for name, text in (
        ("handoff.json", handoff.model_dump_json(indent=2)),
        ("handoff.md", handoff.to_text() + "\n"),
    ):
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(run_dir / name)


def _retry_from(state: RunState) -> ConversionRetryRequest | None:
    data = state.get("retry_request")
    return ConversionRetryRequest.model_validate(data) if data else None


def _prototype_from(res: RunResources, packet: Any) -> Any:
    if packet.mode != "prototype":
        return None
    return prototype_evidence(res.workspace, packet, res.new_executor)  # fresh: files may have changed
