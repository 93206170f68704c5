"""The preflight's slow half is remembered after a pass and reused only for the same inputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.contracts import load_packet
from harness.sandbox.executors import make_executor
from harness.sandbox.preflight import run_preflight
from harness.sandbox.preflight_cache import PreflightCache
from harness.sandbox.workspace import Workspace
from tests.sandbox_fixtures import bwrap_ok, git  # noqa: F401  (fixture)
from tests.test_preflight import TEST, _checkout, _packet

pytestmark = [pytest.mark.slow, pytest.mark.bwrap]


def _preflight(tmp_path: Path, repo: Path, packet_path: Path, cache: PreflightCache):
    """run_preflight on a new worktree of `repo` under bwrap: (checks by name, the sandbox
    commands it ran, the worktree)."""
    ws = Workspace.create(repo, f"pf-{time.monotonic_ns() % 10**9}", official_ref_dir=repo / "official_ref",
                          root=tmp_path / "home")
    commands: list[str] = []
    with make_executor("bwrap", ws) as ex:
        real = ex.run
        ex.run = lambda command, *a, **k: commands.append(command) or real(command, *a, **k)  # type: ignore[method-assign]
        checks = run_preflight(ex, load_packet(packet_path), repo=repo, cache=cache)
    return {c.name: c for c in checks}, commands, ws


def test_a_pass_is_remembered_for_the_same_inputs_only(tmp_path: Path, bwrap_ok) -> None:  # noqa: F811
    repo = _checkout(tmp_path, broken=False)
    packet = _packet(tmp_path)
    cache = PreflightCache(tmp_path / "cache")

    first, commands, _ = _preflight(tmp_path, repo, packet, cache)
    assert all(c.ok for c in first.values()), first
    assert len(commands) == 2 and not any("(remembered:" in c.detail for c in first.values())

    second, commands, ws = _preflight(tmp_path, repo, packet, cache)
    assert len(commands) == 1  # the quick half only: interpreter, modules, paths
    assert all(c.ok for c in second.values()), second
    assert "(remembered:" in second["torch"].detail and "(remembered:" in second["parity test"].detail
    assert "(remembered:" not in second["official reference"].detail  # looked at again
    assert str(ws.path) in second["fastvideo"].detail  # this run's worktree, not the first one's

    # Each input of the fingerprint, changed, makes the slow half run again.
    (repo / "official_ref" / "vae.py").write_text("class VAE:\n    changed = True\n")
    _, commands, _ = _preflight(tmp_path, repo, packet, cache)
    assert len(commands) == 2
    other = tmp_path / "other"
    other.mkdir()
    _, commands, _ = _preflight(tmp_path, repo, _packet(other, concerns_or_unknowns=["a new concern"]), cache)
    assert len(commands) == 2
    (repo / TEST).write_text((repo / TEST).read_text() + "\n# changed\n")
    git(repo, "commit", "-qam", "the test changed")
    _, commands, _ = _preflight(tmp_path, repo, packet, cache)
    assert len(commands) == 2  # a new base commit


def test_a_failure_is_never_remembered(tmp_path: Path, bwrap_ok) -> None:  # noqa: F811
    repo = _checkout(tmp_path, broken=False)
    (repo / "converted_weights" / "demo" / "vae" / "config.json").unlink()
    packet = _packet(tmp_path, parity_test="tests/local_tests/demo/test_missing.py")
    cache = PreflightCache(tmp_path / "cache")
    for _ in range(2):
        checks, commands, _ = _preflight(tmp_path, repo, packet, cache)
        assert not checks["parity test"].ok and len(commands) == 2
    assert not list((tmp_path / "cache").glob("*.json"))


def test_the_interpreter_and_the_sandbox_are_part_of_the_key(tmp_path: Path) -> None:
    interpreter = {"executable": "/venv/bin/python", "version": "3.11.7", "sys_path": {"/venv/lib": 1}}
    key = PreflightCache.key("host", interpreter)
    assert key == PreflightCache.key("host", dict(interpreter))
    assert key != PreflightCache.key("host", {**interpreter, "sys_path": {"/venv/lib": 2}})  # a package installed
    assert key != PreflightCache.key("other host", interpreter)
    assert PreflightCache.key(None, interpreter) is None  # unfingerprintable input: nothing remembered
    cache = PreflightCache(tmp_path)
    cache.store(key, {"slow": {}})
    assert cache.load(key) is not None
    old = time.time() - 2 * 24 * 3600
    path = tmp_path / f"{key}.json"
    path.write_text(path.read_text().replace('"saved": ', f'"saved": {old}, "was": '))
    assert cache.load(key) is None  # a day old: looked at again
    os.chmod(tmp_path, 0o500)
    try:
        cache.store(PreflightCache.key("x", interpreter), {"slow": {}})  # unwritable: no error
    finally:
        os.chmod(tmp_path, 0o700)
