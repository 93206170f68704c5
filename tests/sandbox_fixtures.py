"""Fixtures for tests that need a real sandbox: the docker image, bubblewrap, a user checkout.

Import what you need: `from tests.sandbox_fixtures import sandbox_image, bwrap_ok, user_repo`.
When the docker engine, the image or bubblewrap is missing, the tests FAIL under CI
(`CI=true`), where scripts/test.sh installs and starts everything, and skip elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SANDBOX_IMAGE = os.environ.get("HARNESS_SANDBOX_IMAGE", "fastvideo-harness-sandbox:test")
# The sandbox image with Python laid out as in FastVideo's own image (same build script).
FASTVIDEO_LIKE_IMAGE = os.environ.get("HARNESS_FASTVIDEO_LIKE_IMAGE", "fastvideo-harness-sandbox:fastvideo-like")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    """Fail under CI (the environment is broken), skip elsewhere (the machine lacks a tool)."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        unavailable(f"the Docker engine is not reachable ({exc}); start dockerd")
    return client


@pytest.fixture(scope="session")
def sandbox_image(docker_client) -> str:
    """The tag of the test sandbox image (built by scripts/build-sandbox-image.sh)."""
    import docker.errors

    try:
        docker_client.images.get(SANDBOX_IMAGE)
    except docker.errors.ImageNotFound:
        unavailable(f"docker image {SANDBOX_IMAGE} is missing; build it with `bash scripts/build-sandbox-image.sh`")
    return SANDBOX_IMAGE


@pytest.fixture(scope="session")
def fastvideo_like_image(docker_client) -> str:
    """The tag of the FastVideo-layout image (built by scripts/build-sandbox-image.sh)."""
    import docker.errors

    try:
        docker_client.images.get(FASTVIDEO_LIKE_IMAGE)
    except docker.errors.ImageNotFound:
        unavailable(f"docker image {FASTVIDEO_LIKE_IMAGE} is missing; build it with "
                    "`bash scripts/build-sandbox-image.sh`")
    return FASTVIDEO_LIKE_IMAGE


@pytest.fixture(scope="session")
def bwrap_ok() -> str:
    """The bwrap binary, after checking it can make namespaces here."""
    path = shutil.which("bwrap")
    if path is None:
        unavailable("bubblewrap (bwrap) is not installed")
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
                            "--proc", "/proc", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        unavailable(f"bwrap cannot create namespaces here: {probe.stderr.strip()}")
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=sandbox-tests", "-c", "user.email=tests@harness.invalid",
         "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git checkout at `path` with `files` committed once."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


REPO_FILES = {
    "README.md": "# tiny fastvideo\n",
    "fastvideo/__init__.py": "",
    "fastvideo/models/vaes/toyvae.py": "class ToyVAE:\n    scale = 0.18215\n",
    "tests/local_tests/vaes/test_toy_vae_parity.py": "def test_parity():\n    assert 1 + 1 == 2\n",
}


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A small FastVideo-shaped checkout with one commit."""
    return make_repo(tmp_path / "checkout", REPO_FILES)


@pytest.fixture
def harness_root(tmp_path: Path) -> Path:
    """The harness home for one test (worktrees go under it)."""
    return tmp_path / "harness-home"


def tree_digest(root: Path) -> str:
    """Hash of every file under `root` except `.git` (paths, modes, bytes, symlink targets)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[:1] == (".git",):
            continue
        h.update(str(rel).encode() + b"\0")
        if path.is_symlink():
            h.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            h.update(oct(path.stat().st_mode).encode() + path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()
