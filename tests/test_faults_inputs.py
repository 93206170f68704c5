"""Every input is checked before anything is made: a malformed scripted-model file, a packet
nested too deeply or too large, a read-only or full harness home. Each is refused by a real
`harness run` with exit 2 and one message, and no branch, worktree or run directory exists
afterwards. The host's git never writes the user's index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run_config.config import MIN_FREE_BYTES, home_problems
from tests.test_run_helpers import example, harness_cli, plan_turns, write_script

HARNESS = str(Path(sys.executable).parent / "harness")


@pytest.fixture(scope="module")
def shared_example(tmp_path_factory):
    """One example checkout for the refusals: each test checks that nothing was made in it."""
    return example(tmp_path_factory.mktemp("refusals"))


def _nothing_made(repo: Path, home: Path) -> None:
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "harness/*"], capture_output=True, text=True)
    assert branches.stdout.strip() == ""
    worktrees = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True)
    assert len(worktrees.stdout.splitlines()) == 1
    assert not (home / "runs").exists() and not (home / "worktrees").exists()


def _refused_once(result: subprocess.CompletedProcess, says: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and says in problems[0], out


@pytest.mark.parametrize("content,says", [
    ("planner: [\n", "not valid YAML"),
    ("- just\n- a list\n", "a script is a mapping of role -> list of turns, got list"),
    ("planner:\n  - tool_calls: {name: finish}\n", "planner[0]: tool_calls"),
    ("implementer:\n  - {text: hi, toolcalls: []}\n", "implementer[0]: toolcalls: Extra inputs"),
    ("planner: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_a_malformed_scripted_file_is_refused_before_anything_is_made(tmp_path, shared_example, content, says):
    ex = shared_example
    home = tmp_path / "home"
    script = tmp_path / "bad.yaml"
    script.write_text(content)
    result = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                          "--model", f"scripted:{script}", "--sandbox", "local", "--non-interactive"], home, tmp_path)
    _refused_once(result, says)
    _nothing_made(ex.repo, home)


@pytest.mark.parametrize("shape,says", [
    ("deep", "nested too deeply"),
    ("deep_but_parsable", "nested more than 32 levels deep"),
    ("huge", "a document may have at most 1048576"),
])
def test_a_packet_too_deep_or_too_large_is_refused_before_anything_is_made(tmp_path, shared_example, shape, says):
    ex = shared_example
    home = tmp_path / "home"
    packet = json.loads(ex.packets["vae:parity-debug"].read_text())
    bad = tmp_path / "packet.json"
    if shape == "deep":
        bad.write_text("[" * 200_000 + "]" * 200_000)
    elif shape == "deep_but_parsable":
        nested: object = "x"
        for _ in range(40):
            nested = {"n": nested}
        bad.write_text(json.dumps({**packet, "concerns_or_unknowns": [json.dumps(nested)], "extra": nested}))
    else:
        bad.write_text(json.dumps({**packet, "concerns_or_unknowns": ["x" * (2 * 1024 * 1024)]}))
    script = write_script(tmp_path / "s.yaml", planner=plan_turns())
    result = harness_cli(["run", "--packet", str(bad), "--repo", str(ex.repo), "--model", f"scripted:{script}",
                          "--sandbox", "local", "--non-interactive"], home, tmp_path)
    _refused_once(result, says)
    _nothing_made(ex.repo, home)
    assert harness_cli(["validate", str(bad)], home, tmp_path).returncode == 2


def _in_own_mounts(home: Path, options: str, fill: bool, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`harness ARGS` with HARNESS_HOME on a tmpfs of its own (mounted with `options`, filled up
    when `fill`), in a private mount namespace, so the host's mounts are never touched."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    fill_cmd = f'dd if=/dev/zero of="{home}/fill" bs=64k 2>/dev/null; ' if fill else ""
    remount = f'mount -o remount,{options} "{home}"; ' if "ro" in options.split(",") else ""
    script = (f'mount -t tmpfs -o size=2m tmpfs "{home}" && {fill_cmd}{remount}'
              f'exec "{HARNESS}" "$@"')
    userns = [] if os.geteuid() == 0 else ["-r"]
    probe = subprocess.run(["unshare", "-m", *userns, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode()[:200]}")
    env = {**os.environ, "HARNESS_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(["unshare", "-m", *userns, "--propagation", "private", "sh", "-c", script, "sh", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("options,fill,says", [
    ("ro", False, "harness home: cannot write in"),
    ("rw", True, "is full (No space left on device)"),
    ("rw", False, f"is nearly full (2 MiB free; a run needs at least {MIN_FREE_BYTES // 2**20} MiB"),
])
def test_a_read_only_or_full_home_is_refused_with_one_message(tmp_path, shared_example, options, fill, says):
    ex = shared_example
    home = tmp_path / "home"
    home.mkdir()
    script = write_script(tmp_path / "s.yaml", planner=plan_turns())
    result = _in_own_mounts(home, options, fill, ["run", "--packet", str(ex.packets["vae:parity-debug"]),
                                                  "--repo", str(ex.repo), "--model", f"scripted:{script}",
                                                  "--sandbox", "local", "--non-interactive"], tmp_path)
    _refused_once(result, says)
    _nothing_made(ex.repo, home)


def test_the_home_check_leaves_nothing_behind(tmp_path):
    home = tmp_path / "not" / "yet" / "made"
    assert home_problems(home) == []
    assert list(tmp_path.iterdir()) == []  # the probe has no name; nothing was created
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in home_problems(tmp_path / "file" / "home")[0]


def test_host_git_never_writes_the_users_index(tmp_path):
    """A checkout whose index has stale timestamps: `git status` would rewrite .git/index;
    every host git call runs with --no-optional-locks, so the harness never does, from the
    worktree's creation to its removal."""
    from harness.sandbox.workspace import Workspace

    ex = example(tmp_path)
    index = ex.repo / ".git" / "index"
    for path in ex.repo.rglob("*.py"):  # touch the files: the index's stat data is now stale
        os.utime(path)
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    ws = Workspace.create(ex.repo, "idx1", root=tmp_path / "home")
    (ws.path / "fastvideo" / "new.py").write_text("X = 1\n")
    assert ws.checkpoint("a step") and ws.files_changed() == ["fastvideo/new.py"] and "+X = 1" in ws.diff()
    ws.remove(delete_branch=True)
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    # The same status call without the flag rewrites it: the check above can fail.
    subprocess.run(["git", "-C", str(ex.repo), "status", "--porcelain"], capture_output=True, check=True)
    assert (index.read_bytes(), index.stat().st_mtime_ns) != before
