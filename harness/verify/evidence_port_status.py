"""Keep PORT_STATUS.md and the local tests README in step with the evidence.

Edits go through `harness.contracts.PortStatus`, which re-renders only what changed, so
hand-written rows, notes and extra sections survive. The harness owns only the cells the role
prompts name (harness.agents.prompts.PORT_STATUS_RULES); a cell an agent wrote there that
disagrees with the evidence is replaced and both texts go into Handoff Notes, never silently.
Every function here is safe to call twice with the same input (the graph re-runs a node when
a run resumes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

from harness.contracts import ComponentSkillHandoff, EscapeHatch, PortStatus
from harness.verify.environment import is_environment_blocker

README_BEGIN = "<!-- harness:parity {component} -->"
README_END = "<!-- /harness:parity {component} -->"
_SUCCESS = ("phase_5_conversion", "phase_6_continue")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _state_path(workspace: Any, packet: Any) -> Path:
    return workspace.resolve(packet.port_state_file, write=True) if hasattr(workspace, "resolve") else workspace.path / packet.port_state_file


def load_port_status(workspace: Any, packet: Any) -> PortStatus:
    """The packet's PORT_STATUS.md, or a fresh one with every contract section."""
    path = _state_path(workspace, packet)
    if path.is_file():
        return PortStatus.read(path)
    return PortStatus.new(
        packet.model_family,
        official_ref_dir=packet.official_ref_dir,
        local_tests_readme=packet.local_tests_readme,
        phase="component",
        owner=f"component:{packet.component}",
    )


def _save(workspace: Any, packet: Any, doc: PortStatus) -> None:
    _write_atomic(_state_path(workspace, packet), doc.render())


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hatch_row(doc: PortStatus, hatch: EscapeHatch) -> str | None:
    for row in doc.rows("Escape Hatches"):
        if _one_line(row.get("Question", "")) == _one_line(hatch.question) and row.get("Decision Type") == hatch.decision_type:
            return row.get("ID")
    return None


def _record_hatch(doc: PortStatus, packet: Any, hatch: EscapeHatch) -> str:
    existing = _hatch_row(doc, hatch)
    if existing:
        return existing
    row_id = doc.add_escape_hatch(_one_line(hatch.question), _one_line(hatch.recommended_option), hatch.decision_type,
                                  phase=hatch.state_snapshot.phase)
    doc.add_issue(f"{row_id}: waiting for a decision", _one_line(hatch.state_snapshot.evidence),
                  phase=hatch.state_snapshot.phase, component=packet.component, severity="high", status="open")
    return row_id


def record_escape_hatch(workspace: Any, packet: Any, hatch: EscapeHatch) -> str:
    """Add the E### row (and a linked I### row) for `hatch`; the same hatch again returns
    the same ID without adding anything."""
    doc = load_port_status(workspace, packet)
    row_id = _record_hatch(doc, packet, hatch)
    _save(workspace, packet, doc)
    return row_id


def resolve_escape_hatch(workspace: Any, packet: Any, hatch_id: str, answer_text: str) -> None:
    """Fill the E### row's Resolution with the person's answer and record the decision."""
    doc = load_port_status(workspace, packet)
    answer = _one_line(answer_text)
    row = next((r for r in doc.rows("Escape Hatches") if r.get("ID") == hatch_id), None)
    if row is None:
        raise KeyError(f"no escape-hatch row {hatch_id} in {packet.port_state_file}")
    if row.get("Resolution") == answer and row.get("Status") == "resolved":
        return
    doc.resolve(hatch_id, answer)
    for issue in doc.rows("Issues And Blockers"):
        if issue.get("Issue", "").startswith(f"{hatch_id}:") and issue.get("Status") != "resolved":
            doc.resolve(issue["ID"], f"{hatch_id} answered: {answer}")
    doc.add_decision(f"{hatch_id}: {answer}", f"answer to escape hatch {hatch_id} ({row.get('Question', '')})",
                     f"{packet.component} continues with this decision")
    _save(workspace, packet, doc)


# Words that state a result; an agent's cell that names another one than the evidence is wrong.
_STATUS_WORDS = frozenset({"scaffold_skip", "debug_red", "non_skip_pass", "blocked", "not_started", "in_progress",
                           "complete", "done", "not_run", "pass", "fail", "failed", "passed", "skipped", "errors"})
_COUNT = re.compile(r"\b\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed)\b")


def _norm(text: str) -> str:
    return " ".join(str(text).replace("`", "").split()).lower()


def _facts(value: str) -> list[str]:
    """What a harness value asserts: its status word and counts for a result, else each item of
    the (comma-separated) value."""
    counts = _COUNT.findall(_norm(value))
    if counts:
        return [_norm(value).split(":")[0].split()[0], *counts]
    return [part.strip() for part in _norm(value).split(",") if part.strip()]


def agrees(old: str, new: str) -> bool:
    """True when an existing cell already says what the harness would write: every fact of the
    new value is in it and it names no other status. The agent's wording, formatting, env
    prefixes and notes then stay as written."""
    o = _norm(old)
    if not o:
        return False
    if not all(f in o for f in _facts(new)):
        return False
    said = set(re.findall(r"[a-z_]+", o)) & _STATUS_WORDS
    meant = set(re.findall(r"[a-z_]+", _norm(new))) & _STATUS_WORDS
    return said <= meant


def _row(doc: PortStatus | None, section: str, key_column: str, key: str) -> dict[str, str] | None:
    if doc is None:
        return None
    row = next((r for r in doc.rows(section) if r.get(key_column, "").strip("`") == key), None)
    return {k.lower().replace(" ", "_"): v for k, v in row.items()} if row is not None else None


def _changed_columns(doc: PortStatus, section: str, key_column: str, key: str, columns: dict[str, str],
                     base: PortStatus | None = None, replaced: list[str] | None = None) -> dict[str, str]:
    """Only the columns whose current cell disagrees with the evidence. A cell the agent wrote
    (it differs from the base commit's) that is replaced is recorded in `replaced`, with both
    texts: the harness never rewrites the agent's words silently."""
    current = _row(doc, section, key_column, key)
    if current is None:
        return columns
    changed = {k: v for k, v in columns.items() if not agrees(current.get(k, ""), v)}
    before = _row(base, section, key_column, key) or {}
    for k, v in changed.items():
        old = current.get(k, "").strip()
        if replaced is not None and old and old != before.get(k, "").strip():
            replaced.append(_replaced_note(f"{section} `{key}` {k.replace('_', ' ').title()}", old, v))
    return changed


def _replaced_note(where: str, old: str, new: str) -> str:
    return _one_line(f"harness rewrote PORT_STATUS.md {where}: the agent wrote {old.strip('`')!r}; the harness's "
                     f"evidence says {new.strip('`')!r}")


def _set_field(doc: PortStatus, base: PortStatus | None, section: str, key: str, value: str, replaced: list[str]) -> None:
    """Set a field unless it already agrees; an agent's value that disagrees is kept in the notes."""
    old = doc.fields(section).get(key, "").strip()
    if agrees(old, value):
        return
    if old and old.strip("`") not in ("", "none", "not_run", "unknown") and old != (base.fields(section).get(key, "").strip() if base else ""):
        replaced.append(_replaced_note(f"{section} {key}", old, value))
    doc.set_field(section, key, value)


def _base_doc(workspace: Any, packet: Any) -> PortStatus | None:
    reader = getattr(workspace, "file_at_base", None)
    text = reader(packet.port_state_file) if callable(reader) else None
    try:
        return PortStatus.parse(text) if text else None
    except Exception:  # an unreadable base file: every cell counts as the agent's
        return None


def _last_result(handoff: ComponentSkillHandoff) -> str:
    """`non_skip_pass: 1 passed in 2.3s`, without the command the row already shows."""
    text = re.sub(r"^pytest \S+ -v -s: ", "", handoff.pytest_output)
    return _one_line(text if text.startswith(handoff.parity_status) else f"{handoff.parity_status}: {text}", 200)


def _family_status(doc: PortStatus, packet: Any, handoff: ComponentSkillHandoff) -> str:
    """Complete only when every component of the matrix is; this run's component from the handoff."""
    mine = _phase_status(handoff)
    if mine != "complete":
        return mine
    for row in doc.rows("Component Matrix"):
        if row.get("Component", "").strip("`") == packet.component:
            continue
        parity = _norm(row.get("Parity", ""))
        prototype = _norm(row.get("Prototype", ""))
        if "non_skip_pass" not in parity and not prototype.startswith("done"):
            return "in_progress"
    return "complete"


def _phase_status(handoff: ComponentSkillHandoff) -> str:
    if handoff.next_step in _SUCCESS:
        return "complete"
    if handoff.next_step == "phase_5_conversion_retry":
        return "in_progress"
    return "blocked"


def _component_columns(packet: Any, handoff: ComponentSkillHandoff, open_ids: list[str]) -> dict[str, str]:
    cols = {
        "type": packet.component_type,
        "official_definition": ", ".join(f.path for f in packet.official_definition_files),
        "official_instantiation": ", ".join(f.path for f in packet.official_instantiation_files),
        "fastvideo_target": ", ".join(packet.fastvideo_target_files),
        "parity": handoff.parity_status,
        "open_issues": ", ".join(open_ids) or "none",
    }
    if handoff.mode == "prototype":
        cols["prototype"] = "done" if handoff.next_step in _SUCCESS else handoff.next_step
    if handoff.conversion_retry_request != "none":
        cols["conversion"] = f"retry requested ({handoff.conversion_retry_request.suspected_fix})"
    return cols


def _ensure_issue(doc: PortStatus, packet: Any, text: str, evidence: str, phase: str) -> None:
    issue = _one_line(text)
    if any(r.get("Issue") == issue and r.get("Status") != "resolved" for r in doc.rows("Issues And Blockers")):
        return
    doc.add_issue(issue, _one_line(evidence), phase=phase, component=packet.component, severity="high")


def _update_readme(workspace: Any, packet: Any, handoff: ComponentSkillHandoff) -> bool:
    """Keep one harness-owned block per component in the README; the rest stays as written."""
    path = workspace.path / packet.local_tests_readme
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# {packet.model_family} local tests\n"
    begin, end = README_BEGIN.format(component=packet.component), README_END.format(component=packet.component)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    outside = pattern.sub("", text)
    if f"pytest {packet.parity_test}" in outside:
        # The agent documented this component's command itself: one block per component, its own.
        new = re.sub(r"\n*" + pattern.pattern + r"\n?", "\n", text, flags=re.DOTALL) if pattern.search(text) else text
    else:
        block = "\n".join([
            begin,
            f"- parity ({packet.component}): `pytest {packet.parity_test} -v -s`",
            f"- last result: {_last_result(handoff)}",
            f"- blocker: {_one_line(handoff.blocker, 200)}",
            end,
        ])
        new = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    if new == text:
        return False
    _write_atomic(path, new)
    return True


def update_port_status(
    workspace: Any,
    packet: Any,
    handoff: ComponentSkillHandoff,
    *,
    hatch_rows: Iterable[EscapeHatch] = (),
    issues: Iterable[str] = (),
    notes: Iterable[str] = (),
) -> ComponentSkillHandoff:
    """Write the handoff's state into PORT_STATUS.md and the local tests README.

    Sets `readme_updated=yes` on the handoff (in place, and returns it) when the README now
    differs from the base commit: the README line is part of the evidence the handoff reports."""
    doc = load_port_status(workspace, packet)
    base = _base_doc(workspace, packet)
    replaced: list[str] = []
    phase = f"component:{handoff.mode}"
    for hatch in [*hatch_rows, *([handoff.escape_hatch] if handoff.escape_hatch != "none" else [])]:
        _record_hatch(doc, packet, hatch)
    for issue in issues:
        _ensure_issue(doc, packet, issue, "recorded during the run", phase)
    # An environment problem (no CUDA, a missing module or weights) is not the component's issue.
    if handoff.blocker != "none" and handoff.next_step not in _SUCCESS and not is_environment_blocker(handoff.blocker):
        _ensure_issue(doc, packet, f"{packet.component}: {handoff.blocker}", handoff.pytest_output, phase)
    open_ids = [r["ID"] for r in doc.rows("Issues And Blockers")
                if r.get("Status") != "resolved" and packet.component in (r.get("Component") or "")]
    if not any(r.get("Component", "").strip("`") == packet.component for r in doc.rows("Component Matrix")):
        doc.upsert_component_row(packet.component, reuse_port="port")
    # Merge, never clobber: a cell the agent wrote that already agrees with the evidence stays
    # byte for byte; only cells that say something else are rewritten.
    columns = _changed_columns(doc, "Component Matrix", "Component", packet.component,
                               _component_columns(packet, handoff, open_ids), base, replaced)
    if columns:
        doc.upsert_component_row(packet.component, **columns)
    command = {"command": f"pytest {packet.parity_test} -v -s", "last_result": _last_result(handoff)}
    if handoff.blocker != "none":
        command["notes"] = _one_line(handoff.blocker, 200)
    command = _changed_columns(doc, "Parity Commands", "Scope", packet.component, command, base, replaced)
    if command:
        doc.upsert_parity_command(packet.component, command.get("command"), command.get("last_result"),
                                  notes=command.get("notes"))
    _set_field(doc, base, "Conversion State", "strict_load_status", handoff.strict_load, replaced)
    if handoff.conversion_retry_request != "none":
        retry = handoff.conversion_retry_request
        doc.set_field("Conversion State", "retry_history",
                      _one_line(f"retry requested by {packet.component}: {retry.suspected_fix} ({retry.failing_keys})", 200))
    _set_field(doc, base, "Current Phase", "status", _family_status(doc, packet, handoff), replaced)
    doc.set_phase(phase, owner=f"component:{packet.component}")
    note = _one_line(f"{packet.component} ({handoff.mode}): next_step={handoff.next_step}, "
                     f"parity={handoff.parity_status}, blocker={handoff.blocker}")
    for line in [note, *(_one_line(f"{packet.component}: {n}") for n in [*notes, *replaced])]:
        if line not in doc.notes():
            doc.add_handoff_note(line)
    _save(workspace, packet, doc)
    _update_readme(workspace, packet, handoff)
    if packet.local_tests_readme in workspace.files_changed():
        handoff.readme_updated = "yes"  # in place too, so a caller that keeps its handoff sees it
    return handoff
