"""FastVideo's real Oobleck VAE official-parity test, on CPU, run by `run_parity_test` in the bwrap
sandbox (the run the debug loop sees; the verdict's isolation is not involved): the port as it is
must come out `non_skip_pass`, the port with one seeded numerical bug `debug_red`.

Opt-in (minutes of CPU, a real FastVideo clone): set FASTVIDEO_CHECKOUT to a FastVideo clone with
stable-audio-tools cloned at its root, and FASTVIDEO_PYTHON to the python of a venv
made by `scripts/fastvideo-cpu-env.sh`. Skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from harness.sandbox.executors import make_executor
from harness.sandbox.pytest_runner import run_parity_test
from harness.sandbox.workspace import Workspace
from tests.sandbox_fixtures import bwrap_ok, git, make_repo  # noqa: F401  (bwrap_ok: a fixture)

CHECKOUT = os.environ.get("FASTVIDEO_CHECKOUT", "")
PYTHON = os.environ.get("FASTVIDEO_PYTHON", "")
pytestmark = [
    pytest.mark.real_fastvideo,
    pytest.mark.slow,
    pytest.mark.timeout(2000),  # two real runs of up to 900 s each
    pytest.mark.skipif(not (CHECKOUT and PYTHON), reason="set FASTVIDEO_CHECKOUT and FASTVIDEO_PYTHON"),
]

OFFICIAL = "stable-audio-tools"
TEST_DIR = "tests/local_tests/stable_audio"
GPU_TEST = f"{TEST_DIR}/test_oobleck_vae_official_parity.py"
CPU_TEST = f"{TEST_DIR}/test_oobleck_vae_official_parity_cpu.py"
CUDA_SKIP = '''@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="Oobleck official parity test requires CUDA.",
)
'''
MODEL = "fastvideo/models/vaes/oobleck.py"
SNAKE_EPS = "(beta + 1e-9).reciprocal()"


def cpu_variant(test_text: str) -> str:
    """The same test with its device made CPU, as a user without a GPU would run it."""
    assert test_text.count(CUDA_SKIP) == 1 and test_text.count('torch.device("cuda:0")') == 1
    return test_text.replace(CUDA_SKIP, "").replace('torch.device("cuda:0")', 'torch.device("cpu")')


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A checkout holding FastVideo's package and the CPU test, with the official clone copied,
    git-ignored, to its root (where the test's docstring puts it)."""
    src = Path(CHECKOUT)
    repo = make_repo(tmp_path / "checkout", {
        ".gitignore": f"/{OFFICIAL}\n",
        **{f"{d}/__init__.py": "" for d in ("tests", "tests/local_tests", TEST_DIR)},
        CPU_TEST: cpu_variant((src / GPU_TEST).read_text()),
    })
    shutil.copytree(src / "fastvideo", repo / "fastvideo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(src / OFFICIAL, repo / OFFICIAL, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fastvideo")
    return Workspace.create(repo, f"fv-{time.monotonic_ns() % 10**9}", official_ref_dir=repo / OFFICIAL,
                            root=tmp_path / "harness-home")


def test_real_oobleck_parity_passes_and_a_seeded_bug_is_red(workspace, bwrap_ok, tmp_path):  # noqa: F811
    ex = make_executor("bwrap", workspace, python=PYTHON)
    env = {"PYTHONPATH": f"{workspace.path}:{workspace.path}/{OFFICIAL}"}
    try:
        green = run_parity_test(ex, CPU_TEST, tmp_path / "logs", timeout_s=900, env=env)
        assert green.status == "non_skip_pass", (green.first_failure, green.log_path)
        assert (green.passed, green.failed, green.skipped) == (1, 0, 0)
        assert any(line.startswith("encoder diff max=0.000000e+00") for line in green.comparison_lines)

        model = workspace.path / MODEL
        assert model.read_text().count(SNAKE_EPS) == 1
        model.write_text(model.read_text().replace(SNAKE_EPS, "(beta + 1e-3).reciprocal()"))
        red = run_parity_test(ex, CPU_TEST, tmp_path / "logs", timeout_s=900, env=env)
        assert red.status == "debug_red" and red.failed == 1, red.log_path
        assert "Mismatched elements" in red.first_failure
    finally:
        ex.close()
