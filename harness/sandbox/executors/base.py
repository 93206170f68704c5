"""What every executor shares: the interface, the result, the environment allow-list, output caps."""

from __future__ import annotations

import os
import re
import stat
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.sandbox.executors.limits import SANDBOX_UID

# Only these host variables may reach a sandboxed command; everything else (API keys,
# tokens, cloud credentials) stays outside.
ENV_ALLOW = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)

DEFAULT_MAX_OUTPUT_BYTES = 1_000_000  # per stream; head and tail are kept


class InfrastructureError(RuntimeError):
    """The sandbox itself is broken (engine gone, container dead): the run stops, no retry loop."""


@dataclass(frozen=True)
class Mount:
    """A host folder shown inside a sandbox at `dest` (an absolute path), read-only unless
    `writable`. The verdict uses them for its support files and its channel."""

    source: Path
    dest: str
    writable: bool = False


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def sandbox_env(base: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a sandboxed command: `base`, allowed host vars, then `extra`.

    A name that looks like a credential is refused even when asked for explicitly.
    """
    env = {name: os.environ[name] for name in ENV_ALLOW if name in os.environ}
    env.update(base)
    for name, value in (extra or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"invalid environment variable name {name!r}")
        if is_secret_name(name):
            raise ValueError(
                f"environment variable {name!r} looks like a credential; secrets are never passed into the sandbox"
            )
        env[name] = str(value)
    env.setdefault("LANG", "C.UTF-8")
    return env


def cap_text(data: bytes, limit: int) -> str:
    """Decode `data`, keeping the first and last `limit // 2` bytes when it is longer."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    half = limit // 2
    omitted = len(data) - 2 * half
    return (data[:half].decode("utf-8", "replace") + f"\n[... {omitted} bytes omitted ...]\n"
            + data[-half:].decode("utf-8", "replace"))


def read_capped(f: IO[bytes], limit: int) -> str:
    """Like cap_text, for a file written by a subprocess, without reading all of it."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if size <= limit:
        return f.read().decode("utf-8", "replace")
    half = limit // 2
    head = f.read(half)
    f.seek(size - half)
    tail = f.read(half)
    return (head.decode("utf-8", "replace") + f"\n[... {size - 2 * half} bytes omitted ...]\n"
            + tail.decode("utf-8", "replace"))


class OutputCap:
    """Collects a stream chunk by chunk, keeping at most `limit` bytes (head and tail)."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        return (self.head.decode("utf-8", "replace") + f"\n[... {omitted} bytes omitted ...]\n"
                + self.tail.decode("utf-8", "replace"))


@dataclass(frozen=True)
class TestAccess:
    """What the sandbox lends the project's tests beyond the worktree.

    `pass_env`: token variables (by name) whose host values only the parity test gets, masked
    in its output; `official_env`: more names for the official reference dir besides
    OFFICIAL_REF_DIR (`<FAMILY>_OFFICIAL_REF_DIR`, as FastVideo's tests read it); `hf_cache`: a
    Hugging Face cache folder mounted read-only, named by HF_HOME; `network`: downloads allowed."""

    pass_env: tuple[str, ...] = ()
    official_env: tuple[str, ...] = ()
    hf_cache: str | None = None
    network: bool = False

    def tokens(self) -> dict[str, str]:
        return {name: os.environ[name] for name in self.pass_env if os.environ.get(name)}


def mask_tokens(text: str, tokens: dict[str, str]) -> str:
    """Output never carries a token value: each is replaced by its variable's name."""
    for name, value in tokens.items():
        if len(value) >= 4:
            text = text.replace(value, f"[{name}]")
    return text


def scrub_tokens(root: Path, tokens: dict[str, str], since: float) -> list[str]:
    """A test that wrote a token into the worktree must not get it into a checkpoint: every file
    changed since `since` has each token value replaced by its variable's name. Returns the
    files scrubbed (relative paths)."""
    scrubbed = []
    values = [(name, value.encode()) for name, value in tokens.items() if len(value) >= 4]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.is_symlink() or path.stat().st_mtime < since - 1:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            clean = data
            for var, value in values:
                clean = clean.replace(value, f"[{var}]".encode())
            if clean != data:
                path.write_bytes(clean)
                scrubbed.append(str(path.relative_to(root)))
    return scrubbed


class Executor(ABC):
    """Runs shell commands with the workspace as cwd, inside some sandbox."""

    kind: str = "?"
    access: TestAccess = TestAccess()
    _tokens: dict[str, str] = {}  # set only while run_test runs

    def _tree_read_only(self) -> bool:
        """A tree the harness built for the verdict: mounted read-only, nothing to share or scrub."""
        return bool(getattr(self.ws, "read_only", False))

    def _extra_mounts(self) -> list[Mount]:
        return list(getattr(self.ws, "mounts", ()) or ())

    def run_test(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> CommandResult:
        """`run` for the parity test: the only command that gets the `--pass-env` tokens."""
        tokens = self.access.tokens()
        self._tokens = tokens
        started = time.time()
        try:
            result = self.run(command, timeout_s, env)
        finally:
            self._tokens = {}
            if tokens and not self._tree_read_only():
                scrub_tokens(Path(self.ws.path), tokens, started)
        if not tokens:
            return result
        return CommandResult(result.exit_code, mask_tokens(result.stdout, tokens), mask_tokens(result.stderr, tokens),
                             result.duration_s, result.timed_out)

    _watch: Any = None  # the worktree's TreeWatch, when start() got one

    def share_worktree(self) -> None:
        """Before a command run as the sandbox user on a root-owned worktree: what that user
        must write, group-writable. The first time the whole tree; then, when the tree is
        watched, only what changed since the last command (what host tools wrote)."""
        changed = self._watch.changes("share") if self._watch is not None else None
        share_with_sandbox_group(Path(self.ws.path), only=changed)

    def command_env(self, base: dict[str, str], env: dict[str, str] | None) -> dict[str, str]:
        """The full environment of one command: `base`, where the official reference and the
        HF cache are, the caller's `env` (checked by sandbox_env), then the tokens when the
        parity test runs."""
        where: dict[str, str] = {}
        if self.official_dir:
            for name in ("OFFICIAL_REF_DIR", *self.access.official_env):
                where[name] = self.official_dir
        if self.access.hf_cache:
            where["HF_HOME"] = self.hf_cache_dir
            if not self.access.network:
                where["HF_HUB_OFFLINE"] = "1"  # read the cache; never wait on a hub that cannot answer
        full = sandbox_env({**base, **where}, env)
        full.update(self._tokens)
        return full

    @property
    def hf_cache_dir(self) -> str:
        """Where the `--hf-cache` folder is inside the sandbox."""
        return str(self.access.hf_cache)

    @abstractmethod
    def start(self) -> None:
        """Prepare the sandbox (idempotent); called again on resume after stop()."""

    @abstractmethod
    def run(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> CommandResult:
        """Run `command` with `sh -c` in the workspace; kill it (and its children) at the timeout."""

    def abort(self) -> None:
        """End the command running now (from another thread), with everything it started."""

    def stop(self) -> None:
        """Pause: release what start() took; start() again to resume."""

    def close(self) -> None:
        """End of run: release everything (idempotent)."""
        self.stop()

    @property
    def workdir(self) -> str:
        """The workspace path as commands inside the sandbox see it."""
        raise NotImplementedError

    @property
    def official_dir(self) -> str | None:
        """The official reference dir as commands inside the sandbox see it (read-only)."""
        return None

    def __enter__(self) -> "Executor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def share_with_sandbox_group(root: Path, gid: int = SANDBOX_UID, only: set[str] | None = None) -> None:
    """When the harness runs as root, its worktree files are root's: give them to the sandbox
    user's group, group-writable (directories setgid so new files stay in the group). Git
    tracks only the executable bit, so this changes nothing in the diff. Runs before every
    command because the host-side tools create files as root between commands: over the whole
    tree, or over `only` (paths relative to `root`) when a watch tells what changed since."""
    if only is not None:
        for rel in only:
            _share_path(root / rel if rel else root, gid)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [None, *filenames]:
            _share_path(Path(dirpath) if name is None else Path(dirpath) / name, gid)


def _share_path(path: Path, gid: int) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    extra = stat.S_IRGRP | stat.S_IWGRP | (stat.S_IXGRP | stat.S_ISGID if stat.S_ISDIR(st.st_mode) else 0)
    if st.st_gid != gid:
        os.chown(path, -1, gid)
    if (st.st_mode | extra) != st.st_mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) | extra)


def watch_tree(tree: object) -> object | None:
    """The tree's change watch (a Workspace's; a verdict's clean tree has none): executors share
    only what changed with the sandbox group when there is one."""
    watch = getattr(tree, "watch", None)
    return watch() if callable(watch) else None
