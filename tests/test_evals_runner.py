"""The eval runner: refuses bad requests before anything runs, resumes, keeps every attempt,
retries infrastructure errors once, re-grades without re-running, and reports."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.agents.models.pricing import UnknownPriceError
from harness.cli import app
from harness.evals.runner import EvalConfig, read_results, rescore, run_eval
from harness.evals.tasks import TaskError

ROW_FIELDS = {"task", "kind", "model", "attempt", "outcome", "reasons", "turns", "tokens", "cost_usd", "wall_s",
              "run_dir", "error_class", "retries"}


def test_model_without_price_stops_before_anything_runs(tmp_path, monkeypatch):
    # Keys present, so the price is the one thing missing.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "out"
    with pytest.raises(UnknownPriceError, match="anthropic:claude-nonexistent-9"):
        run_eval(EvalConfig(suite="core", models=["oracle", "anthropic:claude-nonexistent-9"], out=out))
    assert not out.exists()
    result = CliRunner().invoke(app, ["eval", "--model", "openai:my-local-llm", "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "no price known for openai:my-local-llm" in result.output
    assert not out.exists()


@pytest.mark.parametrize("change,message", [
    ({"attempts": 0}, "--attempts"), ({"workers": 0}, "--workers"), ({"sandbox": "vm"}, "--sandbox"),
    ({"models": ["null", "null"]}, "twice"), ({"models": ["scripted:/no/such.yaml"]}, "not found"),
    ({"gpus_per_task": 1, "max_gpu_tasks": 1, "sandbox": "local"}, "needs --sandbox docker"),
    ({"tasks_glob": "no-such-*"}, "no task matching"),
])
def test_bad_settings_are_refused(tmp_path, change, message):
    cfg = EvalConfig(**{"suite": "core", "models": ["null"], "out": tmp_path / "out", **change})
    with pytest.raises(TaskError, match=message):
        run_eval(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_runs_resumes_rescores_and_reports(tmp_path):
    out = tmp_path / "out"
    cfg = EvalConfig(suite="core", models=["null"], out=out, tasks_glob="ask-vae-motion-head", sandbox="local",
                     max_debug_rounds=0)
    run_eval(cfg)
    (row,) = read_results(out)
    assert ROW_FIELDS <= set(row)
    assert (row["task"], row["kind"], row["model"], row["attempt"], row["outcome"]) == (
        "ask-vae-motion-head", "must_ask", "null", 0, "fail")
    assert row["error_class"] in ("agent_failure", "limit_hit")
    assert Path(row["run_dir"], "trajectory.jsonl").is_file()  # every attempt kept raw
    assert Path(row["attempt_dir"], "try1", "outcome.json").is_file()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["prices_usd_per_mtok"]["null"]["input"] == 0.0
    assert provenance["harness"]["commit"] and "dirty" in provenance["harness"]
    assert provenance["packages"]["pydantic"]

    # Resume with more attempts: the finished attempt is not run again.
    seen = []
    run_eval(EvalConfig(**{**cfg.__dict__, "attempts": 2}), on_row=seen.append)
    assert [r["attempt"] for r in seen] == [1]
    assert sorted(r["attempt"] for r in read_results(out)) == [0, 1]
    assert "previous" in json.loads((out / "provenance.json").read_text())

    # Re-grading reads saved outcomes only.
    rows = rescore(out)
    assert [r["previous_outcome"] for r in rows] == ["fail", "fail"]
    assert all(r["outcome"] == "fail" for r in read_results(out))

    html = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["eval", "report", str(out), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert "0% (0/2)" in result.output and html.is_file()
    result = CliRunner().invoke(app, ["eval", "score", str(out)])
    assert result.exit_code == 0 and "re-graded 2 attempts; 0 changed outcome" in result.output


@pytest.mark.docker
def test_infrastructure_errors_are_retried_once_and_both_tries_kept(tmp_path):
    out = tmp_path / "out"
    cfg = EvalConfig(suite="core", models=["null"], out=out, tasks_glob="ask-vae-motion-head", sandbox="docker",
                     image="harness-eval-test/no-such-image:never", max_debug_rounds=0)
    run_eval(cfg)
    (row,) = read_results(out)
    assert row["outcome"] == "error" and row["error_class"] == "infra_error"
    assert len(row["retries"]) == 1 and row["retries"][0]["error_class"] == "infra_error"
    assert Path(row["attempt_dir"], "try1").is_dir() and Path(row["attempt_dir"], "try2").is_dir()
