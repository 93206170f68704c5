"""What an agent sees of a red parity run: the test's own per-tensor lines, metrics keyed by
tensor, every failing test's first assertion, and a log it can read."""

from __future__ import annotations

import time

import pytest

from harness.agents.models.base import ToolCall
from harness.agents.tools import ToolContext, execute, parity_report, tools_for_role
from harness.sandbox.executors import make_executor
from harness.sandbox.pytest_runner import parse_metrics, run_parity_test
from harness.sandbox.workspace import Workspace

pytest_plugins = ["tests.sandbox_fixtures"]

TEST = "tests/local_tests/vaes/test_two_tensors.py"
# Two tensors, the first clean and the second off; a second failing test with its own assertion.
RED = '''
def _drift(name, got, ref):
    diff = max(abs(a - b) for a, b in zip(got, ref))
    print(f"{name}: max_abs={diff:.3e} mean_abs={diff / 2:.3e}")
    return diff

def test_vae_parity():
    worst = max(_drift("decode_latents", [1.0, 2.0], [1.0, 2.0]),
                _drift("encode_latents", [1.0, 2.0], [1.0, 2.804]))
    print(f"max_abs={worst:.3e}")
    assert worst < 1e-4, f"encode_latents: max_abs {worst} above atol"

def test_posterior_shape():
    print("posterior_mean: shape (1, 4, 3) != (1, 4, 2)")
    assert (1, 4, 3) == (1, 4, 2), "posterior_mean shape differs"
'''


@pytest.fixture
def setup(user_repo, harness_root, tmp_path):
    ws = Workspace.create(user_repo, f"pr-{time.monotonic_ns() % 10**9}", root=harness_root)
    ex = make_executor("local", ws)
    (ws.path / TEST).parent.mkdir(parents=True, exist_ok=True)
    (ws.path / TEST).write_text(RED)
    logs = tmp_path / "logs"
    ctx = ToolContext(ws, ex, "debugger", logs_dir=logs,
                      run_parity=lambda: run_parity_test(ex, TEST, logs, timeout_s=120))
    yield ctx
    ex.close()


def call(ctx, name, args=None):
    return execute(ctx, tools_for_role("debugger"), ToolCall(id="c1", name=name, args=args or {}))


def test_red_parity_result_shows_the_failing_tensors_own_line(setup):
    out = call(setup, "run_parity_test")
    text = out.content
    assert text.startswith("debug_red: 2 failed")
    # the test's own per-tensor lines, with pytest's test-id prefix removed
    assert "\n  decode_latents: max_abs=0.000e+00 mean_abs=0.000e+00" in text
    assert "\n  encode_latents: max_abs=8.040e-01 mean_abs=4.020e-01" in text
    assert "\n  posterior_mean: shape (1, 4, 3) != (1, 4, 2)" in text
    # metrics keyed by tensor: the clean decode path is not hidden behind the merged value
    assert "decode_latents.max_abs=0," in text and "encode_latents.max_abs=0.804" in text
    # every failing test's first assertion, not only the first
    assert "failure 1 of 2:" in text and "failure 2 of 2:" in text
    assert "above atol" in text and "posterior_mean shape differs" in text
    # and the log, by a name the agent can hand back to read_parity_log
    log_name = text.split("log: ")[1].split()[0]
    log = call(setup, "read_parity_log", {"log": log_name, "pattern": "max_abs"})
    assert not log.is_error and "encode_latents: max_abs=8.040e-01" in log.content


def test_merged_metrics_cheat_is_gone():
    # The old parser kept one `max_abs` (the last printed) for every tensor; a reader could not
    # tell which tensor drifted. Keyed metrics keep each tensor's value beside the overall one.
    out = ("t.py::test_vae decode_latents: max_abs=0.000e+00\n"
           "encode_latents: max_abs=8.0e-01\nmax_abs=8.0e-01\n")
    assert parse_metrics(out) == {"decode_latents.max_abs": 0.0, "encode_latents.max_abs": 0.8, "max_abs": 0.8}


def test_report_is_bounded():
    from harness.sandbox.pytest_runner import ParityRun

    run = ParityRun(status="debug_red", parity_test=TEST, command="pytest", exit_code=1, timed_out=False,
                    duration_s=1.0, failed=20, log_path="/x/parity-t.log", started_at="now",
                    comparison_lines=[f"t{i}: max_abs=1" for i in range(80)],
                    failures=[f"test_{i}: AssertionError " + "x" * 5000 for i in range(20)])
    text = parity_report(run)
    assert "[40 more lines in the log]" in text and "[12 more failures in the log]" in text
    assert len(text) < 16_000
