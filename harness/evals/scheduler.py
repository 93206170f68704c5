"""GPU slot scheduling: at most `max_gpu_tasks` attempts hold GPUs at once.

Each attempt that needs GPUs takes `gpus_per_task` device ids from a shared pool and gives
them back when it ends, so two running attempts never share a device.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class GpuSlots:
    """A counting semaphore over GPU devices, handing out concrete device ids."""

    def __init__(self, gpus_per_task: int, max_gpu_tasks: int, devices: Sequence[int] | None = None) -> None:
        if gpus_per_task < 0 or max_gpu_tasks < 0:
            raise ValueError("gpus_per_task and max_gpu_tasks must be >= 0")
        if gpus_per_task > 0 and max_gpu_tasks == 0:
            raise ValueError("--gpus-per-task needs --max-gpu-tasks >= 1")
        self.gpus_per_task = gpus_per_task
        self.max_gpu_tasks = max_gpu_tasks
        pool = list(devices) if devices is not None else list(range(gpus_per_task * max_gpu_tasks))
        if len(pool) < gpus_per_task * max_gpu_tasks:
            raise ValueError(
                f"{max_gpu_tasks} tasks x {gpus_per_task} GPUs need {gpus_per_task * max_gpu_tasks} devices, "
                f"only {len(pool)} given"
            )
        self._free = pool
        self._running = 0
        self._cond = threading.Condition()
        self.peak = 0  # most attempts that held GPUs at the same time (for tests and logs)

    @property
    def enabled(self) -> bool:
        return self.gpus_per_task > 0

    def acquire(self, timeout: float | None = None) -> tuple[int, ...]:
        """Block until a slot is free; return the device ids it owns (empty when GPUs are off)."""
        if not self.enabled:
            return ()
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._running < self.max_gpu_tasks and len(self._free) >= self.gpus_per_task, timeout
            )
            if not ok:
                raise TimeoutError("no GPU slot became free in time")
            ids = tuple(self._free[: self.gpus_per_task])
            del self._free[: self.gpus_per_task]
            self._running += 1
            self.peak = max(self.peak, self._running)
            return ids

    def release(self, ids: tuple[int, ...]) -> None:
        if not self.enabled:
            return
        with self._cond:
            self._free.extend(ids)
            self._running -= 1
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[tuple[int, ...]]:
        ids = self.acquire()
        try:
            yield ids
        finally:
            self.release(ids)


def gpus_arg(ids: tuple[int, ...]) -> str:
    """The sandbox's `gpus` setting for these device ids ("none" when there are none)."""
    return "device=" + ",".join(str(i) for i in ids) if ids else "none"
