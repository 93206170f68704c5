"""Ctrl-C during a sandbox command: each executor hands the output so far along with the
KeyboardInterrupt, and the parity runner saves it as a cut-off log before the run stops."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from harness.sandbox.executors import make_executor
from harness.sandbox.pytest_runner import run_parity_test
from harness.sandbox.workspace import Workspace

pytest.register_assert_rewrite("tests.sandbox_fixtures")
pytest_plugins = ["tests.sandbox_fixtures"]


@pytest.fixture
def ws(user_repo, harness_root) -> Workspace:
    return Workspace.create(user_repo, f"int-{os.getpid()}-{time.monotonic_ns() % 10**8}", root=harness_root)


@pytest.fixture(params=["local", pytest.param("bwrap", marks=pytest.mark.bwrap),
                        pytest.param("docker", marks=pytest.mark.docker)])
def executor(request, ws):
    if request.param == "docker":
        ex = make_executor("docker", ws, image=request.getfixturevalue("sandbox_image"), memory="1g", pids_limit=128)
    else:
        if request.param == "bwrap":
            request.getfixturevalue("bwrap_ok")
        ex = make_executor(request.param, ws)
    ex.start()
    yield ex
    ex.close()


def ctrl_c_once(ready) -> None:
    """SIGINT to the main thread, as a terminal's Ctrl-C reaches the harness, once `ready()`."""
    main = threading.main_thread().ident

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def test_the_output_so_far_travels_with_the_interrupt(executor, ws):
    ctrl_c_once(lambda: (ws.path / "cut-here").exists())
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as stop:
        executor.run("echo BEFORE-THE-CUT; echo to-stderr >&2; touch cut-here; sleep 60; echo AFTER-THE-CUT",
                     timeout_s=120)
    assert time.monotonic() - started < 50  # the command was stopped, not waited for
    partial = stop.value.partial_result
    assert "BEFORE-THE-CUT" in partial.stdout and "AFTER-THE-CUT" not in partial.stdout
    assert "to-stderr" in partial.stderr
    assert executor.run("echo still-usable", timeout_s=30).stdout.strip() == "still-usable"


def test_parity_runner_keeps_the_cut_off_log(executor, ws, tmp_path):
    (ws.path / "tests" / "local_tests" / "vaes" / "test_toy_vae_parity.py").write_text(
        "import pathlib, time\n\ndef test_parity():\n    print('INSIDE-THE-TEST', flush=True)\n"
        "    pathlib.Path('cut-here').touch()\n    time.sleep(60)\n")
    logs = tmp_path / "logs"
    ctrl_c_once(lambda: (ws.path / "cut-here").exists())
    with pytest.raises(KeyboardInterrupt):
        run_parity_test(executor, "tests/local_tests/vaes/test_toy_vae_parity.py", logs, timeout_s=120)
    (log,) = logs.glob("parity-*.log")
    text = log.read_text()
    assert "# INTERRUPTED" in text.splitlines()[0]
    assert "INSIDE-THE-TEST" in text and "passed" not in text
