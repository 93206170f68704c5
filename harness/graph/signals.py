"""SIGTERM handled as Ctrl-C.

systemd, `docker stop`, `timeout` and a CI cancel stop a process with SIGTERM, a person at a
terminal with SIGINT. Both mean "stop now, keep what is done": under `terminate_as_interrupt()`
SIGTERM raises KeyboardInterrupt("SIGTERM") in the main thread, so a run records
`interrupted`, keeps the cut-off pytest log and prints the resume command exactly as for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGTERM_NAME = "SIGTERM"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(SIGTERM_NAME)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt("SIGTERM") (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
