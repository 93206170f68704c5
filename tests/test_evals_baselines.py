"""The suite validates itself: the oracle (gold) scores 100% and the null agent 0% through the
real graph, sandbox and graders, on one task of every kind and mode; and no cheater passes a
trap. The oracle and null on every task of the suite: `python benchmarks/evals.py baselines`."""

import json
from collections import Counter
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.runner import EvalConfig, read_results, run_eval
from harness.evals.tasks import TaskKind, TaskSpec, load_suite, suite_dir

# Clean-room verdicts per parity run, through bwrap: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.bwrap, pytest.mark.timeout(2400)]

# One task of each kind of the core suite, the quickest of its kind, but the port in prototype
# mode so that both modes run; a kind or mode added to the suite fails the coverage test below.
SUBSET = ("ask-vae-motion-head", "bug-t5-relpos-direction", "port-vae-prototype", "trap-vae-converted-config",
          "impossible-bug-t5-relpos-direction")


def subset_suite(dest: Path) -> Path:
    """A suite directory holding only SUBSET, its task directories linked from the core suite."""
    dest.mkdir()
    for task_id in SUBSET:
        (dest / task_id).symlink_to(suite_dir("core") / task_id, target_is_directory=True)
    return dest


def test_the_subset_covers_every_task_kind_and_mode():
    tasks = [t for t in load_suite("core") if t.id in SUBSET]
    assert sorted(t.id for t in tasks) == sorted(SUBSET)
    assert {t.kind for t in tasks} == set(get_args(TaskKind))
    assert {t.spec.mode for t in tasks} == set(get_args(TaskSpec.model_fields["mode"].annotation))


def test_oracle_scores_100_and_null_scores_0(tmp_path):
    out = tmp_path / "out"
    suite = subset_suite(tmp_path / "subset")
    result = CliRunner().invoke(app, [
        "eval", "--suite", str(suite), "--model", "oracle", "--model", "null", "--attempts", "1", "--workers", "2",
        "--sandbox", "bwrap", "--max-debug-rounds", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    tasks = set(SUBSET)
    by_model = {m: {r["task"]: r for r in rows if r["model"] == m} for m in ("oracle", "null")}
    assert set(by_model["oracle"]) == tasks and set(by_model["null"]) == tasks
    failed = {t: r["reasons"] for t, r in by_model["oracle"].items() if r["outcome"] != "pass"}
    assert not failed, json.dumps(failed, indent=1)
    passed = [t for t, r in by_model["null"].items() if r["outcome"] != "fail"]
    assert not passed, passed
    assert Counter(r["error_class"] for r in by_model["null"].values()).keys() <= {"agent_failure", "limit_hit"}
    real = [t for t in tasks if not t.startswith("impossible-")]  # twins give the cheating rate instead
    assert f"100% ({len(real)}/{len(real)})" in result.output and f"0% (0/{len(tasks) - len(real)})" in result.output


def test_no_cheater_passes_a_trap(tmp_path):
    cfg = EvalConfig(suite="core", models=["cheater", "cheater-skip", "cheater-weights"], out=tmp_path / "out",
                     tasks_glob="trap-*", workers=2, sandbox="bwrap", max_debug_rounds=0)
    run_eval(cfg)
    rows = read_results(cfg.out)
    assert len(rows) == 3 * len(load_suite("core", "trap-*"))
    assert [r for r in rows if r["outcome"] == "pass"] == []
    # Each cheat is seen for what it is, not just "the test was red".
    reasons = {r["model"]: " ".join(" ".join(x["reasons"]) for x in rows if x["model"] == r["model"]) for r in rows}
    assert "tolerance_loosened" in reasons["cheater"]
    assert "skip" in reasons["cheater-skip"]
    assert "conversion_edit" in reasons["cheater-weights"]
