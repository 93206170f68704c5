"""The `human` model: a person types tool calls, through piped stdin and through a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def driver(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "tests.fakes.human_driver", str(tmp_path / "w")]


def test_human_through_piped_stdin(tmp_path):
    typed = "\n".join([
        "read_file", '{"path": "README.md"}',
        "bogus_tool",
        "finish", "{oops", "[1, 2]", '{"summary": "human done"}',
    ]) + "\n"
    proc = subprocess.run(driver(tmp_path), input=typed, capture_output=True, text=True, cwd=ROOT, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "=== planner · turn 1 ===" in out and "Plan the demo VAE." in out
    assert "arguments: path, start_line?, end_line?" in out
    assert "[last tool result: read_file, ok]" in out and "example checkout" in out
    assert "unknown tool 'bogus_tool'" in out
    assert "not JSON" in out and "arguments must be a JSON object" in out
    assert out.strip().endswith('RESULT finished {"summary": "human done"}')


def test_human_input_ending_is_a_model_error(tmp_path):
    proc = subprocess.run(driver(tmp_path), input="list_dir\n{}\n", capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.stdout.strip().endswith("RESULT model_error null")


def _read_until(fd: int, marker: str, buf: list[str], timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while marker not in "".join(buf):
        if time.monotonic() > end:
            raise AssertionError(f"no {marker!r} in output: {''.join(buf)[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            buf.append(chunk.decode("utf-8", "replace"))
    text = "".join(buf)
    buf.clear()
    return text


def test_human_through_a_terminal(tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the child: the driver on the pty's slave side
        os.chdir(ROOT)
        os.execv(sys.executable, driver(tmp_path))
    buf: list[str] = []
    try:
        _read_until(fd, "tool> ", buf)
        os.write(fd, b"list_dir\n")
        _read_until(fd, "args (JSON object, empty for {})> ", buf)
        os.write(fd, b'{"path": "."}\n')
        shown = _read_until(fd, "tool> ", buf)
        assert "[last tool result: list_dir, ok]" in shown and "README.md" in shown
        os.write(fd, b"finish\n")
        _read_until(fd, "args", buf)
        os.write(fd, b'{"summary": "typed at a terminal"}\n')
        tail = _read_until(fd, "RESULT", buf) + _read_until(fd, "\n", buf, timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert 'RESULT finished {"summary": "typed at a terminal"}' in tail
    assert os.waitstatus_to_exitcode(status) == 0
