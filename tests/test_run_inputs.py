"""Input checks that run before anything is created: every failure exits 2, names its fix,
and leaves no run directory, worktree or branch behind (asserted on disk)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from harness.run_config.inputs import endpoint_problems, model_access_problems

# The fixtures module is also a pytest plugin (below); have pytest rewrite it on this import.
pytest.register_assert_rewrite("tests.sandbox_fixtures")
from tests.sandbox_fixtures import git  # noqa: E402
from tests.test_run_helpers import example, harness_cli

pytest_plugins = ["tests.sandbox_fixtures"]

VAE_PACKET = "vae:parity-debug"
NO_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def no_model_keys(monkeypatch):
    """The harness subprocesses inherit this environment: no keys, no servers."""
    for name in NO_KEYS:
        monkeypatch.delenv(name, raising=False)


def run_cli(ex, home: Path, cwd: Path, *extra: str, model: str = "human"):
    args = ["run", "--packet", str(ex.packets[VAE_PACKET]), "--repo", str(ex.repo), "--model", model,
            "--non-interactive", *extra]
    return harness_cli(args, home, cwd, timeout=120)


def assert_nothing_created(home: Path, repo: Path) -> None:
    assert not (home / "runs").exists() or not any((home / "runs").iterdir()), "a run directory was made"
    assert not (home / "worktrees").exists() or not any((home / "worktrees").iterdir()), "a worktree was made"
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "harness/*"], capture_output=True, text=True)
    assert branches.stdout.strip() == "", branches.stdout
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
    assert len(worktrees.stdout.strip().splitlines()) == 1, worktrees.stdout


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_missing_api_key_exits_2_before_anything_exists(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    result = run_cli(ex, home, tmp_path, "--sandbox", "local", model="anthropic:claude-sonnet-4-5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ANTHROPIC_API_KEY" in result.stdout and "export" in result.stdout
    assert_nothing_created(home, ex.repo)


def test_key_present_by_name_passes_the_check(monkeypatch):
    # The honest baseline beside the check above: with the variable set, nothing is reported.
    assert model_access_problems("openai:gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "set-for-this-test")
    assert model_access_problems("openai:gpt-4o") == []


def test_unreachable_local_server_exits_2(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = run_cli(ex, home, tmp_path, "--sandbox", "local", "--base-url", url, "--price", "1,1",
                     model="openai:local-model")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "does not answer" in result.stdout and url in result.stdout
    assert_nothing_created(home, ex.repo)


def test_a_server_that_answers_at_all_is_reachable(loopback_server):
    # Any HTTP answer counts (a 404 here); only a dead address is a problem.
    assert endpoint_problems("openai", loopback_server) == []
    assert endpoint_problems("openai", f"http://127.0.0.1:{closed_port()}/v1")


def test_unreachable_docker_engine_exits_2(tmp_path, monkeypatch):
    ex = example(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = run_cli(ex, home, tmp_path, "--sandbox", "docker")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot reach the Docker engine" in result.stdout
    assert_nothing_created(home, ex.repo)


@pytest.mark.docker
def test_missing_docker_image_exits_2(tmp_path, docker_client):
    ex = example(tmp_path)
    home = tmp_path / "home"
    result = run_cli(ex, home, tmp_path, "--sandbox", "docker", "--image", "fastvideo-harness-no-such-image:never")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "fastvideo-harness-no-such-image:never" in result.stdout and "docker pull" in result.stdout
    assert_nothing_created(home, ex.repo)


def test_bwrap_missing_exits_2(tmp_path, monkeypatch):
    ex = example(tmp_path)
    home = tmp_path / "home"
    bin_dir = tmp_path / "bin"  # a PATH with git but without bwrap
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip())
    monkeypatch.setenv("PATH", str(bin_dir))
    result = run_cli(ex, home, tmp_path, "--sandbox", "bwrap")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "bwrap is not installed" in result.stdout
    assert_nothing_created(home, ex.repo)


def test_parity_debug_without_the_parity_test_exits_2_and_validate_says_so(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    git(ex.repo, "rm", "-q", "tests/local_tests/vaes/test_tinyvid_vae_parity.py")
    git(ex.repo, "commit", "-q", "-m", "drop the parity test")
    result = run_cli(ex, home, tmp_path, "--sandbox", "local")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "parity_test" in result.stdout and "does not exist in the checkout" in result.stdout
    assert_nothing_created(home, ex.repo)
    validated = harness_cli(["validate", str(ex.packets[VAE_PACKET]), "--repo", str(ex.repo)], home, tmp_path)
    assert validated.returncode == 2 and "does not exist in the checkout" in validated.stdout + validated.stderr
    # The prototype packet does not need the test yet.
    ok = harness_cli(["validate", str(ex.packets["vae:prototype"]), "--repo", str(ex.repo)], home, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_eval_refuses_unknown_specs_and_missing_keys_before_any_attempt(tmp_path):
    out = tmp_path / "results"
    unknown = harness_cli(["eval", "--model", "gpt-4o", "--out", str(out), "--sandbox", "local",
                           "--no-progress"], tmp_path / "home", tmp_path, timeout=120)
    nokey = harness_cli(["eval", "--model", "openai:gpt-4o", "--out", str(out), "--sandbox", "local",
                         "--no-progress"], tmp_path / "home", tmp_path, timeout=120)
    assert unknown.returncode == 2 and "unknown model spec" in unknown.stderr, unknown.stderr
    assert nokey.returncode == 2 and "OPENAI_API_KEY" in nokey.stderr, nokey.stderr
    assert not out.exists()


def test_eval_refuses_an_unreachable_docker_engine_before_any_attempt(tmp_path, monkeypatch):
    out = tmp_path / "results"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = harness_cli(["eval", "--model", "oracle", "--out", str(out), "--sandbox", "docker", "--no-progress"],
                         tmp_path / "home", tmp_path, timeout=120)
    assert result.returncode == 2 and "cannot reach the Docker engine" in result.stderr, result.stderr
    assert not out.exists()


def test_the_harness_python_without_pytest_is_refused_only_when_it_runs_the_tests(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from harness.run_config.inputs import sandbox_problems

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pytest" else real(name, *a))
    (problem,) = sandbox_problems("local", None, tmp_path, None)  # no .venv, no --python: the harness's own
    assert sys.executable in problem and "no pytest" in problem and "--python" in problem
    # Another interpreter runs the tests: the in-sandbox preflight checks that one.
    assert sandbox_problems("local", None, tmp_path, "/opt/project/.venv/bin/python") == []
    assert all("pytest" not in p for p in sandbox_problems("docker", "no-such-image:x", tmp_path, None))
