"""Backend settings are refused before anything runs or is written, and the results file
survives a driver killed mid-write (no Ray cluster needed)."""

import json
import socket

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.runner import EvalConfig, run_eval
from harness.evals.tasks import TaskError


@pytest.mark.parametrize("change,message", [
    ({"backend": "slurm"}, "--backend must be local or ray"),
    ({"ray_address": "10.0.0.1:6379"}, "--ray-address needs --backend ray"),
    ({"backend": "ray", "max_gpu_tasks": 2}, "--max-gpu-tasks is for the local backend"),
    ({"backend": "ray", "cpus_per_task": 0}, "--cpus-per-task must be positive"),
    ({"backend": "ray", "worker_retries": -1}, "--worker-retries must be 0 or more"),
    ({"max_total_usd": 0}, "--max-total-usd must be positive"),
    ({"backend": "ray", "gpus_per_task": 1, "sandbox": "bwrap"}, "needs --sandbox docker"),
])
def test_bad_backend_settings_are_refused(tmp_path, change, message):
    with pytest.raises(TaskError, match=message):
        run_eval(EvalConfig(**{"suite": "core", "models": ["null"], "out": tmp_path / "out", **change}))
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_exits_2_at_once(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--model", "null", "--sandbox", "local", "--backend", "ray",
                                      "--ray-address", f"127.0.0.1:{port}", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in result.output
    assert not out.exists()


def test_a_row_torn_by_a_killed_driver_is_dropped_and_its_attempt_runs_again(tmp_path):
    from harness.evals.runner import EvalEvents, ResultSink, read_results

    whole = json.dumps({"task": "t", "model": "m", "attempt": 0, "outcome": "pass", "cost_usd": 0.5})
    (tmp_path / "results.jsonl").write_text(whole + "\n" + '{"task": "t", "model": "m", "attem')
    with pytest.raises(TaskError, match="not a JSON row"):  # what a resume would meet without the repair
        read_results(tmp_path)
    sink = ResultSink(tmp_path, max_total_usd=0.5, events=EvalEvents())
    assert (tmp_path / "results.jsonl").read_text() == whole + "\n"
    assert [r["attempt"] for r in sink.rows] == [0] and sink.spend == 0.5
    assert not sink.may_start()  # the earlier run's spend counts toward the cap
