"""Executors run shell commands in the run's workspace: `docker`, `bwrap` or `local`.

    ex = make_executor("docker", ws, image=..., gpus="none", network=False, run_id=...)
    ex.start(); ex.run("pytest ...", timeout_s=600) -> CommandResult; ex.stop(); ex.close()
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

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

ExecutorKind = Literal["docker", "bwrap", "local"]
KINDS = ("docker", "bwrap", "local")


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
    access = access or TestAccess(network=network)
    if access.network != network:
        access = replace(access, network=network)
    if kind == "docker":
        from harness.sandbox.executors.docker import DockerExecutor

        return DockerExecutor(ws, image=image, gpus=gpus, network=network, run_id=run_id,
                              memory=memory, pids_limit=pids_limit, access=access, **options)  # type: ignore[arg-type]
    if kind not in KINDS:
        raise ValueError(f"unknown executor {kind!r}: choose one of {', '.join(KINDS)}")
    for docker_only in ("sandbox_user", "shm_size", "user"):
        options.pop(docker_only, None)
    gpu_text = str(gpus or "none").lower()
    if gpu_text not in ("none", "0", "", "all"):
        raise ValueError(f"--gpus {gpus!r} needs the docker executor; {kind} takes all or none")
    from harness.sandbox.executors.process import BwrapExecutor, LocalExecutor
    from harness.sandbox.interpreter import choose_interpreter

    interpreter = choose_interpreter(ws.repo, python)
    if kind == "bwrap":
        limits = options.pop("limits", None) or SandboxLimits()
        limits = SandboxLimits(pids=pids_limit, memory=memory, file_size=limits.file_size,  # type: ignore[union-attr]
                               tmp_size=limits.tmp_size)  # type: ignore[union-attr]
        return BwrapExecutor(ws, limits=limits, python=interpreter, access=access, gpus=gpu_text == "all",
                             **options)  # type: ignore[arg-type]
    options.pop("limits", None)  # local is not isolated: nothing to limit
    return LocalExecutor(ws, python=interpreter, access=access, **options)  # type: ignore[arg-type]


__all__ = ["make_executor", "Executor", "CommandResult", "InfrastructureError", "ExecutorKind",
           "KINDS", "sandbox_env", "is_secret_name", "SandboxLimits", "TestAccess"]
