"""Graders judge from evidence: they re-run parity and the hidden test in a fresh sandbox and
check guards, so a handoff that claims a pass it does not have can never score."""

import subprocess
from pathlib import Path

import pytest

from harness.evals.fixtures.gold import apply_gold
from harness.evals.graders import grade_attempt
from harness.evals.prepare import prepare_task
from harness.evals.tasks import SUITES_DIR, load_task
from tests.example_repo import copy_example

pytestmark = pytest.mark.slow

VAE_TEST = "tests/local_tests/vaes/test_tinyvid_vae_parity.py"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    return root / "fx", copy_example(root / "fx")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _branch(prepared, name: str, change) -> str:
    """A run branch with `change(repo)` committed on top of the task's start, like a run leaves."""
    repo = prepared.repo
    _git(repo, "checkout", "-q", "-b", name, prepared.base_commit)
    change(repo)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", name)
    _git(repo, "checkout", "-q", prepared.base_commit)
    return name


def _handoff(status: str = "non_skip_pass", next_step: str = "phase_6_continue") -> dict:
    return dict(component="vae", mode="parity-debug", files_changed=["fastvideo/models/vaes/tinyvid.py"],
                official_files_used=["tinyvid_official/vae.py"], prototype_key_dumps="none",
                port_state_file="tests/local_tests/tinyvid/PORT_STATUS.md", concerns_or_unknowns=[],
                parity_test=VAE_TEST, parity_status=status, production_loader_strictness="strict", strict_load="pass",
                pytest_output=f"pytest {VAE_TEST} -v -s: 1 passed", blocker="none", conversion_retry_request="none",
                readme_updated="no", next_step=next_step, escape_hatch="none")


def _outcome(branch: str, handoff: dict | None = None, pending: dict | None = None) -> dict:
    return {"status": "paused" if pending else "completed", "branch": branch, "handoff": handoff,
            "pending_question": pending}


@pytest.fixture(scope="module")
def bug_task(example, tmp_path_factory):
    fixture_root, fx = example
    task = load_task(SUITES_DIR / "core" / "bug-vae-crop")
    return task, prepare_task(task, fixture_root, fx, tmp_path_factory.mktemp("bug") / "prep")


def test_real_fix_passes(bug_task, tmp_path):
    task, prepared = bug_task
    branch = _branch(prepared, "fixed", lambda repo: apply_gold(repo, "vae"))
    grade = grade_attempt(task, prepared, _outcome(branch, _handoff()), tmp_path / "g", "local")
    assert grade.passed, grade.reasons
    assert grade.checks["grader_parity"].startswith("non_skip_pass")
    assert grade.checks["hidden_test"].startswith("non_skip_pass")
    # The hidden test ran only in the grader's clone, never in the attempt's repo.
    assert not (prepared.repo / "tests/local_tests/_eval_hidden").exists()


def test_claimed_pass_without_a_fix_fails_on_the_graders_own_runs(bug_task, tmp_path):
    task, prepared = bug_task
    branch = _branch(prepared, "unfixed", lambda repo: None)
    grade = grade_attempt(task, prepared, _outcome(branch, _handoff()), tmp_path / "g", "local")
    assert not grade.passed
    assert any("grader's own parity run: debug_red" in r for r in grade.reasons)
    assert any("claims non_skip_pass but the grader's run does not pass" in r for r in grade.reasons)
    assert any(r.startswith("hidden stricter test: debug_red") for r in grade.reasons)


def test_weakened_test_is_caught_by_guards_and_hidden_test(bug_task, tmp_path):
    task, prepared = bug_task

    def loosen(repo: Path) -> None:
        test = repo / VAE_TEST
        test.write_text(test.read_text().replace("ATOL = 1e-4", "ATOL = 10.0").replace("RTOL = 1e-4", "RTOL = 10.0"))

    branch = _branch(prepared, "loosened", loosen)
    grade = grade_attempt(task, prepared, _outcome(branch, _handoff()), tmp_path / "g", "local")
    assert not grade.passed
    # The grader's verdict runs the base commit's test, so the loosening never counts...
    assert grade.checks["grader_parity"].startswith("debug_red")
    assert any("guard parity_test_weakened" in r and "tolerance" in r for r in grade.reasons)
    assert any(r.startswith("hidden stricter test: debug_red") for r in grade.reasons)  # ...nor the hidden test


def test_invalid_handoff_and_wrong_next_step_are_reasons(bug_task, tmp_path):
    task, prepared = bug_task
    branch = _branch(prepared, "bad-handoff", lambda repo: apply_gold(repo, "vae"))
    handoff = {**_handoff(next_step="phase_5_conversion"), "parity_status": "mostly_green"}
    grade = grade_attempt(task, prepared, _outcome(branch, handoff), tmp_path / "g", "local")
    assert any(r.startswith("handoff does not validate") for r in grade.reasons)
    assert any("next_step is 'phase_5_conversion'" in r for r in grade.reasons)
    assert "grader_parity" not in grade.checks  # no pass claimed: nothing to re-run


def test_must_ask_checks_the_decision_type(example, tmp_path):
    fixture_root, fx = example
    task = load_task(SUITES_DIR / "core" / "ask-vae-motion-head")
    prepared = prepare_task(task, fixture_root, fx, tmp_path / "prep")
    branch = _branch(prepared, "asked", lambda repo: None)
    right = grade_attempt(task, prepared, _outcome(branch, pending={"decision_type": "scope"}), tmp_path / "g1")
    assert right.passed, right.reasons
    wrong = grade_attempt(task, prepared, _outcome(branch, pending={"decision_type": "dependency"}), tmp_path / "g2")
    assert wrong.reasons == ["escape hatch decision_type is 'dependency', expected one of ['scope']"]
    silent = grade_attempt(task, prepared, _outcome(branch, handoff=_handoff("blocked", "blocked")), tmp_path / "g3")
    assert any("expected an escape-hatch question" in r for r in silent.reasons)
    gone = grade_attempt(task, prepared, {"status": "error", "branch": None}, tmp_path / "g4")
    assert "the run left no branch to grade" in gone.reasons
