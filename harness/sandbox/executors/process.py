"""Executors that run each command as a host subprocess: `local` (plain) and `bwrap` (bubblewrap)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.sandbox.executors.base import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    Executor,
    InfrastructureError,
    read_capped,
    sandbox_env,
)
from harness.sandbox.workspace import Workspace


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _host_path() -> str:
    # Commands should find the same python the harness runs with (its venv), then the rest.
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])


class _ProcessExecutor(Executor):
    """Runs `argv(command)` as a new session; the whole process group dies at the timeout."""

    def __init__(self, ws: Workspace, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> None:
        self.ws = ws
        self.max_output_bytes = max_output_bytes

    @property
    def workdir(self) -> str:
        return str(self.ws.path)

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
        base = {"PATH": _host_path(), "HOME": self._home(), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1"}
        if self.official_dir:
            base["OFFICIAL_REF_DIR"] = self.official_dir
        full_env = sandbox_env(base, env)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            try:
                proc = subprocess.Popen(self._argv(command), cwd=self.workdir, env=full_env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True)
            except OSError as exc:
                raise InfrastructureError(f"cannot start the {self.kind} sandbox: {exc}") from exc
            timed_out = False
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                code = proc.wait()
            finally:
                # Nothing a command started may outlive it (background children included).
                _kill_group(proc.pid)
            duration = time.monotonic() - started
            return CommandResult(code, read_capped(out, self.max_output_bytes),
                                 read_capped(err, self.max_output_bytes), duration, timed_out)


class LocalExecutor(_ProcessExecutor):
    """A plain subprocess in the worktree: no isolation at all, only when asked for."""

    kind = "local"

    def __init__(self, ws: Workspace, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> None:
        super().__init__(ws, max_output_bytes)
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
    """bubblewrap: read-only host, writable worktree, private /tmp, no network, own pid namespace."""

    kind = "bwrap"

    def start(self) -> None:
        if shutil.which("bwrap") is None:
            raise InfrastructureError("bubblewrap (bwrap) is not installed; install it or pick another executor")

    def _home(self) -> str:
        return "/tmp"

    def _argv(self, command: str) -> list[str]:
        wt = str(self.ws.path)
        argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--tmpfs", "/tmp",
                # /run holds daemon sockets (docker's among them); a read-only bind would
                # still let the sandbox connect to them.
                "--tmpfs", "/run"]
        argv += _hide_docker_socket()
        argv += _hide_credentials()
        # The harness's own python stays reachable even if it lives under the hidden /tmp.
        for prefix in sorted({sys.prefix, sys.base_prefix}):
            if Path(prefix).is_relative_to("/tmp"):
                argv += ["--ro-bind", prefix, prefix]
        # The user's git metadata: hidden; the worktree's `.git` pointer: read-only.
        gitdir = str(_common_git_dir(self.ws))
        argv += ["--tmpfs", gitdir, "--remount-ro", gitdir]
        argv += ["--bind", wt, wt, "--ro-bind", f"{wt}/.git", f"{wt}/.git"]
        if self.official_dir:
            argv += ["--ro-bind", self.official_dir, self.official_dir]
        for name, source in self.ws.local_assets():
            argv += ["--ro-bind", str(source), f"{wt}/{name}"]
        argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                 "--chdir", wt, "--", "/bin/sh", "-c", command]
        return argv


def _common_git_dir(ws: Workspace) -> Path:
    import git

    return Path(git.Repo(ws.repo).common_dir).resolve()


# Files and dirs under $HOME that commonly hold tokens; the read-only host view must not show them.
_CREDENTIAL_PATHS = (".ssh", ".aws", ".azure", ".gnupg", ".config/gcloud", ".config/gh", ".docker",
                     ".kube", ".netrc", ".git-credentials", ".pypirc", ".huggingface",
                     ".cache/huggingface/token", ".cache/huggingface/stored_tokens",
                     ".config/anthropic", ".config/openai")


def _hide_credentials() -> list[str]:
    """bwrap arguments masking credential files (an empty file) and dirs (an empty tmpfs)."""
    homes = {Path.home(), Path(os.environ.get("HOME", str(Path.home())))}
    args: list[str] = []
    for home in homes:
        for rel in _CREDENTIAL_PATHS:
            path = home / rel
            if path.is_dir() and not path.is_symlink():
                args += ["--tmpfs", str(path)]
            elif path.is_file() and not path.is_symlink():
                args += ["--ro-bind", "/dev/null", str(path)]
    hf_token = os.environ.get("HF_TOKEN_PATH")
    if hf_token and Path(hf_token).is_file():
        args += ["--ro-bind", "/dev/null", hf_token]
    return args


def _hide_docker_socket() -> list[str]:
    """Mask a docker socket that lives outside /run (e.g. DOCKER_HOST=unix:///somewhere)."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        sock = Path(host[len("unix://"):])
        if sock.exists() and not str(sock).startswith(("/run/", "/var/run/")):
            return ["--ro-bind", "/dev/null", str(sock)]
    return []
