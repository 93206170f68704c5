"""Workspace: a real git worktree of a real checkout; the user's tree is never touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import git as gitpython
import pytest

from harness.sandbox.workspace import (
    HARNESS_AUTHOR_NAME,
    PathEscapeError,
    Workspace,
    WorkspaceError,
)
# The fixtures module is also a pytest plugin (below); have pytest rewrite it on this import.
pytest.register_assert_rewrite("tests.sandbox_fixtures")
from tests.sandbox_fixtures import git, tree_digest

pytest_plugins = ["tests.sandbox_fixtures"]


def test_create_branches_from_head_outside_the_checkout(user_repo, harness_root):
    ws = Workspace.create(user_repo, "run-1", root=harness_root)
    head = git(user_repo, "rev-parse", "HEAD").strip()
    assert ws.base_commit == head == ws.head()
    assert ws.branch == "harness/run-1"
    assert ws.path == harness_root.resolve() / "worktrees" / "run-1"
    assert not ws.path.is_relative_to(user_repo)
    assert (ws.path / "fastvideo/models/vaes/toyvae.py").read_text().startswith("class ToyVAE")
    assert git(user_repo, "branch", "--list", "harness/run-1").strip()
    assert ws.notices == []


def test_harness_home_env_and_default(user_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "from-env"))
    ws = Workspace.create(user_repo, "env-run")
    assert ws.path == (tmp_path / "from-env" / "worktrees" / "env-run").resolve()
    monkeypatch.delenv("HARNESS_HOME")
    monkeypatch.chdir(tmp_path)
    ws2 = Workspace.create(user_repo, "cwd-run")
    assert ws2.path == (tmp_path / ".harness" / "worktrees" / "cwd-run").resolve()


def test_dirty_checkout_starts_from_head_and_stays_byte_identical(user_repo, harness_root):
    (user_repo / "README.md").write_text("# edited but not committed\n")
    (user_repo / "scratch.txt").write_text("untracked\n")
    (user_repo / "fastvideo/models/vaes/toyvae.py").unlink()
    before = tree_digest(user_repo)
    status_before = git(user_repo, "status", "--porcelain")

    ws = Workspace.create(user_repo, "dirty", root=harness_root)
    assert len(ws.notices) == 1 and "uncommitted changes" in ws.notices[0]
    assert (ws.path / "README.md").read_text() == "# tiny fastvideo\n"  # HEAD, not the edit
    assert not (ws.path / "scratch.txt").exists()
    (ws.path / "README.md").write_text("agent edit\n")
    (ws.path / "new.py").write_text("x = 1\n")
    assert ws.checkpoint("agent step") is not None
    ws.diff(), ws.files_changed()
    ws.remove(delete_branch=True)

    assert tree_digest(user_repo) == before
    assert git(user_repo, "status", "--porcelain") == status_before


def test_checkpoint_commits_everything_with_harness_identity_and_no_hooks(user_repo, harness_root, monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "someone@example.com")
    # A hook in the user's repo that would leave a mark if it ran.
    hook = Path(git(user_repo, "rev-parse", "--git-common-dir").strip())
    hook = (user_repo / hook if not hook.is_absolute() else hook) / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ntouch \"$GIT_DIR/../hook-ran\"\nexit 1\n")
    hook.chmod(0o755)
    post_checkout = hook.with_name("post-checkout")
    post_checkout.write_text(f"#!/bin/sh\ntouch {user_repo}/post-checkout-ran\n")
    post_checkout.chmod(0o755)
    ws = Workspace.create(user_repo, "ckpt", root=harness_root)
    assert ws.checkpoint("nothing yet") is None

    (ws.path / "fastvideo/models/vaes/toyvae.py").write_text("class ToyVAE:\n    scale = 1.0\n")
    (ws.path / "fastvideo/configs").mkdir(parents=True)
    (ws.path / "fastvideo/configs/toy.py").write_text("CFG = {}\n")
    (ws.path / "README.md").unlink()
    (ws.path / "fastvideo/__pycache__").mkdir()
    (ws.path / "fastvideo/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    sha = ws.checkpoint("port toy vae")
    assert sha == ws.head() != ws.base_commit
    commit = gitpython.Repo(user_repo).commit(sha)
    assert commit.author.name == HARNESS_AUTHOR_NAME and commit.message.strip() == "port toy vae"
    assert commit.committer.email == "harness@fastvideo-harness.invalid"
    assert set(commit.stats.files) == {"fastvideo/models/vaes/toyvae.py", "fastvideo/configs/toy.py", "README.md"}
    assert not (user_repo / "hook-ran").exists() and not (user_repo / "post-checkout-ran").exists()
    assert ws.checkpoint("again") is None  # the .pyc alone is not a change


def test_diff_and_files_changed_include_uncommitted_and_untracked(user_repo, harness_root):
    ws = Workspace.create(user_repo, "diff", root=harness_root)
    (ws.path / "fastvideo/models/vaes/toyvae.py").write_text("class ToyVAE:\n    scale = 0.5\n")
    ws.checkpoint("step 1")
    (ws.path / "new_file.py").write_text("y = 2\n")  # untracked, not committed
    (ws.path / "README.md").unlink()
    assert ws.files_changed() == ["README.md", "fastvideo/models/vaes/toyvae.py", "new_file.py"]
    full = ws.diff()
    assert "-    scale = 0.18215" in full and "+    scale = 0.5" in full and "+y = 2" in full
    assert "new_file.py" not in ws.diff("fastvideo/models/vaes/toyvae.py")
    # Neither call touched the real index: the untracked file is still untracked.
    assert "?? new_file.py" in git(ws.path, "status", "--porcelain")
    assert ws.file_at_base("fastvideo/models/vaes/toyvae.py") == "class ToyVAE:\n    scale = 0.18215\n"
    assert ws.file_at_base("new_file.py") is None
    with pytest.raises(PathEscapeError):
        ws.file_at_base("../checkout/README.md")


def test_open_reopens_for_resume_and_remove(user_repo, harness_root):
    ws = Workspace.create(user_repo, "resume", root=harness_root)
    (ws.path / "a.py").write_text("a = 1\n")
    sha = ws.checkpoint("a")
    again = Workspace.open(user_repo, "resume", root=harness_root)
    assert (again.path, again.base_commit, again.head()) == (ws.path, ws.base_commit, sha)
    assert again.files_changed() == ["a.py"]
    again.remove()
    assert not ws.path.exists()
    assert git(user_repo, "branch", "--list", "harness/resume").strip()  # branch kept by default
    with pytest.raises(WorkspaceError, match="no workspace for run"):
        Workspace.open(user_repo, "resume", root=harness_root)


@pytest.mark.parametrize("bad, message", [
    ("", "invalid run id"), ("../x", "invalid run id"), ("a b", "invalid run id"),
    ("x.lock", "invalid run id"), ("-x", "invalid run id"),
])
def test_bad_run_ids_are_refused(user_repo, harness_root, bad, message):
    with pytest.raises(WorkspaceError, match=message):
        Workspace.create(user_repo, bad, root=harness_root)
    assert not (harness_root / "worktrees").exists() or not any((harness_root / "worktrees").iterdir())


def test_bad_checkouts_and_duplicate_runs_are_refused(tmp_path, user_repo, harness_root):
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace.create(tmp_path / "nope", "r", root=harness_root)
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceError, match="not the top of a git checkout"):
        Workspace.create(tmp_path / "plain", "r", root=harness_root)
    git(tmp_path / "plain", "init", "-q")
    with pytest.raises(WorkspaceError, match="no commits"):
        Workspace.create(tmp_path / "plain", "r", root=harness_root)
    with pytest.raises(WorkspaceError, match="official reference dir"):
        Workspace.create(user_repo, "r", official_ref_dir=tmp_path / "missing", root=harness_root)
    Workspace.create(user_repo, "twice", root=harness_root)
    with pytest.raises(WorkspaceError, match="already exists"):
        Workspace.create(user_repo, "twice", root=harness_root)


def test_harness_home_inside_the_checkout_keeps_git_status_clean(user_repo, monkeypatch):
    monkeypatch.chdir(user_repo)
    ws = Workspace.create(user_repo, "inside")
    assert ws.path.is_relative_to(user_repo)
    (ws.path / "x.py").write_text("x = 1\n")
    ws.checkpoint("x")
    assert git(user_repo, "status", "--porcelain") == ""


def test_two_workspaces_from_one_checkout_in_parallel(user_repo, harness_root):
    errors: list[BaseException] = []
    made: dict[str, Workspace] = {}

    def work(run_id: str) -> None:
        try:
            ws = Workspace.create(user_repo, run_id, root=harness_root)
            made[run_id] = ws
            target = ws.path / "fastvideo/models/vaes/toyvae.py"
            for i in range(5):
                target.write_text(f"class ToyVAE:\n    scale = {run_id!r}, {i}\n")
                (ws.path / f"{run_id}-{i}.txt").write_text(run_id)
                ws.checkpoint(f"{run_id} step {i}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in ("par-a", "par-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    a, b = made["par-a"], made["par-b"]
    assert "'par-a', 4" in (a.path / "fastvideo/models/vaes/toyvae.py").read_text()
    assert "'par-b', 4" in (b.path / "fastvideo/models/vaes/toyvae.py").read_text()
    assert not any(p.name.startswith("par-b") for p in a.path.iterdir())
    assert a.files_changed() == sorted(["fastvideo/models/vaes/toyvae.py"] + [f"par-a-{i}.txt" for i in range(5)])
    log_a = git(user_repo, "log", "--format=%s", "harness/par-a").splitlines()
    assert log_a[:5] == [f"par-a step {i}" for i in (4, 3, 2, 1, 0)]
    assert not any("par-b" in s for s in log_a)


def test_sigkilled_process_leaves_its_checkpoints_recoverable(user_repo, harness_root, tmp_path):
    ready = tmp_path / "ready"
    child = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from harness.sandbox.workspace import Workspace
        ws = Workspace.create({str(user_repo)!r}, "killed", root={str(harness_root)!r})
        (ws.path / "step1.py").write_text("one = 1\\n")
        ws.checkpoint("step 1")
        (ws.path / "step2.py").write_text("two = 2\\n")  # edited after the checkpoint
        Path({str(ready)!r}).write_text(ws.head())
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "child died before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    checkpoint_sha = ready.read_text()
    ws = Workspace.open(user_repo, "killed", root=harness_root)
    assert ws.head() == checkpoint_sha
    assert git(user_repo, "show", "harness/killed:step1.py") == "one = 1\n"
    assert (ws.path / "step2.py").read_text() == "two = 2\n"  # uncommitted work is still there
    assert ws.checkpoint("resumed") is not None
    assert ws.files_changed() == ["step1.py", "step2.py"]


# ----- path rules ------------------------------------------------------------------------


@pytest.fixture
def ws_with_official(user_repo, harness_root, tmp_path) -> Workspace:
    official = tmp_path / "official"
    (official / "pkg").mkdir(parents=True)
    (official / "pkg/model.py").write_text("class Official: pass\n")
    return Workspace.create(user_repo, "paths", official_ref_dir=official, root=harness_root)


def test_resolve_inside_and_official_read_only(ws_with_official):
    ws = ws_with_official
    assert ws.resolve("fastvideo/models/vaes/toyvae.py") == ws.path / "fastvideo/models/vaes/toyvae.py"
    assert ws.resolve("new/dir/file.py", write=True) == ws.path / "new/dir/file.py"
    assert ws.resolve(str(ws.path / "README.md")) == ws.path / "README.md"
    official_file = ws.official_ref_dir / "pkg/model.py"
    assert ws.resolve(str(official_file)) == official_file
    with pytest.raises(PathEscapeError, match="official reference dir, which is read-only"):
        ws.resolve(str(official_file), write=True)
    # Paths as the docker sandbox shows them map back to the host.
    assert ws.resolve("/workspace/README.md") == ws.path / "README.md"
    assert ws.resolve("/official/pkg/model.py") == official_file
    with pytest.raises(PathEscapeError, match="read-only"):
        ws.resolve("/official/pkg/model.py", write=True)
    (ws.path / "link-inside").symlink_to("fastvideo")
    assert ws.resolve("link-inside/__init__.py") == ws.path / "fastvideo/__init__.py"


@pytest.mark.parametrize("path, message", [
    ("../checkout/README.md", "contains '..'"),
    ("fastvideo/../../x", "contains '..'"),
    ("/etc/passwd", "absolute path outside the workspace"),
    ("", "empty path"),
])
def test_resolve_refuses_escapes(ws_with_official, path, message):
    with pytest.raises(PathEscapeError, match=message):
        ws_with_official.resolve(path)
    with pytest.raises(PathEscapeError):
        ws_with_official.resolve(path, write=True)


def test_resolve_refuses_symlinks_out_and_git_writes(ws_with_official):
    ws = ws_with_official
    (ws.path / "etc-link").symlink_to("/etc")
    (ws.path / "passwd-link").symlink_to("/etc/passwd")
    for rel in ("etc-link/passwd", "passwd-link"):
        with pytest.raises(PathEscapeError, match="symlink that leads outside"):
            ws.resolve(rel)
    (ws.path / "gitlink").symlink_to(".git")
    for rel in (".git", "gitlink"):
        with pytest.raises(PathEscapeError, match="git metadata"):
            ws.resolve(rel, write=True)
    assert ws.resolve(".git").name == ".git"  # reading the pointer is harmless


def test_a_rewritten_git_pointer_is_put_back_before_host_git(user_repo, harness_root):
    ws = Workspace.create(user_repo, "tamper", root=harness_root)
    pointer = (ws.path / ".git").read_text()
    (ws.path / ".git").write_text("gitdir: /tmp/evil\n")
    assert ws.checkpoint("x") is None and (ws.path / ".git").read_text() == pointer
    assert [rel for rel, _ in ws.host_findings()] == [".git"]  # and it is a finding
    # Reopening (resume) finds the real pointer from the checkout's own worktree records.
    (ws.path / ".git").write_text("gitdir: /tmp/evil\n")
    again = Workspace.open(user_repo, "tamper", root=harness_root)
    assert again.head() == ws.head() and (ws.path / ".git").read_text() == pointer
    foreign = harness_root / "worktrees" / "foreign"
    foreign.mkdir()
    (foreign / ".git").write_text("gitdir: /tmp/evil\n")
    (harness_root / "worktrees" / "foreign.json").write_text(
        json.dumps({"repo": str(user_repo.resolve()), "base_commit": ws.base_commit}))
    with pytest.raises(WorkspaceError, match="does not point into"):
        Workspace.open(user_repo, "foreign", root=harness_root)


def test_unchecked_out_submodules_are_not_deleted_files(user_repo, harness_root):
    """FastVideo's checkout has submodules; a worktree holds them as empty folders."""
    sha = git(user_repo, "rev-parse", "HEAD").strip()
    git(user_repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},third_party/kernels")
    git(user_repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a submodule")
    ws = Workspace.create(user_repo, "submodules", root=harness_root)
    assert (ws.path / "third_party/kernels").is_dir()
    assert ws.files_changed() == [] and ws.checkpoint("nothing") is None
    (ws.path / "fastvideo/models/vaes/toyvae.py").write_text("class ToyVAE:\n    pass\n")
    ws.checkpoint("a change")
    assert ws.files_changed() == ["fastvideo/models/vaes/toyvae.py"]
    assert "160000" in git(user_repo, "ls-tree", ws.head(), "third_party/")
