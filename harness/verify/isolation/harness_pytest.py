"""pytest for the verdict's trusted process, ended as soon as pytest is done.

`python -m harness_pytest ARGS` is `python -m pytest ARGS` (same arguments, same exit code),
except that the process then ends without the interpreter's teardown: with torch imported,
unwinding every module takes a second or more of CPU, and the verdict waits for it. By then
pytest has written its report and junit file and run its own cleanups; only Python's and C's
buffered output is left, and it is flushed first.
"""

import ctypes
import os
import sys

import pytest

if __name__ == "__main__":
    code = int(pytest.console_main())
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(code)
