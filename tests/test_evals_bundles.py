"""Attempt archives: a directory travels and comes back whole, its paths rewritten to where it
now lives, and an archive cannot write outside the directory it is unpacked into."""

import io
import json
import subprocess
import tarfile

import pytest

from harness.evals.bundles import pack_dir, relocate_tree, unpack_dir


def test_round_trip_keeps_files_links_and_a_working_git_worktree(tmp_path):
    src = tmp_path / "worker" / "attempt"
    repo = src / "repo"
    repo.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=repo, check=True)
    subprocess.run([*git, "worktree", "add", "-q", "-b", "work", str(src / "wt")], cwd=repo, check=True)
    (src / "outcome.json").write_text(json.dumps({"worktree": str(src / "wt"), "repo": str(repo)}))
    (src / "link").symlink_to("outcome.json")

    dest = unpack_dir(pack_dir(src), tmp_path / "driver" / "attempt")
    changed = relocate_tree(dest, str(tmp_path / "worker"), str(tmp_path / "driver"))
    assert changed >= 3  # outcome.json and both git worktree links
    assert json.loads((dest / "outcome.json").read_text())["worktree"] == str(dest / "wt")
    assert (dest / "link").is_symlink() and (dest / "link").read_text() == (dest / "outcome.json").read_text()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=dest / "wt", capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout == ""  # the worktree works where it now lives
    assert str(tmp_path / "worker") not in (dest / "repo" / ".git" / "worktrees" / "wt" / "gitdir").read_text()


def test_an_archive_cannot_write_outside_its_directory(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"pwned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(tarfile.TarError):
        unpack_dir(buf.getvalue(), tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()
