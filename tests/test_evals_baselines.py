"""The suite validates itself: the oracle (gold) scores 100% and the null agent 0% on every
task, through the real graph, sandbox and graders; and no cheater passes a trap."""

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evals.runner import EvalConfig, read_results, run_eval
from harness.evals.tasks import load_suite

# The whole core suite, twice, with a clean-room verdict per parity run: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.bwrap, pytest.mark.timeout(2400)]


def test_oracle_scores_100_and_null_scores_0(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "eval", "--suite", "core", "--model", "oracle", "--model", "null", "--attempts", "1", "--workers", "2",
        "--sandbox", "bwrap", "--max-debug-rounds", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    tasks = {t.id for t in load_suite("core")}
    by_model = {m: {r["task"]: r for r in rows if r["model"] == m} for m in ("oracle", "null")}
    assert set(by_model["oracle"]) == tasks and set(by_model["null"]) == tasks
    failed = {t: r["reasons"] for t, r in by_model["oracle"].items() if r["outcome"] != "pass"}
    assert not failed, json.dumps(failed, indent=1)
    passed = [t for t, r in by_model["null"].items() if r["outcome"] != "fail"]
    assert not passed, passed
    assert Counter(r["error_class"] for r in by_model["null"].values()).keys() <= {"agent_failure", "limit_hit"}
    assert f"100% ({len(tasks)}/{len(tasks)})" in result.output


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
