"""A mined suite on a real local Ray cluster (declared fake GPUs): a mined task's starting state
travels to the worker and its oracle passes there as in the local pool; with --gpus-per-task a
task that needs CUDA gets its GPU ids from Ray, and on a node without an NVIDIA device it is
reported as not runnable here, never as an agent's or the infrastructure's failure."""

from __future__ import annotations

import sys

import pytest
import ray
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.environment import nvidia_present
from harness.evals.runner import EvalConfig, read_results, run_eval
from tests.sandbox_fixtures import bwrap_ok  # noqa: F401  (fixture)
from tests.suite_repo import make_history_repo

pytestmark = [pytest.mark.slow, pytest.mark.ray]
RAY_ASKS = {"backend": "ray", "cpus_per_task": 0.5, "memory_per_task_gb": 0.25}


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    history = make_history_repo(tmp_path_factory.mktemp("history"))
    out = tmp_path_factory.mktemp("suites") / "tinyvid"
    result = CliRunner().invoke(app, ["eval", "build-suite", "--repo", str(history.repo), "--out", str(out),
                                      "--official", str(history.official), "--no-probe", "--no-validate",
                                      "--no-twins"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.bwrap
def test_a_mined_task_runs_on_a_ray_worker_as_in_the_local_pool(ray_cluster, suite, bwrap_ok, tmp_path):
    out = tmp_path / "results"
    run_eval(EvalConfig(suite=str(suite), models=["oracle"], out=out, tasks_glob="port-tinyvid-t5", sandbox="bwrap",
                        python=sys.executable, max_debug_rounds=0, **RAY_ASKS))
    (row,) = read_results(out)
    assert row["outcome"] == "pass", row["reasons"]
    assert row["placement"]["backend"] == "ray" and row["environment"]["python"] == sys.executable
    assert "non_skip_pass" in row["checks"]["grader_parity"]  # the grader's run, or the run's own on this tree


@pytest.mark.docker
@pytest.mark.skipif(nvidia_present(), reason="this machine has an NVIDIA device: the task would run")
def test_a_task_needing_cuda_gets_ray_gpus_and_is_not_runnable_on_a_node_without_nvidia(ray_cluster, suite, tmp_path):
    out = tmp_path / "results"
    run_eval(EvalConfig(suite=str(suite), models=["oracle"], out=out, tasks_glob="port-tinyvid", attempts=2,
                        sandbox="docker", image="fastvideo-harness-sandbox:test", gpus_per_task=1, **RAY_ASKS))
    rows = read_results(out)
    assert len(rows) == 2
    for row in rows:
        assert row["outcome"] == "not_runnable" and row["error_class"] == "not_runnable"
        assert row["reasons"] == ["not runnable here: CUDA (this machine has no NVIDIA device, though GPUs were given)"]
        assert len(row["placement"]["gpu_ids"]) == 1 and row["environment"]["gpus"] == row["placement"]["gpus"]
        assert row["retries"] == []
