"""The live objects one run needs (workspace, executor, models, trajectory, log).

They cannot live in the checkpointed state, so the runner hands a `RunResources` to the graph
as its runtime context. Everything is opened lazily, which is what makes `harness resume`
work: a new process reopens the worktree and restarts the executor on first use.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from harness.run_config.config import RunConfig, harness_home, run_dir as run_dir_for

EventSink = Callable[[str, dict[str, Any]], None]


class TimedModel:
    """Wraps a model to add up the seconds spent waiting on it (the "model time" of a node)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.seconds = 0.0

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return self._model.complete(*args, **kwargs)
        finally:
            self.seconds += time.monotonic() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class RunResources:
    def __init__(
        self,
        cfg: RunConfig,
        run_id: str,
        run_dir: Path | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_id = run_id
        self.home = harness_home(cfg.home)
        self.run_dir = Path(run_dir) if run_dir else run_dir_for(run_id, self.home)
        self.events = events
        self._workspace: Any = None
        self._executor: Any = None
        self._executor_started = False
        self._model: Any = None
        # Seconds spent in the model and in tests by the node now running (see harness.graph.nodes.common.timed).
        self.model_s = 0.0
        self.test_s = 0.0
        self.log = _run_logger(run_id, self.run_dir)

    # -- events for the live view ---------------------------------------------------------
    def emit(self, kind: str, **data: Any) -> None:
        self.log.info("%s %s", kind, {k: v for k, v in data.items() if k != "state"})
        if self.events is not None:
            try:
                self.events(kind, data)
            except Exception:  # a broken view must never break the run
                self.log.exception("event sink failed")

    # -- workspace ------------------------------------------------------------------------
    def create_workspace(self, official_ref_dir: Path | None) -> Any:
        """Create the run's worktree, or reopen it when a killed run created it already."""
        from harness.sandbox.workspace import Workspace

        from harness.sandbox.workspace import WorkspaceError

        try:
            self._workspace = Workspace.open(self.cfg.repo, self.run_id, root=self.home)
        except WorkspaceError:
            self._workspace = Workspace.create(
                self.cfg.repo, self.run_id, official_ref_dir=official_ref_dir, root=self.home
            )
        self._workspace.max_file_bytes = _file_limit(self.cfg)
        return self._workspace

    @property
    def workspace(self) -> Any:
        if self._workspace is None:
            from harness.sandbox.workspace import Workspace

            self._workspace = Workspace.open(self.cfg.repo, self.run_id, root=self.home)
            self._workspace.max_file_bytes = _file_limit(self.cfg)
        return self._workspace

    # -- executor -------------------------------------------------------------------------
    def new_executor(self, workspace: Any, run_id: str | None = None) -> Any:
        """A new executor of the run's kind (not started) for `workspace`; the verdict gets
        its own on the clean-room tree."""
        from harness.sandbox.executors import make_executor

        return make_executor(self.cfg.sandbox, workspace,
                             run_id=run_id or getattr(workspace, "run_id", None) or self.run_id,
                             **executor_options(self.cfg))

    @property
    def executor(self) -> Any:
        if self._executor is None:
            self._executor = self.new_executor(self.workspace, self.run_id)
        if not self._executor_started:
            self._executor.start()
            self._executor_started = True
        return self._executor

    def restart_executor(self) -> None:
        """After an infrastructure failure: the next use starts the sandbox again
        (a stopped container is restarted, a removed one recreated)."""
        self._executor_started = False

    # -- model and trajectory -------------------------------------------------------------
    def model(self, state: dict | None = None) -> TimedModel:
        """One model per process. A scripted or replay model serves its turns in order per
        role; in a new process it is put back at the place the state recorded."""
        if self._model is None:
            from harness.agents.models import make_model
            from harness.agents.providers import provider_of

            found = provider_of(self.cfg.model)
            api = found is not None and found[0].api
            self._model = make_model(self.cfg.model, base_url=self.cfg.base_url, price=self.cfg.price,
                                     context_window=self.cfg.context_window,
                                     **({"timeout_s": self.cfg.model_timeout_s} if api else {}))
            served = getattr(self._model, "served", None)
            if isinstance(served, dict):
                served.update((state or {}).get("model_positions") or {})
        return TimedModel(self._model)

    def restore_model_positions(self, positions: dict[str, int]) -> None:
        """Put a scripted/replay model back where a killed process had got to."""
        served = getattr(self._model, "served", None)
        if isinstance(served, dict):
            served.update({str(k): int(v) for k, v in positions.items()})

    def model_positions(self) -> dict[str, int]:
        served = getattr(self._model, "served", None)
        return {str(k): int(v) for k, v in served.items()} if isinstance(served, dict) else {}

    def trajectory(self) -> Any:
        from harness.agents.trajectory import Trajectory

        return Trajectory(self.run_dir / "trajectory.jsonl")

    @property
    def logs_dir(self) -> Path:
        path = self.run_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- end of a process's share of the run ----------------------------------------------
    def pause(self) -> None:
        """Stop the executor for a pause; the next process starts it again."""
        if self._executor is not None and self._executor_started:
            self._executor.stop()
            self._executor_started = False

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
            self._executor_started = False
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)


def _run_logger(run_id: str, run_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"harness.run.{run_id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if run_dir.is_dir() and not log.handlers:
        handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    return log


_OPEN: dict[str, RunResources] = {}


def resources_for(cfg: RunConfig, run_id: str, run_dir: str | Path | None = None) -> RunResources:
    """The resources of a run in this process, made on first use (for callers without a
    runtime context, such as LangGraph's own tools)."""
    if run_id not in _OPEN:
        _OPEN[run_id] = RunResources(cfg, run_id, Path(run_dir) if run_dir else None)
    return _OPEN[run_id]


def _file_limit(cfg: Any) -> int:
    """The checkpoint's per-file limit in bytes (configs saved before the option: the default)."""
    from harness.sandbox.executors.limits import DEFAULT_MAX_FILE_MB

    return int(float(getattr(cfg, "max_file_mb", None) or DEFAULT_MAX_FILE_MB) * 1024 * 1024)


def executor_options(cfg: RunConfig) -> dict[str, Any]:
    """make_executor's options from the run's sandbox settings (one place: runs, doctor, demo)."""
    from harness.sandbox.executors import TestAccess

    options: dict[str, Any] = {
        "gpus": cfg.gpus, "network": cfg.network, "memory": cfg.memory, "pids_limit": cfg.pids_limit,
        "access": TestAccess(pass_env=tuple(cfg.pass_env), official_env=_official_env(cfg),
                             hf_cache=str(Path(cfg.hf_cache).expanduser().resolve()) if cfg.hf_cache else None,
                             network=cfg.network),
    }
    # Every kind's factory takes these and uses what applies to it (the registry's traits).
    options.update(image=cfg.image, python=cfg.python, sandbox_user=cfg.sandbox_user, shm_size=cfg.shm_size)
    return options


def _official_env(cfg: RunConfig) -> tuple[str, ...]:
    """`<FAMILY>_OFFICIAL_REF_DIR`, the name FastVideo's parity tests read the reference from."""
    from harness.contracts import PacketError, load_packet

    try:
        family = load_packet(Path(cfg.packet)).model_family
    except (PacketError, OSError):
        return ()
    return (f"{family.upper()}_OFFICIAL_REF_DIR",)
