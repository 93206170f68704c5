"""Directories as archives, so an attempt can run on a machine that does not share our disk.

A task template, the suite's task files and a scripted model's file travel to a worker as
gzipped tars; the attempt's directory comes back the same way. The paths written inside an
attempt (rows, outcomes, packets, git worktree links) name the worker's scratch directory;
`relocate_tree` rewrites them to where the directory now lives.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

# Text files that hold absolute paths of the attempt (git's worktree links included).
_TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".txt", ".log", ".md", ".toml"}
_GIT_LINK_NAMES = {".git", "gitdir"}


def pack_dir(root: Path) -> bytes:
    """A gzipped tar of everything under `root` (symlinks kept as links)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(str(root), arcname=".")
    return buf.getvalue()


def unpack_dir(data: bytes, dest: Path) -> Path:
    """Unpack an archive from `pack_dir` into `dest` (created); nothing may land outside it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def relocate_tree(root: Path, old: str, new: str) -> int:
    """Replace the absolute path prefix `old` by `new` in the text files under `root` that
    name it; returns how many files changed. Git object stores are left alone."""
    changed = 0
    old_b, new_b = old.encode(), new.encode()
    for path in Path(root).rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        in_git = ".git" in path.parts
        if in_git and "objects" in path.parts:
            continue
        wanted = (path.suffix in _TEXT_SUFFIXES or path.name in _GIT_LINK_NAMES
                  or (in_git and path.name == "config"))  # a clone's origin url
        if not wanted:
            continue
        data = path.read_bytes()
        if old_b in data:
            path.write_bytes(data.replace(old_b, new_b))
            changed += 1
    return changed
