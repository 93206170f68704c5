"""Handoffs built from evidence: real parity runs in a real worktree, guards, retries, hatches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.contracts import ComponentSkillHandoff, EscapeHatch, PortStatus
from harness.verify.evidence import (
    build_handoff,
    parity_is_current,
    prototype_evidence,
    record_escape_hatch,
)
from harness.verify.evidence_conversion import classify_conversion_failure
from harness.verify.guards import check_guards
from harness.sandbox.executors import make_executor
from tests.test_evidence_fixture_repo import (
    CONFIG,
    DUMPS,
    MODEL,
    PARITY,
    REF,
    make_packet,
    make_workspace,
    run_parity,
    write,
)


def local_sandbox(tree):
    """A new local sandbox for each tree the prototype probes build."""
    return make_executor("local", tree, run_id=tree.run_id)


@pytest.fixture
def ws(tmp_path: Path):
    return make_workspace(tmp_path)


def handoff(ws, packet, run, current, *, mode="parity-debug", findings=(), hatch=None, retry=None, prototype=None,
            budget=None, concerns=()) -> ComponentSkillHandoff:
    result = build_handoff(packet=packet, workspace=ws, mode=mode, last_parity=run, parity_current=current,
                           concerns=list(concerns), findings=list(findings), escape_hatch=hatch, retry_request=retry,
                           prototype=prototype, budget_blocker=budget)
    # Every handoff must survive a full round trip through the contract model.
    return ComponentSkillHandoff.model_validate(result.model_dump())


def _edit(ws, rel: str, old: str, new: str) -> None:
    path = ws.path / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_pass_gives_phase_6_continue(ws, tmp_path) -> None:
    packet = make_packet()
    _edit(ws, MODEL, '"""Demo VAE."""', '"""Demo VAE, decoder only."""')
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "non_skip_pass"
    assert parity_is_current(ws, commit)
    h = handoff(ws, packet, run, True, concerns=["agent: checked the scale constant"])
    assert (h.parity_status, h.next_step, h.blocker) == ("non_skip_pass", "phase_6_continue", "none")
    assert h.strict_load == "pass" and h.production_loader_strictness == "strict"
    assert PARITY in h.pytest_output and "1 passed" in h.pytest_output
    assert h.files_changed == [MODEL]
    assert h.official_files_used == ["demo_official/vae.py", "demo_official/build.py"]
    assert "agent: checked the scale constant" in h.concerns_or_unknowns
    assert h.prototype_key_dumps == "none"  # the prototype's artifact; a parity-debug handoff does not report it


def test_non_strict_loader_pass_documents_exclusions(ws, tmp_path) -> None:
    run, commit = run_parity(ws, tmp_path)
    h = handoff(ws, make_packet(strictness="non_strict_with_allowed_keys"), run, parity_is_current(ws, commit))
    assert h.strict_load == "pass_with_documented_exclusions"


def test_stale_parity_is_never_a_pass(ws, tmp_path) -> None:
    packet = make_packet()
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "non_skip_pass"
    # State files written after the run do not make it stale ...
    write(ws.path, packet.port_state_file, "# Demo Port Status\n")
    write(ws.path, packet.local_tests_readme, "# demo\n")
    assert parity_is_current(ws, commit)
    # ... an edit to anything the test can see does, committed or not, tracked or new.
    write(ws.path, "fastvideo/models/vaes/helper.py", "X = 1\n")
    assert not parity_is_current(ws, commit)
    h = handoff(ws, packet, run, parity_is_current(ws, commit))
    assert h.parity_status == "blocked" and h.next_step == "blocked"
    assert "stale" in h.blocker and "stale" in h.pytest_output
    ws.checkpoint("agent edit")
    assert not parity_is_current(ws, commit)


def test_unknown_parity_commit_is_not_current(ws) -> None:
    assert not parity_is_current(ws, "0" * 40)
    assert not parity_is_current(ws, "")


def test_red_run_is_blocked_with_the_mismatch(ws, tmp_path) -> None:
    _edit(ws, CONFIG, "scale: float = 2.0", "scale: float = 2.5")
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "debug_red"
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit))
    assert (h.parity_status, h.next_step) == ("debug_red", "blocked")
    assert "parity red" in h.blocker and "Mismatched elements" in h.blocker
    assert h.strict_load == "not_run"


def test_skip_is_not_a_pass(ws, tmp_path) -> None:
    (ws.path / REF).unlink()
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "scaffold_skip"
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit))
    assert (h.parity_status, h.next_step) == ("scaffold_skip", "blocked")
    assert "official reference dump missing" in h.blocker


def test_guard_hit_forbids_non_skip_pass(ws, tmp_path) -> None:
    packet = make_packet()
    _edit(ws, PARITY, "ATOL = 1e-6", "ATOL = 1e-1")
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "non_skip_pass"  # the weakened test does pass ...
    findings = check_guards(ws, packet, mode="parity-debug", parity_claimed=True, parity_ran=True)
    assert findings and findings[0].blocking
    h = handoff(ws, packet, run, parity_is_current(ws, commit), findings=findings)
    assert h.parity_status == "blocked" and h.next_step == "blocked"  # ... and is not reported as one
    assert "parity_test_weakened" in h.blocker and "atol" in h.blocker


def test_recorded_non_blocking_finding_lands_in_concerns(ws, tmp_path) -> None:
    from harness.verify.guards import GuardFinding

    run, commit = run_parity(ws, tmp_path)
    note = GuardFinding("parity_test_weakened", PARITY, "tolerance_loosened: atol 1e-06 -> 1e-05 (accepted by an escape hatch)", False)
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit), findings=[note])
    assert h.next_step == "phase_6_continue"
    assert any("accepted by an escape hatch" in c for c in h.concerns_or_unknowns)


def test_mapping_failure_gives_a_retry_request(ws, tmp_path) -> None:
    packet = make_packet()
    _edit(ws, MODEL, "        self.scale = config.scale", "        raise RuntimeError(\n"
          "            'Error(s) in loading state_dict for DemoVAE:\\n\\tMissing key(s) in state_dict: '\n"
          "            '\"decoder.conv_in.weight\", \"decoder.conv_in.bias\". \\n\\tUnexpected key(s) in state_dict: '\n"
          "            '\"vae.decoder.conv_in.weight\", \"vae.decoder.conv_in.bias\". ')")
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "debug_red"
    retry = classify_conversion_failure(run, packet)
    assert retry is not None
    assert "decoder.conv_in.weight" in retry.failing_keys and "vae.decoder.conv_in.bias" in retry.failing_keys
    assert retry.suspected_fix == "rename"
    h = handoff(ws, packet, run, parity_is_current(ws, commit), retry=retry)
    assert h.next_step == "phase_5_conversion_retry" and h.strict_load == "blocked"
    assert h.conversion_retry_request != "none"


def test_conversion_script_edit_stays_out_of_files_changed(ws, tmp_path) -> None:
    packet = make_packet()
    write(ws.path, "scripts/checkpoint_conversion/demo_to_diffusers.py", "PREFIX = ''\n")
    run, commit = run_parity(ws, tmp_path)
    findings = check_guards(ws, packet, mode="parity-debug")
    h = handoff(ws, packet, run, parity_is_current(ws, commit), findings=findings)
    assert h.next_step == "blocked" and "conversion_edit" in h.blocker
    assert "scripts/checkpoint_conversion/demo_to_diffusers.py" not in h.files_changed


def _write_dumps(ws) -> None:
    write(ws.path, DUMPS[0], json.dumps({"decoder.scale": [1]}))
    write(ws.path, DUMPS[1], json.dumps({"scale": [1]}))


def test_prototype_success_gives_phase_5_conversion(ws, tmp_path) -> None:
    packet = make_packet(mode="prototype")
    _write_dumps(ws)
    ex = make_executor("local", ws)
    try:
        proto = prototype_evidence(ws, packet, local_sandbox)
    finally:
        ex.close()
    assert proto.ok, proto.details
    assert any("DemoVAE(DemoVAEConfig())" in d for d in proto.details)
    (ws.path / REF).unlink()  # no converted weights yet: the parity test skips, which is fine here
    run, commit = run_parity(ws, tmp_path)
    h = handoff(ws, packet, run, parity_is_current(ws, commit), mode="prototype", prototype=proto)
    assert (h.mode, h.next_step, h.parity_status, h.blocker) == ("prototype", "phase_5_conversion", "scaffold_skip", "none")
    assert h.prototype_key_dumps != "none"
    assert set(DUMPS) <= set(h.files_changed)


def test_prototype_with_broken_import_and_bad_dump_is_blocked(ws, tmp_path) -> None:
    packet = make_packet(mode="prototype")
    write(ws.path, DUMPS[0], json.dumps({"decoder.scale": "one"}))
    _edit(ws, MODEL, "from fastvideo.configs", "import not_a_module_anywhere\nfrom fastvideo.configs")
    ex = make_executor("local", ws)
    try:
        proto = prototype_evidence(ws, packet, local_sandbox)
    finally:
        ex.close()
    assert not proto.imports_ok and not proto.instantiates_ok
    assert not proto.official_dump and not proto.fastvideo_dump
    assert any("not_a_module_anywhere" in d for d in proto.details)
    h = handoff(ws, packet, None, False, mode="prototype", prototype=proto)
    assert h.next_step == "blocked" and h.prototype_key_dumps == "none"
    assert h.blocker.startswith("prototype: target modules do not import")
    assert h.pytest_output == "not_run"


def test_budget_blocker_is_named(ws, tmp_path) -> None:
    _edit(ws, CONFIG, "scale: float = 2.0", "scale: float = 3.0")
    run, commit = run_parity(ws, tmp_path)
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit), budget="budget_turns: 40 of 40 turns used")
    assert h.next_step == "blocked"
    assert h.blocker.startswith("budget_turns: 40 of 40 turns used; parity red")


def _hatch(evidence: str = "decode drift 6e-5 after tracing every block") -> EscapeHatch:
    return EscapeHatch(
        needs_user_input="yes", decision_type="blocker",
        question="Accept loosening the decode tolerance from 1e-6 to 1e-4?",
        recommended_option="Keep 1e-6", options=["Keep 1e-6: keep debugging", "Loosen to 1e-4: record the drift"],
        safe_default="keep debugging", blocked_until_answered="yes",
        state_snapshot={"phase": "parity-debug", "files_changed": [MODEL], "command_or_test": f"pytest {PARITY} -v -s",
                        "evidence": evidence},
    )


def test_escape_hatch_gives_ask_user_with_a_port_status_row(ws, tmp_path) -> None:
    packet = make_packet()
    run, commit = run_parity(ws, tmp_path)
    h = handoff(ws, packet, run, parity_is_current(ws, commit), hatch=_hatch())
    assert h.next_step == "ask_user"
    assert h.escape_hatch.state_snapshot.evidence.startswith("E001: ")
    rows = PortStatus.read(ws.path / packet.port_state_file).rows("Escape Hatches")
    assert [r["ID"] for r in rows] == ["E001"]
    # Re-running the node (resume) must not add a second row.
    again = handoff(ws, packet, run, parity_is_current(ws, commit), hatch=_hatch())
    assert again.escape_hatch.state_snapshot.evidence.startswith("E001: ")
    assert record_escape_hatch(ws, packet, _hatch()) == "E001"
    assert len(PortStatus.read(ws.path / packet.port_state_file).rows("Escape Hatches")) == 1


def test_no_run_at_all_is_blocked(ws) -> None:
    h = handoff(ws, make_packet(), None, False)
    assert h.parity_status == "blocked" and h.next_step == "blocked"
    assert "has not run the parity test" in h.blocker


def test_secret_in_a_concern_never_reaches_the_handoff(ws, tmp_path) -> None:
    run, commit = run_parity(ws, tmp_path)
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit),
                concerns=["used HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123 to download"])
    assert not any("hf_abc" in c for c in h.concerns_or_unknowns)


TORCH_MODEL = '''"""Demo VAE on torch."""
from torch import nn

from fastvideo.configs.models.vaes.demo import DemoVAEConfig


class DemoVAE(nn.Module):
    def __init__(self, config: DemoVAEConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4, 8, 3)


EntryClass = DemoVAE
'''


@pytest.mark.bwrap
def test_prototype_probe_runs_in_bubblewrap(ws) -> None:
    packet = make_packet(mode="prototype")
    write(ws.path, MODEL, TORCH_MODEL)
    _write_dumps(ws)
    # The FastVideo dump must be what the native model holds (the probe compares them).
    write(ws.path, DUMPS[1], json.dumps({"conv_in.weight": [8, 4, 3, 3], "conv_in.bias": [8]}))
    ex = make_executor("bwrap", ws)
    ex.start()
    try:
        proto = prototype_evidence(ws, packet, local_sandbox)
    finally:
        ex.close()
    assert proto.ok, proto.details
    assert "instantiated DemoVAE(DemoVAEConfig()) with 296 parameters" in proto.details


def test_prototype_probe_reports_a_constructor_error(ws) -> None:
    packet = make_packet(mode="prototype")
    _edit(ws, MODEL, "        self.scale = config.scale", "        raise ValueError('latent_channels must be 16')")
    _write_dumps(ws)
    ex = make_executor("local", ws)
    try:
        proto = prototype_evidence(ws, packet, local_sandbox)
    finally:
        ex.close()
    assert proto.imports_ok and not proto.instantiates_ok and not proto.ok
    assert any("latent_channels must be 16" in d for d in proto.details)
    assert proto.failure().startswith("prototype: EntryClass does not instantiate")


def test_prototype_failure_names_the_missing_dump(ws) -> None:
    packet = make_packet(mode="prototype")
    write(ws.path, DUMPS[0], json.dumps({"decoder.scale": [1]}))
    ex = make_executor("local", ws)
    try:
        proto = prototype_evidence(ws, packet, local_sandbox)
    finally:
        ex.close()
    assert proto.imports_ok and proto.instantiates_ok and proto.official_dump and not proto.fastvideo_dump
    assert proto.failure() == f"prototype: FastVideo key/shape dump missing or invalid (dump fastvideo: {DUMPS[1]} missing)"


def test_conversion_edit_blocks_success_even_without_findings(ws, tmp_path) -> None:
    write(ws.path, "converted_weights/demo/vae/config.json", "{}")
    run, commit = run_parity(ws, tmp_path)
    assert run.status == "non_skip_pass"
    h = handoff(ws, make_packet(), run, parity_is_current(ws, commit))  # caller forgot the guards
    assert h.parity_status == "blocked" and h.next_step == "blocked"
    assert "conversion-owned files were edited: converted_weights/demo/vae/config.json" in h.blocker


def test_question_and_retry_together_ask_first(ws, tmp_path) -> None:
    packet = make_packet()
    run, commit = run_parity(ws, tmp_path)
    from harness.contracts import ConversionRetryRequest

    retry = ConversionRetryRequest(component="vae", parity_test=PARITY, failing_keys=["decoder.w"],
                                   expected_actual_shapes=["not reported"], source_prefix_or_path="decoder",
                                   evidence="missing 1: decoder.w", suspected_fix="rename")
    h = handoff(ws, packet, run, parity_is_current(ws, commit), hatch=_hatch(), retry=retry)
    assert h.next_step == "ask_user" and h.conversion_retry_request == "none"
    assert any("conversion retry pending (rename)" in c for c in h.concerns_or_unknowns)
