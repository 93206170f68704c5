"""The escape-hatch policy table: decisions go to a person, recoverable failures go back to the agent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.contracts.escape_hatch import EscapeHatch
from harness.graph.hatch_policy import review_escape_hatch

RED = SimpleNamespace(status="debug_red")
SKIP = SimpleNamespace(status="scaffold_skip")


def hatch(decision: str, question: str, evidence: str, options: list[str] | None = None, **extra) -> EscapeHatch:
    options = options or ["Option A: the recommended path", "Option B: the alternative"]
    return EscapeHatch(
        needs_user_input="yes",
        decision_type=decision,
        question=question,
        recommended_option=options[0].split(":")[0],
        options=options,
        safe_default="none",
        blocked_until_answered="yes",
        state_snapshot={
            "phase": "parity-debug",
            "files_changed": ["fastvideo/models/vaes/demo.py"],
            "command_or_test": extra.get("command", "pytest tests/local_tests/vaes/test_demo_vae_parity.py -v -s"),
            "evidence": evidence,
        },
    )


ALLOWED = [
    ("scope", "Drop the audio decode path from this port?", "E001: the official audio decoder needs a private op"),
    ("dependency", "Install the private package flash_vae==0.3 that the official encode path needs?",
     "No module named 'flash_vae' when importing the official reference"),
    ("auth", "Set HF_TOKEN with read scope for the gated official repo?", "401 from the hub for the gated repo"),
    ("cost", "Download the 40 GB official checkpoint for parity?", "weights absent locally; size 40 GB"),
    ("destructive", "Overwrite the existing converted_weights/demo directory?", "directory exists with older files"),
    ("ambiguity", "Which official definition is the source of truth: the repo's vae.py or the hub's vae_v2.py?",
     "two incompatible official definitions: latent channels 16 vs 32"),
]


@pytest.mark.parametrize(("decision", "question", "evidence"), ALLOWED)
def test_allowed_decisions_are_accepted(decision: str, question: str, evidence: str) -> None:
    assert review_escape_hatch(hatch(decision, question, evidence), last_parity=RED) is None


def test_tolerance_question_after_a_red_run_is_accepted() -> None:
    h = hatch("blocker", "Accept loosening the decode tolerance from atol=1e-5 to 1e-4?",
              "Mismatched elements: 3 / 1024; max_abs_diff=6e-5 after bf16 GroupNorm; E002")
    assert review_escape_hatch(h, last_parity=RED) is None


def test_tolerance_question_without_a_red_run_is_refused() -> None:
    h = hatch("blocker", "Accept loosening the decode tolerance to 1e-2?", "parity not run yet")
    reason = review_escape_hatch(h, last_parity=SKIP)
    assert reason and "tolerance_needs_red_run" in reason
    assert "tolerance_needs_red_run" in review_escape_hatch(h, last_parity=None)


def test_shipping_without_parity_is_a_blocker_decision() -> None:
    h = hatch("blocker", "Ship this port without non-skip parity and record the blocker?",
              "official reference needs an unsupported CUDA-only op; E003")
    assert review_escape_hatch(h, last_parity=SKIP) is None


REFUSED = [
    ("blocker", "How should I proceed with the VAE port?",
     "AssertionError: Tensor-likes are not close! Mismatched elements: 10 / 64", "failing_parity"),
    ("blocker", "What should I do now that the port is stuck?", "ModuleNotFoundError: No module named 'fastvideo.models.vaes.demo'",
     "missing_import"),
    ("blocker", "Can you help with the loader?", "RuntimeError: Error(s) in loading state_dict: Missing key(s) in state_dict: \"enc.w\"",
     "conversion_mapping"),
    ("ambiguity", "What is wrong with the decoder here?", "AssertionError: Mismatched elements: 3 / 64", "failing_parity"),
    ("scope", "Is it fine that the test is skipped?", "SKIPPED [1] test_demo.py:12: DEMO_WEIGHTS not set", "skipped_test"),
    ("dependency", "Should fastvideo be reinstalled for this?", "ModuleNotFoundError: No module named 'fastvideo.models.vaes.demo'",
     "missing_import"),
    ("cost", "Should I keep going after this error?", "FileNotFoundError: [Errno 2] No such file or directory: 'ref.pt'",
     "missing_path"),
    ("blocker", "Is this lint failure acceptable?", "ruff: F401 unused import", "lint"),
    ("blocker", "Please decide what to do next?", "see above", "blocker_needs_a_decision"),
]


@pytest.mark.parametrize(("decision", "question", "evidence", "rule"), REFUSED)
def test_recoverable_failures_are_refused_with_the_rule(decision: str, question: str, evidence: str, rule: str) -> None:
    reason = review_escape_hatch(hatch(decision, question, evidence), last_parity=RED)
    assert reason is not None, "a normal recoverable failure must go back to the agent"
    assert f"rule: {rule}" in reason


def test_more_than_four_options_refused() -> None:
    raw = hatch("scope", "Drop the audio decode path from this port?", "E001").model_dump()
    raw["options"] = [f"Option {i}: consequence {i}" for i in range(5)]
    raw["recommended_option"] = "Option 0"
    reason = review_escape_hatch(raw)
    assert reason and "5 options" in reason


def test_recommendation_not_among_options_refused() -> None:
    raw = hatch("scope", "Drop the audio decode path from this port?", "E001").model_dump()
    raw["recommended_option"] = "Something else entirely"
    assert "recommended_option is not among the options" in review_escape_hatch(raw)


def test_token_value_refused() -> None:
    raw = hatch("auth", "Set HF_TOKEN for the gated official repo?", "401 from hub").model_dump()
    raw["state_snapshot"]["evidence"] = "tried hf_abcdefghijklmnopqrstuvwxyz123456 and got 401"
    reason = review_escape_hatch(raw)
    assert reason and "no_token_values" in reason and "hf_abcdef" not in reason


def test_auth_without_env_var_name_refused() -> None:
    raw = hatch("scope", "Can you give me access to the gated repo?", "401 from hub").model_dump()
    raw["decision_type"] = "auth"
    assert "auth_by_env_var" in review_escape_hatch(raw)


def test_unknown_decision_type_and_empty_evidence_refused() -> None:
    raw = hatch("scope", "Drop the audio decode path from this port?", "E001").model_dump()
    assert "decision_type" in review_escape_hatch({**raw, "decision_type": "vibes"})
    raw["state_snapshot"]["evidence"] = "none"
    assert "evidence is empty" in review_escape_hatch(raw)


def test_third_party_dependency_import_is_a_dependency_decision() -> None:
    h = hatch("dependency", "Install the optional package einops_exts pinned to 0.1?",
              "ModuleNotFoundError: No module named 'einops_exts' in the official reference")
    assert review_escape_hatch(h) is None
