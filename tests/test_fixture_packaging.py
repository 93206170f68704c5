"""The example's data files ship in the wheel, so `harness demo` works from an install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.evals.fixtures.generator import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_fixture_data_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    fixtures = Path("harness/evals/fixtures")
    expected = [fixtures / "data" / p.relative_to(DATA_DIR) for p in DATA_DIR.rglob("*") if p.is_file()]
    expected += [fixtures / "demo" / p.name for p in (DATA_DIR.parent / "demo").iterdir() if p.is_file()]
    missing = [str(p) for p in expected if p.as_posix() not in names]
    assert not missing, missing
    assert "harness/evals/demo.py" in names
