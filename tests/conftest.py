"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.parallel import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401  (hooks)

# A suite started as a background job inherits SIGINT ignored, and so would every process the
# tests start; the Ctrl-C tests need what a terminal's foreground job has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _sdist_cache() -> Path:
    root = os.environ.get("HARNESS_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "fastvideo-harness" / "sdist"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=harness-tests", "-c", "user.email=tests@harness.invalid",
         "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="session")
def fastvideo_sdist() -> Path:
    """The real FastVideo source tree from its PyPI sdist, as a git repository with one commit.

    Downloaded once with pip, unpacked and committed under the cache dir
    (`$HARNESS_TEST_CACHE`, default `~/.cache/fastvideo-harness/sdist`), reused by later runs.
    Treat it as read-only; clone it when a test needs to write.
    """
    cache = _sdist_cache()
    cache.mkdir(parents=True, exist_ok=True)
    archives = sorted(cache.glob("fastvideo-*.tar.gz"))
    if not archives:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
             "fastvideo", "-d", str(cache)],
            capture_output=True, text=True,
        )
        archives = sorted(cache.glob("fastvideo-*.tar.gz"))
        if result.returncode != 0 or not archives:
            pytest.fail(f"could not download the fastvideo sdist from PyPI:\n{result.stderr[-2000:]}")
    archive = archives[-1]
    tree = cache / archive.name.removesuffix(".tar.gz")
    if (tree / ".git").is_dir():
        return tree
    # Unpack and commit in a scratch dir, then move into place, so a half-made tree is never reused.
    scratch = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        (top,) = [p for p in scratch.iterdir() if p.is_dir()]
        _git(top, "init", "-q")
        _git(top, "add", "-A")
        _git(top, "commit", "-q", "-m", f"{archive.name} as published on PyPI")
        try:
            top.rename(tree)
        except OSError:
            if not (tree / ".git").is_dir():  # someone else finished first is fine; anything else is not
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tree

