"""PORT_STATUS.md and the local tests README: updates round-trip, keep hand edits, are idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contracts import ComponentSkillHandoff, EscapeHatch, PortStatus, PortStatusError
from harness.verify.evidence import (
    build_handoff,
    parity_is_current,
    record_escape_hatch,
    resolve_escape_hatch,
    update_port_status,
)
from tests.test_evidence_fixture_repo import MODEL, PARITY, make_packet, make_workspace, run_parity, write

HAND_WRITTEN = """# Demo Port Status

Intro paragraph written by a person.

## Summary
- model_family: `demo`
- workload_types: t2v
- official_ref: demo@abc123
- official_ref_dir: demo_official
- hf_weights_path: org/demo
- local_weights_dir: unknown
- source_layout: single file
- local_tests_readme: tests/local_tests/demo/README.md

## Current Phase
- phase: prep
- status: in_progress
- owner: orchestrator
- last_updated: 2026-01-01

## Component Matrix
| Component | Type | Reuse/Port | Official Definition | Official Instantiation | FastVideo Target | Prototype | Conversion | Parity | Open Issues |
|---|---|---|---|---|---|---|---|---|---|
| text_encoder | encoder | reuse (t5) | x.py | y.py | fastvideo/models/encoders/t5.py | done | done | non_skip_pass | none |

## Open Questions
| ID | Question | Owner | Needed By Phase | Status | Resolution |
|---|---|---|---|---|---|
| Q001 | Which sampler for the smoke test? | person | 9 | open | |

## Reviewer Notes
Keep this section: it is not part of the contract.

## Handoff Notes
- prep done by hand
"""


@pytest.fixture
def ws(tmp_path: Path):
    return make_workspace(tmp_path)


def _hatch() -> EscapeHatch:
    return EscapeHatch(
        needs_user_input="yes", decision_type="scope", question="Drop the audio decode path from this port?",
        recommended_option="Keep it", options=["Keep it: port the audio decoder too", "Drop it: video only"],
        safe_default="keep it", blocked_until_answered="yes",
        state_snapshot={"phase": "prototype", "files_changed": [MODEL], "command_or_test": "not_run",
                        "evidence": "official audio decoder needs a private op"},
    )


def _passing_handoff(ws, tmp_path) -> ComponentSkillHandoff:
    run, commit = run_parity(ws, tmp_path)
    return build_handoff(packet=make_packet(), workspace=ws, mode="parity-debug", last_parity=run,
                         parity_current=parity_is_current(ws, commit), concerns=[], findings=[], escape_hatch=None,
                         retry_request=None, prototype=None, budget_blocker=None)


def test_update_creates_port_status_and_readme(ws, tmp_path) -> None:
    packet = make_packet()
    h = _passing_handoff(ws, tmp_path)
    assert h.readme_updated == "no"
    returned = update_port_status(ws, packet, h)
    assert returned is h and h.readme_updated == "yes"
    doc = PortStatus.read(ws.path / packet.port_state_file)
    assert doc.missing_sections() == []
    (row,) = doc.rows("Component Matrix")
    assert row["Component"] == "vae" and row["Parity"] == "non_skip_pass" and row["Reuse/Port"] == "port"
    (cmd,) = doc.rows("Parity Commands")
    assert cmd["Command"] == f"pytest {PARITY} -v -s" and cmd["Last Result"].startswith("non_skip_pass")
    assert doc.fields("Current Phase")["status"] == "complete"
    assert doc.fields("Conversion State")["strict_load_status"] == "pass"
    readme = (ws.path / packet.local_tests_readme).read_text()
    assert f"`pytest {PARITY} -v -s`" in readme and "last result: non_skip_pass" in readme
    # The state files do not make the parity run stale.
    assert ComponentSkillHandoff.model_validate(h.model_dump()).readme_updated == "yes"


def test_update_keeps_hand_edits_and_is_idempotent(ws, tmp_path) -> None:
    packet = make_packet()
    write(ws.path, packet.port_state_file, HAND_WRITTEN)
    write(ws.path, packet.local_tests_readme, "# Demo local tests\n\nSetup: run `make weights` first.\n")
    h = update_port_status(ws, packet, _passing_handoff(ws, tmp_path))
    text = (ws.path / packet.port_state_file).read_text()
    for kept in ("Intro paragraph written by a person.", "| text_encoder | encoder | reuse (t5) |",
                 "| Q001 | Which sampler for the smoke test? |", "## Reviewer Notes",
                 "Keep this section: it is not part of the contract.", "- prep done by hand", "- workload_types: t2v"):
        assert kept in text
    doc = PortStatus.parse(text)
    assert [r["Component"] for r in doc.rows("Component Matrix")] == ["text_encoder", "vae"]
    assert PortStatus.parse(text).render() == text  # the file round-trips through the model
    readme = (ws.path / packet.local_tests_readme).read_text()
    assert readme.startswith("# Demo local tests\n\nSetup: run `make weights` first.\n")
    # Running the same update again (a resumed node) changes nothing.
    update_port_status(ws, packet, h)
    assert (ws.path / packet.port_state_file).read_text() == text
    assert (ws.path / packet.local_tests_readme).read_text() == readme


def test_blocked_handoff_records_an_issue_once(ws, tmp_path) -> None:
    packet = make_packet()
    h = build_handoff(packet=packet, workspace=ws, mode="parity-debug", last_parity=None, parity_current=False,
                      concerns=[], findings=[], escape_hatch=None, retry_request=None, prototype=None,
                      budget_blocker="budget_time: 30 min used")
    update_port_status(ws, packet, h, issues=["official repo pins numpy<2"])
    update_port_status(ws, packet, h, issues=["official repo pins numpy<2"])
    doc = PortStatus.read(ws.path / packet.port_state_file)
    issues = [r["Issue"] for r in doc.rows("Issues And Blockers")]
    assert issues == ["official repo pins numpy<2", f"vae: {h.blocker}"]
    assert doc.fields("Current Phase")["status"] == "blocked"
    (row,) = doc.rows("Component Matrix")
    assert row["Open Issues"] == "I001, I002"


def test_escape_hatch_rows_record_and_resolve(ws) -> None:
    packet = make_packet()
    write(ws.path, packet.port_state_file, HAND_WRITTEN)
    row_id = record_escape_hatch(ws, packet, _hatch())
    assert row_id == "E001"
    assert record_escape_hatch(ws, packet, _hatch()) == "E001"
    doc = PortStatus.read(ws.path / packet.port_state_file)
    (row,) = doc.rows("Escape Hatches")
    assert (row["Decision Type"], row["Status"], row["Question"]) == ("scope", "open", "Drop the audio decode path from this port?")
    linked = [r for r in doc.rows("Issues And Blockers") if r["Issue"].startswith("E001:")]
    assert len(linked) == 1 and linked[0]["Evidence"] == "official audio decoder needs a private op"

    resolve_escape_hatch(ws, packet, "E001", "Keep it: port the audio decoder too")
    resolve_escape_hatch(ws, packet, "E001", "Keep it: port the audio decoder too")  # resume: no-op
    doc = PortStatus.read(ws.path / packet.port_state_file)
    (row,) = doc.rows("Escape Hatches")
    assert row["Status"] == "resolved" and row["Resolution"] == "Keep it: port the audio decoder too"
    assert [r["Status"] for r in doc.rows("Issues And Blockers") if r["Issue"].startswith("E001:")] == ["resolved"]
    assert len(doc.rows("Decisions")) == 1
    assert "| Q001 | Which sampler for the smoke test? |" in doc.render()
    # A second, different hatch gets the next ID.
    other = _hatch().model_copy(update={"question": "Drop the image encode path from this port?"})
    assert record_escape_hatch(ws, packet, other) == "E002"


def test_resolving_an_unknown_row_or_a_secret_answer_fails_clearly(ws) -> None:
    packet = make_packet()
    record_escape_hatch(ws, packet, _hatch())
    with pytest.raises(KeyError, match="E009"):
        resolve_escape_hatch(ws, packet, "E009", "yes")
    before = (ws.path / packet.port_state_file).read_text()
    with pytest.raises(PortStatusError):
        resolve_escape_hatch(ws, packet, "E001", "use HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123")
    assert (ws.path / packet.port_state_file).read_text() == before  # nothing half-written


def _agent_writes_port_status(ws, packet, row_cells: str, command_cells: str) -> str:
    """The agent's own PORT_STATUS.md: a fresh file, then its own matrix row and command row."""
    doc = PortStatus.new("demo", official_ref_dir="official", local_tests_readme=packet.local_tests_readme,
                         phase="component", owner="component:vae")
    path = ws.path / packet.port_state_file
    path.parent.mkdir(parents=True, exist_ok=True)
    text = doc.render()
    matrix_header = next(line for line in text.splitlines() if line.startswith("| Component |"))
    sep = next(line for line in text.splitlines()[text.splitlines().index(matrix_header) + 1:][:1])
    text = text.replace(matrix_header + "\n" + sep, matrix_header + "\n" + sep + "\n" + row_cells, 1)
    cmd_header = next(line for line in text.splitlines() if line.startswith("| Scope |"))
    sep = text.splitlines()[text.splitlines().index(cmd_header) + 1]
    text = text.replace(cmd_header + "\n" + sep, cmd_header + "\n" + sep + "\n" + command_cells, 1)
    path.write_text(text)
    return text


def test_finalize_keeps_what_the_agent_wrote_correctly_byte_for_byte(ws, tmp_path) -> None:
    packet = make_packet()
    h = _passing_handoff(ws, tmp_path)
    doc = PortStatus.new("demo", local_tests_readme=packet.local_tests_readme)
    header = doc.render()
    matrix_cols = next(line for line in header.splitlines() if line.startswith("| Component |")).strip("|").split("|")
    values = {"Component": "vae", "Type": "vae", "Reuse/Port": "port (no KL VAE to reuse)",
              "Official Definition": "`demo_official/vae.py` (DemoOfficialVAE)",
              "Official Instantiation": "demo_official/build.py", "FastVideo Target": "`fastvideo/models/vaes/demo.py`, `fastvideo/configs/models/vaes/demo.py` (config)",
              "Prototype": "", "Conversion": "", "Parity": "`non_skip_pass`", "Open Issues": "none"}
    row = "| " + " | ".join(values.get(c.strip(), "") for c in matrix_cols) + " |"
    command = (f"| vae | `OFFICIAL_REF_DIR=../official pytest {PARITY} -v -s` | "
               "non_skip_pass: 1 passed (decode_latents max_abs 0) | run from the repo root |")
    _agent_writes_port_status(ws, packet, row, command)
    update_port_status(ws, packet, h)
    after = (ws.path / packet.port_state_file).read_text()
    assert row in after.splitlines()  # the matrix row, byte for byte
    assert command in after.splitlines()  # the command with its env prefix and notes
    # The cheat beside it: a row that claims a pass the evidence does not show is rewritten.
    red = h.model_copy(update={"parity_status": "debug_red", "next_step": "blocked",
                               "blocker": "parity red: decode_latents drift",
                               "pytest_output": f"pytest {PARITY} -v -s: debug_red: 1 failed in 0.3s"})
    update_port_status(ws, packet, red)
    rows = PortStatus.read(ws.path / packet.port_state_file)
    (matrix,) = rows.rows("Component Matrix")
    assert matrix["Parity"] == "debug_red" and matrix["Official Definition"] == values["Official Definition"]
    (cmd,) = rows.rows("Parity Commands")
    assert cmd["Command"].startswith("`OFFICIAL_REF_DIR=../official pytest")  # still correct: kept
    assert cmd["Last Result"] == "debug_red: 1 failed in 0.3s"  # readable, no command, no repeated status


def test_family_status_and_readme_reflect_every_component(ws, tmp_path) -> None:
    packet = make_packet()
    h = _passing_handoff(ws, tmp_path)
    doc = PortStatus.new("demo", local_tests_readme=packet.local_tests_readme)
    doc.upsert_component_row("text_encoder", type="encoder", parity="not_started")
    (ws.path / packet.port_state_file).parent.mkdir(parents=True, exist_ok=True)
    (ws.path / packet.port_state_file).write_text(doc.render())
    readme = ws.path / packet.local_tests_readme
    readme.write_text(f"# demo\n\n## vae\n\nRun `OFFICIAL_REF_DIR=../official pytest {PARITY} -v -s`.\n")
    update_port_status(ws, packet, h)
    status = PortStatus.read(ws.path / packet.port_state_file)
    assert status.fields("Current Phase")["status"] == "in_progress"  # the encoder is not started
    text = readme.read_text()
    assert text.count(f"pytest {PARITY}") == 1 and "harness:parity" not in text  # one block, the agent's


def test_strict_load_needs_a_production_loader_test(ws, tmp_path) -> None:
    from harness.verify.evidence import coverage_scope

    packet = make_packet()
    assert coverage_scope(ws, packet) == "production_loader"
    assert _passing_handoff(ws, tmp_path).strict_load == "pass"
    test = ws.path / PARITY
    test.write_text(test.read_text().replace("Coverage scope: production_loader", "Coverage scope: implementation_subcomponent"))
    ws.checkpoint("scope")
    # The verdict reads the test as it was at the base commit; a new scope in the worktree does
    # not change what the base test declares.
    assert coverage_scope(ws, packet) == "production_loader"


def test_concerns_are_not_duplicated(ws, tmp_path) -> None:
    run, commit = run_parity(ws, tmp_path)
    h = build_handoff(packet=make_packet(), workspace=ws, mode="parity-debug", last_parity=run,
                      parity_current=parity_is_current(ws, commit),
                      concerns=["Check the scale constant.", "check the  scale constant", "odd sizes"],
                      findings=[], escape_hatch=None, retry_request=None, prototype=None, budget_blocker=None)
    lowered = [c.lower().rstrip(".") for c in h.concerns_or_unknowns]
    assert lowered.count("check the scale constant") == 1 and "odd sizes" in lowered
