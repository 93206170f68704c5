"""One dead eval worker costs one attempt, not the eval: a real `harness eval` with two local
workers, one worker process killed mid-attempt. The other attempts finish, the eval exits 0,
the killed attempt is an `infra_error` row, and a rerun into the same --out runs it again and
replaces its row (the oracle then scores 100 %), never re-running a finished attempt. A dead
driver leaves nothing running: its workers stop mid-attempt, and the server they were forked
from ends with them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.evals.runner import EvalEvents, ResultSink, done_keys, read_results
from tests.fakes import openai_server
from tests.fakes.server import FakeServer, Reply

pytestmark = pytest.mark.slow

QUICK_TASK = "ask-vae-motion-head"


def _eval(out: Path, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "eval", "--suite", "core", "--tasks", QUICK_TASK,
                             "--model", "oracle", "--attempts", "3", "--workers", "2", "--sandbox", "local",
                             "--max-debug-rounds", "0", "--no-progress", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _worker_of(out: Path, attempt: int) -> dict | None:
    """The worker running `attempt`, once its run has started (its run directory exists)."""
    for info in out.glob(f"attempts/*/{QUICK_TASK}/{attempt}/worker.json"):
        if any(info.parent.glob("try*/home/runs/*")):
            return json.loads(info.read_text())
    return None


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, parent pid, ... ([] once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _alive(pid)


def test_a_killed_local_worker_costs_one_attempt_and_a_rerun_retries_it(tmp_path):
    out = tmp_path / "out"
    proc = _eval(out)
    deadline = time.monotonic() + 300
    worker = None
    while time.monotonic() < deadline and proc.poll() is None and worker is None:
        worker = _worker_of(out, 0)
        time.sleep(0.05)
    assert worker is not None, proc.communicate()[0]
    os.kill(worker["pid"], signal.SIGKILL)  # mid-attempt: its run has begun, its row is not written
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "BrokenProcessPool" not in output

    rows = {r["attempt"]: r for r in read_results(out)}
    assert sorted(rows) == [0, 1, 2]  # the queue went on: every attempt has its row
    killed = rows[0]
    assert (killed["outcome"], killed["error_class"]) == ("error", "infra_error")
    assert "the worker process died mid-attempt (killed by SIGKILL)" in killed["reasons"][0]
    assert [rows[1]["outcome"], rows[2]["outcome"]] == ["pass", "pass"]  # the other worker's attempt was healthy
    assert not _alive(worker["pid"])
    finished = {a: rows[a]["placement"]["started_at"] for a in (1, 2)}

    again = _eval(out)
    output, _ = again.communicate(timeout=600)
    assert again.returncode == 0, output
    rows = read_results(out)
    assert sorted(r["attempt"] for r in rows) == [0, 1, 2]  # replaced, not duplicated
    assert all(r["outcome"] == "pass" for r in rows)
    retried = next(r for r in rows if r["attempt"] == 0)
    assert [e["error_class"] for e in retried["earlier_runs"]] == ["infra_error"]
    # The finished attempts were not run again: their rows are the first eval's.
    assert {r["attempt"]: r["placement"]["started_at"] for r in rows if r["attempt"] != 0} == finished
    report = subprocess.run([sys.executable, "-m", "harness", "eval", "report", str(out)], capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 0 and "100% (3/3)" in report.stdout, report.stdout + report.stderr


def test_a_rerun_retries_infrastructure_errors_only_and_replaces_their_rows(tmp_path):
    rows = [
        {"task": "t", "model": "m", "attempt": 0, "outcome": "error", "error_class": "infra_error",
         "reasons": ["worker died"], "cost_usd": 0.25},
        {"task": "t", "model": "m", "attempt": 1, "outcome": "fail", "error_class": "agent_failure", "cost_usd": 0.5},
        {"task": "t", "model": "m", "attempt": 2, "outcome": "fail", "error_class": "limit_hit", "cost_usd": 0.0},
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert done_keys(tmp_path) == {("t", "m", 1), ("t", "m", 2)}  # agent failures are results, not faults
    sink = ResultSink(tmp_path, max_total_usd=None, events=EvalEvents())
    assert [r["attempt"] for r in sink.settled_rows()] == [1, 2]
    sink.record({"task": "t", "model": "m", "attempt": 0, "outcome": "pass", "error_class": None, "cost_usd": 0.5})
    after = read_results(tmp_path)
    assert [(r["attempt"], r["outcome"]) for r in after] == [(1, "fail"), (2, "fail"), (0, "pass")]
    assert after[-1]["earlier_runs"][0]["reasons"] == ["worker died"]
    assert sink.spend == 1.25  # the failed run's spend still counts toward --max-total-usd


def test_a_killed_driver_stops_its_workers_and_leaves_no_process(tmp_path):
    """The model takes a minute to answer, so the attempts are mid-run when the driver is killed
    (SIGKILL: none of its handlers run)."""
    slow = openai_server.completion(tool_calls=[("list_dir", {"path": "."})])
    slow.delay_s = 60.0
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    out = tmp_path / "out"
    with FakeServer(slow) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "eval", "--suite", "core", "--tasks", QUICK_TASK, "--model",
             "openai:gpt-4.1", "--base-url", f"{server.url}/v1", "--attempts", "2", "--workers", "2", "--sandbox",
             "local", "--max-debug-rounds", "0", "--no-progress", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 300
        workers: list[dict] = []
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            workers = [w for w in (_worker_of(out, a) for a in (0, 1)) if w is not None]
            time.sleep(0.05)
        assert len(workers) == 2, proc.communicate()[0]
        while len(server.requests) < 2 and time.monotonic() < deadline:  # both wait on the model
            time.sleep(0.05)
        servers = {_stat(w["pid"])[1] for w in workers}  # what each worker was forked from
        proc.kill()
        proc.communicate(timeout=60)
        for worker in workers:
            assert _gone_within(worker["pid"], 30), f"worker {worker['pid']} outlived its driver"
        for pid in servers:
            assert _gone_within(int(pid), 30), f"the process {pid} that forked the workers outlived them"
    assert not read_results(out)  # no attempt finished: they were stopped, not run to their end
    assert not list(out.glob("attempts/*/*/*/row.json"))
