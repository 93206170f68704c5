"""Which files changed since a given commit of the run's branch (tracked and untracked)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any


# Byproducts of running the test, never inputs to it.
_BYPRODUCT_PARTS = frozenset({"__pycache__", ".pytest_cache"})


def is_byproduct(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(_BYPRODUCT_PARTS.intersection(path.parts)) or path.suffix in (".pyc", ".pyo")


def changed_since(workspace: Any, commit: str) -> list[str] | None:
    """Paths that differ between `commit` and the worktree as it is now, or None when the
    commit is not known to the repository (through the workspace's hardened host git)."""
    changed = workspace.changed_since(commit)
    return None if changed is None else [rel for rel in changed if not is_byproduct(rel)]
