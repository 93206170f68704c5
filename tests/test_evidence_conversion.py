"""Which parity failures are conversion's to fix, and the suspected fix for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.verify.evidence_conversion import classify_conversion_failure
from harness.sandbox.pytest_runner import ParityRun
from tests.test_evidence_fixture_repo import make_packet


def _run(first_failure: str, status: str = "debug_red", log_path: str = "/nonexistent.log") -> ParityRun:
    return ParityRun(status=status, parity_test="tests/local_tests/vaes/test_demo_vae_parity.py",
                     command="python -m pytest tests/local_tests/vaes/test_demo_vae_parity.py -v -s",
                     exit_code=1, timed_out=False, duration_s=1.0, failed=1, first_failure=first_failure,
                     log_path=log_path, started_at="2026-01-01T00:00:00+00:00")


SPLIT = ("RuntimeError: Error(s) in loading state_dict for DemoVAE:\n\tsize mismatch for attn.to_q.weight: copying a "
         "param with shape torch.Size([192, 64]) from checkpoint, the shape in current model is torch.Size([64, 64]).")
CONFIG = ("RuntimeError: Error(s) in loading state_dict for DemoVAE:\n\tsize mismatch for conv_in.weight: copying a "
          "param with shape torch.Size([128, 4, 3, 3]) from checkpoint, the shape in current model is torch.Size([128, 16, 3, 3]).")
FUSE = ('Error(s) in loading state_dict for Attn:\n\tMissing key(s) in state_dict: "qkv.weight". \n\t'
        'Unexpected key(s) in state_dict: "to_q.weight", "to_k.weight", "to_v.weight". ')
SKIP = 'Error(s) in loading state_dict for VAE:\n\tUnexpected key(s) in state_dict: "encoder.ema.num_updates". '


@pytest.mark.parametrize(
    ("text", "fix", "key"),
    [
        (SPLIT, "split", "attn.to_q.weight"),
        (CONFIG, "config", "conv_in.weight"),
        (FUSE, "fuse", "to_k.weight"),
        (SKIP, "skip", "encoder.ema.num_updates"),
        ("KeyError: 'decoder.mid_block.attentions.0.to_q.weight'", "rename", "decoder.mid_block.attentions.0.to_q.weight"),
    ],
)
def test_mapping_failures_become_retry_requests(text: str, fix: str, key: str) -> None:
    retry = classify_conversion_failure(_run(text), make_packet())
    assert retry is not None
    assert retry.suspected_fix == fix
    assert key in retry.failing_keys
    assert retry.component == "vae" and retry.parity_test.endswith("test_demo_vae_parity.py")
    assert retry.evidence and len(retry.evidence) < 800


def test_shapes_are_reported_model_vs_checkpoint() -> None:
    retry = classify_conversion_failure(_run(SPLIT), make_packet())
    assert retry.expected_actual_shapes == "attn.to_q.weight: model [64, 64] vs checkpoint [192, 64]"
    assert retry.source_prefix_or_path == "attn.to_q"  # the module holding the failing tensor


def test_numeric_mismatch_is_not_conversion() -> None:
    text = "AssertionError: Tensor-likes are not close!\nMismatched elements: 3 / 64 (4.7%)"
    assert classify_conversion_failure(_run(text), make_packet()) is None
    assert classify_conversion_failure(_run("KeyError: 'latents'"), make_packet()) is None  # not a weight name


def test_pass_is_never_a_retry() -> None:
    assert classify_conversion_failure(_run(SKIP, status="non_skip_pass"), make_packet()) is None
    assert classify_conversion_failure(None, make_packet()) is None


def test_keys_found_in_the_log_when_the_summary_is_short(tmp_path: Path) -> None:
    log = tmp_path / "parity.log"
    log.write_text("lots of output\n" + FUSE + "\nmore output\n")
    retry = classify_conversion_failure(_run("RuntimeError: see log", log_path=str(log)), make_packet())
    assert retry is not None and "qkv.weight" in retry.failing_keys
