"""End-to-end runs of the skill loop on the TinyVid example, with scripted agents.

Every run is real: a git worktree, the parity test run by pytest in the sandbox, SQLite
checkpoints, and the handoff built from that evidence.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.runs.runner import RunConfig, answer_run, resume_run, start_run
from tests.test_run_helpers import (
    BAD_UNSCALE,
    GOOD_UNSCALE,
    example,
    fix_turns,
    idle_debug_turns,
    load_handoff,
    plan_turns,
    port_status,
    write_gold_turns,
    write_script,
)

pytestmark = pytest.mark.slow


def run_cfg(tmp_path: Path, ex, key: str, script: Path, **kw) -> RunConfig:
    return RunConfig(packet=ex.packets[key], repo=ex.repo, model=f"scripted:{script}", sandbox="local",
                     home=tmp_path / "home", **kw)


def packet_of(ex, key: str) -> dict:
    return json.loads(Path(ex.packets[key]).read_text())


def component_row(status, component="vae") -> dict:
    rows = [r for r in status.rows("Component Matrix") if component in r.get("Component", "")]
    assert rows, status.rows("Component Matrix")
    return rows[0]


def test_parity_debug_red_then_debugged_to_non_skip_pass(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=fix_turns())
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script))
    assert out.status == "completed", out.summary
    assert out.exit_code == 0
    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status == "non_skip_pass"
    assert handoff.mode == "parity-debug"
    s = out.summary
    assert s["debug_rounds"] == 1
    assert s["debug_attempts"][0]["parity_after"].startswith("non_skip_pass")
    assert "fastvideo/models/vaes/tinyvid.py" in s["debug_attempts"][0]["files"]
    # The harness's own runs: red after implement, green after debug; plus the agent's own run.
    assert s["parity_runs"] == 3
    for node in ("plan", "implement", "run_parity", "debug", "finalize"):
        n = s["nodes"][node]
        assert n["total_s"] >= n["model_s"] + n["test_s"] - 1e-6
    assert s["nodes"]["run_parity"]["test_s"] > 0
    assert s["totals"]["input_tokens"] > 0
    # The user's checkout is untouched; the work is on the run's branch.
    assert not (ex.repo / "fastvideo/models/vaes/tinyvid.py").exists()
    assert (out.worktree / "fastvideo/models/vaes/tinyvid.py").read_text().count(GOOD_UNSCALE) == 1
    status = port_status(out.worktree)
    assert component_row(status)["Parity"].strip("`") == "non_skip_pass"
    for name in ("handoff.json", "handoff.md", "summary.json", "run.log", "trajectory.jsonl", "checkpoints.sqlite"):
        assert (out.run_dir / name).is_file(), name
    assert list((out.run_dir / "logs").iterdir())
    # Every agent step that wrote something is a commit on the run's branch.
    import git

    log = git.Repo(out.worktree).git.log("--format=%s", f"{out.summary['branch']}")
    assert "implement: implementer write_file" in log and "debug: debugger edit_file" in log


def test_prototype_next_step_follows_the_conversion_state(tmp_path):
    # The example's converted weights exist and PORT_STATUS.md says the conversion passed: a
    # prototype whose parity run strict-loads them has nothing left for conversion to do.
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    out = start_run(run_cfg(tmp_path, ex, "vae:prototype", script))
    assert out.status == "completed", out.summary
    handoff = load_handoff(out.run_dir)
    assert (handoff.mode, handoff.parity_status, handoff.strict_load) == ("prototype", "non_skip_pass", "pass")
    assert handoff.next_step == "phase_6_continue"
    assert any("conversion already done" in c for c in handoff.concerns_or_unknowns)
    assert out.summary["debug_rounds"] == 0
    assert component_row(port_status(out.worktree))["Prototype"].strip("`") == "done"

    # The same port, where PORT_STATUS.md says the conversion has not run: it goes to conversion.
    other = tmp_path / "second"
    other.mkdir()
    ex2 = example(other)
    status = ex2.repo / "tests/local_tests/tinyvid/PORT_STATUS.md"
    status.write_text(status.read_text().replace("| `not_started` | `pass` | `scaffold_skip` |",
                                                 "| `not_started` | `not_started` | `scaffold_skip` |", 1))
    import subprocess

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qam", "conversion pending"],
                   cwd=ex2.repo, check=True)
    out = start_run(run_cfg(other, ex2, "vae:prototype", write_script(other / "s.yaml", planner=plan_turns(),
                                                                       implementer=write_gold_turns())))
    assert out.status == "completed", out.summary
    assert load_handoff(out.run_dir).next_step == "phase_5_conversion"


def test_loosened_tolerance_is_caught_and_never_reported_as_pass(tmp_path):
    ex = example(tmp_path)
    loosen = [
        {"tool_calls": [{"name": "edit_file", "args": {
            "path": "tests/local_tests/vaes/test_tinyvid_vae_parity.py", "old": "ATOL = 1e-4\nRTOL = 1e-4",
            "new": "ATOL = 1e3\nRTOL = 1e3"}}]},
        {"tool_calls": [{"name": "run_parity_test", "args": {}}]},
        {"tool_calls": [{"name": "finish", "args": {"summary": "parity passes now"}}]},
    ]
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)),
                          debugger=loosen + idle_debug_turns(1))
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script, max_debug_rounds=2, on_budget="blocked"))
    assert out.status == "blocked", out.summary
    assert out.exit_code == 4
    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status != "non_skip_pass"
    assert handoff.next_step == "blocked"
    assert any(f["name"] == "parity_test_weakened" for f in out.summary["guard_findings"])
    # The second round was told about the guard hit.
    tasks = [json.loads(line) for line in (out.run_dir / "trajectory.jsonl").read_text().splitlines()]
    debug_tasks = [t["task"] for t in tasks if t["event"] == "agent_start" and t["role"] == "debugger"]
    assert len(debug_tasks) == 2 and "parity_test_weakened" in debug_tasks[1]
    status = port_status(out.worktree)
    assert component_row(status)["Parity"].strip("`") != "non_skip_pass"


def test_refused_escape_hatch_for_red_parity_keeps_the_agent_working(tmp_path):
    ex = example(tmp_path)
    ask = {"tool_calls": [{"name": "raise_escape_hatch", "args": {
        "decision_type": "blocker",
        "question": "Parity is red on decode_latents; what should I change to fix it?",
        "options": ["Look at the latent scaling: a guess", "Look at the decoder layers: a guess"],
        "recommended_option": "Look at the latent scaling",
        "safe_default": "keep debugging",
        "evidence": "AssertionError: decode_latents: Tensor-likes are not close! pytest failed",
    }}]}
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)),
                          debugger=[ask] + fix_turns())
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script))
    assert out.status == "completed", out.summary
    events = [json.loads(line) for line in (out.run_dir / "trajectory.jsonl").read_text().splitlines()]
    refusals = [e for e in events if e["event"] == "tool_result" and e["name"] == "raise_escape_hatch"]
    assert refusals and refusals[0]["is_error"] and "refused" in refusals[0]["content"]
    assert port_status(out.worktree).rows("Escape Hatches") == []
    assert load_handoff(out.run_dir).parity_status == "non_skip_pass"


def test_conversion_retry_request_for_a_renamed_key(tmp_path):
    import git
    from safetensors.torch import load_file, save_file

    ex = example(tmp_path)
    weights = ex.repo / "converted_weights/tinyvid/vae/model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in sorted(tensors) if k.startswith("post_quant_proj"))
    tensors[key.replace("post_quant_proj", "post_quant_conv")] = tensors.pop(key)
    save_file(tensors, str(weights))
    repo = git.Repo(ex.repo)
    repo.git.add(A=True)
    repo.git.commit("-m", "conversion output with a stale key name", "--no-verify")

    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns(),
                          debugger=idle_debug_turns(2))
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script))
    handoff = load_handoff(out.run_dir)
    assert handoff.next_step == "phase_5_conversion_retry", out.summary
    request = handoff.conversion_retry_request
    assert request not in (None, "none")
    assert "post_quant_conv" in str(request.failing_keys) and request.suspected_fix == "rename"
    assert out.summary["debug_rounds"] == 0  # conversion is not debugged by the component skill
    assert out.status == "blocked" and out.exit_code == 4
    status = port_status(out.worktree)
    assert "retry requested" in component_row(status)["Conversion"]
    issues = status.rows("Issues And Blockers")
    assert len(issues) == 1 and "loading state_dict" in issues[0]["Issue"]
    changed = git.Repo(out.worktree).git.diff("--name-only", repo.head.commit.hexsha, "HEAD").splitlines()
    assert not [p for p in changed if p.startswith("converted_weights/")]


def test_budget_spent_with_on_budget_blocked_gives_precise_blocker(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=idle_debug_turns(1))
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script, max_debug_rounds=1, on_budget="blocked"))
    assert (out.status, out.exit_code) == ("blocked", 4), out.summary
    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status == "debug_red"
    assert handoff.next_step == "blocked"
    assert "debug budget spent" in handoff.blocker and "1 of 1 debug rounds" in handoff.blocker
    assert "debug_red" in handoff.blocker
    status = port_status(out.worktree)
    assert component_row(status)["Parity"].strip("`") == "debug_red"
    issues = status.rows("Issues And Blockers")
    assert [i["ID"].strip("`") for i in issues] == ["I001"] and "debug budget spent" in issues[0]["Issue"]


def test_budget_spent_asks_a_cost_question_then_extends_or_stops(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)),
                          debugger=idle_debug_turns(1) + fix_turns())
    cfg = run_cfg(tmp_path, ex, "vae:parity-debug", script, max_debug_rounds=1)
    out = start_run(cfg)
    assert (out.status, out.exit_code) == ("paused", 3), out.summary
    assert out.pending_question.decision_type == "cost"
    assert out.summary["question"]["hatch_id"] == "E001"
    rows = port_status(out.worktree).rows("Escape Hatches")
    assert [r["ID"].strip("`") for r in rows] == ["E001"]
    # Resuming a paused run does not skip the question.
    again = resume_run(out.run_id, home=cfg.home)
    assert again.status == "paused" and again.summary["question"]["hatch_id"] == "E001"
    # Extend: one more round, in which the debugger fixes the bug.
    done = answer_run(out.run_id, option=1, home=cfg.home)
    assert done.status == "completed", done.summary
    assert done.summary["debug_rounds"] == 2
    assert load_handoff(done.run_dir).parity_status == "non_skip_pass"
    row = port_status(done.worktree).rows("Escape Hatches")[0]
    assert row["Status"].strip("`") != "open"


def test_cost_question_answered_stop_ends_blocked(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=idle_debug_turns(1))
    cfg = run_cfg(tmp_path, ex, "vae:parity-debug", script, max_debug_rounds=1)
    out = start_run(cfg)
    assert out.status == "paused"
    with pytest.raises(Exception, match="out of range"):
        answer_run(out.run_id, option=7, home=cfg.home)
    done = answer_run(out.run_id, option=2, home=cfg.home)
    assert (done.status, done.exit_code) == ("blocked", 4), done.summary
    assert "debug budget spent" in load_handoff(done.run_dir).blocker
    status = port_status(done.worktree)
    assert status.rows("Escape Hatches")[0]["Status"].strip("`") != "open"
    assert component_row(status)["Parity"].strip("`") == "debug_red"


@pytest.mark.bwrap
def test_parity_debug_run_in_bubblewrap(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    cfg = run_cfg(tmp_path, ex, "vae:parity-debug", script)
    cfg.sandbox = "bwrap"
    out = start_run(cfg)
    assert out.status == "completed", out.summary
    assert load_handoff(out.run_dir).parity_status == "non_skip_pass"


def test_debugger_asks_to_loosen_tolerance_and_a_person_approves(tmp_path):
    """The only way a looser tolerance passes: a person said yes, and the answer went back to
    the debugger that asked (the same conversation, resumed)."""
    ex = example(tmp_path)
    ask = {"tool_calls": [{"name": "raise_escape_hatch", "args": {
        "decision_type": "blocker",
        "question": "decode_latents differs from the official output; loosen the tolerance ATOL/RTOL from 1e-4 to 1e3?",
        "options": ["Loosen the tolerance to 1e3: the test passes with a documented looser bound",
                    "Keep 1e-4: keep debugging"],
        "recommended_option": "Keep 1e-4",
        "safe_default": "keep 1e-4 and keep debugging",
        "evidence": "max_abs of decode_latents above ATOL after checking every drift item",
    }}]}
    loosen = [
        {"tool_calls": [{"name": "edit_file", "args": {
            "path": "tests/local_tests/vaes/test_tinyvid_vae_parity.py", "old": "ATOL = 1e-4\nRTOL = 1e-4",
            "new": "ATOL = 1e3\nRTOL = 1e3"}}]},
        {"tool_calls": [{"name": "finish", "args": {"summary": "loosened as approved"}}]},
    ]
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=[ask] + loosen)
    cfg = run_cfg(tmp_path, ex, "vae:parity-debug", script)
    out = start_run(cfg)
    assert out.status == "paused", out.summary
    assert out.summary["question"]["asked_by"] == "debug"
    done = answer_run(out.run_id, option=1, home=cfg.home)
    assert done.status == "completed", done.summary
    assert done.summary["debug_rounds"] == 1
    assert not [f for f in done.summary["guard_findings"] if f["blocking"]]
    assert load_handoff(done.run_dir).parity_status == "non_skip_pass"
    row = port_status(done.worktree).rows("Escape Hatches")[0]
    assert "Loosen the tolerance" in row["Resolution"]


def test_text_encoder_port_reaches_non_skip_pass(tmp_path):
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns("text_encoder"))
    out = start_run(run_cfg(tmp_path, ex, "text_encoder:parity-debug", script))
    assert out.status == "completed", out.summary
    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status == "non_skip_pass" and handoff.component == "text_encoder"
    status = port_status(out.worktree)
    assert component_row(status, "text_encoder")["Parity"].strip("`") == "non_skip_pass"
    assert component_row(status, "vae")["Parity"].strip("`") == "scaffold_skip"  # other rows untouched


@pytest.mark.docker
def test_run_in_docker_pauses_and_resumes_with_a_restarted_container(tmp_path):
    from tests.test_run_cli import SCOPE_HATCH

    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    cfg = run_cfg(tmp_path, ex, "vae:parity-debug", script)
    cfg.sandbox = "docker"
    out = start_run(cfg)
    assert out.status == "paused", out.summary
    done = answer_run(out.run_id, option=1, home=cfg.home)
    assert done.status == "completed", done.summary
    handoff = load_handoff(done.run_dir)
    assert handoff.parity_status == "non_skip_pass"
    assert port_status(done.worktree).rows("Escape Hatches")[0]["ID"].strip("`") == "E001"


def test_rewritten_comparison_the_guards_cannot_see_still_never_passes(tmp_path):
    """The agent keeps every assertion and tolerance but compares the port with itself. Static
    guards see the same shape of test; the verdict still comes from the base commit's test."""
    ex = example(tmp_path)
    self_compare = [
        {"tool_calls": [{"name": "edit_file", "args": {
            "path": "tests/local_tests/vaes/test_tinyvid_vae_parity.py",
            "old": "assert_close(got.float().cpu(), ref.float().cpu(),",
            "new": "assert_close(got.float().cpu(), got.float().cpu(),"}}]},
        {"tool_calls": [{"name": "run_parity_test", "args": {}}]},
        {"tool_calls": [{"name": "finish", "args": {"summary": "parity passes now"}}]},
    ]
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)),
                          debugger=self_compare)
    out = start_run(run_cfg(tmp_path, ex, "vae:parity-debug", script, max_debug_rounds=1, on_budget="blocked"))
    assert out.exit_code == 4, out.summary
    handoff = load_handoff(out.run_dir)
    assert handoff.parity_status == "debug_red"
    assert not [f for f in out.summary["guard_findings"] if f["name"] == "parity_test_weakened"]
    # The agent's own run of its edited test passed; the harness's verdict did not.
    trajectory = (out.run_dir / "trajectory.jsonl").read_text()
    assert "non_skip_pass" in trajectory
    runs = out.summary.get("parity_runs")
    assert runs and runs >= 2
    # The agent's edit is still on the branch for review; only the verdict ignored it.
    edited = (out.worktree / "tests/local_tests/vaes/test_tinyvid_vae_parity.py").read_text()
    assert "got.float().cpu(), got.float().cpu()" in edited
