"""The Ray backend: each attempt is a Ray task that declares the GPUs, CPUs and memory it needs,
so Ray (not the harness) places it on a node with those free.

Attempts are self-contained: the suite's task files, the prepared task template and a scripted
model's file travel through Ray's object store as archives; the worker unpacks them in its own
scratch directory, runs the attempt exactly as the local pool does (`run_attempt`), and sends
the attempt directory back as an archive. Only this driver writes under `--out`.

A worker or node that dies mid-attempt is re-run up to `worker_retries` times, then recorded as
an `infra_error` row, never left as a gap.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.evals.bundles import pack_dir, relocate_tree, unpack_dir
from harness.evals.runner import AttemptJob, EvalConfig, ResultSink, infra_error_row, model_slug
from harness.evals.tasks import TaskError, suite_dir

WORKER_PREFIX = "harness-attempt-"
PROBE_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
CANCEL_GRACE_S = 15.0  # after Ctrl-C, how long attempts get to stop their sandboxes


@dataclass(frozen=True)
class ShippedAttempt:
    """What a worker is told about one attempt: no path of the driver's machine."""

    task: str
    model: str
    attempt: int
    sandbox: str
    image: str | None
    gpus_per_task: int
    max_debug_rounds: int | None
    price: str | None
    model_file: str | None = None  # the file name of a scripted/replay model, sent alongside
    scratch: str | None = None     # where the worker unpacks (default: its temp dir)
    base_url: str | None = None    # a compatible model server the workers reach (--base-url)
    context_window: int | None = None
    gpus: str = "none"             # every attempt's GPUs when it holds no GPUs of its own
    python: str | None = None      # the project's environment: these paths must exist on every node
    hf_cache: str | None = None
    pass_env: tuple[str, ...] = ()


def attempt_on_worker(spec: ShippedAttempt, suite_tar: bytes, template_tar: bytes,
                      model_bytes: bytes | None, board: Any = None) -> dict[str, Any]:
    """Runs inside a Ray worker: unpack, run the attempt, pack the attempt directory."""
    import ray

    from harness.evals.prepare import Prepared
    from harness.evals.runner import run_attempt
    from harness.evals.scheduler import gpus_arg

    if board is not None:  # tell the driver it runs now (until here it waited for resources)
        board.started.remote((spec.task, spec.model, spec.attempt))
    gpu_ids = [int(i) for i in ray.get_gpu_ids()]
    node_id = ray.get_runtime_context().get_node_id()
    _remove_abandoned(Path(spec.scratch or tempfile.gettempdir()), node_id)
    work = Path(tempfile.mkdtemp(prefix=WORKER_PREFIX, dir=spec.scratch)).resolve()
    try:
        placement = {"backend": "ray", "node_id": node_id,
                     "node_ip": ray.util.get_node_ip_address(), "gpu_ids": gpu_ids, "worker_dir": str(work)}
        # Who runs this attempt where, for whoever watches the node (and the worker-death tests).
        facts = work / "worker.json.tmp"
        facts.write_text(json.dumps({"pid": os.getpid(), "task": spec.task, "model": spec.model,
                                     "attempt": spec.attempt, **placement}))
        facts.replace(work / "worker.json")
        unpack_dir(suite_tar, work / "suite")
        template = work / "tasks" / spec.task
        unpack_dir(template_tar, template)
        Prepared.load(template).relocated(template)
        run_model = None
        if model_bytes is not None and spec.model_file:
            model_path = work / "model" / spec.model_file
            model_path.parent.mkdir(parents=True)
            model_path.write_bytes(model_bytes)
            run_model = f"{spec.model.partition(':')[0]}:{model_path}"
        attempt_dir = work / "attempts" / model_slug(spec.model) / spec.task / str(spec.attempt)
        attempt_dir.mkdir(parents=True)
        job = AttemptJob(
            task_dir=str(work / "suite" / spec.task), model=spec.model, attempt=spec.attempt,
            template=str(template), attempt_dir=str(attempt_dir), sandbox=spec.sandbox, image=spec.image,
            gpus=gpus_arg(tuple(gpu_ids)) if spec.gpus_per_task else spec.gpus,
            max_debug_rounds=spec.max_debug_rounds, price=spec.price, run_model=run_model,
            base_url=spec.base_url, context_window=spec.context_window,
            python=spec.python, hf_cache=spec.hf_cache, pass_env=tuple(spec.pass_env),
        )
        row = run_attempt(job, placement)
        return {"row": row, "archive": pack_dir(attempt_dir), "worker_root": str(work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def worker_facts(sandbox: str, image: str | None, python: str | None = None) -> dict[str, Any]:
    """What one node's workers run with: Python, package versions, GPU models, and what is
    wrong with the sandbox there (engine, image, bwrap, pytest)."""
    import subprocess

    from harness.evals.provenance import package_versions
    from harness.run_config.inputs import sandbox_problems

    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        gpu_names = [line.strip() for line in smi.stdout.splitlines() if line.strip()] if smi.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        gpu_names = []
    return {"hostname": socket.gethostname(), "python": sys.version.split()[0], "packages": package_versions(),
            "gpu_names": gpu_names, "sandbox_problems": sandbox_problems(sandbox, image, python=python)}


def _check_reachable(address: str | None) -> None:
    """Ray keeps retrying an address nobody listens on for minutes; a HOST:PORT is tried first."""
    host, sep, port = (address or "").rpartition(":")
    if not sep or not host or not port.isdigit() or "://" in address:
        return  # no address (start one here), "auto", or a ray:// client address: Ray decides
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise TaskError(f"cannot reach the Ray cluster at {address}: {exc}; start it with "
                        "`ray start --head` there, or check --ray-address") from exc


def _remove_abandoned(scratch: Path, node_id: str) -> None:
    """Scratch directories of workers killed mid-attempt on this node (no cleanup ran there).
    Only this node's: a scratch folder shared between nodes holds others' live attempts."""
    for info in scratch.glob(f"{WORKER_PREFIX}*/worker.json"):
        try:
            facts = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        if facts.get("node_id") == node_id and not Path(f"/proc/{facts.get('pid')}").exists():
            shutil.rmtree(info.parent, ignore_errors=True)


class StartBoard:
    """A small actor the workers tell when an attempt really starts, so progress can tell
    running attempts from those Ray holds until resources are free."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str, int]] = []

    def started(self, key: tuple[str, str, int]) -> None:
        self.keys.append(tuple(key))

    def drain(self) -> list[tuple[str, str, int]]:
        keys, self.keys = self.keys, []
        return keys


class RayBackend:
    """Submits attempts as Ray tasks, at most `--workers` in flight; Ray holds those whose
    resources are not free yet."""

    def __init__(self, cfg: EvalConfig) -> None:
        import ray

        self.ray, self.cfg = ray, cfg
        self.started_ray = False
        self.interrupted = False
        if not ray.is_initialized():
            _check_reachable(cfg.ray_address)
            try:
                ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = cfg.ray_address or "a new local instance"
                raise TaskError(f"cannot start or reach the Ray cluster ({where}): {exc}") from exc
            self.started_ray = True
        self._check_capacity()
        self.description = self._describe()
        self._check_sandboxes()

    # --- before anything runs ------------------------------------------------------------

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _need(self) -> dict[str, float]:
        return {"GPU": float(self.cfg.gpus_per_task), "CPU": float(self.cfg.cpus_per_task),
                "memory": self.cfg.memory_per_task_gb * 2**30}

    def _fits(self, node: dict[str, Any]) -> bool:
        return all(node["Resources"].get(k, 0.0) >= v for k, v in self._need().items() if v > 0)

    def _check_capacity(self) -> None:
        """An attempt no node can hold would wait forever: refuse it now."""
        nodes = self._alive_nodes()
        if not any(self._fits(n) for n in nodes):
            have = [{k: n["Resources"].get(k, 0.0) for k in self._need()} for n in nodes]
            raise TaskError(f"no node of the Ray cluster can hold one attempt ({self.cfg.gpus_per_task} GPUs, "
                            f"{self.cfg.cpus_per_task} CPUs, {self.cfg.memory_per_task_gb} GiB); nodes have {have}")

    def describe(self) -> dict[str, Any]:
        return self.description

    def _check_sandboxes(self) -> None:
        """Every node that can hold an attempt must be able to run its sandbox: checked before
        the first attempt, as the local backend checks this machine."""
        problems = [f"node {n['hostname']} ({n['address']}): {p}" for n in self.description["nodes"]
                    if n["can_hold_an_attempt"] for p in n["workers"].get("sandbox_problems", [])]
        if problems:
            raise TaskError("; ".join(problems))

    def _describe(self) -> dict[str, Any]:
        """The cluster for provenance: nodes, their GPUs and GPU types, and what their workers import."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = self._alive_nodes()
        probe = self.ray.remote(worker_facts)
        refs = {n["NodeID"]: probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(self.cfg.sandbox, self.cfg.image, self.cfg.python) for n in nodes}
        ready, _ = self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        described = []
        for node in nodes:
            ref = refs[node["NodeID"]]
            res = node["Resources"]
            described.append({
                "node_id": node["NodeID"], "address": node.get("NodeManagerAddress"),
                "hostname": node.get("NodeManagerHostname"), "cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0),
                "memory_gb": round(res.get("memory", 0.0) / 2**30, 1),
                "gpu_types": sorted(k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")),
                "workers": self.ray.get(ref) if ref in ready else {"error": "no answer from this node's workers"},
                "can_hold_an_attempt": self._fits(node),
            })
        return {"name": "ray", "address": self.cfg.ray_address or "local instance", "ray_version": self.ray.__version__,
                "per_attempt": {"gpus": self.cfg.gpus_per_task, "cpus": self.cfg.cpus_per_task,
                                "memory_gb": self.cfg.memory_per_task_gb},
                "in_flight": self.cfg.workers, "worker_retries": self.cfg.worker_retries, "nodes": described}

    # --- running -------------------------------------------------------------------------

    def run(self, jobs: list[AttemptJob], sink: ResultSink) -> int:
        """Run `jobs` until done or the spend cap stops new ones; returns how many started."""
        ray, cfg = self.ray, self.cfg
        remote = ray.remote(attempt_on_worker).options(
            num_gpus=cfg.gpus_per_task, num_cpus=cfg.cpus_per_task,
            memory=int(cfg.memory_per_task_gb * 2**30) or None,
            max_retries=0,  # worker deaths are retried here, so each one is on record
        )
        board = ray.remote(StartBoard).options(num_cpus=0).remote()
        suite_ref = ray.put(pack_dir(suite_dir(cfg.suite)))
        templates: dict[str, Any] = {}
        model_files = {m: self._model_file(m) for m in cfg.models}
        queue: deque[tuple[AttemptJob, list[dict[str, Any]]]] = deque((job, []) for job in jobs)
        in_flight: dict[Any, tuple[AttemptJob, list[dict[str, Any]]]] = {}
        started = 0
        try:
            while queue or in_flight:
                while queue and len(in_flight) < cfg.workers:
                    job, deaths = queue[0]
                    if not deaths and not sink.may_start():  # a re-run of a dead attempt may always go
                        queue.clear()
                        break
                    queue.popleft()
                    task_id = job.key[0]
                    if task_id not in templates:
                        templates[task_id] = ray.put(pack_dir(Path(job.template)))
                    name, data = model_files[job.model]
                    spec = ShippedAttempt(task=task_id, model=job.model, attempt=job.attempt, sandbox=job.sandbox,
                                          image=job.image, gpus_per_task=cfg.gpus_per_task,
                                          max_debug_rounds=job.max_debug_rounds, price=job.price, model_file=name,
                                          scratch=cfg.worker_dir, base_url=job.base_url,
                                          context_window=job.context_window, gpus=job.gpus, python=job.python,
                                          hf_cache=job.hf_cache, pass_env=job.pass_env)
                    in_flight[remote.remote(spec, suite_ref, templates[task_id], data, board)] = (job, deaths)
                    started += 0 if deaths else 1
                if not in_flight:
                    break
                ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                # Starts first, then every finished result: an attempt that freed the GPUs of one
                # that has just started is then seen to have ended before it, never both running.
                starts = ray.get(board.drain.remote(), timeout=PROBE_TIMEOUT_S)
                done, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                for ref in done:
                    job, deaths = in_flight.pop(ref)
                    self._collect(ref, job, deaths, queue, sink)
                self._report_starts(starts, in_flight, sink)
        except BaseException:  # Ctrl-C: stop the attempts in flight; finished rows are written
            self.interrupted = True
            self._cancel(list(in_flight))
            raise
        finally:
            ray.kill(board)
        return started

    def _report_starts(self, starts: list, in_flight: dict, sink: ResultSink) -> None:
        jobs = {job.key: job for job, _ in in_flight.values()}
        for key in starts:
            if tuple(key) in jobs:  # the word from a run that has already ended is dropped
                sink.started(jobs[tuple(key)])

    def _cancel(self, refs: list[Any]) -> None:
        """Interrupt the attempts (their sandboxes stop their commands), then kill what is left."""
        for ref in refs:
            self.ray.cancel(ref, force=False)
        _, left = self.ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S) if refs else ([], [])
        for ref in left:
            self.ray.cancel(ref, force=True)

    def _model_file(self, model: str) -> tuple[str | None, bytes | None]:
        """A file provider's file (scripted, replay), which must travel with the attempt."""
        from harness.agents.providers import provider_of

        found = provider_of(model)
        if found and found[0].argument == "file":
            return Path(found[1]).name, Path(found[1]).read_bytes()
        return None, None

    def _collect(self, ref: Any, job: AttemptJob, deaths: list[dict[str, Any]], queue: deque, sink: ResultSink) -> None:
        ex = self.ray.exceptions
        try:
            result = self.ray.get(ref)
        except (ex.WorkerCrashedError, ex.NodeDiedError, ex.LocalRayletDiedError, ex.ObjectLostError,
                ex.OwnerDiedError) as exc:
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            deaths = deaths + [{"error_class": "infra_error", "try_dir": None, "at": time.time(),
                                "reasons": [f"the Ray worker or node died mid-attempt ({type(exc).__name__}: {detail})"]}]
            if len(deaths) <= self.cfg.worker_retries:
                queue.appendleft((job, deaths))  # run it again, first in line
                return
            reasons = deaths[-1]["reasons"] + [f"gave up after {len(deaths)} runs (--worker-retries "
                                               f"{self.cfg.worker_retries})"]
            sink.record(infra_error_row(job, reasons, retries=deaths[:-1], placement={"backend": "ray"}))
            return
        except ex.RayTaskError as exc:  # the attempt code itself raised on the worker
            sink.record(infra_error_row(job, [f"attempt crashed on the Ray worker: {str(exc)[:2000]}"],
                                        retries=deaths, placement={"backend": "ray"}))
            return
        sink.record(self._bring_home(result, job, deaths))

    def _bring_home(self, result: dict[str, Any], job: AttemptJob, deaths: list[dict[str, Any]]) -> dict[str, Any]:
        """Unpack the attempt under --out where the local backend would put it, and rewrite the
        worker's paths (in the row and the attempt's files) to the driver's."""
        dest = Path(job.attempt_dir)
        if dest.exists():  # left by an earlier, interrupted run of this attempt
            shutil.rmtree(dest)
        unpack_dir(result["archive"], dest)
        worker_root, out = result["worker_root"], str(self.cfg.out)
        relocate_tree(dest, worker_root, out)
        row = json.loads(json.dumps(result["row"], default=str).replace(worker_root, out))
        row["retries"] = deaths + row.get("retries", [])
        row.setdefault("placement", {})["worker_dir"] = worker_root  # where it ran, not where it lives now
        (dest / "row.json").write_text(json.dumps(row, indent=2, default=str))
        return row

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()

