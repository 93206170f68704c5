"""Ctrl-C during a sandbox command: each executor hands the output so far along with the
KeyboardInterrupt, and the parity runner saves it as a cut-off log before the run stops.

The harness runs in a child process and only that process gets the SIGINT, as a terminal's
Ctrl-C reaches the harness; the test process itself is never signalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.sandbox.workspace import Workspace

pytest.register_assert_rewrite("tests.sandbox_fixtures")
pytest_plugins = ["tests.sandbox_fixtures"]

ROOT = Path(__file__).resolve().parent.parent

# argv: kind, repo, run_id, harness root, image, what ("command" or "parity"), log dir.
# Prints one JSON line: what the KeyboardInterrupt carried and whether the executor still works.
HARNESS_CHILD = textwrap.dedent("""
    import json, sys, time
    from harness.sandbox.executors import make_executor
    from harness.sandbox.pytest_runner import run_parity_test
    from harness.sandbox.workspace import Workspace

    kind, repo, run_id, root, image, what, logs = sys.argv[1:8]
    ws = Workspace.open(repo, run_id, root=root)
    options = {"image": image, "memory": "1g", "pids_limit": 128} if kind == "docker" else {}
    ex = make_executor(kind, ws, **options)
    ex.start()
    report = {"interrupted": False}
    try:
        started = time.monotonic()
        try:
            if what == "command":
                ex.run("echo BEFORE-THE-CUT; echo to-stderr >&2; touch cut-here; sleep 60; echo AFTER-THE-CUT",
                       timeout_s=120)
            else:
                run_parity_test(ex, "tests/local_tests/vaes/test_toy_vae_parity.py", logs, timeout_s=120)
        except KeyboardInterrupt as stop:
            report["interrupted"] = True
            partial = getattr(stop, "partial_result", None)
            if partial is not None:
                report["partial"] = {"stdout": partial.stdout, "stderr": partial.stderr}
        report["seconds"] = time.monotonic() - started
        report["after"] = ex.run("echo still-usable", timeout_s=30).stdout
    finally:
        ex.close()
    print(json.dumps(report), flush=True)
""")


@pytest.fixture
def ws(user_repo, harness_root) -> Workspace:
    return Workspace.create(user_repo, f"int-{os.getpid()}-{time.monotonic_ns() % 10**8}", root=harness_root)


@pytest.fixture(params=["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                        pytest.param("docker", marks=pytest.mark.docker)])
def kind(request) -> str:
    if request.param == "docker":
        request.getfixturevalue("sandbox_image")
    elif request.param == "bwrap":
        request.getfixturevalue("bwrap_ok")
    return request.param


def ctrl_c_the_harness(kind: str, ws: Workspace, user_repo: Path, harness_root: Path, what: str,
                       logs: Path) -> dict:
    """Run the harness child, SIGINT it once the sandbox command is under way, return its report."""
    from tests.sandbox_fixtures import SANDBOX_IMAGE

    child = subprocess.Popen(
        [sys.executable, "-c", HARNESS_CHILD, kind, str(user_repo), ws.run_id, str(harness_root), SANDBOX_IMAGE,
         what, str(logs)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ws.path / "cut-here").exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert child.poll() is None and (ws.path / "cut-here").exists(), child.communicate()
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)  # the child alone, never this process or its group
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_the_output_so_far_travels_with_the_interrupt(kind, ws, user_repo, harness_root, tmp_path):
    report = ctrl_c_the_harness(kind, ws, user_repo, harness_root, "command", tmp_path / "logs")
    assert report["interrupted"]
    assert report["seconds"] < 50  # the command was stopped, not waited for
    partial = report["partial"]
    assert "BEFORE-THE-CUT" in partial["stdout"] and "AFTER-THE-CUT" not in partial["stdout"]
    assert "to-stderr" in partial["stderr"]
    assert report["after"].strip() == "still-usable"


def test_parity_runner_keeps_the_cut_off_log(kind, ws, user_repo, harness_root, tmp_path):
    (ws.path / "tests" / "local_tests" / "vaes" / "test_toy_vae_parity.py").write_text(
        "import pathlib, time\n\ndef test_parity():\n    print('INSIDE-THE-TEST', flush=True)\n"
        "    pathlib.Path('cut-here').touch()\n    time.sleep(60)\n")
    logs = tmp_path / "logs"
    report = ctrl_c_the_harness(kind, ws, user_repo, harness_root, "parity", logs)
    assert report["interrupted"]
    (log,) = logs.glob("parity-*.log")
    text = log.read_text()
    assert "# INTERRUPTED" in text.splitlines()[0]
    assert "INSIDE-THE-TEST" in text and "passed" not in text
