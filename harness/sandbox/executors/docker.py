"""The docker executor: one container per run, started once and kept warm for every command.

The worktree is mounted at /workspace (its `.git` pointer read-only on top, the user's git
metadata not mounted at all), the official reference dir read-only at /official. No
network unless asked, memory and pids limits, no capabilities, read-only root filesystem
with a private /tmp. Containers carry labels naming their run and the process that owns
them, so `harness sandbox prune` can remove those whose owner died.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from harness.sandbox.executors.base import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    Executor,
    InfrastructureError,
    OutputCap,
    TestAccess,
    watch_tree,
)
from harness.sandbox.executors.limits import (
    DEFAULT_MEMORY,
    DEFAULT_PIDS,
    DEFAULT_SHM_SIZE,
    SANDBOX_UID,
    SandboxLimits,
    parse_size,
)
from harness.sandbox.workspace import Workspace, owner_of

DEFAULT_IMAGE = "fastvideo-harness-sandbox:test"
WORKDIR = "/workspace"
OFFICIAL_DIR = "/official"
HF_CACHE_DIR = "/hf-cache"
LABEL_RUN = "fastvideo-harness.run_id"
LABEL_PID = "fastvideo-harness.owner_pid"
LABEL_START = "fastvideo-harness.owner_start"
LABEL_HOST = "fastvideo-harness.owner_host"
_KILL_GRACE_S = 2  # SIGTERM at the timeout, SIGKILL this much later
_SANDBOX_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_gpus(gpus: str | int | None) -> int | list[str]:
    """`--gpus` read: "none" | "all" | a count N | "device=0,2" -> 0, -1 (all), N or the ids.
    ValueError on anything else. Pure: the run's input check uses it without the docker SDK."""
    text = "none" if gpus is None else str(gpus).strip().lower()
    if text in ("none", "", "0"):
        return 0
    if text == "all":
        return -1
    if text.isdigit():
        return int(text)
    if text.startswith("device="):
        ids = [i.strip() for i in text[len("device="):].split(",") if i.strip()]
        if ids and all(i.isdigit() or i.startswith("gpu-") for i in ids):
            return ids
    raise ValueError(f"invalid --gpus value {gpus!r}: use 'none', 'all', a count such as 2, or 'device=0,1'")


def gpu_device_requests(gpus: str | int | None) -> list[Any]:
    """Docker device requests for `--gpus` (see parse_gpus)."""
    from docker.types import DeviceRequest

    wanted = parse_gpus(gpus)
    if wanted == 0:
        return []
    if isinstance(wanted, list):
        return [DeviceRequest(device_ids=wanted, capabilities=[["gpu"]])]
    return [DeviceRequest(count=wanted, capabilities=[["gpu"]])]


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), to tell pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process named by a container's owner labels still runs (on this host)."""
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    start = process_start_time(pid)
    return start is not None and start == labels.get(LABEL_START)


def _client() -> Any:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types here
        raise InfrastructureError(f"cannot reach the Docker engine: {exc}") from exc
    return client


class DockerExecutor(Executor):
    kind = "docker"

    def __init__(
        self,
        ws: Workspace,
        image: str | None = None,
        gpus: str | int | None = "none",
        network: bool = False,
        run_id: str | None = None,
        memory: str = DEFAULT_MEMORY,
        pids_limit: int = DEFAULT_PIDS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        user: str | None = None,
        limits: SandboxLimits | None = None,
        sandbox_user: str = "auto",
        shm_size: str = DEFAULT_SHM_SIZE,
        access: TestAccess | None = None,
    ) -> None:
        self.ws = ws
        self.image = image or DEFAULT_IMAGE
        self.device_requests = gpu_device_requests(gpus)  # checked now: bad input fails early
        self.network = network
        self.run_id = run_id or ws.run_id
        base_limits = limits or SandboxLimits()
        self.limits = SandboxLimits(pids=pids_limit, memory=memory, file_size=base_limits.file_size,
                                    tmp_size=base_limits.tmp_size)
        self.memory = memory
        self.pids_limit = pids_limit
        self.max_output_bytes = max_output_bytes
        self.shm_size = shm_size
        self.access = access or TestAccess(network=network)
        self.sandbox_user = sandbox_user
        self.user = user or user_for(sandbox_user, ws.path)
        self.notice = ""
        self.name = f"fastvideo-harness-{self.run_id}"
        self._client: Any = None
        self._container: Any = None

    @property
    def workdir(self) -> str:
        return WORKDIR

    @property
    def official_dir(self) -> str | None:
        return OFFICIAL_DIR if self.ws.official_ref_dir else None

    @property
    def hf_cache_dir(self) -> str:
        return HF_CACHE_DIR

    # ----- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Create and start the run's container, or start it again after stop()."""
        import docker.errors

        if self._watch is None:
            self._watch = watch_tree(self.ws)
        client = self._client = self._client or _client()
        if self._container is not None:
            try:
                self._container.reload()
                if self._container.status != "running":
                    self._container.start()
                return
            except docker.errors.NotFound:
                self._container = None
        self._remove_stale(client)
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise InfrastructureError(
                f"docker image {self.image!r} is not on this machine; pull or build it "
                "(scripts/build-sandbox-image.sh builds the test image)"
            ) from None
        try:
            self._container = client.containers.run(self.image, **self._container_config())
        except docker.errors.APIError as exc:
            self._remove_by_name(client)  # created but not started: leave nothing behind
            raise InfrastructureError(f"cannot start the sandbox container {self.name}: {exc}") from exc
        _LIVE[self.name] = self
        _install_exit_cleanup()
        self._probe_image()

    def _probe_image(self) -> None:
        """Check the image's tools and choose the user, once per image and user in this process:
        an image id names fixed contents, so the answer cannot change (two `docker exec`s saved
        on every later container, the verdict's two among them). Only a passing image is kept."""
        key = (str(self._container.attrs.get("Image") or self.image), self.user, self.sandbox_user)
        known = _PROBED.get(key)
        if known is None:
            self._check_tools()
            if self.sandbox_user == "auto":
                self._choose_user()
            known = _PROBED[key] = (self.user, self.notice)
        self.user, self.notice = known

    def _choose_user(self) -> None:
        """`--sandbox-user auto`: the unprivileged user, unless the image's python only runs as
        root (an image that installed its Python under root's home, as FastVideo's does)."""
        check = ["sh", "-c", "python -c 'import sys'"]
        if self._container.exec_run(check, user=self.user).exit_code == 0:
            self.notice = f"docker sandbox: user {self.user}"
            return
        if self._container.exec_run(check, user="0:0").exit_code == 0:
            self.notice = (f"docker sandbox: user root (no capabilities): the image's python does not run "
                           f"as {self.user} (--sandbox-user auto)")
            self.user = "0:0"
            return
        self.notice = f"docker sandbox: user {self.user}; the image's python runs for no user (see harness doctor)"

    def _check_tools(self) -> None:
        """Every command runs under `setsid` and `timeout`; an image without them cannot be used."""
        import docker.errors

        try:
            probe = self._container.exec_run(["sh", "-c", "command -v setsid && command -v timeout"],
                                             user=self.user)
        except docker.errors.APIError as exc:  # no sh at all
            probe = docker.models.containers.ExecResult(126, str(exc).encode())
        if probe.exit_code != 0:
            self.close()
            raise InfrastructureError(
                f"docker image {self.image!r} lacks sh, setsid or timeout (util-linux, coreutils or "
                f"busybox); the sandbox needs them to kill timed-out commands: {probe.output.decode(errors='replace')}"
            )

    def _container_config(self) -> dict[str, Any]:
        from docker.types import Mount

        wt = str(self.ws.path)
        if self._tree_read_only():  # a tree the verdict built: no git pointer, nothing to write
            mounts = [Mount(WORKDIR, wt, type="bind", read_only=True)]
        else:
            mounts = [Mount(WORKDIR, wt, type="bind"),
                      # Agents must not redirect the host's git: the pointer file is read-only.
                      Mount(f"{WORKDIR}/.git", f"{wt}/.git", type="bind", read_only=True)]
        if self.ws.official_ref_dir:
            mounts.append(Mount(OFFICIAL_DIR, str(self.ws.official_ref_dir), type="bind", read_only=True))
        for name, source in self.ws.local_assets():
            mounts.append(Mount(f"{WORKDIR}/{name}", str(source), type="bind", read_only=True))
        for extra in self._extra_mounts():
            mounts.append(Mount(extra.dest, str(extra.source), type="bind", read_only=not extra.writable))
        if self.access.hf_cache:
            mounts.append(Mount(HF_CACHE_DIR, self.access.hf_cache, type="bind", read_only=True))
            for name in ("token", "stored_tokens"):  # a login kept in the cache stays outside
                if (Path(self.access.hf_cache) / name).is_file():
                    mounts.append(Mount(f"{HF_CACHE_DIR}/{name}", "/dev/null", type="bind", read_only=True))
        pid = os.getpid()
        from docker.types import Ulimit

        file_size = self.limits.file_size_bytes
        return dict(
            # The keep-alive process runs as root (no capabilities) so that killing every process
            # of the command's uid after each command leaves the container itself running.
            entrypoint=["sleep", "infinity"], command=[], name=self.name, detach=True, init=True,
            user="0:0", working_dir=WORKDIR, mounts=mounts,
            network_mode="bridge" if self.network else "none",
            mem_limit=self.memory, memswap_limit=self.memory, pids_limit=self.pids_limit,
            shm_size=parse_size(self.shm_size),
            device_requests=self.device_requests, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,size={self.limits.tmp_size_bytes}"},
            ulimits=[Ulimit(name="fsize", soft=file_size, hard=file_size), Ulimit(name="core", soft=0, hard=0)],
            labels={LABEL_RUN: self.run_id, LABEL_PID: str(pid),
                    LABEL_START: process_start_time(pid) or "", LABEL_HOST: socket.gethostname()},
        )

    def _remove_stale(self, client: Any) -> None:
        """A container with our name left by a dead process (e.g. before a resume) is removed."""
        import docker.errors

        try:
            old = client.containers.get(self.name)
        except docker.errors.NotFound:
            return
        if owner_alive(old.labels) and old.labels.get(LABEL_PID) != str(os.getpid()):
            raise InfrastructureError(
                f"run {self.run_id!r} already has a live sandbox container ({self.name}, "
                f"owner pid {old.labels.get(LABEL_PID)})"
            )
        old.remove(force=True)

    def _remove_by_name(self, client: Any) -> None:
        try:
            client.containers.get(self.name).remove(force=True)
        except Exception:  # never created
            pass

    def stop(self) -> None:
        """Stop the container for a pause; start() brings it back."""
        if self._container is not None:
            try:
                self._container.stop(timeout=5)
            except Exception:  # already gone: nothing to stop
                pass

    def close(self) -> None:
        """Remove the container (idempotent)."""
        _LIVE.pop(self.name, None)
        if self._container is not None:
            try:
                self._container.remove(force=True)
            except Exception:  # already gone
                pass
            self._container = None

    # ----- commands -----------------------------------------------------------------

    def _check_alive(self) -> None:
        import docker.errors

        if self._container is None:
            raise InfrastructureError("the docker executor was not started (call start() first)")
        try:
            self._container.reload()
        except docker.errors.NotFound:
            raise InfrastructureError(f"sandbox container {self.name} no longer exists") from None
        except Exception as exc:
            raise InfrastructureError(f"cannot inspect sandbox container {self.name}: {exc}") from exc
        if self._container.status != "running":
            state = self._container.attrs.get("State", {})
            raise InfrastructureError(
                f"sandbox container {self.name} is {self._container.status} "
                f"(exit code {state.get('ExitCode')}, OOMKilled={state.get('OOMKilled')})"
            )

    def _check_alive_after_signal(self, settle_s: float = 1.0) -> None:
        """_check_alive, watching a little while: the engine notes a killed container a bit late."""
        deadline = time.monotonic() + settle_s
        while True:
            self._check_alive()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def run(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None) -> CommandResult:
        """Run `command` via `docker exec`, in its own session, killed (with children) at the timeout."""
        self._check_alive()
        if (self.user == f"{SANDBOX_UID}:{SANDBOX_UID}" and not self._tree_read_only()
                and owner_of(self.ws.path)[0] == 0):
            self.share_worktree()
        base = {"PATH": _SANDBOX_PATH, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        full_env = self.command_env(base, env)
        # setsid: the command gets its own session; timeout: TERM to the command's process
        # group at the deadline, KILL shortly after.
        seconds = str(max(1, math.ceil(timeout_s)))  # whole seconds: busybox timeout wants them
        argv = ["setsid", "-w", "timeout", "-k", str(_KILL_GRACE_S), seconds, "sh", "-c", command]
        if self._kills_leftovers:
            # In the same exec, once the command ended: `kill -9 -1` as the command's uid ends
            # whatever it left behind (a process outliving it could change the tree while the next
            # command, the verdict among them, runs); the shell itself is spared by the kernel.
            argv = ["sh", "-c", '"$@"; code=$?; kill -9 -1 2>/dev/null; exit $code', "sh", *argv]
        api = self._client.api
        started = time.monotonic()
        try:
            exec_id = api.exec_create(self._container.id, argv, environment=full_env,
                                      workdir=WORKDIR, user=self.user)["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
        except Exception as exc:
            self._check_alive()
            raise InfrastructureError(f"docker exec failed in {self.name}: {exc}") from exc
        # Backstop for a wedged `timeout` or a child that left the session and holds the output
        # open: kill every process of the command's uid.
        watchdog = threading.Timer(timeout_s + _KILL_GRACE_S + 10, self.kill_leftovers)
        watchdog.daemon = True
        watchdog.start()
        out, err = OutputCap(self.max_output_bytes), OutputCap(self.max_output_bytes)
        try:
            for chunk_out, chunk_err in stream:
                if chunk_out:
                    out.feed(chunk_out)
                if chunk_err:
                    err.feed(chunk_err)
            code = api.exec_inspect(exec_id).get("ExitCode")
        except KeyboardInterrupt as stop:  # Ctrl-C: the output so far travels with it
            self.kill_leftovers()  # the command itself is still running: end it and its children
            stop.partial_result = CommandResult(  # type: ignore[attr-defined]
                -2, out.text(), err.text(), time.monotonic() - started, False)
            raise
        except Exception as exc:
            self.kill_leftovers()
            self._check_alive()  # raises when the container died under the command
            raise InfrastructureError(f"lost the docker exec in {self.name}: {exc}") from exc
        finally:
            watchdog.cancel()
        duration = time.monotonic() - started
        if code is None or code >= 128:
            self._check_alive_after_signal()  # a signal death may be the container's, not the command's
            code = -1 if code is None else code
        timed_out = duration >= timeout_s and code in (124, 137, -1)
        return CommandResult(code, out.text(), err.text(), duration, timed_out)

    def abort(self) -> None:
        self.kill_leftovers()

    @property
    def _kills_leftovers(self) -> bool:
        return self.user.split(":")[0] not in ("0", "root")  # as root it would take the container down

    def kill_leftovers(self) -> None:
        """Kill every process of the sandbox uid in the container (`kill -9 -1` as that uid: all
        the processes it may signal; the root keep-alive is out of its reach). A command's own
        exec does this when it ends; this separate exec is for Ctrl-C and the watchdog."""
        if not self._kills_leftovers:
            return
        try:
            self._container.exec_run(["sh", "-c", "kill -9 -1 2>/dev/null; true"], user=self.user)
        except Exception:  # container gone: nothing left to kill
            pass


def make_docker_executor(ws: Workspace, *, python: object = None, **options: Any) -> DockerExecutor:
    """The registry's factory: the image's own python runs the tests, so `python` is unused."""
    return DockerExecutor(ws, **options)


def docker_host_problems(image: str | None, repo: Path | None = None, python: str | None = None) -> list[str]:
    """The engine answers a ping and the image is on this machine (nothing is pulled)."""
    import docker
    import docker.errors

    try:
        client: Any = docker.from_env()
        client.ping()
    except Exception as err:  # the SDK raises several unrelated types for an absent engine
        return [f"sandbox: cannot reach the Docker engine ({err}); start dockerd, set DOCKER_HOST, "
                "or choose --sandbox bwrap"]
    tag = image or DEFAULT_IMAGE
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        hint = "scripts/build-sandbox-image.sh builds it" if tag == DEFAULT_IMAGE else f"docker pull {tag}"
        return [f"sandbox: docker image {tag!r} is not on this machine; {hint}, or pass --image"]
    except docker.errors.APIError as err:
        return [f"sandbox: cannot look up docker image {tag!r}: {err}"]
    finally:
        client.close()
    return []


def _default_user(path: Path) -> str:
    """uid:gid owning the worktree, so files written inside stay the user's; never root."""
    uid, gid = owner_of(path)
    if uid == 0:
        return f"{SANDBOX_UID}:{SANDBOX_UID}"
    return f"{uid}:{gid}"


def user_for(sandbox_user: str, path: Path) -> str:
    """`--sandbox-user`: auto (the unprivileged default, checked against the image at start),
    root, or a numeric UID[:GID]."""
    text = str(sandbox_user or "auto").strip().lower()
    if text in ("auto", ""):
        return _default_user(path)
    if text == "root":
        return "0:0"
    uid, _, gid = text.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return f"{uid}:{gid or uid}"
    raise ValueError(f"invalid --sandbox-user {sandbox_user!r}: use auto, root or a numeric UID[:GID]")


# ----- cleanup of this process's containers on exit and Ctrl-C ------------------------

_LIVE: dict[str, DockerExecutor] = {}
_PROBED: dict[tuple[str, str, str], tuple[str, str]] = {}  # (image id, user, --sandbox-user) -> (user, notice)
_cleanup_installed = False


def _close_all() -> None:
    for ex in list(_LIVE.values()):
        ex.close()


def _install_exit_cleanup() -> None:
    """Remove our containers at interpreter exit; make SIGTERM exit normally so that runs too."""
    global _cleanup_installed
    if _cleanup_installed:
        return
    _cleanup_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def prune_containers(dry_run: bool = False, include_live: bool = False) -> list[str]:
    """Remove harness containers whose owner process is gone (all of them with include_live)."""
    client = _client()
    removed = []
    host = socket.gethostname()
    for c in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        if c.labels.get(LABEL_HOST) not in (host, None) and not include_live:
            continue  # another machine's process: we cannot tell whether it lives
        if include_live or not owner_alive(c.labels):
            if not dry_run:
                c.remove(force=True)
            removed.append(c.name)
    return removed


def remove_containers_of(pid: int) -> list[str]:
    """Remove the containers a process of this host owned (an eval worker that died mid-attempt)."""
    client = _client()
    removed = []
    for c in client.containers.list(all=True, filters={"label": [f"{LABEL_PID}={pid}"]}):
        if c.labels.get(LABEL_HOST) in (socket.gethostname(), None):
            c.remove(force=True)
            removed.append(c.name)
    return removed
