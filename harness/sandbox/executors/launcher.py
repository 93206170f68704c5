"""bwrap commands that start inside their own cgroup without waiting to enter it.

Moving a process into a cgroup waits for a kernel grace period (10-20 ms on cgroup v1, about
what bubblewrap itself takes to start). So as soon as a command ends, while the agent thinks,
the executor makes the next command's cgroup and starts bwrap inside it, blocked reading its
options from a pipe (`bwrap --args FD`). `launch` writes the options of the real command (its
mounts, `--clearenv` and `--setenv` for its environment, the command text in one variable)
and closes the pipe; bwrap goes on exactly as if it had been started then, and its fixed tail
(`setpriv ... /bin/sh`) runs the command text as `/bin/sh -c` would. The rlimits are set on
the waiting bwrap itself, so the command inherits them without a `prlimit` hop. A launcher that is never used reads end-of-file and exits; its cgroup is removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Callable

from harness.sandbox.executors.limits import CommandCgroup, SandboxLimits, set_rlimits

COMMAND_VAR = "HARNESS_SANDBOX_COMMAND"
# The shell's script: the variable is gone before the command text runs, as `sh -c` would run it.
_RUN_COMMAND = f'eval "unset {COMMAND_VAR}; ${COMMAND_VAR}"'


class Launcher:
    """bwrap in `cgroup`, waiting on a pipe for the options of the command it becomes."""

    def __init__(self, cgroup: CommandCgroup, tail: list[str], cwd: str, rlimits: dict[str, int]) -> None:
        self.cgroup, self.tail = cgroup, tail
        self.out: IO[bytes] = tempfile.TemporaryFile()
        self.err: IO[bytes] = tempfile.TemporaryFile()
        read_end, self._pipe = os.pipe()
        try:
            argv = [shutil.which("bwrap") or "bwrap", "--args", str(read_end), "--", *tail, "/bin/sh", "-c", _RUN_COMMAND]
            self.proc = subprocess.Popen(argv, pass_fds=(read_end,), cwd=cwd, env={"PATH": os.defpath},
                                         stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                         start_new_session=True)
            set_rlimits(self.proc.pid, rlimits)  # inherited through bwrap by the command (no prlimit hop)
            cgroup.attach(self.proc.pid)
        except BaseException:
            self.discard()
            raise
        finally:
            os.close(read_end)

    def fits(self, argv: list[str]) -> bool:
        """Whether `argv` (a bwrap argv ending in `/bin/sh -c COMMAND`) has this launcher's tail."""
        if argv[:1] != ["bwrap"] or "--" not in argv or argv[-3:-1] != ["/bin/sh", "-c"]:
            return False
        return argv[argv.index("--") + 1:-3] == self.tail and self.proc.poll() is None

    def launch(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Become `argv` with environment `env`; the Popen to wait on. ValueError for a NUL byte
        (as Popen), BrokenPipeError when the launcher died."""
        options = ["--clearenv", *(x for name, value in env.items() for x in ("--setenv", name, value)),
                   "--setenv", COMMAND_VAR, argv[-1], *argv[1:argv.index("--")]]
        if any("\0" in option for option in options):
            raise ValueError("embedded null byte")
        data = b"".join(os.fsencode(option) + b"\0" for option in options)
        with open(self._pipe, "wb", closefd=True) as pipe:
            self._pipe = -1
            pipe.write(data)
        return self.proc

    def discard(self) -> None:
        """End an unused launcher and remove its cgroup (idempotent)."""
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.cgroup.remove()
        self.out.close()
        self.err.close()


class LauncherPool:
    """The next command's launcher, made in the background after each command; the finished
    command's cgroup is removed there too, off the path of the next step."""

    def __init__(self, limits: SandboxLimits, tail: Callable[[], list[str]], cwd: str,
                 rlimits: Callable[[], dict[str, int]]) -> None:
        self.limits, self.tail, self.cwd, self.rlimits = limits, tail, cwd, rlimits
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-launcher")
        self._next: Future[Launcher | None] | None = None

    def take(self) -> Launcher | None:
        """A ready launcher (made now if none is waiting), or None where no cgroup can be made."""
        pending, self._next = self._next, None
        launcher = pending.result() if pending is not None else None
        if launcher is not None and launcher.proc.poll() is None:
            return launcher
        if launcher is not None:
            launcher.discard()
        return self._make()

    def after(self, used: Launcher | None) -> None:
        """A command ended: tidy its cgroup and make the next launcher, both in the background."""
        if used is not None:
            used.cgroup.kill()  # nothing of the command runs on, even for a moment

        def next_launcher() -> Launcher | None:
            if used is not None:
                used.cgroup.remove()
            return self._make()

        self._next = self._worker.submit(next_launcher)

    def close(self) -> None:
        pending, self._next = self._next, None
        launcher = pending.result() if pending is not None else None
        if launcher is not None:
            launcher.discard()
        self._worker.shutdown(wait=True)

    def _make(self) -> Launcher | None:
        cgroup = CommandCgroup.create(self.limits)
        if cgroup is None:
            return None
        try:
            return Launcher(cgroup, self.tail(), self.cwd, self.rlimits())
        except OSError:  # the cgroup would not take the process: the command runs under rlimits
            return None
