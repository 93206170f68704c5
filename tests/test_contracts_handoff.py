"""Handoff, escape hatch, conversion retry request and parity entry rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from harness.contracts import (
    ComponentParity,
    ComponentSkillHandoff,
    ConversionRetryRequest,
    EscapeHatch,
    PacketError,
    pytest_counts,
)
from harness.contracts.loading import problems_from_validation, validate_data
from harness.contracts.textform import parse_text

TEST = "tests/local_tests/vaes/test_stable_audio_vae_parity.py"


def hatch(**changes: Any) -> dict[str, Any]:
    data = {
        "needs_user_input": "yes",
        "decision_type": "blocker",
        "question": "May the parity tolerance for the decoder output be loosened from 1e-5 to 1e-3?",
        "recommended_option": "Keep 1e-5",
        "options": [
            "Keep 1e-5: debugging continues on the first divergent tensor",
            "Loosen to 1e-3: the port ships with a documented tolerance exception",
        ],
        "safe_default": "Keep 1e-5 and keep debugging",
        "blocked_until_answered": "yes",
        "state_snapshot": {
            "phase": "parity-debug",
            "files_changed": ["fastvideo/models/vaes/oobleck.py"],
            "command_or_test": f"pytest {TEST} -v -s",
            "evidence": "E001: max_abs_diff=4.1e-4 after the last decoder block",
        },
    }
    data.update(changes)
    return data


def handoff(**changes: Any) -> dict[str, Any]:
    data = {
        "component": "vae",
        "mode": "parity-debug",
        "files_changed": ["fastvideo/models/vaes/oobleck.py", "tests/local_tests/stable_audio/README.md"],
        "official_files_used": ["src/diffusers/models/autoencoders/autoencoder_oobleck.py"],
        "prototype_key_dumps": {
            "official": "converted_weights/stable_audio/_mapping/vae_official_keys.json",
            "fastvideo": "converted_weights/stable_audio/_mapping/vae_fastvideo_keys.json",
        },
        "port_state_file": "tests/local_tests/stable_audio/PORT_STATUS.md",
        "concerns_or_unknowns": "none",
        "parity_test": TEST,
        "parity_status": "non_skip_pass",
        "production_loader_strictness": "strict",
        "strict_load": "pass",
        "pytest_output": f"pytest {TEST} -v -s: 2 passed in 3.1s",
        "blocker": "none",
        "conversion_retry_request": "none",
        "readme_updated": "yes",
        "next_step": "phase_6_continue",
        "escape_hatch": "none",
    }
    data.update(changes)
    return data


def retry() -> dict[str, Any]:
    return {
        "component": "vae",
        "parity_test": TEST,
        "failing_keys": ["decoder.block.0.conv.weight_g", "decoder.block.0.conv.parametrizations.weight.original0"],
        "expected_actual_shapes": "[128, 1, 1] vs missing",
        "source_prefix_or_path": "vae/diffusion_pytorch_model.safetensors decoder.",
        "evidence": "strict load: 12 missing keys, first decoder.block.0.conv.parametrizations.weight.original0",
        "suspected_fix": "rename",
    }


def problems(model: type, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [str(p) for p in problems_from_validation(info.value)]


# ---- handoff ---------------------------------------------------------------------------


def test_parity_debug_success() -> None:
    model = ComponentSkillHandoff.model_validate(handoff())
    assert model.next_step == "phase_6_continue" and model.concerns_or_unknowns == []


def test_prototype_success() -> None:
    ComponentSkillHandoff.model_validate(handoff(
        mode="prototype", parity_status="scaffold_skip", strict_load="not_run", next_step="phase_5_conversion",
        pytest_output=f"pytest {TEST} -v -s: 1 skipped (converted weights missing)"))
    # Conversion already done (its weights strict-load in a passing run): the prototype goes on to phase 6.
    ComponentSkillHandoff.model_validate(handoff(mode="prototype"))


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"next_step": "ask_user"}, "escape_hatch: next_step=ask_user needs an escape_hatch block with needs_user_input=yes"),
        ({"escape_hatch": hatch()}, "next_step: an escape_hatch with needs_user_input=yes needs next_step=ask_user"),
        ({"next_step": "ask_user", "parity_status": "debug_red", "pytest_output": "1 failed",
          "escape_hatch": hatch(state_snapshot={**hatch()["state_snapshot"], "evidence": "max_abs_diff=4e-4"})},
         "escape_hatch.state_snapshot.evidence: must link the PORT_STATUS.md escape-hatch row (E###)"),
        ({"parity_status": "debug_red", "pytest_output": "1 failed"}, "parity_status: parity-debug success needs parity_status=non_skip_pass"),
        ({"parity_status": "scaffold_skip"}, "parity_status: parity-debug success needs parity_status=non_skip_pass"),
        ({"mode": "prototype", "strict_load": "not_run"},
         "next_step: phase_6_continue is parity-debug success; a prototype continues with phase_5_conversion unless its "
         "converted weights already strict-load in a non_skip_pass"),
        ({"mode": "prototype", "prototype_key_dumps": "none"},
         "prototype_key_dumps: key dumps are the required artifact of a successful prototype"),
        ({"next_step": "phase_5_conversion"}, "next_step: phase_5_conversion is prototype success; in mode=parity-debug use phase_5_conversion_retry"),
        ({"mode": "prototype", "next_step": "phase_5_conversion", "parity_status": "debug_red", "pytest_output": "1 failed"},
         "parity_status: a prototype handoff to conversion may be scaffold_skip, blocked or non_skip_pass, not debug_red"),
        ({"mode": "prototype", "next_step": "phase_5_conversion", "prototype_key_dumps": "none"},
         "prototype_key_dumps: key dumps are the required artifact of a successful prototype"),
        ({"next_step": "phase_5_conversion_retry"}, "conversion_retry_request: next_step=phase_5_conversion_retry needs a conversion_retry_request"),
        ({"conversion_retry_request": retry()}, "next_step: a conversion_retry_request needs next_step=phase_5_conversion_retry"),
        ({"next_step": "blocked", "parity_status": "blocked"}, "blocker: next_step=blocked needs the exact blocker"),
        ({"strict_load": "pass_with_documented_exclusions"}, "strict_load: pass_with_documented_exclusions needs production_loader_strictness=non_strict_with_allowed_keys"),
        ({"production_loader_strictness": "non_strict_with_allowed_keys"}, "strict_load: a non-strict loader passes with documented exclusions: use pass_with_documented_exclusions and list the allowed keys"),
        ({"pytest_output": f"pytest {TEST} -v -s: 1 passed, 1 skipped"}, "parity_status: cannot be non_skip_pass: pytest_output shows 1 skipped"),
        ({"pytest_output": f"pytest {TEST} -v -s: 1 passed, 2 failed"}, "parity_status: cannot be non_skip_pass: pytest_output shows 2 failed"),
        ({"pytest_output": f"pytest {TEST} -v -s: 1 passed, 1 error"}, "parity_status: cannot be non_skip_pass: pytest_output shows 1 errors"),
        ({"pytest_output": f"pytest {TEST} -v -s: 0 passed"}, "pytest_output: a non_skip_pass must show at least one passed test"),
        ({"pytest_output": "looks good to me"}, "pytest_output: a non_skip_pass must show the command that ran the parity test"),
        ({"files_changed": ["scripts/checkpoint_conversion/stable_audio_to_diffusers.py"]},
         "files_changed[0]: scripts/checkpoint_conversion/stable_audio_to_diffusers.py is conversion-owned; return a conversion_retry_request instead"),
        ({"files_changed": ["converted_weights/stable_audio/vae/config.json"]},
         "files_changed[0]: converted_weights/stable_audio/vae/config.json is conversion-owned; return a conversion_retry_request instead"),
        ({"port_state_file": "PORT_STATUS.md"}, "port_state_file: 'PORT_STATUS.md' does not match the required form"),
        ({"parity_status": "green"}, "parity_status: must be one of"),
        ({"readme_updated": "y"}, "readme_updated: must be one of 'yes' or 'no' (got 'y')"),
        ({"blocker": "HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345 is not accepted"}, "blocker: contains what looks like a raw Hugging Face token"),
    ],
)
def test_handoff_rules(changes: dict[str, Any], expected: str) -> None:
    found = problems(ComponentSkillHandoff, handoff(**changes))
    assert any(p.startswith(expected) for p in found), found


def test_key_dumps_may_be_changed_and_ask_user_with_linked_hatch_is_valid() -> None:
    ComponentSkillHandoff.model_validate(handoff(
        files_changed=["converted_weights/stable_audio/_mapping/vae_official_keys.json"],
        parity_status="debug_red", pytest_output=f"pytest {TEST} -v -s: 1 failed", next_step="ask_user", escape_hatch=hatch()))


def test_blocked_handoff_and_retry_request() -> None:
    ComponentSkillHandoff.model_validate(handoff(
        parity_status="blocked", pytest_output=f"pytest {TEST} -v -s: 1 skipped", next_step="blocked",
        blocker="converted weights missing: converted_weights/stable_audio/vae"))
    model = ComponentSkillHandoff.model_validate(handoff(
        parity_status="debug_red", strict_load="blocked", pytest_output=f"pytest {TEST} -v -s: 1 failed",
        next_step="phase_5_conversion_retry", conversion_retry_request=retry()))
    assert isinstance(model.conversion_retry_request, ConversionRetryRequest)
    assert model.conversion_retry_request.failing_keys.startswith("decoder.block.0.conv.weight_g, ")


def test_a_bad_nested_hatch_names_its_fields() -> None:
    found = problems(ComponentSkillHandoff, handoff(next_step="ask_user", escape_hatch=hatch(options=[])))
    assert found == ["escape_hatch.options: must not be empty"]


def test_handoff_text_form_round_trip() -> None:
    model = ComponentSkillHandoff.model_validate(handoff(
        parity_status="debug_red", pytest_output=f"pytest {TEST} -v -s: 1 failed\nmax_abs_diff=4.1e-4",
        next_step="ask_user", escape_hatch=hatch(), concerns_or_unknowns=["padding side unverified"]))
    text = model.to_text()
    assert text.startswith("component: vae\nmode: parity-debug\nfiles_changed:\n  - fastvideo/models/vaes/oobleck.py\n")
    assert "\nconversion_retry_request: none\n" in text and "\nescape_hatch:\n  needs_user_input: yes\n" in text
    assert ComponentSkillHandoff.model_validate(parse_text(text)) == model


def test_handoff_fields_are_the_contract_fields() -> None:
    assert list(ComponentSkillHandoff.model_fields) == [
        "component", "mode", "files_changed", "official_files_used", "prototype_key_dumps", "port_state_file",
        "concerns_or_unknowns", "parity_test", "parity_status", "production_loader_strictness", "strict_load",
        "pytest_output", "blocker", "conversion_retry_request", "readme_updated", "next_step", "escape_hatch",
    ]


def test_unknown_handoff_field_is_rejected() -> None:
    assert "verified: unknown field (not part of the contract)" in problems(ComponentSkillHandoff, handoff(verified="yes"))


def test_yaml_handoff_with_bare_yes_no(tmp_path) -> None:
    import yaml

    from harness.contracts import load_document

    path = tmp_path / "handoff.yaml"
    text = yaml.safe_dump(handoff(escape_hatch=hatch(needs_user_input="no", blocked_until_answered="no")), sort_keys=False)
    path.write_text(text.replace("'no'", "no").replace("'yes'", "yes"))
    assert yaml.safe_load(path.read_text())["readme_updated"] is True  # YAML 1.1 booleans
    model = load_document(path, ComponentSkillHandoff, "component_skill_handoff")
    assert model.readme_updated == "yes" and model.escape_hatch.needs_user_input == "no"


def test_pytest_counts() -> None:
    assert pytest_counts("==== 3 passed, 1 skipped, 2 errors in 0.5s ====") == {"passed": 3, "skipped": 1, "errors": 2}


# ---- escape hatch ----------------------------------------------------------------------


def test_valid_hatch_and_its_text_form() -> None:
    model = EscapeHatch.model_validate(hatch())
    assert model.recommended_index() == 0
    text = model.to_text()
    assert text.startswith("escape_hatch:\n  needs_user_input: yes\n  decision_type: blocker\n")
    assert EscapeHatch.model_validate(validate_data(parse_text(text), EscapeHatch, "escape_hatch")) == model


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"options": ["a: x", "b: y", "c: z", "d: w", "Keep 1e-5: e"]}, "options: has 5 entries, at most 4 allowed"),
        ({"options": []}, "options: must not be empty"),
        ({"recommended_option": "Use fp64"}, "recommended_option: must be one of options"),
        ({"recommended_option": "Keep 1"}, "recommended_option: must be one of options"),
        ({"question": "Loosen the tolerance"}, "question: must be exactly one question ending with `?`"),
        ({"question": "Loosen the tolerance? Or drop the test?"}, "question: must be exactly one question ending with `?`"),
        ({"needs_user_input": "no"}, "blocked_until_answered: cannot be yes when needs_user_input is no"),
        ({"decision_type": "tolerance"}, "decision_type: must be one of"),
        ({"needs_user_input": "maybe"}, "needs_user_input: must be one of 'yes' or 'no'"),
        ({"state_snapshot": {"phase": "x", "files_changed": [], "command_or_test": "not_run"}}, "state_snapshot.evidence: required field is missing"),
        ({"safe_default": "run with token hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"}, "safe_default: contains what looks like a raw Hugging Face token"),
        ({"options": ["Keep 1e-5: ok", "Use key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv: fast"]}, "options[1]: contains what looks like a raw API key"),
    ],
)
def test_escape_hatch_rules(changes: dict[str, Any], expected: str) -> None:
    found = problems(EscapeHatch, hatch(**changes))
    assert any(p.startswith(expected) for p in found), found


def auth_hatch(**changes: Any) -> dict[str, Any]:
    return hatch(
        decision_type="auth",
        question="The stabilityai/stable-audio-open-1.0 repo is gated: will you export HF_TOKEN with read scope before the next run?",
        recommended_option="Export HF_TOKEN",
        options=["Export HF_TOKEN: the loader reads it and downloads the vae subfolder",
                 "Stop here: the port stays blocked on weights"],
        **changes,
    )


def test_auth_hatch_by_env_var_name_is_valid() -> None:
    assert EscapeHatch.model_validate(auth_hatch()).decision_type == "auth"
    wording = "Will you provide the HF_TOKEN env var with a read token scope before the next run?"
    assert EscapeHatch.model_validate({**auth_hatch(), "question": wording}).question == wording


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"question": "Can you paste your Hugging Face token here?"}, "question: must not ask for a token value"),
        ({"question": "Please send me the value of HF_TOKEN?"}, "question: must not ask for a token value"),
        ({"question": "Will you provide a read token for HF_TOKEN?"}, "question: must not ask for a token value"),
        ({"question": "Which access token should the loader use?", "options": ["Any: ok"], "recommended_option": "Any"},
         "question: an auth question names the env var to set"),
        ({"question": "Will you export MY_HF_TOKEN before the next run?"}, "question: names MY_HF_TOKEN"),
        ({"safe_default": "HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"}, "safe_default: contains what looks like a raw Hugging Face token"),
        ({"safe_default": "use HF_TOKEN: abcdef0123456789xyz"}, "safe_default: assigns a value to a secret-named variable"),
    ],
)
def test_auth_hatch_never_carries_a_token(changes: dict[str, Any], expected: str) -> None:
    data = auth_hatch()
    data.update(changes)
    found = problems(EscapeHatch, data)
    assert any(p.startswith(expected) for p in found), found


def test_validate_data_reports_paths_for_a_hatch() -> None:
    with pytest.raises(PacketError) as info:
        validate_data({"escape_hatch": hatch(options="only one: x")}, EscapeHatch, "escape_hatch")
    assert [str(p) for p in info.value.problems] == ["recommended_option: must be one of options (the option itself or its text before the consequence)"]


# ---- retry request and parity entry ---------------------------------------------------


def test_retry_request_rules() -> None:
    assert ConversionRetryRequest.model_validate(retry()).suspected_fix == "rename"
    assert any(p.startswith("suspected_fix: must be one of") for p in problems(ConversionRetryRequest, {**retry(), "suspected_fix": "patch it"}))
    assert "evidence: required field is missing" in problems(ConversionRetryRequest, {k: v for k, v in retry().items() if k != "evidence"})
    text = ConversionRetryRequest.model_validate(retry()).to_text()
    assert text.startswith("conversion_retry_request:\n  component: vae\n")


def parity(**changes: Any) -> dict[str, Any]:
    data = {"component": "vae", "test": TEST, "status": "scaffold_skip", "missing": "converted_weights",
            "coverage_scope": "production_loader", "official_definition_files": "src/diffusers/models/autoencoders/autoencoder_oobleck.py",
            "official_instantiation_files": ["src/diffusers/pipelines/stable_audio/pipeline_stable_audio.py"],
            "concerns_or_unknowns": "none"}
    data.update(changes)
    return data


def test_component_parity_rules() -> None:
    entry = ComponentParity.model_validate(parity())
    assert entry.official_definition_files == ["src/diffusers/models/autoencoders/autoencoder_oobleck.py"]
    assert "missing: must be none when status is non_skip_pass" in problems(ComponentParity, parity(status="non_skip_pass"))
    assert "missing: status blocked must name what is missing" in problems(ComponentParity, parity(status="blocked", missing="none"))
    assert any(p.startswith("coverage_scope: must be one of") for p in problems(ComponentParity, parity(coverage_scope="all")))


def test_models_are_strict_on_assignment() -> None:
    model = ComponentSkillHandoff.model_validate(handoff())
    with pytest.raises(ValidationError):
        model.parity_status = "debug_red"  # phase_6_continue would now lie about success
    copy.deepcopy(model)


def test_example_handoff_loads_from_markdown() -> None:
    from pathlib import Path

    from harness.contracts import load_document

    path = Path(__file__).resolve().parent.parent / "examples" / "handoff_oobleck_vae_ask_user.md"
    model = load_document(path, ComponentSkillHandoff, "component_skill_handoff")
    assert model.next_step == "ask_user" and isinstance(model.escape_hatch, EscapeHatch)
    assert "E001" in model.escape_hatch.state_snapshot.evidence
    assert model.to_text() in path.read_text()  # the file shows exactly what to_text() writes
