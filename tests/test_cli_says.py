"""Commands say what they do: examples in every --help, the sandbox and model a run picks,
the limit that stopped a role, and why a finished or served run is not resumed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.run_config.config import RunConfig
from harness.runs.runner import SERVER_DRIVER, create_run_dir
from tests.sandbox_fixtures import bwrap_ok  # noqa: F401  (fixture)
from tests.test_run_helpers import (
    BAD_UNSCALE,
    GOOD_UNSCALE,
    VAE_MODEL,
    example,
    harness_cli,
    plan_turns,
    write_gold_turns,
    write_script,
)

COMMANDS = [[], ["run"], ["doctor"], ["answer"], ["resume"], ["runs"], ["show"], ["clean"], ["graph"], ["validate"],
            ["schema"], ["demo"], ["eval"], ["eval", "score"], ["eval", "report"], ["sandbox"], ["sandbox", "prune"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "harness")
def test_every_help_has_an_example_and_no_bool_placeholder(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "Example:  harness" in result.output
    assert "<bool>" not in result.output


def test_run_without_a_model_off_a_terminal_is_refused(tmp_path) -> None:
    result = harness_cli(["run", "--packet", "p.json", "--repo", ".", "--sandbox", "local"], tmp_path / "home", tmp_path)
    assert result.returncode == 2 and "model: no --model given" in result.stdout, result.stdout
    assert "p.json does not exist" in result.stdout  # listed with every other problem
    assert not (tmp_path / "home").exists()


def test_run_says_which_sandbox_and_image_it_chose(tmp_path, bwrap_ok) -> None:  # noqa: F811
    bare = harness_cli(["run", "--packet", "missing.json", "--repo", ".", "--model", "human", "--non-interactive"],
                       tmp_path / "home", tmp_path)
    assert "sandbox: bwrap (no --sandbox given; bubblewrap works here)" in bare.stderr, bare.stderr
    assert bare.returncode == 2 and "missing.json does not exist" in bare.stdout
    docker = harness_cli(["run", "--packet", "missing.json", "--repo", ".", "--model", "human", "--sandbox", "docker",
                          "--non-interactive"], tmp_path / "home", tmp_path)
    assert "image: fastvideo-harness-sandbox:test (no --image given): the harness's small test image" in docker.stderr
    named = harness_cli(["run", "--packet", "missing.json", "--repo", ".", "--model", "human", "--image", "mine:1",
                         "--non-interactive"], tmp_path / "home", tmp_path)
    assert "sandbox: docker (no --sandbox given; --image mine:1 names a container image)" in named.stderr


def test_a_run_driven_by_langgraphs_server_is_not_resumed_or_answered_here(tmp_path) -> None:
    home = tmp_path / "home"
    create_run_dir(RunConfig(packet=tmp_path / "p.json", repo=tmp_path, home=home), "served1", driver=SERVER_DRIVER)
    for command in (["resume", "served1"], ["answer", "served1", "--option", "1"]):
        result = harness_cli(command, home, tmp_path)
        assert result.returncode == 2 and "driven by LangGraph's server" in result.stderr, result.stderr
    assert not (home / "runs" / "served1" / "checkpoints.sqlite").exists()  # nothing was started here


@pytest.mark.slow
def test_turn_limit_is_said_and_a_finished_run_is_not_resumed(tmp_path) -> None:
    ex = example(tmp_path)
    home = tmp_path / "home"
    wander = [{"tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 1, "end_line": 3}}]}] * 3
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=wander)
    run = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                       "--model", f"scripted:{script}", "--sandbox", "local", "--max-turns", "2",
                       "--max-debug-rounds", "1", "--on-budget", "blocked", "--non-interactive", "--run-id", "capped"],
                      home, tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "[harness] debugger stopped: --max-turns reached (2 turns used of 2)" in run.stdout

    again = harness_cli(["resume", "capped"], home, tmp_path)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "run capped has finished (blocked" in again.stderr and "nothing to resume" in again.stderr
