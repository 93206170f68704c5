"""One dead eval worker costs one attempt, not the eval: a real `harness eval` with two local
workers, one worker process killed mid-attempt. The other attempts finish, the eval exits 0,
the killed attempt is an `infra_error` row, and a rerun into the same --out runs it again and
replaces its row (the oracle then scores 100 %), never re-running a finished attempt."""

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


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
