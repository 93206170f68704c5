"""`harness doctor`: the run's preflight alone, in a throwaway worktree, with no model."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.run_config.config import RunConfig, config_problems
from harness.sandbox.preflight import Check, failures, run_preflight


@dataclass
class DoctorReport:
    problems: list[str] = field(default_factory=list)  # invalid input: nothing was checked
    checks: list[Check] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems or failures(self.checks))


def run_doctor(cfg: RunConfig) -> DoctorReport:
    """Validate the input as a run would, then run the preflight in a new sandbox on a
    temporary worktree that is removed afterwards (the checkout keeps no branch)."""
    from harness.run_config.validation import validate_run_input

    cfg.model = "human"  # doctor never calls a model
    packet, problems = validate_run_input(cfg)
    problems = [p for p in problems if not p.startswith("mode:")] if packet is not None else problems
    if problems or packet is None:
        return DoctorReport(problems=problems or list(config_problems(cfg)))
    # Loaded only once the input is good (the sandboxes and the graph's helpers are not needed before).
    from harness.graph.nodes.common import official_ref_dir
    from harness.runs.resources import executor_options
    from harness.sandbox.executors import InfrastructureError, make_executor
    from harness.sandbox.workspace import Workspace
    home = Path(tempfile.mkdtemp(prefix="fastvideo-harness-doctor-"))
    run_id = f"doctor-{secrets.token_hex(3)}"
    ws = None
    executor = None
    report = DoctorReport()
    try:
        ws = Workspace.create(cfg.repo, run_id, official_ref_dir=official_ref_dir(packet, Path(cfg.repo)), root=home)
        executor = make_executor(cfg.sandbox, ws, run_id=run_id, **executor_options(cfg))
        executor.start()
        report.notices += [line for line in (getattr(getattr(executor, "python", None), "notice", ""),
                                             getattr(executor, "notice", "")) if line]
        report.checks = run_preflight(executor, packet, gpus=cfg.gpus, repo=Path(cfg.repo))
    except InfrastructureError as err:
        report.checks = [Check("sandbox", False, str(err), f"fix the {cfg.sandbox} sandbox, or pick another with --sandbox")]
    finally:
        if executor is not None:
            executor.close()
        if ws is not None:
            ws.remove(delete_branch=True)
        shutil.rmtree(home, ignore_errors=True)
    return report
