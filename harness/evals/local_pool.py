"""The local backend: attempts in a pool of processes on this machine, GPU ids from GpuSlots."""

from __future__ import annotations

import os
import platform
import signal
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing import get_context
from typing import Any

from harness.evals.runner import AttemptJob, EvalConfig, ResultSink, infra_error_row, run_attempt
from harness.evals.scheduler import GpuSlots, gpus_arg


CANCEL_GRACE_S = 15.0  # after Ctrl-C, how long attempts get to stop their sandboxes


def _stop(processes: list) -> None:
    """Interrupt the workers (their sandboxes stop their commands), then kill what is left."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + CANCEL_GRACE_S
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0))
        if process.is_alive():
            process.kill()


class LocalPool:
    """At most `--workers` attempts run at once, each in its own spawned process."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.slots = GpuSlots(cfg.gpus_per_task, cfg.max_gpu_tasks)  # bad GPU settings fail here
        self.interrupted = False

    def describe(self) -> dict[str, Any]:
        return {"name": "local", "workers": self.cfg.workers, "host": socket.gethostname(),
                "platform": platform.platform(), "gpu_slots": {"gpus_per_task": self.cfg.gpus_per_task,
                                                              "max_gpu_tasks": self.cfg.max_gpu_tasks}}

    def run(self, jobs: list[AttemptJob], sink: ResultSink) -> int:
        """Run `jobs` until done or the spend cap stops new ones; returns how many started."""
        started = 0
        # Spawned workers: no state inherited from this (threaded) process.
        pool = ProcessPoolExecutor(max_workers=self.cfg.workers, mp_context=get_context("spawn"))
        running: set[Future] = set()
        try:
            for job in jobs:
                while len(running) >= self.cfg.workers:
                    _, running = wait(running, return_when=FIRST_COMPLETED)
                if not sink.may_start():
                    break
                ids = self.slots.acquire()  # blocks while every GPU slot is busy
                if ids:
                    job = replace(job, gpus=gpus_arg(ids))
                sink.started(job)
                future = pool.submit(run_attempt, job, {"backend": "local", "gpu_ids": list(ids)})
                future.add_done_callback(self._finisher(job, ids, sink))
                running.add(future)
                started += 1
            wait(running)
        except BaseException:  # Ctrl-C: stop the workers; finished rows are already written
            self.interrupted = True  # the killed attempts get no row: the next run starts them again
            workers = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            _stop(workers)
            raise
        pool.shutdown(wait=True)
        return started

    def _finisher(self, job: AttemptJob, ids: tuple[int, ...], sink: ResultSink):
        def done(future: Future) -> None:
            self.slots.release(ids)
            if future.cancelled() or self.interrupted:
                return  # stopped by Ctrl-C: no row, the next run starts it again
            exc = future.exception()
            if exc is None:
                sink.record(future.result())
            else:
                sink.record(infra_error_row(job, [f"worker crashed: {type(exc).__name__}: {exc}"],
                                            placement={"backend": "local", "gpu_ids": list(ids)}))
        return done

    def close(self) -> None:
        pass
