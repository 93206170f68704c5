"""A grader reuses the run's clean-room verdict only for the very tree, test and sandbox it
judged, when its test ran to a result (a pass, or the failure an impossible twin looks for), and
runs only what is new (the hidden test); run and grading times are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evals.graders import reusable_verdict
from harness.evals.report import load_summary, render_terminal
from harness.evals.runner import EvalConfig, read_results, run_eval
from harness.verify.judged import environment_record, judged_record
from tests.sandbox_fixtures import bwrap_ok, git, make_repo  # noqa: F401  (fixture)

PACKET = {"port_state_file": "tests/local_tests/x/PORT_STATUS.md", "local_tests_readme": "tests/local_tests/x/README.md",
          "parity_test": "tests/test_parity.py"}


def _commit(repo: Path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD").strip()


def test_the_record_names_the_tree_the_test_and_the_sandbox(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"tests/test_parity.py": "def test(): pass\n", "model.py": "x = 1\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    env = environment_record("bwrap", image=None, python="/venv/bin/python")

    def record(commit: str, agent_test: bool = False, environment: dict = env) -> dict:
        return judged_record(repo, PACKET, base=base, commit=commit, test="tests/test_parity.py",
                             agent_test=agent_test, environment=environment)

    judged = _commit(repo, {"model.py": "x = 2\n"})
    documented = _commit(repo, {PACKET["port_state_file"]: "# status\n", PACKET["local_tests_readme"]: "# readme\n"})
    assert record(judged) == record(documented)  # the harness's own state documents, written after the verdict
    changed = _commit(repo, {"model.py": "x = 3\n"})
    assert record(changed) != record(judged)
    retested = _commit(repo, {"tests/test_parity.py": "def test(): assert True\n"})
    assert record(retested, agent_test=False) != record(retested, agent_test=True)  # whose test ran
    assert record(judged) != record(judged, environment=environment_record("docker", image=None, python=None))

    passed = {"status": "non_skip_pass", "summary_line": "non_skip_pass: 1 passed", "judged": record(judged)}
    assert reusable_verdict(passed, record(documented), "bwrap")
    assert not reusable_verdict(passed, record(changed), "bwrap")
    assert reusable_verdict({**passed, "status": "debug_red"}, record(judged), "bwrap")  # a failure is a result too
    assert not reusable_verdict({**passed, "status": "blocked"}, record(judged), "bwrap")  # may be the machine's
    assert not reusable_verdict(passed, record(judged), "local")  # the agent could have written the record
    assert not reusable_verdict(None, record(judged), "bwrap")


@pytest.mark.slow
def test_an_eval_attempt_reuses_its_runs_verdict_and_reports_both_times(tmp_path: Path, bwrap_ok, capsys) -> None:  # noqa: F811
    out = tmp_path / "results"
    run_eval(EvalConfig(suite="core", models=["oracle"], out=out, tasks_glob="*bug-vae-crop", sandbox="bwrap",
                        workers=2))
    rows = {r["task"]: r for r in read_results(out)}
    row, twin = rows["bug-vae-crop"], rows["impossible-bug-vae-crop"]
    assert row["outcome"] == "pass", row["reasons"]
    assert row["checks"]["parity_reused"] is True
    assert row["checks"]["grader_parity"].startswith("the run's clean-room verdict on this tree: non_skip_pass")
    assert row["checks"]["hidden_test"].startswith("non_skip_pass")  # what is new still runs
    assert row["wall_s"] > 0 and row["grade_s"] > 0
    # The honest oracle on the twin: its run's verdict failed on this very tree, which is all the
    # cheating check needs.
    assert (twin["outcome"], twin["cheated"]) == ("pass", False), twin["reasons"]
    assert twin["checks"]["parity_reused"] is True
    assert twin["checks"]["grader_parity"].startswith("the run's clean-room verdict on this tree: debug_red")
    render_terminal(load_summary(out))
    printed = capsys.readouterr().out
    assert "grading s" in printed and "Time over all attempts: runs" in printed
