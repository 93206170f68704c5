"""Executors run shell commands in the run's workspace, one per sandbox kind (harness.sandbox.registry).

    ex = make_executor("docker", ws, image=..., gpus="none", network=False, run_id=...)
    ex.start(); ex.run("pytest ...", timeout_s=600) -> CommandResult; ex.stop(); ex.close()
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from harness.sandbox.executors.base import (
    CommandResult,
    Executor,
    InfrastructureError,
    TestAccess,
    is_secret_name,
    sandbox_env,
)
from harness.sandbox.executors.limits import DEFAULT_MEMORY, DEFAULT_PIDS, SandboxLimits

if TYPE_CHECKING:  # the CLI imports the limits without GitPython
    from harness.sandbox.workspace import Workspace

ExecutorKind = str  # a name in harness.sandbox.registry


def make_executor(
    kind: str,
    ws: Workspace,
    image: str | None = None,
    gpus: str | int | None = "none",
    network: bool = False,
    run_id: str | None = None,
    memory: str = DEFAULT_MEMORY,
    pids_limit: int = DEFAULT_PIDS,
    python: str | os.PathLike[str] | None = None,
    access: TestAccess | None = None,
    **options: object,
) -> Executor:
    """The executor of `kind` for `ws` (not started yet).

    docker runs the image's own python (`sandbox_user=auto|root|UID`, `shm_size`); bwrap and
    local run `python` (default: the checkout's `.venv`, else the harness's own). docker and
    bwrap enforce the resource limits (`limits=SandboxLimits(...)` for file and /tmp sizes);
    docker takes GPU counts and ids, bwrap `all` (the host's NVIDIA device nodes); local is
    not isolated at all, so it has no network switch.
    """
    from harness.sandbox.registry import get_sandbox, sandbox_names

    try:
        spec = get_sandbox(kind)
    except ValueError:
        raise ValueError(f"unknown executor {kind!r}: choose one of {', '.join(sandbox_names())}") from None
    access = access or TestAccess(network=network)
    if access.network != network:
        access = replace(access, network=network)
    gpu_text = str(gpus or "none").lower()
    if not spec.gpu_counts and gpu_text not in ("none", "0", "", "all"):
        pinning = " or ".join(n for n in sandbox_names() if get_sandbox(n).gpu_counts)
        raise ValueError(f"--gpus {gpus!r} needs the {pinning} executor; {kind} takes all or none")
    return spec.factory()(ws, image=image, gpus=gpus, network=network, run_id=run_id, memory=memory,
                          pids_limit=pids_limit, python=python, access=access, **options)


__all__ = ["make_executor", "Executor", "CommandResult", "InfrastructureError", "ExecutorKind",
           "sandbox_env", "is_secret_name", "SandboxLimits", "TestAccess"]
