"""Which files changed since a given commit of the run's branch (tracked and untracked)."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import git

# Byproducts of running the test, never inputs to it.
_BYPRODUCT_PARTS = frozenset({"__pycache__", ".pytest_cache"})


def is_byproduct(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(_BYPRODUCT_PARTS.intersection(path.parts)) or path.suffix in (".pyc", ".pyo")


def changed_since(workspace: Any, commit: str) -> list[str] | None:
    """Paths that differ between `commit` and the worktree as it is now, or None when the
    commit is not known to the repository."""
    repo = git.Repo(workspace.path)
    try:
        repo.git.rev_parse("--verify", "--quiet", f"{commit}^{{commit}}")
    except git.GitCommandError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        # A scratch index, so the comparison sees untracked files without touching the real one.
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        g = repo.git
        g.execute(["git", "read-tree", commit], env=env)
        g.execute(["git", "add", "-A", "."], env=env)
        out = g.execute(["git", "diff", "--cached", "--name-only", "--no-renames", commit], env=env)
    return sorted(line for line in out.splitlines() if line and not is_byproduct(line))
