"""The worktree watch (inotify) and what rests on it: checkpoints that skip an unchanged tree,
group sharing of only what host tools wrote, and bwrap commands started ahead in their cgroup."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from harness.sandbox.executors import make_executor
from harness.sandbox.tree_watch import TreeWatch
from harness.sandbox.workspace import Workspace

pytest.register_assert_rewrite("tests.sandbox_fixtures")
pytest_plugins = ["tests.sandbox_fixtures"]


@pytest.fixture
def ws(user_repo, harness_root) -> Workspace:
    return Workspace.create(user_repo, f"watch-{os.getpid()}-{time.monotonic_ns() % 10**8}", root=harness_root)


# ----- the watch itself --------------------------------------------------------------------


def test_watch_tells_each_consumer_every_change_once(tmp_path: Path):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    watch = TreeWatch(root)
    assert watch.changes("checkpoint") is None  # a consumer's first question: unknown
    assert watch.changes("share") is None
    assert watch.changes("checkpoint") == set()

    (root / "pkg" / "a.py").write_text("a = 2\n")
    (root / "new" / "deep").mkdir(parents=True)  # made, and filled, before anyone looks
    (root / "new" / "deep" / "b.py").write_text("b = 1\n")
    (root / "pkg" / "__pycache__").mkdir()  # byproducts are left out, as checkpoints do
    (root / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    seen = watch.changes("checkpoint")
    assert {"pkg/a.py", "new", "new/deep/b.py"} <= seen
    assert not any("__pycache__" in rel for rel in seen)
    assert watch.changes("checkpoint") == set()  # told once
    assert {"pkg/a.py", "new/deep/b.py"} <= watch.changes("share")  # every consumer hears it

    # The new directory is watched too, and so is a renamed one under its new name.
    (root / "new" / "deep" / "b.py").unlink()
    (root / "pkg").rename(root / "pkg2")
    (root / "pkg2" / "c.py").write_text("c = 1\n")
    assert {"new/deep/b.py", "pkg", "pkg2", "pkg2/c.py"} <= watch.changes("checkpoint")
    watch.forget("checkpoint")
    assert watch.changes("checkpoint") is None
    watch.close()
    assert watch.changes("checkpoint") is None  # closed: unknown, never "nothing changed"


def test_checkpoint_of_an_unchanged_watched_tree_costs_no_git_call(ws, monkeypatch):
    assert ws.watch() is not None
    assert ws.checkpoint("first look") is None  # nothing changed since the base
    (ws.path / "fastvideo" / "new.py").write_text("x = 1\n")
    first = ws.checkpoint("a file")
    assert first is not None and ws.head() == first

    import harness.sandbox.host_git as host_git

    calls: list[str] = []
    real = host_git.run_git
    monkeypatch.setattr(host_git, "run_git", lambda cwd, *a, **k: calls.append(a[0]) or real(cwd, *a, **k))
    monkeypatch.setattr("harness.sandbox.workspace.run_git", host_git.run_git)
    assert ws.checkpoint("nothing new") is None
    assert calls == []
    assert "fastvideo/new.py" in ws.diff()  # the listing is remembered: only the diff itself runs
    assert calls == ["diff"]

    (ws.path / "fastvideo" / "new.py").write_text("x = 2\n")
    second = ws.checkpoint("changed again")
    assert second is not None and second != first
    assert ws.file_at_base("fastvideo/new.py") is None


def test_a_failed_checkpoint_is_looked_at_again(ws, monkeypatch):
    ws.watch()
    ws.checkpoint("first look")
    (ws.path / "README.md").write_text("changed\n")

    def broken(message):
        raise RuntimeError("git died")

    monkeypatch.setattr(ws, "_commit_listing", broken)
    with pytest.raises(RuntimeError):
        ws.checkpoint("fails")
    monkeypatch.undo()
    assert ws.checkpoint("again") is not None  # not skipped: the change was never committed


# ----- bwrap on a watched worktree -----------------------------------------------------------


@pytest.mark.bwrap
def test_bwrap_sees_what_the_sandbox_and_the_host_changed(ws, bwrap_ok):
    ex = make_executor("bwrap", ws)
    ex.start()
    try:
        assert ex.run("true").exit_code == 0
        ws.checkpoint("start")
        made = ex.run("mkdir -p a/b && echo inside > a/b/c.txt")
        assert made.exit_code == 0, made.stderr
        commit = ws.checkpoint("after the command")
        assert commit is not None and "a/b/c.txt" in ws.changed_between(f"{commit}~1", commit)

        # Host tools write between commands (as root when the harness is root): new folders,
        # files replaced by rename, appends. The next command may write all of them.
        (ws.path / "host" / "deep").mkdir(parents=True)
        (ws.path / "host" / "deep" / "mod.py").write_text("x = 1\n")
        tmp = ws.path / "README.md.tmp"
        tmp.write_text("replaced\n")
        os.replace(tmp, ws.path / "README.md")
        r = ex.run("echo y >> host/deep/mod.py && touch host/deep/new.py && echo more >> README.md "
                   "&& cat README.md host/deep/mod.py")
        assert r.exit_code == 0 and r.stdout == "replaced\nmore\nx = 1\ny\n", r.stderr
        assert ws.checkpoint("host and sandbox edits") is not None
        ex.run("true")
        assert ws.checkpoint("nothing new") is None
    finally:
        ex.close()


@pytest.mark.bwrap
def test_bwrap_command_runs_as_sh_c_would(ws, bwrap_ok):
    ex = make_executor("bwrap", ws)
    ex.start()
    try:
        command = "printf '%s|' \"$#\" \"$0\" \"${HARNESS_SANDBOX_COMMAND-unset}\"; read x || echo no-stdin; " \
                  "echo \"a'b\n c\"; exit 7"
        for _ in range(3):  # the first command and the ones started ahead behave alike
            r = ex.run(command, env={"EXTRA": "1"})
            assert r.exit_code == 7 and r.stdout == "0|/bin/sh|unset|no-stdin\na'b\n c\n", (r.stdout, r.stderr)
            assert ex.run("echo $EXTRA", env={"EXTRA": "v"}).stdout == "v\n"
        # A launcher that died while waiting is replaced by a plain start.
        waiting = ex._launchers.take()
        if waiting is not None:
            waiting.proc.kill()
            waiting.proc.wait()
            ex._launchers._next = Future()
            ex._launchers._next.set_result(waiting)
        assert ex.run("echo still").stdout == "still\n"
        limited = ex.run("ulimit -f")
        assert limited.stdout.strip() == str(ex.limits.file_size_bytes // 512)
    finally:
        ex.close()
