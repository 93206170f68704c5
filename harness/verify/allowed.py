"""The paths a component port may change, and what every other change means.

One source for the allowed set: the packet's target files and their bucket folders (the
config export included), the model registry, the local tests README, PORT_STATUS.md, and
the key dumps (written in prototype mode). The clean-room verdict copies only these into the tree it tests; every other
change is a guard finding, blocking when it could change what Python or pytest loads.

The worktree is also listed from disk, so files git never shows (git-ignored helpers,
`__pycache__`, `*.dist-info`) are seen too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from harness.contracts.paths import PATH_WORDS, strip_symbol
from harness.verify.guard_files import MAX_PTH_BYTES, TAMPER_NAMES, allowed_key_dumps, is_text_pth

_TARGET_ROOTS = ("fastvideo/models/", "fastvideo/configs/models/")
# Where a port registers its class (a checkpoint's `_class_name` -> the class): outside the
# buckets, allowed, and recorded for a reviewer (see guards.REGISTRY_CHANGE).
REGISTRY_FILES = ("fastvideo/models/registry.py", "fastvideo/registry.py")
# Suffixes Python can import or execute, and packaging metadata it reads at start-up.
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pth", ".so", ".pyd")
_METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link")
# Byproducts of pytest's cache plugin; never an input (the verdict runs without the plugin).
_HARMLESS_DIRS = frozenset({".pytest_cache"})


def _field(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


@dataclass(frozen=True)
class AllowedPaths:
    """Files and folders (prefixes ending in `/`) the port may change."""

    files: frozenset[str]
    folders: tuple[str, ...]
    parity_test: str | None

    def allows(self, rel: str) -> bool:
        return rel in self.files or any(rel.startswith(folder) for folder in self.folders)


def allowed_paths(packet: Any) -> AllowedPaths:
    """The allowed set for `packet` (a ComponentContext or its JSON)."""
    files: set[str] = set()
    folders: set[str] = set()
    for raw in _field(packet, "fastvideo_target_files") or []:
        rel = PurePosixPath(strip_symbol(str(raw))).as_posix()
        if ".." in rel.split("/"):
            continue
        files.add(rel)
        for root in _TARGET_ROOTS:
            parts = rel[len(root):].split("/") if rel.startswith(root) else []
            if len(parts) >= 2 and parts[0]:
                folders.add(f"{root}{parts[0]}/")  # the bucket: the model, config and export
    for name in ("local_tests_readme", "port_state_file"):
        value = _field(packet, name)
        if isinstance(value, str) and value not in PATH_WORDS:
            files.add(PurePosixPath(value).as_posix())
    files |= allowed_key_dumps(packet)  # written in prototype mode, refreshed later
    files |= set(REGISTRY_FILES)
    test = _field(packet, "parity_test")
    return AllowedPaths(frozenset(files), tuple(sorted(folders)), test if isinstance(test, str) else None)


@dataclass(frozen=True)
class DiskEntry:
    rel: str
    kind: str  # "file", "symlink", "dir" or "other" (fifo, socket, device)


def list_disk(root: Path, skip: Iterable[str] = ()) -> list[DiskEntry]:
    """Every entry under `root` except the top `.git` and the `skip` names at the top (the
    read-only asset mounts); directories only when empty or when their name matters."""
    root = Path(root)
    skip_top = {".git", *skip}
    out: list[DiskEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            rel_dir = ""
        keep = []
        for d in dirnames:
            rel = f"{rel_dir}/{d}" if rel_dir else d
            st = os.lstat(here / d)
            if stat.S_ISLNK(st.st_mode):
                out.append(DiskEntry(rel, "symlink"))
                continue  # os.walk lists a link to a dir as a dir; never follow it
            if d == "__pycache__" or d.endswith(_METADATA_SUFFIXES):
                out.append(DiskEntry(rel, "dir"))
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if not rel_dir and name in skip_top:
                continue  # the worktree's own `.git` pointer file
            rel = f"{rel_dir}/{name}" if rel_dir else name
            mode = os.lstat(here / name).st_mode
            kind = "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode) else "other"
            out.append(DiskEntry(rel, kind))
    return out


def why_blocking(rel: str, kind: str = "file") -> str | None:
    """Why a change at `rel` outside the allowed set could reach the test, or None."""
    path = PurePosixPath(rel)
    if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
        return "bytecode: Python may load it instead of the source"
    if any(part.endswith(_METADATA_SUFFIXES) for part in path.parts):
        return "package metadata: entry points (pytest plugins) and path hooks load from it"
    if path.name in (".gitignore", ".gitattributes"):
        return "git rules: they hide files from review or change how git reads them"
    if path.name in TAMPER_NAMES and path.name not in ("pyproject.toml", "setup.cfg"):
        return "pytest or interpreter configuration"
    if path.suffix in _CODE_SUFFIXES:
        return "code Python can import"
    if kind == "symlink":
        return "a symlink: it can point the tree at anything"
    if kind == "other":
        return "not a regular file"
    return None


def is_bytecode(rel: str) -> bool:
    path = PurePosixPath(rel)
    return "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo")


def asset_mount_names(workspace: Any) -> list[str]:
    """Top-level names that are not the port: where the sandboxes mount read-only assets, and
    the agents' scratch folder (never checkpointed, never copied into the verdict's tree)."""
    from harness.sandbox.workspace import PRIVATE_DIRS

    assets = getattr(workspace, "local_assets", None)
    return [*(name for name, _ in assets()), *sorted(PRIVATE_DIRS)] if callable(assets) else sorted(PRIVATE_DIRS)


def changed_entries(workspace: Any) -> dict[str, str]:
    """Every changed path since the base commit -> its kind on disk ("missing" when deleted):
    git's view (tracked and untracked) plus a disk listing for what git does not show."""
    base_files = set(workspace.files_at_base()) if hasattr(workspace, "files_at_base") else set()
    entries = {e.rel: e.kind for e in list_disk(workspace.path, asset_mount_names(workspace))}
    changed: dict[str, str] = {}
    for rel in workspace.files_changed():
        changed[rel] = entries.get(rel, "missing")
    for rel, kind in entries.items():
        if rel in changed or (rel in base_files and kind == "file"):
            continue
        if kind == "dir" or rel not in base_files:
            changed[rel] = kind
    return changed


def outside_allowed(workspace: Any, packet: Any) -> list[tuple[str, str, str | None]]:
    """(path, kind, why blocking or None) for each change the allowed set does not cover.
    Bytecode is reported even inside the allowed folders; the parity test is left to its
    own guard (the verdict runs its base version)."""
    allowed = allowed_paths(packet)
    out = []
    for rel, kind in sorted(changed_entries(workspace).items()):
        if rel == allowed.parity_test or PurePosixPath(rel).parts[:1] and PurePosixPath(rel).parts[0] in _HARMLESS_DIRS:
            continue
        if allowed.allows(rel) and not is_bytecode(rel) and kind in ("file", "missing"):
            continue
        why = why_blocking(rel, kind) if kind != "missing" or rel.endswith(_CODE_SUFFIXES) else None
        if why and rel.endswith(".pth") and kind == "file" and not _is_path_config(Path(workspace.path) / rel):
            why = None  # a torch checkpoint, not a path-config file
        out.append((rel, kind, why))
    return out


def _is_path_config(path: Path) -> bool:
    return path.stat().st_size <= MAX_PTH_BYTES and is_text_pth(path.read_bytes())
