"""The run commands as a person uses them: real `harness` subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_run_helpers import (
    BAD_UNSCALE,
    GOOD_UNSCALE,
    VAE_MODEL,
    example,
    harness_cli,
    load_handoff,
    plan_turns,
    port_status,
    write_gold_turns,
    write_script,
)

SCOPE_HATCH = {"tool_calls": [{"name": "raise_escape_hatch", "args": {
    "decision_type": "scope",
    "question": "The official VAE also has an unused tiled decode variant; drop that variant from this port?",
    "options": ["Keep the variant out: port only the tested encode/decode path",
                "Port the variant too: more code, no parity coverage"],
    "recommended_option": "Keep the variant out",
    "safe_default": "port only the tested encode/decode path",
    "evidence": "tinyvid_official/vae.py defines two decode paths; the packet names one",
}}]}


def run_args(ex, key: str, script: Path, *extra: str) -> list[str]:
    return ["run", "--packet", str(ex.packets[key]), "--repo", str(ex.repo), "--model", f"scripted:{script}",
            "--sandbox", "local", *extra]


@pytest.mark.slow
def test_escape_hatch_pauses_with_exit_3_and_answer_finishes_the_run(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    first = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "hatch1"), home, tmp_path)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "harness answer hatch1 --option 1" in first.stdout
    assert "drop that variant from this port?" in first.stdout
    rows = port_status(home / "worktrees" / "hatch1").rows("Escape Hatches")
    assert [r["ID"].strip("`") for r in rows] == ["E001"]

    bad = harness_cli(["answer", "hatch1", "--option", "5"], home, tmp_path)
    assert bad.returncode == 2 and "out of range" in bad.stderr

    second = harness_cli(["answer", "hatch1", "--option", "1", "--non-interactive"], home, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    run_dir = home / "runs" / "hatch1"
    handoff = load_handoff(run_dir)
    assert handoff.parity_status == "non_skip_pass"
    # The implementer got the answer as its tool result and went on.
    events = [json.loads(line) for line in (run_dir / "trajectory.jsonl").read_text().splitlines()]
    answered = [e for e in events if e["event"] == "tool_result" and e["name"] == "raise_escape_hatch"]
    assert answered and "option 1" in answered[-1]["content"]
    rows = port_status(home / "worktrees" / "hatch1").rows("Escape Hatches")
    assert len(rows) == 1 and rows[0]["Status"].strip("`") != "open"
    assert "Keep the variant out" in rows[0]["Resolution"]


@pytest.mark.slow
def test_sigkill_mid_debug_then_resume_reaches_the_same_outcome(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    debugger = [
        {"tool_calls": [{"name": "read_file", "args": {"path": VAE_MODEL, "start_line": 140}}]},
        {"tool_calls": [{"name": "run", "args": {"command": "sleep 8"}}]},
        {"tool_calls": [{"name": "edit_file", "args": {"path": VAE_MODEL, "old": BAD_UNSCALE, "new": GOOD_UNSCALE}}]},
        {"tool_calls": [{"name": "finish", "args": {"summary": "fixed unscale_latents"}}]},
    ]
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(),
                          implementer=write_gold_turns(replace=(GOOD_UNSCALE, BAD_UNSCALE)), debugger=debugger)
    env = {**os.environ, "HARNESS_HOME": str(home)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), *run_args(ex, "vae:parity-debug", script,
                            "--non-interactive", "--run-id", "killed1")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trajectory = home / "runs" / "killed1" / "trajectory.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if trajectory.is_file() and "sleep 8" in trajectory.read_text():
            break  # the debugger is inside its `run` call
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the debugger started"
    busy = harness_cli(["resume", "killed1", "--non-interactive"], home, tmp_path)  # the run is being driven
    assert busy.returncode == 2 and "another process" in busy.stderr, busy.stderr
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (home / "runs" / "killed1" / "handoff.json").exists()

    resumed = harness_cli(["resume", "killed1", "--non-interactive"], home, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    handoff = load_handoff(home / "runs" / "killed1")
    assert handoff.parity_status == "non_skip_pass"
    summary = json.loads((home / "runs" / "killed1" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["debug_rounds"] == 1
    worktree = home / "worktrees" / "killed1"
    assert (worktree / VAE_MODEL).read_text().count(GOOD_UNSCALE) == 1
    assert port_status(worktree).rows("Component Matrix")
    # The debugger's conversation went on where it was killed: the cut-short call was answered
    # "interrupted" and the agent did not start over.
    events = [json.loads(line) for line in trajectory.read_text().splitlines()]
    results = [e for e in events if e.get("event") == "tool_result" and e.get("role") == "debugger"]
    assert any(str(e.get("content", "")).startswith("interrupted") for e in results), results
    reads = [e for e in events if e.get("event") == "model_turn" and e.get("role") == "debugger"
             and "read_file" in json.dumps(e)]
    assert len(reads) == 1


def test_bad_packet_exits_2_listing_every_problem_and_writes_nothing(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    packet = json.loads(Path(ex.packets["vae:parity-debug"]).read_text())
    packet["mode"] = "sprint"
    packet["parity_test"] = "../outside/test_x.py"
    del packet["official_instantiation_files"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(packet))
    head = subprocess.run(["git", "-C", str(ex.repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    result = harness_cli(["run", "--packet", str(bad), "--repo", str(ex.repo), "--model", "human",
                          "--sandbox", "local", "--non-interactive"], home, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert "mode" in out and "official_instantiation_files" in out and "parity_test" in out
    assert not home.exists()
    branches = subprocess.run(["git", "-C", str(ex.repo), "branch", "--list", "harness/*"], capture_output=True, text=True)
    assert branches.stdout.strip() == ""
    assert subprocess.run(["git", "-C", str(ex.repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout == head
    assert subprocess.run(["git", "-C", str(ex.repo), "status", "--porcelain"], capture_output=True, text=True).stdout == ""


@pytest.mark.slow
def test_parity_scaffold_packet_is_refused_not_run_as_a_prototype(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    packet = json.loads(Path(ex.packets["vae:prototype"]).read_text())
    packet["mode"] = "parity-scaffold"
    scaffold = tmp_path / "scaffold.json"
    scaffold.write_text(json.dumps(packet))
    valid = harness_cli(["validate", str(scaffold), "--repo", str(ex.repo)], home, tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr  # a valid packet ...
    result = harness_cli(["run", "--packet", str(scaffold), "--repo", str(ex.repo), "--model", "human",
                          "--sandbox", "local", "--non-interactive"], home, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr  # ... that a run does not take
    assert "mode: parity-scaffold belongs to the add-model-02-parity skill" in result.stdout
    assert not home.exists()


def test_bad_options_and_unknown_runs_are_clear_errors(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    result = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(tmp_path / "nope"),
                          "--max-turns", "0", "--sandbox", "local"], home, tmp_path)
    assert result.returncode == 2
    assert "max_turns" in result.stdout and "does not exist" in result.stdout
    for cmd in (["answer", "no-such-run", "--option", "1"], ["resume", "no-such-run"], ["show", "no-such-run"]):
        r = harness_cli(cmd, home, tmp_path)
        assert r.returncode == 2 and "no run 'no-such-run'" in r.stderr, (cmd, r.stderr)


def test_graph_prints_mermaid_and_langgraph_json_loads_it(tmp_path):
    result = harness_cli(["graph"], tmp_path / "home", tmp_path)
    assert result.returncode == 0
    for node in ("validate_packet", "prepare_workspace", "plan", "implement", "run_parity", "debug", "ask_human", "finalize"):
        assert node in result.stdout
    assert "run_parity -.-> debug" in result.stdout
    root = Path(__file__).resolve().parents[1]
    spec = json.loads((root / "langgraph.json").read_text())
    path, _, attr = spec["graphs"]["skill_loop"].partition(":")
    module = ".".join(Path(path).with_suffix("").parts[-3:])
    import importlib

    graph = getattr(importlib.import_module(module), attr)()
    assert set(graph.get_graph().nodes) >= {"validate_packet", "finalize", "ask_human"}


@pytest.mark.slow
def test_runs_and_show_list_and_describe_a_finished_run(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    done = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "shown1"), home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for word in ("Outcome: completed", "model s", "test s", "overhead s", "shown1", "handoff.json", "harness/shown1"):
        assert word in done.stdout, word
    listing = harness_cli(["runs"], home, tmp_path)
    assert re.search(r"shown1.*completed", listing.stdout)
    shown = harness_cli(["show", "shown1"], home, tmp_path)
    assert shown.returncode == 0
    assert "implementer" in shown.stdout and "+class TinyVidVAE" in shown.stdout


@pytest.mark.slow
def test_interactive_run_asks_at_the_terminal_and_resumes_with_the_answer(tmp_path):
    import pty
    import select

    ex = example(tmp_path)
    home = tmp_path / "home"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    master, slave = pty.openpty()
    env = {**os.environ, "HARNESS_HOME": str(home), "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"),
                             *run_args(ex, "vae:parity-debug", script, "--run-id", "tty1")],
                            cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen, answered = b"", False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"Your answer" in seen:
            os.write(master, b"1\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=60)
    os.close(master)
    text = seen.decode("utf-8", "replace")
    assert answered, text[-3000:]
    assert "A person must decide" in text and "recommended: Keep the variant out" in text
    assert proc.returncode == 0, text[-3000:]
    assert load_handoff(home / "runs" / "tty1").parity_status == "non_skip_pass"


@pytest.mark.slow
def test_model_failure_ends_blocked_with_the_precise_reason(tmp_path):
    """The human model with no input left is a model error: no retry loop, a blocked handoff."""
    ex = example(tmp_path)
    home = tmp_path / "home"
    result = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                          "--model", "human", "--sandbox", "local", "--non-interactive", "--run-id", "nohuman"],
                         home, tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 4, result.stdout + result.stderr
    summary = json.loads((home / "runs" / "nohuman" / "summary.json").read_text())
    assert summary["agent_stop"].startswith("planner stopped: model_error")
    assert "input ended" in summary["agent_stop"]
    handoff = load_handoff(home / "runs" / "nohuman")
    assert handoff.next_step == "blocked" and handoff.parity_status != "non_skip_pass"
    assert "model_error" in handoff.blocker
