"""Host-side git on an agent-written worktree: nothing in it makes the host run a command,
read a rewritten history or commit a huge file (real git, real repositories)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from harness.sandbox.workspace import Workspace
from harness.verify.guards import HOST_GIT_REFUSED, check_guards
from tests.sandbox_fixtures import REPO_FILES, make_repo

TEST = "tests/local_tests/vaes/test_toy_vae_parity.py"
STRICT = REPO_FILES[TEST]
WEAK = "def test_parity():\n    pass\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def plant_traps(repo: Path, worktree: Path, canary: Path, home: Path) -> None:
    """Every way we know for a file to make git run `touch <canary>-<how>`."""
    touch = lambda how: f"touch {canary}-{how}"  # noqa: E731
    # An agent-written nested repository with fsmonitor, a filter and hooks of its own.
    nested = worktree / "vendor" / "x"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "b.txt").write_text("b\n")
    with (nested / ".git" / "config").open("a") as f:
        f.write(f'[core]\n\tfsmonitor = "{touch("nested-fsmonitor")}"\n'
                f'[filter "x"]\n\tclean = "{touch("nested-filter")}; cat"\n')
    (nested / ".gitattributes").write_text("* filter=x\n")
    for hook in ("pre-commit", "post-commit", "post-index-change", "reference-transaction"):
        executable(nested / ".git" / "hooks" / hook, f"#!/bin/sh\n{touch('nested-hook')}\n")
    # A driver the user's own repository config defines, named by an agent-written attributes file.
    git(repo, "config", "filter.x.clean", f"{touch('user-filter')}; cat")
    git(repo, "config", "diff.x.textconv", f"sh -c '{touch('user-textconv')}; cat'")
    (worktree / ".gitattributes").write_text("* filter=x diff=x merge=x\n")
    # Hooks in the user's repository, and config from the user's global/system files.
    for hook in ("pre-commit", "post-commit", "post-index-change", "reference-transaction", "post-checkout"):
        executable(repo / ".git" / "hooks" / hook, f"#!/bin/sh\n{touch('user-hook')}\n")
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(f'[core]\n\tfsmonitor = "{touch("global-fsmonitor")}"\n'
                                     f'[filter "x"]\n\tclean = "{touch("global-filter")}; cat"\n')
    (home / "system.gitconfig").write_text(f'[core]\n\tfsmonitor = "{touch("system-fsmonitor")}"\n')


def canaries(canary: Path) -> list[str]:
    return sorted(p.name for p in canary.parent.glob(f"{canary.name}*"))


@pytest.fixture
def trapped(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "checkout", REPO_FILES)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(home / "system.gitconfig"))
    ws = Workspace.create(repo, "trapped", root=tmp_path / "harness-home")
    canary = tmp_path / "CANARY"
    plant_traps(repo, ws.path, canary, home)
    return repo, ws, canary


def test_the_traps_do_fire_for_plain_git(trapped):
    """The honest baseline: the same tree makes plain host git run the planted commands."""
    repo, ws, canary = trapped
    subprocess.run(["git", "add", "-A"], cwd=ws.path, capture_output=True)
    subprocess.run(["git", "status"], cwd=ws.path / "vendor" / "x", capture_output=True)
    assert canaries(canary), "the planted traps should fire without the hardening"


def test_host_git_runs_nothing_the_worktree_planted(trapped):
    repo, ws, canary = trapped
    (ws.path / "fastvideo" / "models" / "vaes" / "toyvae.py").write_text("class ToyVAE:\n    scale = 1.0\n")
    commit = ws.checkpoint("after traps")
    assert commit is not None
    changed = ws.files_changed()
    ws.diff()
    ws.changed_between(ws.base_commit)
    ws.local_assets()
    ws.file_at_base(TEST)
    findings = check_guards(ws, {"parity_test": TEST}, mode="parity-debug")
    ws.checkpoint("again")
    Workspace.open(repo, "trapped", root=ws.path.parent.parent).diff()
    assert canaries(canary) == []
    # The nested repository is a blocking finding and stays out of the commit.
    assert "fastvideo/models/vaes/toyvae.py" in changed and ".gitattributes" in changed
    assert not [rel for rel in changed if rel.startswith("vendor/")]
    assert "vendor" not in git(repo, "ls-tree", "-r", "--name-only", commit)
    hits = {(f.name, f.path) for f in findings if f.blocking}
    assert (HOST_GIT_REFUSED, "vendor/x") in hits and (HOST_GIT_REFUSED, ".gitattributes") in hits


def test_replace_refs_cannot_rewrite_the_base(tmp_path):
    """`git replace` in the user's repository (what a host-side exploit once did) does not change
    what the harness checks out or reads as the base; the plain reading does change (baseline)."""
    repo = make_repo(tmp_path / "checkout", REPO_FILES)
    weak_blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=WEAK, text=True,
                               capture_output=True, check=True).stdout.strip()
    strict_blob = git(repo, "rev-parse", f"HEAD:{TEST}").strip()
    git(repo, "replace", strict_blob, weak_blob)
    assert git(repo, "show", f"HEAD:{TEST}") == WEAK  # plain git now reads the weakened test
    ws = Workspace.create(repo, "replaced", root=tmp_path / "harness-home")
    assert (ws.path / TEST).read_text() == STRICT
    assert ws.file_at_base(TEST) == STRICT
    assert ws.files_changed() == []


def test_files_over_the_limit_never_reach_the_repository(tmp_path):
    repo = make_repo(tmp_path / "checkout", REPO_FILES)
    ws = Workspace.create(repo, "large", root=tmp_path / "harness-home")
    with open(ws.path / "weights.bin", "wb") as f:
        f.truncate(512 * 1024 * 1024)  # 512 MiB, sparse: fast to make, as large as any for git
    (ws.path / "small.txt").write_text("fine\n")
    before = _object_bytes(repo)
    commit = ws.checkpoint("large file")
    names = git(repo, "ls-tree", "-r", "--name-only", commit).split()
    assert "small.txt" in names and "weights.bin" not in names
    assert _object_bytes(repo) - before < 1024 * 1024
    assert "weights.bin" not in ws.files_changed()
    findings = check_guards(ws, {"parity_test": TEST}, mode="parity-debug")
    (hit,) = [f for f in findings if f.path == "weights.bin"]
    assert hit.blocking and hit.name == HOST_GIT_REFUSED and "512.0 MB is over the 50 MB limit" in hit.detail
    ws.max_file_bytes = 1024 ** 3  # a higher limit takes it (the limit is the only reason)
    assert "weights.bin" in ws.files_changed()


def _object_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / ".git" / "objects").rglob("*") if p.is_file())


def test_ignored_files_are_seen_and_committed(tmp_path):
    repo = make_repo(tmp_path / "checkout", {**REPO_FILES, ".gitignore": "helpers/\n*.secret\n"})
    ws = Workspace.create(repo, "ignored", root=tmp_path / "harness-home")
    (ws.path / "helpers").mkdir()
    (ws.path / "helpers" / "cheat.py").write_text("X = 1\n")
    (ws.path / "fastvideo" / "a.secret").write_text("s\n")
    (ws.path / "fastvideo" / "__pycache__").mkdir()
    (ws.path / "fastvideo" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    os.symlink("/etc/hostname", ws.path / "fastvideo" / "link")
    odd = os.fsencode(str(ws.path / "helpers")) + b"/caf\xe9 tab\there.py"  # not UTF-8, with a tab
    with open(odd, "wb") as f:
        f.write(b"Y = 2\n")
    (ws.path / "helpers" / "new\nline.py").write_text("Z = 3\n")
    changed = ws.files_changed()
    assert [c for c in changed if "caf" not in c and "line" not in c] == [
        "fastvideo/a.secret", "fastvideo/link", "helpers/cheat.py"]
    assert len(changed) == 5
    commit = ws.checkpoint("ignored files")
    assert git(repo, "cat-file", "-p", f"{commit}:fastvideo/link") == "/etc/hostname"
    assert "helpers/cheat.py" in ws.diff()


@pytest.mark.parametrize("how", ["rewritten", "directory", "symlink"])
def test_a_replaced_git_pointer_is_restored_and_blocks(tmp_path, how):
    repo = make_repo(tmp_path / "checkout", REPO_FILES)
    ws = Workspace.create(repo, f"pointer-{how}", root=tmp_path / "harness-home")
    pointer = (ws.path / ".git").read_text()
    canary = tmp_path / "CANARY"
    evil = tmp_path / "evil"
    git(tmp_path, "init", "-q", str(evil))
    with (evil / ".git" / "config").open("a") as f:
        f.write(f'[core]\n\tfsmonitor = "touch {canary}"\n')
    (ws.path / ".git").unlink()
    if how == "rewritten":
        (ws.path / ".git").write_text(f"gitdir: {evil}/.git\n")
    elif how == "directory":
        (evil / ".git").rename(ws.path / ".git")
    else:
        os.symlink(evil / ".git", ws.path / ".git")
    (ws.path / "new.txt").write_text("x\n")
    commit = ws.checkpoint("after the swap")
    assert commit is not None and "new.txt" in git(repo, "ls-tree", "--name-only", commit)
    assert (ws.path / ".git").read_text() == pointer and not canary.exists()
    findings = check_guards(ws, {"parity_test": TEST}, mode="parity-debug")
    assert any(f.name == HOST_GIT_REFUSED and f.path == ".git" and f.blocking for f in findings)


def test_the_eval_report_diff_runs_nothing_the_worktree_planted(trapped):
    from harness.evals.report_attempts import AttemptFiles

    repo, ws, canary = trapped
    home = ws.path.parent.parent
    (home / "runs" / ws.run_id).mkdir(parents=True)
    (ws.path / "README.md").write_text("changed\n")
    diff = AttemptFiles({"run_dir": str(home / "runs" / ws.run_id)}).diff()
    assert "+changed" in diff and "vendor/x" not in diff
    assert canaries(canary) == []
