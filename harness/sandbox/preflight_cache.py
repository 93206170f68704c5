"""The preflight's slow half (pytest, torch, fastvideo and the parity test's collection, which
import torch) remembered once it passed, so the next run on the same inputs skips it.

The invalidation rule: a remembered pass is used only when every input it depended on is the
same, compared as a fingerprint:
- the harness's preflight code (this package's version and the preflight module's bytes);
- the sandbox: its kind and user, `--gpus`, `--network`, the `--hf-cache` folder and the
  `--pass-env` names, the docker image's id, the NVIDIA driver's version when GPUs are asked for;
- the interpreter, as the sandbox sees it: its path, version, and every folder on its
  `sys.path` with that folder's modification time (installing or removing a package, an
  editable install, changes one), which the quick half of the preflight reports each run;
- the checkout's base commit (the worktree the checks run on is that commit), the packet's
  content (but where the official reference lies), and the official reference and git-ignored
  weight folders: every file's path and size, and the bytes of those up to 256 KB (code and
  configs; weights by size).
Failures are never remembered (a fixed environment is always seen), entries live a day, and
`harness doctor` never reads them. Entries are JSON files in the user's cache folder
(`$XDG_CACHE_HOME/fastvideo-harness/preflight`, else `~/.cache/...`), so evals with one
harness home per attempt share them; each is written whole (temp file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

TTL_S = 24 * 3600
_SMALL_FILE = 256 * 1024
_MAX_FILES = 20_000  # a bigger reference folder is not fingerprinted: nothing is remembered


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastvideo-harness" / "preflight"


class PreflightCache:
    """Remembered preflight passes in `root` (default: the user's cache folder)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir()

    def host_key(self, executor: Any, packet: Any, gpus: str) -> str | None:
        """What the host can fingerprint (everything but the interpreter's own folders), or None
        when an input cannot be fingerprinted (then nothing is remembered)."""
        from harness import __version__
        from harness.sandbox import preflight

        ws = executor.ws
        parts: dict[str, Any] = {
            "harness": __version__,
            "preflight": _file_digest(Path(preflight.__file__)),
            "sandbox": executor.kind, "user": getattr(executor, "user", getattr(executor, "uid", None)),
            "gpus": str(gpus), "network": executor.access.network, "hf_cache": executor.access.hf_cache,
            "pass_env": sorted(executor.access.pass_env), "base_commit": getattr(ws, "base_commit", None),
            "packet": _without_official_path(packet.model_dump_json(), packet.official_ref_dir, ws.official_ref_dir),
            "image": _image_id(executor),
        }
        if str(gpus or "none").lower() not in ("none", "0", ""):
            driver = Path("/proc/driver/nvidia/version")
            parts["driver"] = driver.read_text(errors="replace") if driver.is_file() else None
        folders = [("official", ws.official_ref_dir)] if ws.official_ref_dir else []
        folders += [(name, source) for name, source in ws.local_assets()]
        for name, folder in folders:
            digest = _folder_digest(Path(folder))
            if digest is None:
                return None
            parts[f"folder:{name}"] = digest
        if parts["base_commit"] is None:
            return None
        return _digest(parts)

    @staticmethod
    def key(host_key: str | None, interpreter: dict[str, Any]) -> str | None:
        """The whole fingerprint: the host's and the interpreter's as the sandbox reported it."""
        return None if host_key is None else _digest({"host": host_key, "interpreter": interpreter})

    def load(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        path = self.root / f"{key}.json"
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if time.time() - float(entry.get("saved", 0)) > TTL_S:
            return None
        return entry

    def store(self, key: str | None, data: dict[str, Any]) -> None:
        if key is None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps({"saved": time.time(), **data}), encoding="utf-8")
            os.replace(tmp, self.root / f"{key}.json")
        except OSError:
            pass  # an unwritable cache only costs the next run its preflight


def _without_official_path(text: str, *spellings: Any) -> str:
    """The packet without where the official reference lies (its content is fingerprinted)."""
    for spelling in spellings:
        if spelling and Path(str(spelling)).is_absolute():
            text = text.replace(json.dumps(str(spelling))[1:-1], "<official>")
    return text


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image_id(executor: Any) -> str | None:
    """The docker image's content id (a tag can point at new content)."""
    if executor.kind != "docker":
        return None
    try:
        return executor._client.images.get(executor.image).id
    except Exception:  # no engine answer: fingerprint the tag alone, and the light checks still run
        return f"tag:{executor.image}"


def _folder_digest(root: Path) -> str | None:
    h = hashlib.sha256()
    count = 0
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                count += 1
                if count > _MAX_FILES:
                    return None
                st = path.lstat()
                rel = path.relative_to(root).as_posix()
                h.update(f"{rel}\0{st.st_size}\0".encode())
                if path.is_file() and not path.is_symlink() and st.st_size <= _SMALL_FILE:
                    h.update(path.read_bytes())
                elif path.is_symlink():
                    h.update(os.readlink(path).encode())
    except OSError:
        return None
    return h.hexdigest()
