"""Resource limits of a sandboxed command: one source for the defaults, and the host mechanisms
that enforce them outside docker (a fresh cgroup per command when the host lets us make one,
else rlimits set by `prlimit`)."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PIDS = 512
DEFAULT_MEMORY = "8g"
DEFAULT_FILE_SIZE = "4g"  # the largest single file a command may write
DEFAULT_TMP_SIZE = "4g"  # the private /tmp
DEFAULT_MAX_FILE_MB = 50  # the largest file a checkpoint commits into the user's repository
# docker's own 64m /dev/shm breaks torch DataLoader workers and NCCL; this is docker only.
DEFAULT_SHM_SIZE = "2g"
# Time limits of a run's long waits (--test-timeout, --model-timeout): one parity test run, and
# one model request (a server that hangs is cut there; see agents/models/retry.py).
DEFAULT_TEST_TIMEOUT_S = 900.0
DEFAULT_MODEL_TIMEOUT_S = 600.0
# The unprivileged identity commands run as when the harness itself runs as root.
SANDBOX_UID = 10001

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_size(text: str | int) -> int:
    """Bytes in "8g", "512m", "1.5g", "4096" (docker's spelling, binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(text).lower())
    if not m:
        raise ValueError(f"invalid size {text!r}: use a number with an optional k, m, g or t suffix")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True)
class SandboxLimits:
    pids: int = DEFAULT_PIDS
    memory: str = DEFAULT_MEMORY
    file_size: str = DEFAULT_FILE_SIZE
    tmp_size: str = DEFAULT_TMP_SIZE

    def __post_init__(self) -> None:
        if self.pids < 8:
            raise ValueError(f"pids limit {self.pids} is too small to run a shell and python")
        for size in (self.memory, self.file_size, self.tmp_size):
            parse_size(size)

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)

    @property
    def file_size_bytes(self) -> int:
        return parse_size(self.file_size)

    @property
    def tmp_size_bytes(self) -> int:
        return parse_size(self.tmp_size)


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ("" is the cgroup v2 hierarchy)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


class CommandCgroup:
    """A fresh cgroup for one command: pids and memory limited; every process in it dies at the end.

    `create` returns None when the host does not let this process make one (no cgroup
    filesystem, not writable, or v2 with the controllers not delegated); callers fall back
    to rlimits then.
    """

    def __init__(self, version: int, dirs: list[Path]) -> None:
        self.version = version
        self.dirs = dirs

    @classmethod
    def create(cls, limits: SandboxLimits) -> "CommandCgroup | None":
        try:
            own = _own_cgroups()
        except OSError:
            return None
        name = f"fastvideo-harness-{uuid.uuid4().hex[:12]}"
        if (_CGROUP_ROOT / "cgroup.controllers").is_file():
            return cls._create(2, [("", "pids.max", str(limits.pids)),
                                   ("", "memory.max", str(limits.memory_bytes)),
                                   ("", "memory.swap.max", "0")], own, name)
        return cls._create(1, [("pids", "pids.max", str(limits.pids)),
                               ("memory", "memory.limit_in_bytes", str(limits.memory_bytes)),
                               ("memory", "memory.memsw.limit_in_bytes", str(limits.memory_bytes))], own, name)

    @classmethod
    def _create(cls, version: int, settings: list[tuple[str, str, str]], own: dict[str, str],
                name: str) -> "CommandCgroup | None":
        dirs: dict[str, Path] = {}
        group = cls(version, [])
        try:
            for controller, knob, value in settings:
                if controller not in own:
                    raise OSError(f"no {controller or 'v2'} cgroup")
                if controller not in dirs:
                    mount = _CGROUP_ROOT / controller if controller else _CGROUP_ROOT
                    path = mount / own[controller].lstrip("/") / name
                    path.mkdir()
                    dirs[controller] = path
                    group.dirs.append(path)
                knob_path = dirs[controller] / knob
                if knob == "memory.memsw.limit_in_bytes" and not knob_path.exists():
                    continue  # swap accounting off: the memory limit alone holds
                knob_path.write_text(value)
        except OSError:
            group.remove()
            return None
        return group

    def attach(self, pid: int) -> None:
        """Move process `pid` (not started into anything yet) into this cgroup."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def kill(self) -> None:
        """SIGKILL every process in the cgroup now (remove() also waits for them and the dirs)."""
        for d in self.dirs:
            try:
                pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def describe(self, limits: SandboxLimits) -> str:
        return f"cgroup v{self.version} (pids {limits.pids}, memory {limits.memory})"

    def remove(self) -> None:
        """Kill whatever is left in the cgroup, then remove it (idempotent)."""
        for d in self.dirs:
            for pause in _PAUSES:
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(pause)
        for d in reversed(self.dirs):
            for pause in _PAUSES:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(pause)  # the last killed processes are still being reaped
        self.dirs = []


# Waits while killed processes are reaped: short at first (a command's last process, the pid
# namespace's init, is usually gone within a millisecond), about a second in all.
_PAUSES = (0.001, 0.002, 0.004, 0.008, *([0.02] * 49))


def processes_of(uid: int) -> int:
    """How many processes `uid` owns on this host (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def rlimits(limits: SandboxLimits, uid: int, with_cgroup: bool) -> dict[str, int]:
    """The rlimits of a sandboxed command, by `prlimit` option name: file size and core dumps
    always; processes and memory only when no cgroup holds them (RLIMIT_NPROC counts all of the
    uid's processes on the host, and the memory rlimit is per process, so both are the weaker
    fallback)."""
    values = {"fsize": limits.file_size_bytes, "core": 0}
    if not with_cgroup:
        values.update(nproc=processes_of(uid) + limits.pids, data=limits.memory_bytes)
    return values


def rlimit_prefix(limits: SandboxLimits, uid: int, with_cgroup: bool) -> list[str]:
    """`prlimit` argv prefix setting `rlimits`."""
    return ["prlimit", *(f"--{name}={value}" for name, value in rlimits(limits, uid, with_cgroup).items()), "--"]


def set_rlimits(pid: int, values: dict[str, int]) -> None:
    """Set `rlimits` on a running process (soft and hard), as `prlimit --pid` would."""
    import resource

    for name, value in values.items():
        resource.prlimit(pid, getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))
