"""The local backend: each attempt in its own process on this machine, at most `--workers` at
once, GPU ids from GpuSlots.

Each attempt's process is forked from a server process (multiprocessing's forkserver) that
imported what every attempt needs once (the graph, LangGraph, the sandboxes, the verdict, the
model SDKs the eval uses): a new process per attempt, without paying those imports per attempt
(seconds, more than a whole attempt's own work when it waits on a model). The server is started
with the pool, while the tasks are prepared; it holds no eval state (it forks before any
attempt is known), and each worker takes the driver's current environment and working directory.

Attempts are isolated. A worker process that dies (killed, out of memory) costs its own
attempt only: that attempt is recorded as an `infra_error` row (a rerun into the same --out
runs it again), the other attempts run on and the queue goes on. What the dead worker left is
removed: its process group and its docker containers (bwrap sandboxes die with their parent;
the `local` sandbox, which isolates nothing, runs a command it started to its end).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import platform
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing import forkserver, get_context
from multiprocessing.connection import wait
from typing import Any

from harness.evals.runner import AttemptJob, EvalConfig, ResultSink, infra_error_row, run_attempt
from harness.evals.scheduler import GpuSlots, gpus_arg

CANCEL_GRACE_S = 15.0  # after Ctrl-C, how long attempts get to stop their sandboxes
PR_SET_PDEATHSIG = 1
# Imported once in the server that forks each attempt's process (what a run imports lazily).
PRELOAD = ("__main__", "harness.evals.runner", "harness.runs.runner", "harness.graph.build",
           "harness.agents.loop", "langgraph.checkpoint.sqlite", "harness.sandbox.workspace",
           "harness.sandbox.executors.process", "harness.sandbox.executors.docker", "harness.sandbox.preflight",
           "harness.verify.verdict", "harness.verify.guards", "harness.contracts")


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: a worker outlives a killed driver, the rest works
        return False


def attempt_context(models: list[str] = ()) -> Any:
    """The multiprocessing context attempts start in: a forkserver that preloads PRELOAD and the
    SDKs of `models`' providers, started now (its imports overlap what the driver does next).
    The server is one per driver process: the first call decides what it preloads."""
    from harness.agents.providers import provider_of

    ctx = get_context("forkserver")
    providers = [found[0] for found in map(provider_of, models) if found is not None]  # baselines have none
    sdks = sorted({p.sdk for p in providers if p.sdk})
    ctx.set_forkserver_preload([*PRELOAD, *sdks])
    forkserver.ensure_running()
    return ctx


def attempt_worker(job: AttemptJob, placement: dict[str, Any], conn: Any, environ: dict[str, str]) -> None:
    """One worker process: its own session (so what it leaves can be killed as a group), stopped
    like Ctrl-C when the driver dies or sends SIGTERM; the row goes back through `conn`."""
    from harness.graph.signals import terminate_as_interrupt

    os.setsid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the server it was forked from died
    _stop_when_driver_dies()
    os.environ.clear()  # the driver's environment now, not the server's when it started
    os.environ.update(environ)
    try:
        with terminate_as_interrupt():
            row = run_attempt(job, placement)
    except KeyboardInterrupt:
        conn.send(("interrupted", None))  # no row: the next run starts it again
    except BaseException as exc:  # noqa: BLE001 - reported as the attempt's infrastructure error
        conn.send(("crashed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"))
    else:
        conn.send(("row", row))
    finally:
        conn.close()


def _stop_when_driver_dies() -> None:
    """SIGTERM this worker (read as Ctrl-C: its sandbox stops) once the driver is gone: the
    driver holds the other end of the parent sentinel, so it reads as end of file."""
    sentinel = multiprocessing.parent_process().sentinel

    def watch() -> None:
        wait([sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


@dataclass
class _Running:
    job: AttemptJob
    ids: tuple[int, ...]
    process: Any
    conn: Any
    thread: threading.Thread | None = None


class LocalPool:
    """At most `--workers` attempts run at once, each in its own process."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.slots = GpuSlots(cfg.gpus_per_task, cfg.max_gpu_tasks)  # bad GPU settings fail here
        self.ctx = attempt_context(cfg.models)
        self.interrupted = False
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": "local", "workers": self.cfg.workers, "host": socket.gethostname(),
                "platform": platform.platform(),
                "isolation": "one process per attempt, forked from a server that preloaded the harness",
                "gpu_slots": {"gpus_per_task": self.cfg.gpus_per_task, "max_gpu_tasks": self.cfg.max_gpu_tasks}}

    def run(self, jobs: list[AttemptJob], sink: ResultSink) -> int:
        """Run `jobs` until done or the spend cap stops new ones; returns how many started."""
        free = threading.Semaphore(self.cfg.workers)
        started = 0
        try:
            for job in jobs:
                free.acquire()
                if not sink.may_start():
                    free.release()
                    break
                ids = self.slots.acquire()  # blocks while every GPU slot is busy
                if ids:
                    job = replace(job, gpus=gpus_arg(ids))
                sink.started(job)
                self._start(job, ids, sink, free)
                started += 1
            for run in list(self._running.values()):
                if run.thread is not None:
                    while run.thread.is_alive():
                        run.thread.join(0.5)  # a timed join lets Ctrl-C in
        except BaseException:  # Ctrl-C or SIGTERM: stop the workers; finished rows are already written
            self.interrupted = True  # the stopped attempts get no row: the next run starts them again
            _stop([r.process for r in list(self._running.values())])
            raise
        return started

    def _start(self, job: AttemptJob, ids: tuple[int, ...], sink: ResultSink, free: Any) -> None:
        placement = {"backend": "local", "gpu_ids": list(ids)}
        receive, send = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=attempt_worker, args=(job, placement, send, dict(os.environ)),
                                   name=f"attempt-{job.attempt}")
        process.start()
        send.close()  # only the worker holds the sending end: its death reads as end of file here
        run = _Running(job, ids, process, receive)
        with self._lock:
            self._running[process.pid] = run
        run.thread = threading.Thread(target=self._watch, args=(run, sink, free), daemon=True)
        run.thread.start()

    def _watch(self, run: _Running, sink: ResultSink, free: Any) -> None:
        """Wait for one worker; record its row, or its death as the attempt's infra_error."""
        try:
            try:
                kind, payload = run.conn.recv()
            except (EOFError, OSError):
                kind, payload = "died", None
            run.process.join()
            if self.interrupted or kind == "interrupted":
                return
            where = {"backend": "local", "gpu_ids": list(run.ids), "pid": run.process.pid}
            if kind == "row":
                sink.record(payload)
            elif kind == "crashed":
                sink.record(infra_error_row(run.job, [f"worker crashed: {payload}"], placement=where))
            else:
                self._bury(run)
                sink.record(infra_error_row(run.job, [f"the worker process died mid-attempt ({_how(run.process)}); "
                                                      "a rerun into the same --out runs it again"], placement=where))
        finally:
            run.conn.close()
            with self._lock:
                self._running.pop(run.process.pid, None)
            self.slots.release(run.ids)
            free.release()

    def _bury(self, run: _Running) -> None:
        """Remove what a dead worker left: its process group and its sandbox containers."""
        try:
            os.killpg(run.process.pid, signal.SIGKILL)
        except OSError:
            pass  # nothing left in its group
        if run.job.sandbox == "docker":
            from harness.sandbox.executors.docker import remove_containers_of

            try:
                remove_containers_of(run.process.pid)
            except Exception:  # the engine is gone too: `harness sandbox prune` cleans up later
                pass

    def close(self) -> None:
        pass


def _how(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code} without a result"


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
