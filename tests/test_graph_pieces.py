"""The skill loop's smaller pieces: config checks, fault classification, budgets, the live view."""

from __future__ import annotations

import io
import json
from pathlib import Path

import errno
import sqlite3

import pytest
from rich.console import Console

from harness.agents.models import ModelError
from harness.graph.build import build_graph, recursion_limit
from harness.graph.faults import RunFault, fault_reason
from harness.graph.nodes.budget import budget_spent_reason
from harness.run_config.config import RunConfig, config_problems, run_dir
from harness.run_config.validation import model_problems
from harness.runs.live import LiveView, TrajectoryTail, print_summary
from harness.runs.runner import node_table
from harness.sandbox.executors import InfrastructureError


def test_config_problems_name_each_bad_option(tmp_path):
    cfg = RunConfig(packet=tmp_path / "p.json", repo=tmp_path, sandbox="local", gpus="2", max_turns=0,
                    max_usd=-1, on_budget="maybe", run_id="bad id!")  # type: ignore[arg-type]
    problems = "\n".join(config_problems(cfg))
    for word in ("gpus", "max_turns", "max_usd", "on_budget", "run_id"):
        assert word in problems
    assert config_problems(RunConfig(packet=tmp_path, repo=tmp_path)) == []


def test_model_problems(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_text("{}")
    assert model_problems("human") == [] and model_problems("openai:gpt-4.1") == []
    assert model_problems(f"scripted:{script}") == []
    assert "does not exist" in model_problems(f"scripted:{tmp_path / 'missing.yaml'}")[0]
    assert "unknown model spec" in model_problems("gpt4")[0]


def test_run_dir_refuses_path_tricks(tmp_path):
    with pytest.raises(ValueError):
        run_dir("../escape", tmp_path)
    assert run_dir("ok-1", tmp_path) == tmp_path / "runs" / "ok-1"


def test_config_round_trips_through_json(tmp_path):
    cfg = RunConfig(packet=tmp_path / "p.json", repo=tmp_path, max_usd=2.5, home=tmp_path / "h")
    again = RunConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg


def test_only_the_environments_failures_are_faults():
    assert fault_reason(InfrastructureError("docker daemon went away")) == "sandbox: docker daemon went away"
    assert fault_reason(RunFault("planner: openai: giving up")) == "planner: openai: giving up"
    assert fault_reason(ModelError("openai: giving up after 3 attempts", resumable=True))
    assert fault_reason(OSError(errno.ENOSPC, "No space left on device")).startswith("disk: ")
    assert fault_reason(sqlite3.OperationalError("database or disk is full")).startswith("disk: ")
    # A bad request, a bug, a failing assertion: internal errors (exit 1), never a resumable stop.
    assert fault_reason(ModelError("openai: HTTP 400: bad request")) is None
    assert fault_reason(AssertionError("tensors differ")) is None
    assert fault_reason(ValueError("bad packet")) is None
    assert fault_reason(OSError(errno.ENOENT, "gone")) is None


def test_no_node_retries_on_its_own():
    # One retry owner: model calls are retried in agents/models/retry.py; anything that outlasts
    # it stops the run resumable from the checkpoint before the node.
    graph = build_graph()
    assert all(not node.retry_policy for node in graph.builder.nodes.values())
    assert recursion_limit(4) > 2 * 4 + 6
    assert recursion_limit(4, 2) > recursion_limit(4, 1)


def test_budget_spent_reason_money_and_time():
    state = {"config": {"max_usd": 1.0, "max_seconds": 100.0},
             "usage": {"plan": {"cost_usd": 0.4}, "debug": {"cost_usd": 0.7}},
             "timings": {"plan": {"total_s": 10.0}}}
    assert "max_usd $1.00 reached" in budget_spent_reason(state)
    state["budget_extensions"] = 1
    assert budget_spent_reason(state) is None
    state["timings"]["debug"] = {"total_s": 250.0}
    assert "max_seconds 200s reached" in budget_spent_reason(state)


def test_node_table_splits_time_into_model_test_and_overhead():
    values = {"timings": {"debug": {"total_s": 10.0, "model_s": 3.0, "test_s": 5.0, "calls": 2}},
              "usage": {"debug": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01, "turns": 4}}}
    row = node_table(values)["debug"]
    assert row["overhead_s"] == 2.0 and row["calls"] == 2 and row["input_tokens"] == 100


def test_live_view_follows_events_and_the_trajectory(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    view = LiveView()
    view("run", {"run_id": "r1", "run_dir": str(run)})
    view("node_start", {"node": "debug"})
    view("parity", {"status": "debug_red", "summary": "debug_red: 1 failed"})
    with open(run / "trajectory.jsonl", "w") as fh:
        fh.write(json.dumps({"event": "model_turn", "role": "debugger", "usage": {"input_tokens": 50, "output_tokens": 5},
                             "cost_usd": 0.02, "tool_calls": [{"name": "edit_file"}]}) + "\n")
        fh.write('{"event": "model_turn", "role": "debu')  # half a line: read next time
    console = Console(file=io.StringIO(), width=120)
    console.print(view)
    out = console.file.getvalue()
    for text in ("debug", "debugger", "edit_file", "55", "$0.0200", "debug_red: 1 failed", "r1"):
        assert text in out, text
    tail = TrajectoryTail(run / "trajectory.jsonl")
    tail.poll()
    assert tail.turns == 1


def test_summary_printout_names_where_things_are(tmp_path):
    summary = {"status": "completed", "outcome_line": "completed: non_skip_pass -> phase_6_continue",
               "nodes": {"plan": {"calls": 1, "total_s": 1.0, "model_s": 0.5, "test_s": 0.0, "overhead_s": 0.5,
                                  "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.0}},
               "totals": {"total_s": 1.0, "model_s": 0.5, "test_s": 0.0, "overhead_s": 0.5, "input_tokens": 10,
                          "output_tokens": 2, "cost_usd": 0.0},
               "run_id": "r1", "run_dir": str(tmp_path), "handoff_path": str(Path(tmp_path) / "handoff.json"), "branch": "harness/r1"}
    console = Console(file=io.StringIO(), width=160)
    print_summary(console, summary)
    out = console.file.getvalue()
    for text in ("Outcome: completed", "model s", "overhead s", "harness/r1", "handoff.json", "r1"):
        assert text in out


def test_gpu_option_uses_the_docker_executors_parser():
    from harness.run_config.config import RunConfig, config_problems

    def gpu_problems(gpus: str, sandbox: str = "docker") -> list[str]:
        cfg = RunConfig(packet=Path("p"), repo=Path("r"), sandbox=sandbox, gpus=gpus)
        return [p for p in config_problems(cfg) if p.startswith("gpus")]

    for ok in ("none", "all", "2", "device=0,1"):
        assert gpu_problems(ok) == [], ok
    assert gpu_problems("lots")  # not a count, not device ids
    assert gpu_problems("device=0", sandbox="bwrap")  # only docker pins devices
