"""Which Python runs the project's tests and commands under the bwrap and local sandboxes.

FastVideo's tests need FastVideo's own environment (torch, omegaconf, cloudpickle, ...), not the
harness's. `--python PATH` names it; by default a checkout's `.venv` is used when it has one,
else the harness's own interpreter, with a notice saying so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

_SYSTEM_TOPS = ("/usr", "/bin", "/lib")


@dataclass(frozen=True)
class Interpreter:
    path: Path  # the `python` a command runs (a venv's bin/python keeps the venv active)
    notice: str  # one line for the run log: which interpreter, and why

    @property
    def bin_dir(self) -> str:
        return str(self.path.parent)


def choose_interpreter(repo: Path | None, requested: str | Path | None) -> Interpreter:
    """`requested`, else `<repo>/.venv/bin/python`, else the harness's own Python."""
    if requested:
        path = Path(requested).expanduser()
        return Interpreter(path.absolute(), f"python: {path} (--python)")
    if repo is not None:
        venv = Path(repo).expanduser().absolute() / ".venv" / "bin" / "python"
        if venv.exists():
            return Interpreter(venv, f"python: {venv} (the checkout's .venv)")
    own = Path(sys.executable).absolute()
    return Interpreter(own, (f"python: {own} (the harness's own; the checkout has no .venv - pass "
                             "--python PATH to run tests in the project's environment)"))


def interpreter_problem(python: Path) -> str | None:
    """Why `python` cannot be an interpreter, checked on the host before anything starts."""
    if not python.exists():
        return f"--python {python} does not exist"
    if python.is_dir():
        return f"--python {python} is a directory; name the python executable (e.g. .venv/bin/python)"
    return None


def interpreter_dirs(python: Path) -> list[str]:
    """Folders a sandbox must show for `python` to run: its venv, and the base install the
    venv points at (pyvenv.cfg `home`, or where the executable's symlinks lead), unless they
    are system folders the sandbox shows anyway."""
    python = Path(python)
    candidates = {python.parent.parent, python.resolve().parent.parent}
    cfg = python.parent.parent / "pyvenv.cfg"
    if cfg.is_file():
        for line in cfg.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                home = Path(value.strip())
                candidates |= {home.parent, home.resolve().parent}
    dirs = set()
    for prefix in candidates:
        path = Path(prefix).absolute()
        if path.is_dir() and str(path) != "/" and not any(path.is_relative_to(top) for top in _SYSTEM_TOPS):
            dirs.add(str(path))
    # Keep the outermost of nested prefixes (a venv inside the base install is shown with it).
    return sorted(d for d in dirs if not any(d != o and Path(d).is_relative_to(o) for o in dirs))
