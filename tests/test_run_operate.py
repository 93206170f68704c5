"""Finding, stopping and cleaning runs as a person does: real `harness` subprocesses, real git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_run_cli import SCOPE_HATCH, run_args
from tests.test_run_helpers import VAE_MODEL, example, harness_cli, plan_turns, write_gold_turns, write_script


def slow_port_turns(started: Path) -> list[dict]:
    """The gold port, with a model module that prints a marker, touches `started` and hangs on
    import: the verdict's parity run is surely inside pytest when the run is interrupted."""
    turns = write_gold_turns()
    for call in turns[0]["tool_calls"]:
        if call["args"]["path"] == VAE_MODEL:
            call["args"]["content"] += ("\nimport pathlib as _p, time as _t\nprint('SLOW-IMPORT-MARKER', flush=True)\n"
                                        f"_p.Path({str(started)!r}).touch()\n_t.sleep(120)\n")
    return turns


def branches(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname:short)", "refs/heads/harness/"],
                         capture_output=True, text=True)
    return out.stdout.split()


def worktrees(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"], capture_output=True, text=True)
    return [line.split(" ", 1)[1] for line in out.stdout.splitlines() if line.startswith("worktree ")]


def test_sigint_records_interrupted_prints_resume_and_clean_removes_worktree_and_branch(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    started = tmp_path / "parity-started"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=slow_port_turns(started))
    env = {**os.environ, "HARNESS_HOME": str(home)}
    # Its own process group, as a terminal's foreground job: Ctrl-C signals the whole group.
    args = run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "int1")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), *args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and not started.exists():
        time.sleep(0.1)
    assert proc.poll() is None and started.exists(), proc.communicate()[0]
    time.sleep(0.5)  # pytest is inside the hanging import now
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "harness resume int1" in out

    summary = json.loads((home / "runs" / "int1" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["exit_code"] == 130
    logs = list((home / "runs" / "int1" / "logs").glob("parity-*.log"))
    assert len(logs) == 1, logs  # the cut-off pytest log is kept
    text = logs[0].read_text()
    assert "INTERRUPTED" in text and "SLOW-IMPORT-MARKER" in text
    listing = harness_cli(["runs", "--json"], home, tmp_path)
    assert [(r["run_id"], r["status"]) for r in json.loads(listing.stdout)] == [("int1", "interrupted")]

    worktree = home / "worktrees" / "int1"
    assert worktree.is_dir() and "harness/int1" in branches(ex.repo)
    cleaned = harness_cli(["clean", "int1"], home, tmp_path)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert f"removed worktree {worktree}" in cleaned.stdout and "removed branch harness/int1" in cleaned.stdout
    assert not worktree.exists() and branches(ex.repo) == [] and worktrees(ex.repo) == [str(ex.repo)]
    assert (home / "runs" / "int1" / "summary.json").is_file()  # the record stays for `harness show`
    again = harness_cli(["clean", "int1"], home, tmp_path)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_runs_keeps_whole_ids_when_piped_and_clean_spares_a_paused_run(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    run_id = "a-rather-long-run-id-that-names-the-family-and-component-" + "x" * 20
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    paused = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", run_id), home, tmp_path)
    assert paused.returncode == 3, paused.stdout + paused.stderr

    env = {**os.environ, "HARNESS_HOME": str(home), "COLUMNS": "80"}  # a narrow pipe
    piped = subprocess.run([str(Path(sys.executable).parent / "harness"), "runs"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    header, row = piped.stdout.splitlines()
    assert header.split("\t")[:2] == ["run_id", "status"]
    assert row.split("\t")[:2] == [run_id, "paused"]
    listed = json.loads(harness_cli(["runs", "--json"], home, tmp_path).stdout)
    assert listed[0]["run_id"] == run_id and listed[0]["outcome"].startswith("paused")

    refused = harness_cli(["clean", run_id], home, tmp_path)
    assert refused.returncode == 2 and "paused on a question" in refused.stderr
    finished = harness_cli(["clean", "--finished"], home, tmp_path)  # a paused run is not finished
    assert finished.returncode == 2 and "name a run id" in finished.stderr
    assert (home / "worktrees" / run_id).is_dir() and branches(ex.repo) == [f"harness/{run_id}"]
    forced = harness_cli(["clean", run_id, "--force"], home, tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not (home / "worktrees" / run_id).exists() and branches(ex.repo) == []


@pytest.mark.slow
def test_demo_run_is_found_by_runs_and_show(tmp_path):
    home = tmp_path / "home"
    demo = harness_cli(["demo", "--sandbox", "local"], home, tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"runs live in {home}" in demo.stdout
    listing = harness_cli(["runs", "--json"], home, tmp_path)
    (row,) = json.loads(listing.stdout)
    assert row["status"] == "completed"
    assert row["run_id"] in demo.stdout
    shown = harness_cli(["show", row["run_id"]], home, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Outcome: completed" in shown.stdout and "+class TinyVidVAE" in shown.stdout
    cleaned = harness_cli(["clean", "--finished"], home, tmp_path)
    assert cleaned.returncode == 0 and f"removed branch harness/{row['run_id']}" in cleaned.stdout
