"""The README's first command on a fresh machine: a new venv, no bubblewrap, no docker and no
pytest beforehand; `pip install -e '.[example]' && harness demo` ends with the non-skip pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ABSENT = {"bwrap", "docker", "dockerd", "pytest", "py.test"}

# pip installs torch and the rest from the configured index: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def _path_without_sandboxes(bindir: Path) -> str:
    """A PATH like the host's, minus bubblewrap, docker and any pytest."""
    bindir.mkdir()
    for folder in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not Path(folder).is_dir():
            continue
        for tool in Path(folder).iterdir():
            if tool.name not in ABSENT and not (bindir / tool.name).exists():
                (bindir / tool.name).symlink_to(tool)
    return str(bindir)


def test_readme_first_command_on_a_fresh_machine(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HARNESS_HOME")}
    env.update(PATH=f"{venv}/bin:{_path_without_sandboxes(tmp_path / 'bin')}", HARNESS_HOME=str(tmp_path / "home"),
               COLUMNS="200")
    before = subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], env=env, capture_output=True)
    assert before.returncode != 0  # nothing installed yet
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[example]' && harness demo" in readme
    result = subprocess.run("pip install -q -e '.[example]' && harness demo", shell=True, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=3000)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "bubblewrap" in out and "sandbox: local" in out  # the fallback, said out loud
    assert "parity non_skip_pass: 1 passed" in out
    assert "Outcome: completed: non_skip_pass -> phase_6_continue" in out
