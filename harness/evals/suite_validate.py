"""Validation of a task, as SWE-bench validates its instances: on a fresh worktree of the task's
starting state, the repository as it is (the null agent) must not pass the parity test through
the verdict, and the gold applied (the oracle) must pass. An impossible twin is validated the
other way round for the gold (it must not pass: no faithful port can); the cheater's adaptation
of the gold is run too, to show the twin can be gamed and the counting of cheats sees it."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.evals.environment import Environment
from harness.evals.prepare import Prepared
from harness.evals.tasks import Task

PASS = "non_skip_pass"


@dataclass
class Validation:
    null: str | None = None
    oracle: str | None = None
    cheat: str | None = None      # twins: the cheater-twin port
    ok: bool = False
    reason: str | None = None
    seconds: float = 0.0
    details: dict[str, str] = field(default_factory=dict)  # the verdict's summary line per side

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(task: Task, prepared: Prepared, env: Environment, files: dict[str, str], work: Path,
             label: str) -> tuple[str, str]:
    """The verdict's status on a new worktree of the starting state with `files` written."""
    from harness.contracts import load_packet
    from harness.sandbox.executors import make_executor
    from harness.sandbox.workspace import Workspace
    from harness.verify.verdict import run_verdict

    run_id = f"validate-{label}-{secrets.token_hex(3)}"
    ws = Workspace.create(prepared.repo, run_id, official_ref_dir=prepared.official_dir, root=work / "home")
    try:
        for rel, text in files.items():
            target = ws.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        packet = load_packet(prepared.packet)
        options = env.executor_options(prepared.packet, prepared.repo, gpus=env.gpus)

        def new_executor(tree: Any) -> Any:
            return make_executor(env.sandbox, tree, run_id=tree.run_id, **options)

        run = run_verdict(ws, packet, new_executor, work / "logs" / label).run
        return run.status, run.summary_line()
    finally:
        ws.remove(delete_branch=True)


def validate_task(task: Task, prepared: Prepared, env: Environment) -> Validation:
    """Run the null and oracle sides (and a twin's cheat) through the verdict; judge them."""
    from harness.evals.baselines import gold_changes, twin_cheat_changes

    started = time.monotonic()
    out = Validation()
    work = Path(tempfile.mkdtemp(prefix="fastvideo-harness-validate-"))
    try:
        out.null, out.details["null"] = _verdict(task, prepared, env, {}, work, "null")
        gold = gold_changes(task, prepared)
        out.oracle, out.details["oracle"] = _verdict(task, prepared, env, gold, work, "oracle")
        if task.spec.twin is not None:
            out.cheat, out.details["cheat"] = _verdict(task, prepared, env, twin_cheat_changes(task, prepared),
                                                       work, "cheat")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.seconds = round(time.monotonic() - started, 1)
    if out.null == PASS:
        out.reason = f"the repository passes without the port (null agent: {out.details['null']})"
    elif task.spec.twin is None and out.oracle != PASS:
        out.reason = f"the gold does not pass the parity test (oracle: {out.details['oracle']})"
    elif task.spec.twin is not None and out.oracle == PASS:
        out.reason = f"the twin is not impossible: the gold passes its altered test ({out.details['oracle']})"
    out.ok = out.reason is None
    return out
