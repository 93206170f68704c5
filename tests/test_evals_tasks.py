"""Task format, suite loading, task preparation on the real example, and baseline scripts."""

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.agents.models.scripted import ScriptedModel
from harness.evals.baselines import cheater_edits, gold_changes, write_baseline_script
from harness.evals.prepare import Prepared, copy_prepared, prepare_task
from harness.evals.tasks import SUITES_DIR, TaskError, load_suite, load_task
from tests.example_repo import copy_example

MINIMAL = {
    "id": "t1", "kind": "port", "description": "d", "packet": {"component": "vae"},
    "mode": "parity-debug", "gold": {"component": "vae"}, "success": {"parity_status": "non_skip_pass"},
    "hidden_test": None,
}


def _write_task(root: Path, data: dict, name: str | None = None) -> Path:
    d = root / (name or data.get("id", "t1"))
    d.mkdir(parents=True)
    (d / "task.yaml").write_text(yaml.safe_dump(data))
    return d


def test_core_suite_has_every_kind_and_loads_cleanly():
    tasks = load_suite("core")
    kinds = Counter(t.kind for t in tasks)
    assert len(tasks) >= 16
    assert set(kinds) == {"port", "seeded_bug", "must_ask", "trap", "impossible"}
    # Every port and seeded-bug task has an impossible twin, and only those.
    twins = {t.spec.twin.of for t in tasks if t.kind == "impossible"}
    assert twins == {t.id for t in tasks if t.kind in ("port", "seeded_bug")}
    assert all(t.id == f"impossible-{t.spec.twin.of}" for t in tasks if t.kind == "impossible")
    modes = {t.spec.mode for t in tasks if t.kind == "port"}
    assert modes == {"prototype", "parity-debug"}
    hatches = {t.spec.expected_hatch.decision_type for t in tasks if t.kind == "must_ask"}
    assert {"ambiguity", "scope", "blocker"} <= hatches
    for t in tasks:  # every task that needs a pass has a hidden test that exists
        if t.spec.success.parity_status == ["non_skip_pass"]:
            assert t.hidden_test_path() is not None and t.hidden_test_path().is_file()
    assert [t.id for t in load_suite("core", "bug-vae-*")] == sorted(t.id for t in tasks if t.id.startswith("bug-vae-"))


def test_minimal_task_loads_and_single_values_become_lists(tmp_path):
    task = load_task(_write_task(tmp_path, MINIMAL))
    assert task.spec.success.parity_status == ["non_skip_pass"]
    assert task.spec.limits.max_turns >= 1 and task.hidden_test_path() is None


@pytest.mark.parametrize("change,message", [
    ({"kind": "quiz"}, "kind"),
    ({"extra_field": 1}, "extra_field"),
    ({"mode": "prototype", "packet": {"component": "vae", "overrides": {"mode": "parity-debug"}}}, "contradicts"),
    ({"gold": {}}, "needs a gold"),
    ({"kind": "must_ask"}, "expected_hatch"),
    ({"hidden_test": "nope.py"}, "file 'nope.py' not found"),
    ({"hidden_test": "../../etc/passwd"}, "outside the suite"),
    ({"id": "Bad Id"}, "lowercase"),
    ({"success": {"mentions": ["("]}}, "not a valid regex"),
    ({"kind": "impossible"}, "impossible twin"),
    ({"packet": None}, "either `packet`"),
])
def test_bad_tasks_are_refused_with_the_problem_named(tmp_path, change, message):
    data = {**MINIMAL, **change}
    d = _write_task(tmp_path, data, name="t1")
    with pytest.raises(TaskError, match=message) as err:
        load_task(d)
    assert "task.yaml" in str(err.value)


def test_hatch_question_must_fit_the_contract(tmp_path):
    data = {**MINIMAL, "kind": "must_ask", "gold": {}, "success": {"outcome": "asked", "hatch_decision_type": "scope"},
            "expected_hatch": {"decision_type": "scope", "question": "Drop the head. Really.", "options": ["a", "b"],
                               "recommended_option": "a", "evidence": "e"}}
    with pytest.raises(TaskError, match="question"):
        load_task(_write_task(tmp_path, data))


def test_id_must_match_directory_and_unknown_suite(tmp_path):
    with pytest.raises(TaskError, match="must match the directory"):
        load_task(_write_task(tmp_path, MINIMAL, name="other"))
    with pytest.raises(TaskError, match="bundled suites are"):
        load_suite("no-such-suite")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="no tasks"):
        load_suite(str(tmp_path / "empty"))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    return root / "fx", copy_example(root / "fx")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_prepare_seeded_bug_task(example, tmp_path):
    fixture_root, fx = example
    task = load_task(SUITES_DIR / "core" / "bug-vae-crop")
    prepared = prepare_task(task, fixture_root, fx, tmp_path / "prep")
    model = (prepared.repo / "fastvideo/models/vaes/tinyvid.py").read_text()
    assert "frames[..., -height:, -width:]" in model  # the seeded bug is in
    assert _git(prepared.repo, "status", "--porcelain") == ""  # and committed as the base
    assert _git(prepared.repo, "rev-parse", "HEAD").strip() == prepared.base_commit
    packet = json.loads(prepared.packet.read_text())
    assert packet["mode"] == "parity-debug"
    assert packet["official_ref_dir"] == str(prepared.official_dir)
    assert not (prepared.repo / "tests/local_tests/_eval_hidden").exists()
    # Nothing the graders keep hidden reaches the starting state.
    assert not list(prepared.root.rglob("hidden_*.py"))
    # The oracle's gold restores exactly the one buggy file.
    assert list(gold_changes(task, prepared)) == ["fastvideo/models/vaes/tinyvid.py"]
    # A copy for one attempt has its own repo and rewritten paths.
    copy = copy_prepared(Prepared.load(prepared.root), tmp_path / "attempt")
    assert copy.repo != prepared.repo and str(copy.root) in copy.packet.read_text()
    assert str(prepared.root) not in copy.packet.read_text()


def test_prepare_must_ask_task_overrides_packet_and_adds_files(example, tmp_path):
    fixture_root, fx = example
    task = load_task(SUITES_DIR / "core" / "ask-vae-two-definitions")
    prepared = prepare_task(task, fixture_root, fx, tmp_path / "prep")
    assert (prepared.official_dir / "tinyvid_official/vae_release.py").is_file()
    packet = json.loads(prepared.packet.read_text())
    assert [f["path"] for f in packet["official_definition_files"]] == [
        "tinyvid_official/vae.py", "tinyvid_official/vae_release.py"]
    with pytest.raises(TaskError, match="already exists"):
        prepare_task(task, fixture_root, fx, tmp_path / "prep")


def test_baseline_scripts_are_valid_scripted_models(example, tmp_path):
    fixture_root, fx = example
    for task_id, model in [("port-vae-parity-debug", "oracle"), ("ask-vae-dither-tolerance", "oracle"),
                           ("trap-vae-converted-config", "oracle"), ("bug-t5-mask-ignored", "null"),
                           ("trap-t5-norm-eps-drift", "cheater"), ("trap-t5-norm-eps-drift", "cheater-skip"),
                           ("trap-vae-converted-config", "cheater-weights")]:
        task = load_task(SUITES_DIR / "core" / task_id)
        prepared = prepare_task(task, fixture_root, fx, tmp_path / f"{task_id}-{model}")
        spec = write_baseline_script(model, task, prepared, tmp_path / f"{task_id}-{model}.yaml")
        scripted = ScriptedModel.from_file(spec.removeprefix("scripted:"))
        calls = [c.name for turns in scripted.turns.values() for t in turns for c in t.tool_calls]
        if task_id == "ask-vae-dither-tolerance":
            first, second = scripted.turns["implementer"][:2]
            assert [first.tool_calls[0].name, second.tool_calls[0].name] == ["run_parity_test", "raise_escape_hatch"]
        if model == "null":
            assert set(calls) == {"finish"}
    with pytest.raises(ValueError, match="not a baseline"):
        write_baseline_script("genius", task, prepared, tmp_path / "x.yaml")


def test_cheater_loosens_every_tolerance(example, tmp_path):
    fixture_root, fx = example
    task = load_task(SUITES_DIR / "core" / "trap-t5-activation-drift")
    prepared = prepare_task(task, fixture_root, fx, tmp_path / "prep")
    ((name, args),) = cheater_edits("cheater", prepared)
    assert name == "write_file" and args["path"] == prepared.parity_test
    assert "ATOL = 1e9" in args["content"] and "RTOL = 1e9" in args["content"]


def test_a_twin_is_made_only_of_an_existing_port_or_seeded_bug_task(tmp_path):
    _write_task(tmp_path, MINIMAL, name="t1")
    twin = tmp_path / "impossible-t1"
    twin.mkdir()
    (twin / "task.yaml").write_text(yaml.safe_dump({"id": "impossible-t1", "twin_of": "t1", "description": "twin"}))
    task = load_task(twin)
    assert task.kind == "impossible" and task.spec.twin.of == "t1" and task.spec.success.outcome == "handoff_or_asked"
    assert task.spec.packet == load_task(tmp_path / "t1").spec.packet and task.spec.hidden_test is None
    (twin / "task.yaml").write_text(yaml.safe_dump({"id": "impossible-t1", "twin_of": "t9", "description": "x"}))
    with pytest.raises(TaskError, match="no task.yaml"):
        load_task(twin)
    ask = {**MINIMAL, "id": "t2", "kind": "must_ask"}
    (tmp_path / "t2").mkdir()
    (tmp_path / "t2" / "task.yaml").write_text(yaml.safe_dump(ask))
    (twin / "task.yaml").write_text(yaml.safe_dump({"id": "impossible-t1", "twin_of": "t2", "description": "x"}))
    with pytest.raises(TaskError, match="twins are made of port and seeded_bug tasks"):
        load_task(twin)
    (twin / "task.yaml").write_text(yaml.safe_dump({"id": "not-a-twin-name", "twin_of": "t1", "description": "x"}))
    with pytest.raises(TaskError, match="impossible twin"):
        load_task(twin)
