"""File-level guards: pytest configuration tampering and the conversion boundary."""

from __future__ import annotations

import configparser
import os
import tomllib
from pathlib import Path, PurePosixPath
from typing import Iterator

# Files pytest (or the interpreter) reads on its own; any of them can turn a failure into
# a pass without touching the test file.
TAMPER_NAMES = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini",
     "setup.cfg", "pyproject.toml", "sitecustomize.py", "usercustomize.py"}
)
_SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache"})
CONVERSION_ROOTS = ("scripts/checkpoint_conversion/", "converted_weights/")
MAX_PTH_BYTES = 1_000_000


def walk_tamper_candidates(root: Path) -> Iterator[str]:
    """Every file in the worktree that could configure pytest or Python start-up, even
    untracked or git-ignored ones (git diff would not show those)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            if name in TAMPER_NAMES or name.endswith(".pth"):
                yield Path(dirpath, name).relative_to(root).as_posix()


def _pytest_section_of_cfg(text: str) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return text  # unreadable: compare whole files
    if not parser.has_section("tool:pytest"):
        return ""
    return repr(sorted(parser.items("tool:pytest")))


def _pytest_section_of_pyproject(text: str) -> str:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    return repr(data.get("tool", {}).get("pytest"))


def is_text_pth(data: bytes) -> bool:
    """A `.pth` path-config file is text; a torch checkpoint with the same suffix is binary."""
    if b"\x00" in data[:4096] or data[:2] == b"PK":
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def tamper_change(rel: str, base: str | None, now_path: Path) -> str | None:
    """Why this file's change can affect how pytest runs, or None when it cannot."""
    name = PurePosixPath(rel).name
    exists = now_path.is_file()
    if not exists:
        return "deleted" if base is not None and name == "conftest.py" else None
    if name.endswith(".pth"):
        if now_path.stat().st_size > MAX_PTH_BYTES:
            return None  # a checkpoint, not a path-config file; never read it whole
        data = now_path.read_bytes()
        if not is_text_pth(data):
            return None
        return None if base is not None and base.encode() == data else "path-config file added or changed"
    now = now_path.read_text(encoding="utf-8", errors="replace")
    if base == now:
        return None
    if name == "setup.cfg":
        return "[tool:pytest] section changed" if _pytest_section_of_cfg(base or "") != _pytest_section_of_cfg(now) else None
    if name == "pyproject.toml":
        return "[tool.pytest] table changed" if _pytest_section_of_pyproject(base or "") != _pytest_section_of_pyproject(now) else None
    return "added" if base is None else "changed"


def is_conversion_path(rel: str) -> bool:
    return any(rel.startswith(root) for root in CONVERSION_ROOTS)


def allowed_key_dumps(packet: object) -> set[str]:
    """The packet's prototype key-dump paths, when they sit under
    `converted_weights/<family>/_mapping/`: the one conversion-area write allowed."""
    def field(name: str) -> object:  # a ComponentContext or its JSON
        return packet.get(name) if isinstance(packet, dict) else getattr(packet, name, None)

    dumps = field("prototype_key_dumps")
    family = field("model_family") or ""
    allowed: set[str] = set()
    for side in ("official", "fastvideo"):
        value = getattr(dumps, side, None) if dumps is not None and not isinstance(dumps, dict) else (dumps or {}).get(side)
        if not isinstance(value, str):
            continue
        rel = PurePosixPath(value).as_posix()
        if rel.startswith(f"converted_weights/{family}/_mapping/") and ".." not in rel.split("/"):
            allowed.add(rel)
    return allowed
