"""pytest for the verdict's trusted process, started and ended with less work than a plain run.

`python -m harness_pytest ARGS` is `python -m pytest ARGS` (same arguments, same exit code),
except for what costs CPU and decides nothing:

- torch (which the harness's plugin imports anyway) is imported before pytest installs its
  assertion-rewriting import hook, which would otherwise look at each of torch's modules;
- the objects that exist then (torch's, the standard library's; nothing of the test's yet)
  are frozen out of the garbage collector, so the collections during the test and pytest's own
  at the end skip them;
- the process ends as soon as pytest returns, without the interpreter's teardown (a second or
  more of CPU with torch imported): pytest has written its report and junit file and run its
  cleanups by then, and Python's and C's buffered output is flushed first.
"""

import ctypes
import gc
import os
import sys

import torch  # noqa: F401

import pytest

if __name__ == "__main__":
    gc.freeze()
    code = int(pytest.main())  # the arguments are sys.argv[1:], as `python -m pytest` takes them
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(code)
