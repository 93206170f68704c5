"""The run's SQLite checkpointer (one database per run, `thread_id = run_id`), and a lock so
two processes never drive the same run at once."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # imported when a checkpointer opens, so `harness runs` never loads LangGraph
    from langgraph.checkpoint.sqlite import SqliteSaver

CHECKPOINT_DB = "checkpoints.sqlite"


class RunBusyError(RuntimeError):
    """Another process is driving this run right now."""


@contextlib.contextmanager
def open_checkpointer(run_dir: Path) -> Iterator[SqliteSaver]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    # check_same_thread=False: LangGraph may write checkpoints from its worker threads.
    conn = sqlite3.connect(str(Path(run_dir) / CHECKPOINT_DB), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


def thread_config(run_id: str, recursion_limit: int | None = None) -> dict:
    config: dict = {"configurable": {"thread_id": run_id}}
    if recursion_limit is not None:
        config["recursion_limit"] = recursion_limit
    return config


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An advisory lock on the run; the kernel drops it if the process dies (kill -9 included)."""
    path = Path(run_dir) / "run.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"run {Path(run_dir).name} is being driven by another process") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
