"""Evals on a real local Ray cluster with declared fake GPUs: the same rows as the local pool,
GPU ids never shared, dead workers retried or recorded, drivers that die or are interrupted
resume, and results written only by the driver under an --out the workers cannot see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.runner import EvalConfig, EvalEvents, read_results, run_eval
from harness.evals.tasks import TaskError

pytestmark = [pytest.mark.slow, pytest.mark.ray]

# The quickest task of the core suite for both baselines (the whole suite runs through the
# local pool in test_evals_baselines; CI time is short).
SUBSET = "ask-vae-motion-head"
SUBSET_TASKS = {"ask-vae-motion-head"}
QUICK_TASK = "ask-vae-motion-head"
NUM_GPUS = 4
TEST_IMAGE = "fastvideo-harness-sandbox:test"
# Small asks so the 2-CPU test cluster can hold 4 attempts: GPUs, not CPUs, must be the limit.
RAY_ASKS = {"backend": "ray", "cpus_per_task": 0.5, "memory_per_task_gb": 0.25}


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray instance: 2 CPUs and 4 declared (fake) GPUs; its address for other drivers."""
    ray.init(num_cpus=2, num_gpus=NUM_GPUS, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _key(row: dict) -> tuple:
    return (row["task"], row["model"], row["attempt"])


def _sleepy_script(path: Path, seconds: int) -> Path:
    """A scripted agent whose implementer runs `sleep` in the sandbox: a long attempt to kill."""
    done = {"text": "", "tool_calls": [{"name": "finish", "args": {"summary": "done"}}]}
    script = {"planner": [done],
              "implementer": [{"text": "wait", "tool_calls": [{"name": "run", "args": {"command": f"sleep {seconds}"}}]},
                              done],
              "debugger": [done]}
    path.write_text(yaml.safe_dump(script))
    return path


def _running_workers(scratch: Path) -> list[dict]:
    """Workers whose attempt has started its run (the run directory exists)."""
    found = []
    for info in scratch.glob("harness-attempt-*/worker.json"):
        if any(info.parent.glob("attempts/*/*/*/try*/home/runs/*")):
            found.append({**json.loads(info.read_text()), "file": str(info)})
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(900)
def test_oracle_and_null_score_through_ray_as_in_the_local_pool(ray_cluster, tmp_path):
    common = {"suite": "core", "models": ["oracle", "null"], "tasks_glob": SUBSET, "sandbox": "local",
              "max_debug_rounds": 0, "workers": 2}
    run_eval(EvalConfig(out=tmp_path / "local", **common))
    run_eval(EvalConfig(out=tmp_path / "ray", **common, **RAY_ASKS))
    local = {_key(r): r for r in read_results(tmp_path / "local")}
    on_ray = {_key(r): r for r in read_results(tmp_path / "ray")}
    assert set(on_ray) == set(local) and {k[0] for k in on_ray} == SUBSET_TASKS
    for key, row in on_ray.items():
        same = ("kind", "outcome", "error_class", "turns", "status")
        assert {f: row[f] for f in same} == {f: local[key][f] for f in same}, key
        assert row["outcome"] == ("pass" if key[1] == "oracle" else "fail"), (key, row["reasons"])
        assert row["placement"]["backend"] == "ray" and local[key]["placement"]["backend"] == "local"
        # The attempt came home in the local layout: trajectory, outcome, grade under --out.
        assert Path(row["attempt_dir"]).is_relative_to(tmp_path / "ray")
        assert Path(row["run_dir"], "trajectory.jsonl").is_file()
        assert Path(row["attempt_dir"], "try1", "grade.json").is_file()
    for row in on_ray.values():  # the worker's scratch path is kept only as where it ran
        where = row["placement"].pop("worker_dir")
        assert "harness-attempt-" in where and "harness-attempt-" not in json.dumps(row)

    # Re-grading works from the files that came back (the clone is made from the moved repo).
    result = CliRunner().invoke(app, ["eval", "score", str(tmp_path / "ray")])
    assert result.exit_code == 0 and "re-graded 2 attempts; 0 changed outcome" in result.output, result.output
    backend = json.loads((tmp_path / "ray" / "provenance.json").read_text())["backend"]
    (node,) = backend["nodes"]
    assert backend["name"] == "ray" and node["gpus"] == NUM_GPUS and node["cpus"] == 2
    assert node["workers"]["packages"]["ray"] == ray.__version__ and node["workers"]["packages"]["pydantic"]


def _overlaps(rows: list[dict]) -> tuple[int, list[tuple]]:
    """Most attempts holding GPUs at one time, and pairs that ran at once with a shared GPU id."""
    spans = [(r["placement"]["started_at"], r["placement"]["ended_at"], set(r["placement"]["gpu_ids"]), _key(r))
             for r in rows]
    most = max(sum(1 for s, e, _, _ in spans if s <= t < e) for t, _, _, _ in spans)
    clashes = [(a[3], b[3]) for i, a in enumerate(spans) for b in spans[i + 1:]
               if a[0] < b[1] and b[0] < a[1] and a[2] & b[2]]
    return most, clashes


class _RunningWatch(EvalEvents):
    def __init__(self) -> None:
        self.running: set = set()
        self.seen: set = set()
        self.most = 0

    def attempt_started(self, job) -> None:
        self.running.add(job.key)
        self.seen.add(job.key)
        self.most = max(self.most, len(self.running))

    def attempt_finished(self, row) -> None:
        self.running.discard(_key(row))


def test_overlap_check_sees_a_shared_gpu():
    # The check below must be able to fail: two attempts at once on GPU 1.
    rows = [{"task": "t", "model": "m", "attempt": n, "placement": {"started_at": s, "ended_at": e, "gpu_ids": ids}}
            for n, (s, e, ids) in enumerate([(0, 10, [0, 1]), (5, 15, [1, 2]), (20, 30, [0, 1])])]
    assert _overlaps(rows) == (2, [(("t", "m", 0), ("t", "m", 1))])


@pytest.mark.docker
def test_gpu_attempts_never_share_a_device_and_never_exceed_the_cluster(ray_cluster, tmp_path):
    # Four attempts, 2 GPUs each, on 4 GPUs: at most 2 at once though CPUs would allow 4. The
    # GPUs are declared, not real, so Docker cannot hand them over and each attempt ends as an
    # infrastructure error; what is checked is where Ray put it and which devices its sandbox got.
    out = tmp_path / "out"
    watch = _RunningWatch()
    run_eval(EvalConfig(suite="core", models=["null"], out=out, tasks_glob=QUICK_TASK, attempts=4, workers=4,
                        sandbox="docker", image=TEST_IMAGE, gpus_per_task=2,
                        max_debug_rounds=0, **RAY_ASKS), events=watch)
    # All 4 were handed to Ray at once; progress calls running only those Ray started.
    assert len(watch.seen) == 4 and watch.most <= NUM_GPUS // 2
    rows = read_results(out)
    assert len(rows) == 4
    for row in rows:
        ids = row["placement"]["gpu_ids"]
        assert len(ids) == 2 and set(ids) <= set(range(NUM_GPUS))
        assert row["placement"]["gpus"] == "device=" + ",".join(map(str, ids))  # what the sandbox was given
        for run_json in Path(row["attempt_dir"]).glob("try*/home/runs/*/run.json"):
            assert json.loads(run_json.read_text())["config"]["gpus"] == row["placement"]["gpus"]
    most, clashes = _overlaps(rows)
    assert clashes == [] and most <= NUM_GPUS // 2


@pytest.mark.docker
def test_a_node_that_cannot_run_the_sandbox_is_refused_before_any_attempt(ray_cluster, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TaskError, match=r"node .*harness-eval-test/no-such-image:never"):
        run_eval(EvalConfig(suite="core", models=["null"], out=out, tasks_glob=QUICK_TASK, sandbox="docker",
                            image="harness-eval-test/no-such-image:never", **RAY_ASKS))
    assert not out.exists()


def test_a_killed_worker_is_retried_then_recorded_and_the_eval_completes(ray_cluster, tmp_path):
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    model = f"scripted:{_sleepy_script(tmp_path / 'sleepy.yaml', 4)}"
    plan = {0: 2, 1: 1}  # attempt 0: kill both runs (-> infra_error); attempt 1: kill the first (-> retried)
    killed: list[dict] = []
    stop = threading.Event()

    def killer():
        handled = set()
        while not stop.is_set():
            for worker in _running_workers(scratch):
                if worker["file"] in handled:
                    continue
                handled.add(worker["file"])
                if plan.get(worker["attempt"], 0) > 0:
                    plan[worker["attempt"]] -= 1
                    os.kill(worker["pid"], signal.SIGKILL)
                    killed.append(worker)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        run_eval(EvalConfig(suite="core", models=[model], out=out, tasks_glob=QUICK_TASK, attempts=2, workers=1,
                            sandbox="local", max_debug_rounds=0, worker_retries=1, worker_dir=str(scratch),
                            **RAY_ASKS))
    finally:
        stop.set()
        thread.join()
    assert [w["attempt"] for w in killed] == [0, 0, 1]
    rows = {r["attempt"]: r for r in read_results(out)}
    assert sorted(rows) == [0, 1]  # no gap
    gave_up = rows[0]
    assert gave_up["outcome"] == "error" and gave_up["error_class"] == "infra_error"
    assert "died mid-attempt" in gave_up["reasons"][0] and "gave up after 2 runs" in gave_up["reasons"][-1]
    assert len(gave_up["retries"]) == 1 and "died mid-attempt" in gave_up["retries"][0]["reasons"][0]
    retried = rows[1]
    assert retried["error_class"] != "infra_error" and retried["outcome"] == "fail"  # the agent's own result
    assert [r["error_class"] for r in retried["retries"]] == ["infra_error"]
    assert Path(retried["run_dir"], "trajectory.jsonl").is_file()
    assert not any(_alive(w["pid"]) for w in killed)
    # Each later start on the node removed the scratch of the run killed before it.
    assert list(scratch.iterdir()) == []

    # A rerun into the same --out runs the attempt that gave up again and replaces its row;
    # the agent's own result (attempt 1) stands.
    run_eval(EvalConfig(suite="core", models=[model], out=out, tasks_glob=QUICK_TASK, attempts=2, workers=1,
                        sandbox="local", max_debug_rounds=0, worker_retries=1, worker_dir=str(scratch), **RAY_ASKS))
    rows = read_results(out)
    assert sorted(r["attempt"] for r in rows) == [0, 1]
    again = next(r for r in rows if r["attempt"] == 0)
    assert again["error_class"] != "infra_error" and again["outcome"] == "fail"
    assert [e["error_class"] for e in again["earlier_runs"]] == ["infra_error"]
    assert next(r for r in rows if r["attempt"] == 1)["placement"] == retried["placement"]


def _driver(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "eval", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_a_killed_driver_resumes_without_rerunning_finished_attempts(ray_cluster, tmp_path):
    out = tmp_path / "out"
    args = ["--suite", "core", "--tasks", QUICK_TASK, "--model", "oracle", "--attempts", "3", "--sandbox", "local",
            "--max-debug-rounds", "0", "--backend", "ray", "--ray-address", ray_cluster, "--cpus-per-task", "0.5",
            "--memory-per-task", "0.25", "--out", str(out)]
    proc = _driver(args)
    try:
        _wait_for(lambda: read_results(out) if (out / "results.jsonl").is_file() else [], 180, "a first row")
    finally:
        proc.kill()
        proc.wait()
    before = {_key(r): r["placement"]["started_at"] for r in read_results(out)}
    assert 1 <= len(before) < 3, "the driver must be killed mid-eval"
    seen: list[dict] = []
    run_eval(EvalConfig(suite="core", models=["oracle"], out=out, tasks_glob=QUICK_TASK, attempts=3,
                        sandbox="local", max_debug_rounds=0, ray_address=ray_cluster, **RAY_ASKS), on_row=seen.append)
    assert not {_key(r) for r in seen} & set(before)  # finished attempts were not run again
    rows = read_results(out)
    assert sorted(r["attempt"] for r in rows) == [0, 1, 2]
    assert all(r["outcome"] == "pass" for r in rows)
    assert {_key(r): r["placement"]["started_at"] for r in rows if _key(r) in before} == before


@pytest.mark.parametrize("backend", ["ray", "local"])
def test_ctrl_c_stops_running_attempts_and_leaves_whole_rows(ray_cluster, tmp_path, backend):
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    model = f"scripted:{_sleepy_script(tmp_path / 'sleepy.yaml', SANDBOX_SLEEP)}"
    on_ray = ["--backend", "ray", "--ray-address", ray_cluster, "--cpus-per-task", "0.5", "--memory-per-task", "0.25",
              "--worker-dir", str(scratch)] if backend == "ray" else []
    earlier = set(_sandbox_sleeps())  # another test's, never this driver's
    proc = _driver(["--suite", "core", "--tasks", QUICK_TASK, "--model", model, "--attempts", "2", "--workers", "2",
                    "--sandbox", "local", "--max-debug-rounds", "0", "--out", str(out), *on_ray])
    try:
        _wait_for(lambda: set(_sandbox_sleeps()) - earlier, 180, "the attempts' sandbox commands")
        workers = _running_workers(scratch)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "interrupted" in output and "run the same command again to resume" in output
    assert read_results(out) == []  # nothing finished: no row, no torn line
    _wait_for(lambda: not any(_alive(w["pid"]) for w in workers), 30, "the cancelled workers to end")
    # The sandbox commands were stopped, not left running.
    _wait_for(lambda: not set(_sandbox_sleeps()) - earlier, 30, "the sandbox commands to end")


SANDBOX_SLEEP = 67  # a duration no other test sleeps, to find the sandbox's process


def _sandbox_sleeps() -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", str(SANDBOX_SLEEP).encode()] and _alive(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return found


@pytest.mark.bwrap
def test_results_live_under_an_out_that_workers_cannot_see(ray_cluster, tmp_path):
    # The driver runs in its own mount namespace with a private tmpfs at `hidden`; the Ray
    # workers (started by the cluster, outside it) see only the empty directory beneath. Had a
    # worker written to the driver's --out, it would land in that visible directory.
    hidden, copy = tmp_path / "hidden", tmp_path / "copy"
    hidden.mkdir()
    out = hidden / "out"
    harness = [sys.executable, "-m", "harness", "eval", "--suite", "core", "--tasks", QUICK_TASK, "--model",
               "oracle", "--sandbox", "local", "--max-debug-rounds", "0", "--backend", "ray", "--ray-address",
               ray_cluster, "--cpus-per-task", "0.5", "--memory-per-task", "0.25", "--no-progress", "--out", str(out)]
    script = " ".join(map(_quote, harness)) + f" && cp -a {_quote(str(out))} {_quote(str(copy))}"
    proc = subprocess.run(["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(hidden), "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list(hidden.iterdir()) == []  # nothing reached the path from outside the driver
    (row,) = read_results(copy)
    assert row["outcome"] == "pass" and row["placement"]["backend"] == "ray"
    moved = Path(str(row["run_dir"]).replace(str(out), str(copy)))
    assert (moved / "trajectory.jsonl").is_file()
    assert not Path(row["placement"]["worker_dir"]).is_relative_to(hidden)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
