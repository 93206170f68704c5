"""Executors that run each command as a host subprocess: `local` (plain) and `bwrap` (bubblewrap)."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from harness.sandbox.executors.base import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    Executor,
    InfrastructureError,
    TestAccess,
    read_capped,
    watch_tree,
)
from harness.sandbox.interpreter import Interpreter, choose_interpreter, interpreter_dirs
from harness.sandbox.executors.launcher import Launcher, LauncherPool
from harness.sandbox.executors.limits import (
    DEFAULT_MEMORY,
    DEFAULT_PIDS,
    DEFAULT_SHM_SIZE,
    SANDBOX_UID,
    CommandCgroup,
    SandboxLimits,
    parse_size,
    rlimit_prefix,
    rlimits,
)
from harness.sandbox.workspace import Workspace

log = logging.getLogger(__name__)


WAKE_S = 0.25  # how long a wait may block before an exception raised into it is seen


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen, timeout_s: float) -> tuple[int, bool]:
    """(exit code, timed out): sleeps until the process ends or the timeout, woken by the
    kernel through a pidfd (Popen.wait(timeout=...) polls, noticing an end up to 50 ms late);
    at the timeout the whole process group is killed."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): Popen's own polling
        try:
            return proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            return proc.wait(), True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + max(0.0, timeout_s)
        ended = []
        while not ended and (left := deadline - time.monotonic()) > 0:
            # Woken at once by the process's end; the slices only let an exception another
            # thread raises here (Ray's cancel does) in, which a blocked poll would hold back.
            ended = poller.poll(int(min(left, WAKE_S) * 1000) + 1)
    finally:
        os.close(pidfd)
    if not ended:
        _kill_group(proc.pid)
    return proc.wait(), not ended


def _host_path(python: Interpreter) -> str:
    # Commands find the project's python (its venv) first, then the rest.
    return os.pathsep.join([python.bin_dir, os.environ.get("PATH", "/usr/bin:/bin")])


class _ProcessExecutor(Executor):
    """Runs `argv(command)` as a new session; the whole process group dies at the timeout."""

    def __init__(self, ws: Workspace, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
                 python: Interpreter | None = None, access: TestAccess | None = None) -> None:
        self.ws = ws
        self.max_output_bytes = max_output_bytes
        self.python = python or choose_interpreter(None, sys.executable)
        self.access = access or TestAccess()

    @property
    def workdir(self) -> str:
        return str(self.ws.path)

    _proc: subprocess.Popen | None = None

    def abort(self) -> None:
        proc = self._proc
        if proc is not None:
            _kill_group(proc.pid)

    @property
    def official_dir(self) -> str | None:
        return str(self.ws.official_ref_dir) if self.ws.official_ref_dir else None

    def _argv(self, command: str) -> list[str]:
        raise NotImplementedError

    def _home(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        pass

    def run(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> CommandResult:
        base = {"PATH": _host_path(self.python), "HOME": self._home(), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1"}
        full_env = self.command_env(base, env)
        argv = self._argv(command)
        started = time.monotonic()
        proc, out, err = self._spawn(argv, full_env)
        self._proc = proc
        with out, err:
            try:
                code, timed_out = _wait(proc, timeout_s)
            except KeyboardInterrupt as stop:  # Ctrl-C: the output so far travels with it
                _kill_group(proc.pid)
                stop.partial_result = CommandResult(  # type: ignore[attr-defined]
                    proc.wait(), read_capped(out, self.max_output_bytes), read_capped(err, self.max_output_bytes),
                    time.monotonic() - started, False)
                raise
            finally:
                # Nothing a command started may outlive it (background children included).
                _kill_group(proc.pid)
                self._proc = None
            duration = time.monotonic() - started
            return CommandResult(code, read_capped(out, self.max_output_bytes),
                                 read_capped(err, self.max_output_bytes), duration, timed_out)

    def _spawn(self, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, IO[bytes], IO[bytes]]:
        """The command's process (a new session) and the files its stdout and stderr go to."""
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True)
        except OSError as exc:
            out.close()
            err.close()
            raise InfrastructureError(f"cannot start the {self.kind} sandbox: {exc}") from exc
        return proc, out, err


class LocalExecutor(_ProcessExecutor):
    """A plain subprocess in the worktree: no isolation at all, only when asked for."""

    kind = "local"

    def __init__(self, ws: Workspace, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
                 python: Interpreter | None = None, access: TestAccess | None = None) -> None:
        super().__init__(ws, max_output_bytes, python, access)
        self._home_dir: str | None = None

    def _home(self) -> str:
        if self._home_dir is None:
            self._home_dir = tempfile.mkdtemp(prefix="fastvideo-harness-home-")
        return self._home_dir

    def _argv(self, command: str) -> list[str]:
        return ["/bin/sh", "-c", command]

    def close(self) -> None:
        if self._home_dir:
            shutil.rmtree(self._home_dir, ignore_errors=True)
            self._home_dir = None


class BwrapExecutor(_ProcessExecutor):
    """bubblewrap: only system dirs, the interpreter, the worktree, the official dir and the asset
    mounts are visible; private /tmp and pids; no network; an unprivileged uid; resource limits.

    When the harness runs as root, bwrap sets up the mounts as root and `setpriv` then drops to
    SANDBOX_UID with no capabilities (the worktree is shared with that uid's group, as in
    docker); otherwise commands keep the harness's own uid inside a user namespace.
    """

    kind = "bwrap"

    def __init__(self, ws: Workspace, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
                 limits: SandboxLimits | None = None, python: Interpreter | None = None,
                 access: TestAccess | None = None, gpus: bool = False) -> None:
        super().__init__(ws, max_output_bytes, python, access)
        self.limits = limits or SandboxLimits()
        self.gpus = gpus
        self._etc_dir: str | None = None
        self._launchers: LauncherPool | None = None
        self._launcher: Launcher | None = None  # the one the running command was sent to
        self.notice = ""

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def uid(self) -> int:
        return SANDBOX_UID if self._as_root else os.getuid()

    @property
    def workdir(self) -> str:
        """Where commands see the tree: its own path, or where the verdict asks (`mount_at`), so
        that the trusted and the port process see their trees at one path."""
        return str(getattr(self.ws, "mount_at", None) or self.ws.path)

    def start(self) -> None:
        missing = [tool for tool in ("bwrap", "prlimit", *(["setpriv"] if self._as_root else []))
                   if shutil.which(tool) is None]
        if missing:
            raise InfrastructureError(f"the bwrap sandbox needs {', '.join(missing)} (bubblewrap, util-linux); "
                                      "install them or pick another executor")
        if self._etc_dir is None:
            self._etc_dir = _identity_files(self.uid)
        if self._as_root and self._watch is None:
            self._watch = watch_tree(self.ws)
        probe = CommandCgroup.create(self.limits)
        held_by = probe.describe(self.limits) if probe else (
            f"rlimits (processes of uid {self.uid} +{self.limits.pids}, {self.limits.memory} data per process)")
        if probe:
            probe.remove()
        self.notice = (f"bwrap sandbox: uid {self.uid}; pids and memory by {held_by}; "
                       f"files up to {self.limits.file_size}; /tmp {self.limits.tmp_size}")
        log.info(self.notice)

    def close(self) -> None:
        self._etc_dir = None  # the identity files are the process's, removed at its exit
        if self._launchers is not None:
            self._launchers.close()
            self._launchers = None

    def _home(self) -> str:
        return "/tmp"

    def run(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> CommandResult:
        if self._etc_dir is None:
            self.start()
        if self._as_root and not self._tree_read_only():
            self.share_worktree()
        if self._launchers is None:
            self._launchers = LauncherPool(self.limits, lambda: self._tail(with_cgroup=True, rlimits_set=True),
                                           self.workdir, lambda: rlimits(self.limits, self.uid, with_cgroup=True))
        # bwrap already waiting inside the command's own cgroup (launcher.py); None: rlimits hold it.
        self._launcher = self._launchers.take()
        self._cgroup = self._launcher.cgroup if self._launcher else None
        try:
            return super().run(command, timeout_s, env)
        finally:
            self._launchers.after(self._launcher)
            self._launcher, self._cgroup = None, None

    def _spawn(self, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, IO[bytes], IO[bytes]]:
        launcher = self._launcher
        if launcher is not None and launcher.fits(argv):
            try:
                return launcher.launch(argv, env), launcher.out, launcher.err
            except BrokenPipeError:  # the launcher died: a plain start below
                pass
        if launcher is not None:  # without its cgroup, rlimits must hold the command
            launcher.discard()
            self._launcher, self._cgroup = None, None
            argv = self._argv(argv[-1])
        return super()._spawn(argv, env)

    def _argv(self, command: str) -> list[str]:
        host, wt = str(self.ws.path), self.workdir
        read_only = self._tree_read_only()
        mounts = _Mounts()
        for top in _SYSTEM_DIRS:
            path = Path(top)
            if path.is_symlink():
                mounts.add("--symlink", os.readlink(path), top)
            elif path.is_dir():
                mounts.add("--ro-bind", top, top)
        # /tmp first: the interpreter or the worktree may live below it.
        mounts.args += ["--size", str(self.limits.tmp_size_bytes), "--perms", "1777"]
        mounts.add("--tmpfs", None, "/tmp")
        mounts.add("--dev", None, "/dev")
        # bwrap's /dev/shm is root's: a sandbox uid needs its own (torch.distributed, FastVideo's setup).
        mounts.args += ["--size", str(parse_size(DEFAULT_SHM_SIZE)), "--perms", "1777"]
        mounts.add("--tmpfs", None, "/dev/shm")
        mounts.add("--proc", None, "/proc")
        for name in _ETC_FILES:
            if Path("/etc", name).exists():
                mounts.add("--ro-bind", f"/etc/{name}", f"/etc/{name}")
        assert self._etc_dir is not None
        for name in ("passwd", "group"):
            mounts.add("--ro-bind", f"{self._etc_dir}/{name}", f"/etc/{name}")
        for prefix in interpreter_dirs(self.python.path):
            mounts.add("--ro-bind", prefix, prefix)
        if self.access.hf_cache:
            mounts.add("--ro-bind", self.access.hf_cache, self.access.hf_cache)
        mounts.add("--ro-bind" if read_only else "--bind", host, wt)
        if not read_only and os.path.lexists(f"{host}/.git"):
            mounts.add("--ro-bind", f"{host}/.git", f"{wt}/.git")  # the pointer to the host's git dir
        if self.official_dir:
            mounts.add("--ro-bind", self.official_dir, self.official_dir)
        for name, source in self.ws.local_assets():
            mounts.add("--ro-bind", str(source), f"{wt}/{name}")
        for extra in self._extra_mounts():
            mounts.add("--bind" if extra.writable else "--ro-bind", str(extra.source), extra.dest)
        if self.gpus:
            for node in nvidia_device_nodes():
                mounts.add("--dev-bind", node, node)
        argv = ["bwrap", *mounts.args, *_hide_credentials(mounts.bound, self.access.hf_cache)]
        argv += [*([] if self.access.network else ["--unshare-net"]), "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--die-with-parent", "--new-session", "--chdir", wt, "--"]
        argv += self._tail(with_cgroup=self._cgroup is not None, rlimits_set=self._launcher is not None)
        if not self._as_root:
            argv[1:1] = ["--cap-drop", "ALL"]
        argv += ["/bin/sh", "-c", command]
        return argv

    def _tail(self, with_cgroup: bool, rlimits_set: bool = False) -> list[str]:
        """What bwrap runs before the shell: the rlimits (unless set on bwrap already), then (as
        root) the drop to the sandbox uid."""
        tail = [] if rlimits_set else rlimit_prefix(self.limits, self.uid, with_cgroup=with_cgroup)
        if self._as_root:
            # bwrap keeps its capabilities for the mounts; setpriv gives them all up with root.
            tail += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return tail

    _cgroup: CommandCgroup | None = None


class _Mounts:
    """bwrap mount arguments in order, with each mount point's missing parents made first as
    world-readable dirs (bwrap would make them 0700, closed to the unprivileged uid)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self.bound: list[str] = []  # destinations showing host content
        self._made = {"/"}

    def add(self, flag: str, source: str | None, dest: str) -> None:
        for parent in reversed(Path(dest).parents):
            if str(parent) not in self._made:
                self.args += ["--perms", "0755", "--dir", str(parent)]
                self._made.add(str(parent))
        self.args += [flag, *([source] if source is not None else []), dest]
        self._made.add(dest)
        if flag in ("--bind", "--ro-bind", "--dev-bind"):
            self.bound.append(dest)


# What commands need from the host: system dirs, and /etc only for users, locale, time and TLS.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("nsswitch.conf", "hosts", "localtime", "timezone", "locale.alias", "locale.conf",
              "ssl", "ca-certificates", "ca-certificates.conf", "alternatives", "ld.so.cache",
              "ld.so.conf", "ld.so.conf.d", "mime.types", "os-release")


_IDENTITY_DIRS: dict[int, str] = {}


def _identity_files(uid: int) -> str:
    """A private /etc/passwd and /etc/group naming only root and the sandbox user (tools such as
    getpass want a name for their uid; the host's user list stays outside). One folder per uid
    for the whole process, removed when it exits: executors are not always closed."""
    if uid in _IDENTITY_DIRS and Path(_IDENTITY_DIRS[uid], "passwd").is_file():
        return _IDENTITY_DIRS[uid]
    folder = tempfile.mkdtemp(prefix="fastvideo-harness-etc-")
    if not _IDENTITY_DIRS:
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _IDENTITY_DIRS.values()])
    _IDENTITY_DIRS[uid] = folder
    Path(folder, "passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{uid}:sandbox:/tmp:/bin/sh\n")
    Path(folder, "group").write_text(f"root:x:0:\nsandbox:x:{uid}:\n")
    for name in ("passwd", "group"):
        os.chmod(Path(folder, name), 0o644)
    os.chmod(folder, 0o755)
    return folder


def nvidia_device_nodes(dev: Path = Path("/dev")) -> list[str]:
    """The host's NVIDIA device nodes (`--gpus` under bwrap); the driver's libraries come with
    the system folders every bwrap sandbox shows."""
    nodes = sorted(str(p) for p in dev.glob("nvidia*") if not p.is_dir())
    caps = dev / "nvidia-caps"
    if caps.is_dir():
        nodes.append(str(caps))
    return nodes


# Where huggingface_hub keeps a login inside its cache folder: never shown to a sandbox.
HF_CACHE_TOKENS = ("token", "stored_tokens")

# Files and dirs under $HOME that commonly hold tokens: masked if a bound dir would show them.
_CREDENTIAL_PATHS = (".ssh", ".aws", ".azure", ".gnupg", ".config/gcloud", ".config/gh", ".docker",
                     ".kube", ".netrc", ".git-credentials", ".pypirc", ".npmrc", ".gitconfig", ".huggingface",
                     ".cache/huggingface/token", ".cache/huggingface/stored_tokens",
                     ".config/anthropic", ".config/openai")


def _hide_credentials(bound: list[str], hf_cache: str | None = None) -> list[str]:
    """bwrap arguments masking credential files (an empty file) and dirs (an empty tmpfs) that lie
    inside one of the `bound` dirs (e.g. a home dir holding the interpreter, the HF cache)."""
    inside = _credential_paths_inside(tuple(bound), hf_cache, os.environ.get("HOME"), os.environ.get("HF_TOKEN_PATH"))
    args: list[str] = []
    for path in inside:  # looked at on every command: a credential may appear at any time
        if path.is_dir() and not path.is_symlink():
            args += ["--tmpfs", str(path)]
        elif path.is_file() and not path.is_symlink():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


@functools.lru_cache(maxsize=64)
def _credential_paths_inside(bound: tuple[str, ...], hf_cache: str | None, home_env: str | None,
                             hf_token: str | None) -> tuple[Path, ...]:
    """The credential paths that lie inside a bound dir: path arithmetic only, so worked out
    once per set of mounts (an executor's are the same for every command)."""
    homes = {Path.home(), Path(home_env or str(Path.home()))}
    candidates = [home / rel for home in homes for rel in _CREDENTIAL_PATHS]
    candidates += [Path(hf_cache) / name for name in HF_CACHE_TOKENS] if hf_cache else []
    if hf_token:
        candidates.append(Path(hf_token))
    return tuple(path for path in candidates if any(path.is_relative_to(b) for b in bound))


# ----- the registry's factories and host checks (harness.sandbox.registry) ----------------


def make_local_executor(ws: Workspace, *, python: str | os.PathLike[str] | None = None,
                        access: TestAccess | None = None, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
                        **_unused: object) -> LocalExecutor:
    """Not isolated at all: no limits, no network switch, the host's devices."""
    return LocalExecutor(ws, max_output_bytes=max_output_bytes, python=choose_interpreter(ws.repo, python),
                         access=access)


def make_bwrap_executor(ws: Workspace, *, python: str | os.PathLike[str] | None = None,
                        access: TestAccess | None = None, gpus: str | int | None = "none",
                        memory: str = DEFAULT_MEMORY, pids_limit: int = DEFAULT_PIDS,
                        limits: SandboxLimits | None = None, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
                        **_unused: object) -> BwrapExecutor:
    """bwrap takes the resource limits and `gpus=all` (the host's NVIDIA device nodes)."""
    base = limits or SandboxLimits()
    return BwrapExecutor(ws, max_output_bytes=max_output_bytes,
                         limits=SandboxLimits(pids=pids_limit, memory=memory, file_size=base.file_size,
                                              tmp_size=base.tmp_size),
                         python=choose_interpreter(ws.repo, python), access=access,
                         gpus=str(gpus or "none").lower() == "all")


def bwrap_host_problems(image: str | None = None, repo: Path | None = None, python: str | None = None) -> list[str]:
    if shutil.which("bwrap") is None:
        return ["sandbox: bwrap is not installed; install bubblewrap (apt-get install bubblewrap) "
                "or choose --sandbox docker"]
    return []
