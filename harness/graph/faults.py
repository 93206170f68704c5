"""Infrastructure faults: the environment's stops, never the run's verdict.

A model provider that stays down through the retry policy (`harness.agents.models.retry`,
the only place anything is retried), a refused or missing API key, a sandbox container removed
under a command, a Docker engine gone, a full disk: none of these says anything about the
port. The run stops *suspended* (exit code 5) with the reason and the command to continue;
every committed step stays (the checkpoint before the node, the agent's conversation so far,
the commits on the run's branch), and `harness resume RUN` continues from where the fault hit
once the cause is gone.
"""

from __future__ import annotations

import errno
import sqlite3

SUSPENDED_EXIT_CODE = 5
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class RunFault(RuntimeError):
    """Raised by a node to stop the run resumable; the message is the reason."""


def fault_reason(exc: BaseException) -> str | None:
    """The reason when `exc` is an infrastructure fault, else None (an internal error)."""
    from harness.agents.models.base import ModelError
    from harness.sandbox.executors.base import InfrastructureError

    if isinstance(exc, RunFault):
        return str(exc)
    if isinstance(exc, InfrastructureError):
        return f"sandbox: {exc}"
    if isinstance(exc, ModelError) and exc.resumable:
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return f"disk: {exc}"
    if isinstance(exc, sqlite3.OperationalError) and "disk" in str(exc):  # "database or disk is full", "disk I/O error"
        return f"disk: the run's checkpoint database: {exc}"
    return None


def resume_command(run_id: str) -> str:
    return f"harness resume {run_id}"
