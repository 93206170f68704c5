"""Whole runs under infrastructure faults, as a person meets them: real `harness` processes,
the real OpenAI SDK against a loopback server that fails on command, real git, real sandboxes.
A fault stops the run suspended (exit 5) with the reason and the resume command, keeps every
step, and `harness resume` carries it to its end once the fault is cleared. SIGTERM is Ctrl-C,
and a killed `harness answer` leaves a status that tells the truth."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.evals.fixtures.gold import gold_files
from tests.fakes import openai_server as O
from tests.fakes.server import Faults
from tests.test_run_cli import SCOPE_HATCH, run_args
from tests.test_run_helpers import (
    VAE_MODEL,
    example,
    harness_cli,
    load_handoff,
    plan_turns,
    write_gold_turns,
    write_script,
)

QUICK_RETRY = {"HARNESS_RETRY_WINDOW_S": "1", "HARNESS_RETRY_MAX_WAIT_S": "0.2"}


def _cli(args: list[str], home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "HARNESS_HOME": str(home), "COLUMNS": "200", "OPENAI_API_KEY": "sk-test", **env}
    full.pop("OPENAI_BASE_URL", None)
    return subprocess.run([str(Path(sys.executable).parent / "harness"), *args], cwd=cwd, env=full, text=True,
                          capture_output=True, timeout=600)


def _summary(home: Path, run_id: str) -> dict:
    return json.loads((home / "runs" / run_id / "summary.json").read_text())


def _listed_status(home: Path, cwd: Path, run_id: str) -> str:
    rows = json.loads(harness_cli(["runs", "--json"], home, cwd).stdout)
    return next(r["status"] for r in rows if r["run_id"] == run_id)


def _port_replies() -> list:
    """The planner reads and finishes; the implementer writes the gold port, then finishes."""
    writes = [("write_file", {"path": rel, "content": text}) for rel, text in sorted(gold_files("vae").items())]
    return [
        O.completion(None, [("read_file", {"path": "fastvideo/models/vaes/base.py", "end_line": 20})]),
        O.completion(None, [("finish", {"summary": "port the VAE natively", "plan": {"reuse_or_port": "port"}})]),
        O.completion(None, writes),
        O.completion(None, [("finish", {"summary": "wrote model, config and export"})]),
    ]


@pytest.mark.slow
def test_model_outages_mid_run_suspend_it_and_resume_finishes_it(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    faults = Faults().arm(O.error(503, "The server is overloaded"), after=3)  # after the implementer's writes
    with O.server(faults=faults) as srv:
        srv.add(*_port_replies())
        args = ["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                "--model", "openai:gpt-4.1", "--base-url", srv.url + "/v1", "--sandbox", "local",
                "--non-interactive", "--run-id", "out1"]
        first = _cli(args, home, tmp_path, **QUICK_RETRY)
        assert first.returncode == 5, first.stdout + first.stderr
        assert faults.served >= 2  # retried through the window before giving up
        out = first.stdout
        assert "Suspended by an infrastructure fault" in out and "harness resume out1" in out
        assert "retry policy:" in out  # what was tried, printed when it gave up
        summary = _summary(home, "out1")
        assert (summary["status"], summary["exit_code"]) == ("suspended", 5)
        assert summary["fault"].startswith("implementer: openai: giving up after")
        assert "HTTP 503: The server is overloaded" in summary["fault"]
        assert summary["resume_command"] == "harness resume out1"
        assert not (home / "runs" / "out1" / "handoff.json").exists()  # no verdict was made
        assert _listed_status(home, tmp_path, "out1") == "suspended"
        # Every step before the fault is kept: the implementer's files are in the run's worktree.
        assert (home / "worktrees" / "out1" / VAE_MODEL).is_file()

        # The fault changes shape while it lasts; each resume stops again, resumable.
        for reply, said in ((O.empty_choices(), "response has no choices"), (O.truncated(), "APIConnectionError")):
            faults.arm(reply)
            again = _cli(["resume", "out1", "--non-interactive"], home, tmp_path, **QUICK_RETRY)
            assert again.returncode == 5, again.stdout + again.stderr
            assert said in _summary(home, "out1")["fault"]

        faults.clear()
        last = _cli(["resume", "out1", "--non-interactive"], home, tmp_path, **QUICK_RETRY)
        requests = [r.body for r in srv.requests if r not in srv.refused]
    assert last.returncode == 0, last.stdout + last.stderr
    assert load_handoff(home / "runs" / "out1").parity_status == "non_skip_pass"
    assert _summary(home, "out1")["status"] == "completed"
    # The implementer's conversation went on where the fault hit: its writes were not asked for
    # again, and its last request carried their results.
    assert len(requests) == 4
    assert sum(1 for m in requests[-1]["messages"] if m.get("role") == "tool") == len(gold_files("vae"))


@pytest.mark.slow
def test_one_oversized_reply_is_refused_back_and_the_run_completes(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    huge = O.completion("All in one go.", [("write_file", {"path": VAE_MODEL, "content": "#" * 400_000})])
    replies = _port_replies()
    with O.server() as srv:
        srv.add(replies[0], replies[1], huge, *replies[2:])
        result = _cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                       "--model", "openai:gpt-4.1", "--base-url", srv.url + "/v1", "--sandbox", "local",
                       "--context-window", "32000", "--non-interactive", "--run-id", "big1"], home, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert load_handoff(home / "runs" / "big1").parity_status == "non_skip_pass"
    trajectory = (home / "runs" / "big1" / "trajectory.jsonl").read_text()
    assert "not run: your reply was about" in trajectory and "#" * 1000 not in trajectory


def _hanging_port_turns(started: Path, hang: Path) -> list[dict]:
    """The gold port, whose model module (imported by the verdict's parity run) touches `started`
    and waits while `hang` exists: the run is surely inside pytest when it is stopped, and a
    resume after `hang` is removed goes through."""
    turns = write_gold_turns()
    for call in turns[0]["tool_calls"]:
        if call["args"]["path"] == VAE_MODEL:
            call["args"]["content"] += (
                "\nimport pathlib as _p, time as _t\n"
                f"_p.Path({str(started)!r}).touch()\n"
                f"while _p.Path({str(hang)!r}).exists():\n    _t.sleep(0.1)\n")
    return turns


@pytest.fixture
def markers():
    """A folder for the hanging port's marker files whose path names no test tool (the guards
    flag production code that names pytest or the harness, as a tmp_path would)."""
    folder = Path(tempfile.mkdtemp(prefix="fault-markers-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None and not path.exists():
        time.sleep(0.1)
    assert proc.poll() is None and path.exists(), proc.communicate()[0]


@pytest.mark.slow
def test_sigterm_is_handled_as_ctrl_c_and_resume_finishes_the_run(tmp_path, markers):
    ex = example(tmp_path)
    home = tmp_path / "home"
    started, hang = markers / "parity-started", markers / "hang"
    hang.touch()
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=_hanging_port_turns(started, hang))
    env = {**os.environ, "HARNESS_HOME": str(home)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"),
                             *run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "term1")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(started, proc)
    proc.send_signal(signal.SIGTERM)  # what systemd, `docker stop`, `timeout` and a CI cancel send
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Interrupted. Continue the run with:" in out and "harness resume term1" in out
    summary = _summary(home, "term1")
    assert (summary["status"], summary["interrupted_by"]) == ("interrupted", "SIGTERM")
    logs = list((home / "runs" / "term1" / "logs").glob("parity-*.log"))
    assert logs and "INTERRUPTED" in logs[0].read_text()  # the cut-off pytest log is kept, as for Ctrl-C

    hang.unlink()
    resumed = harness_cli(["resume", "term1", "--non-interactive"], home, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert load_handoff(home / "runs" / "term1").parity_status == "non_skip_pass"


@pytest.mark.slow
def test_a_killed_answer_is_listed_as_killed_and_resume_not_answer_continues_it(tmp_path, markers):
    ex = example(tmp_path)
    home = tmp_path / "home"
    started, hang = markers / "parity-started", markers / "hang"
    hang.touch()
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=[SCOPE_HATCH] + _hanging_port_turns(started, hang))
    paused = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "ans1"), home, tmp_path)
    assert paused.returncode == 3, paused.stdout + paused.stderr
    assert _listed_status(home, tmp_path, "ans1") == "paused"

    env = {**os.environ, "HARNESS_HOME": str(home)}
    answering = subprocess.Popen([str(Path(sys.executable).parent / "harness"), "answer", "ans1", "--option", "1",
                                  "--non-interactive"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    _wait_for(started, answering)
    answering.kill()  # kill -9: no handler runs, nothing is recorded by the process itself
    answering.communicate(timeout=60)
    hang.unlink()

    assert _listed_status(home, tmp_path, "ans1") == "killed"  # not "paused": the answer was taken
    again = harness_cli(["answer", "ans1", "--option", "1"], home, tmp_path)
    assert again.returncode == 2 and "harness resume ans1" in again.stderr, again.stderr
    resumed = harness_cli(["resume", "ans1", "--non-interactive"], home, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _listed_status(home, tmp_path, "ans1") == "completed"


@pytest.mark.slow
@pytest.mark.docker
def test_a_container_removed_under_a_command_suspends_the_run_and_resume_finishes_it(tmp_path):
    import docker

    ex = example(tmp_path)
    home = tmp_path / "home"
    waiting = {"tool_calls": [{"name": "run", "args": {"command": "sleep 63"}}]}
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[waiting] + write_gold_turns())
    env = {**os.environ, "HARNESS_HOME": str(home)}
    args = ["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
            "--model", f"scripted:{script}", "--sandbox", "docker", "--non-interactive", "--run-id", "gone1"]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trajectory = home / "runs" / "gone1" / "trajectory.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            trajectory.is_file() and "sleep 63" in trajectory.read_text()):
        time.sleep(0.2)
    time.sleep(2)  # the command is running in the container now
    client = docker.from_env()
    try:
        client.containers.get("fastvideo-harness-gone1").remove(force=True)  # the sandbox vanishes under it
    finally:
        client.close()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 5, out
    assert "harness resume gone1" in out
    summary = _summary(home, "gone1")
    assert summary["status"] == "suspended" and "sandbox container fastvideo-harness-gone1" in summary["fault"]
    assert summary["fault"].startswith("implementer: run: ")
    assert not (home / "runs" / "gone1" / "handoff.json").exists()

    resumed = harness_cli(["resume", "gone1", "--non-interactive"], home, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert load_handoff(home / "runs" / "gone1").parity_status == "non_skip_pass"
    # The cut-short command was answered "interrupted", and the conversation went on after it.
    events = [json.loads(line) for line in trajectory.read_text().splitlines()]
    results = [e for e in events if e.get("event") == "tool_result" and e.get("name") == "run"]
    assert any("interrupted" in str(e.get("content", "")) for e in results), results
