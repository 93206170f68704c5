"""The agent loop driven by scripted models on a real worktree with the real local executor."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.agents.loop import INTERRUPTED, NUDGE, Budget, AgentResult, repair_pending, run_agent
from pydantic import TypeAdapter

from harness.agents.models.base import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from harness.agents.models.replay import ReplayModel
from harness.agents.models.scripted import ScriptedModel
from harness.agents.prompts import system_for
from harness.agents.trajectory import Trajectory, read_events
from tests.fakes.workspace import make_setup

SYSTEM = system_for("implementer", "skill text", '{"component": "vae"}')


@pytest.fixture
def setup(tmp_path):
    s = make_setup(tmp_path)
    yield s
    s.executor.close()


class RecordingModel(ScriptedModel):
    """The scripted model, keeping each view of the conversation it was sent."""

    views: list

    def _complete(self, role, system, messages, tools):
        self.__dict__.setdefault("views", []).append(list(messages))
        return super()._complete(role, system, messages, tools)


def scripted(turns, role="implementer", cls=ScriptedModel, **kw):
    return cls.from_dict({role: turns}, **kw)


def tc(name, **args):
    return {"name": name, "args": args}


def go(setup, model, role="implementer", budget=None, task="Port the demo VAE.", **kw):
    traj = kw.pop("trajectory", None) or Trajectory(setup.run_dir / "trajectory.jsonl")
    setup.ctx.role = role
    return run_agent(role, model, setup.ctx, system=SYSTEM, task=task, budget=budget or Budget(),
                     trajectory=traj, **kw)


FULL_SCRIPT = [
    {"text": "Look around first.", "tool_calls": [tc("list_dir", path="fastvideo/models/vaes"),
                                                   tc("read_file", path="fastvideo/models/vaes/base.py")]},
    {"tool_calls": [tc("grep", pattern="scale", path="fastvideo")]},
    {"tool_calls": [tc("write_file", path="fastvideo/models/vaes/demo.py",
                       content="class DemoVAE:\n    pass\n\n\nEntryClass = DemoVAE\n")]},
    {"tool_calls": [tc("edit_file", path="fastvideo/models/vaes/demo.py", old="    pass", new="    scale = 0.18215")]},
    {"tool_calls": [tc("run", command="python -c 'import fastvideo.models.vaes.demo as m; print(m.EntryClass.scale)'")]},
    {"tool_calls": [tc("record_concern", text="tiling untested")]},
    {"tool_calls": [tc("finish", summary="ported", files_changed=["fastvideo/models/vaes/demo.py"])]},
]


def test_scripted_run_uses_every_tool_and_finishes(setup):
    result = go(setup, scripted(FULL_SCRIPT))
    assert result.reason == "finished", result.detail
    assert result.turns == 7
    assert result.finish_args == {"summary": "ported", "files_changed": ["fastvideo/models/vaes/demo.py"]}
    assert result.concerns == ["tiling untested"]
    assert "scale = 0.18215" in (setup.ws.path / "fastvideo/models/vaes/demo.py").read_text()
    results = [m for m in result.messages if isinstance(m, ToolResultMessage)]
    assert [r.name for r in results] == ["list_dir", "read_file", "grep", "write_file", "edit_file", "run",
                                         "record_concern", "finish"]
    assert "0.18215" in results[5].content and not any(r.is_error for r in results)
    events = list(read_events(setup.run_dir / "trajectory.jsonl"))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "agent_start" and kinds[-1] == "agent_end" and kinds.count("model_turn") == 7
    assert kinds.count("tool_result") == 8
    assert all(e["role"] == "implementer" for e in events)
    turn = next(e for e in events if e["event"] == "model_turn")
    assert turn["usage"]["input_tokens"] > 0 and turn["cost_usd"] == 0
    # The result is plain data the graph can checkpoint, and reads back the same.
    again = AgentResult.model_validate_json(result.model_dump_json())
    assert again == result


def test_tool_errors_go_back_to_the_model_and_the_loop_continues(setup):
    model = scripted([
        {"tool_calls": [{"name": "read_file", "args": '{"path": "README.md"'}]},  # malformed JSON
        {"tool_calls": [tc("nuke")]},
        {"tool_calls": [tc("edit_file", path="fastvideo/models/vaes/base.py", old="self", new="me")]},
        {"tool_calls": [tc("read_file", path="../../etc/passwd")]},
        {"tool_calls": [tc("read_file", file="README.md")]},
        {"text": "thinking out loud"},
        {"tool_calls": [tc("finish", summary="done")]},
    ])
    result = go(setup, model)
    assert result.reason == "finished"
    errors = [m.content for m in result.messages if isinstance(m, ToolResultMessage) and m.is_error]
    assert "not a JSON object" in errors[0]
    assert "unknown tool 'nuke'" in errors[1]
    assert "matches 2 times" in errors[2]
    assert "path refused" in errors[3]
    assert "invalid arguments for read_file" in errors[4]
    assert any(isinstance(m, UserMessage) and m.text == NUDGE for m in result.messages)


def test_budget_turns(setup):
    model = scripted([{"tool_calls": [tc("list_dir", path=".")]}] * 10)
    result = go(setup, model, budget=Budget(max_turns=3))
    assert result.reason == "budget_turns" and result.turns == 3
    assert "3 turns used of 3" in result.detail


def test_budget_tokens_stops_before_the_call_that_would_exceed(setup):
    usage = {"input_tokens": 4000, "output_tokens": 1000}
    model = scripted([{"tool_calls": [tc("list_dir", path=".")], "usage": usage}] * 10)
    result = go(setup, model, budget=Budget(max_tokens=12_000))
    assert result.reason == "budget_tokens"
    assert result.turns == 2 and result.usage.total == 10_000 <= 12_000


def test_budget_usd_checks_the_next_calls_cost_first(setup):
    # $3 / $15 per million: each turn costs 100k*3/1e6 + 10k*15/1e6 = $0.45
    usage = {"input_tokens": 100_000, "output_tokens": 10_000}
    model = scripted([{"tool_calls": [tc("list_dir", path=".")], "usage": usage}] * 10, price="3,15")
    result = go(setup, model, budget=Budget(max_usd=1.0))
    assert result.reason == "budget_usd"
    assert result.turns == 2 and result.cost_usd == pytest.approx(0.90)
    assert result.cost_usd <= 1.0
    # A cap below one call's expected cost stops before any call at all.
    model = scripted([{"tool_calls": [tc("list_dir", path=".")], "usage": usage}], price="3,15")
    result = go(setup, model, budget=Budget(max_usd=0.001))
    assert result.reason == "budget_usd" and result.turns == 0 and result.cost_usd == 0


def test_budget_time(setup):
    model = scripted([{"tool_calls": [tc("run", command="sleep 0.4")]}] * 10)
    result = go(setup, model, budget=Budget(max_seconds=0.7))
    assert result.reason == "budget_time"
    assert result.turns == 2 and result.duration_s >= 0.7


def test_context_is_trimmed_keeping_task_and_a_stable_prefix(setup):
    body = "".join(f"{i:05d} " + "x" * 70 + "\n" for i in range(200))  # ~15k chars per read
    (setup.ws.path / "big.txt").write_text(body)
    turns = [{"tool_calls": [tc("read_file", path="big.txt", start_line=1 + (i % 2) * 100, end_line=100 + (i % 2) * 100)]}
             for i in range(12)] + [{"tool_calls": [tc("finish", summary="read it all")]}]
    model = scripted(turns, cls=RecordingModel)
    model.context_window = 20_000
    task = "Port the demo VAE. " + "packet " * 200
    result = go(setup, model, task=task)
    assert result.reason == "finished", result.detail
    condensed = 0
    stated = result.messages[0].text  # the task and, after it, the budget
    assert stated.startswith(task) and "Your budget for this step: 50 model turns" in stated
    for sent in model.views:
        assert sent[0].text.startswith(stated)  # the task message is never trimmed
        if sent[0].text != stated:  # ... and says what was condensed while anything is
            condensed += 1
            assert "[Note from the harness: to fit the model's context window," in sent[0].text
            assert any(isinstance(m, ToolResultMessage) and m.content.startswith("[trimmed") for m in sent)
        assert sum(view_tokens(m) for m in sent) < model.context_window
    assert condensed
    last = model.views[-1]
    assert any(isinstance(m, ToolResultMessage) and m.content.startswith("[trimmed") for m in last)
    # The newest turn's result is whole.
    assert isinstance(last[-1], ToolResultMessage) and "[trimmed" not in last[-1].content
    # Between trims the prefix sent is identical, so a provider cache keeps hitting.
    stable = sum(1 for a, b in zip(model.views, model.views[1:]) if b[: len(a)] == a)
    assert stable >= len(model.views) // 2
    # The saved messages and the trajectory keep everything.
    full = [m for m in result.messages if isinstance(m, ToolResultMessage) and m.name == "read_file"]
    assert all("[trimmed" not in m.content for m in full)
    text = (setup.run_dir / "trajectory.jsonl").read_text()
    assert "[trimmed" not in text and text.count("00150 ") == 6


def view_tokens(m):
    from harness.agents.context import message_tokens

    return message_tokens(m)


def test_context_overflow_when_even_the_task_does_not_fit(setup):
    model = scripted([{"tool_calls": [tc("finish", summary="x")]}])
    model.context_window = 4000
    result = go(setup, model, task="packet " * 5000)
    assert result.reason == "context_overflow" and result.turns == 0
    assert "window is 4000" in result.detail


def test_secrets_never_reach_the_trajectory(setup, monkeypatch):
    monkeypatch.setenv("DEMO_API_KEY", "s3cr3t-value-from-env-1234")
    monkeypatch.setenv("DEPLOY_PASSWORD", "hunter2hunter2")
    hf = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWx12"
    oa = "sk-" + "Proj1234567890AbCdEfGhIjKl"
    an = "sk-ant-" + "api03-abcdefghijklmnop"
    (setup.ws.path / "notes.txt").write_text(
        f"token {hf}\nkey {oa}\nanthropic {an}\nenv s3cr3t-value-from-env-1234\npw hunter2hunter2\n"
    )
    model = scripted([
        {"tool_calls": [tc("read_file", path="notes.txt")]},
        {"tool_calls": [tc("grep", pattern="token|key", path="notes.txt")]},
        {"tool_calls": [tc("run", command="cat notes.txt")]},
        {"text": f"I saw {hf}", "tool_calls": [tc("finish", summary=f"done with {oa}")]},
    ])
    traj = Trajectory(setup.run_dir / "trajectory.jsonl")  # reads the environment now
    result = go(setup, model, task="use s3cr3t-value-from-env-1234 please", trajectory=traj)
    assert result.reason == "finished"
    text = (setup.run_dir / "trajectory.jsonl").read_text()
    for secret in (hf, oa, an, "s3cr3t-value-from-env-1234", "hunter2hunter2"):
        assert secret not in text
    assert "[REDACTED:DEMO_API_KEY]" in text and "[REDACTED:DEPLOY_PASSWORD]" in text
    assert text.count("[REDACTED]") >= 3
    # The model was not sent the file's secrets either.
    sent = json.dumps([m.model_dump() for m in result.messages if isinstance(m, ToolResultMessage)])
    assert hf not in sent and "s3cr3t-value-from-env-1234" not in sent


def test_replay_repeats_the_recorded_tool_calls(setup, tmp_path):
    first = go(setup, scripted(FULL_SCRIPT))
    assert first.reason == "finished"
    other = make_setup(tmp_path / "again")
    try:
        replay = ReplayModel.from_file(setup.run_dir / "trajectory.jsonl")
        second = go(other, replay)
    finally:
        other.executor.close()
    assert second.reason == "finished" and second.finish_args == first.finish_args

    def calls(result):
        return [(c.name, c.args) for m in result.messages if isinstance(m, AssistantMessage) for c in m.tool_calls]

    assert calls(second) == calls(first)
    assert (other.ws.path / "fastvideo/models/vaes/demo.py").read_text() == \
        (setup.ws.path / "fastvideo/models/vaes/demo.py").read_text()


def test_script_exhausted_ends_like_finish(setup):
    result = go(setup, scripted([{"tool_calls": [tc("list_dir", path=".")]}]))
    assert result.reason == "finished" and result.finish_args == {"summary": "script exhausted"}


HATCH = {
    "decision_type": "ambiguity",
    "question": "Which official VAE definition is the source of truth?",
    "options": ["Use vae_v2.py: matches the published weights", "Use vae_v1.py: older layout"],
    "recommended_option": "Use vae_v2.py",
    "safe_default": "port vae_v2.py",
    "evidence": "ref/vae_v1.py and ref/vae_v2.py differ in the decoder's upsampling order",
}


def test_escape_hatch_asks_then_resumes_with_the_answer(setup):
    script = {"implementer": [
        {"tool_calls": [tc("raise_escape_hatch", **HATCH), tc("list_dir", path=".")]},
        {"tool_calls": [tc("finish", summary="ported v2")]},
    ]}
    result = go(setup, ScriptedModel.from_dict(script))
    assert result.reason == "asked"
    assert result.escape_hatch["question"] == HATCH["question"]
    assert result.escape_hatch["state_snapshot"]["phase"] == "implementer"
    # The hatch call waits for its answer; the call after it was not run.
    pending = result.messages[-2].tool_calls[0]
    assert pending.name == "raise_escape_hatch"
    assert result.messages[-1].content.startswith("not run")
    # A new process: a fresh model continues after the turns the conversation holds.
    saved = json.loads(result.model_dump_json())["messages"]
    model = RecordingModel.from_dict(script)
    messages = TypeAdapter(list[Message]).validate_python(saved)
    resumed = go(setup, model, task=None, messages=messages, resume_answer="Use vae_v2.py")
    assert resumed.reason == "finished" and resumed.finish_args == {"summary": "ported v2"}
    answer = next(m for m in model.views[0] if isinstance(m, ToolResultMessage) and m.tool_call_id == pending.id)
    assert answer.content == "A person answered your escape hatch: Use vae_v2.py"


def test_refused_escape_hatch_keeps_the_agent_working(setup):
    setup.ctx.hatch_policy = lambda hatch: "failing parity is debugged, not asked"
    model = scripted([
        {"tool_calls": [tc("raise_escape_hatch", **HATCH)]},
        {"tool_calls": [tc("finish", summary="kept debugging")]},
    ])
    result = go(setup, model)
    assert result.reason == "finished" and result.escape_hatch is None
    refused = [m for m in result.messages if isinstance(m, ToolResultMessage) and m.name == "raise_escape_hatch"]
    assert refused[0].is_error and "failing parity is debugged, not asked" in refused[0].content


def test_resume_answer_needs_a_pending_hatch(setup):
    messages = [UserMessage(text="task"), AssistantMessage(tool_calls=[ToolCall(id="a", name="list_dir", args={})]),
                ToolResultMessage(tool_call_id="a", name="list_dir", content="x")]
    with pytest.raises(ValueError, match="no raise_escape_hatch call is waiting"):
        go(setup, scripted([]), task=None, messages=messages, resume_answer="yes")
    with pytest.raises(ValueError, match="needs a task"):
        go(setup, scripted([]), task=None)


def test_interrupted_tool_call_gets_an_explicit_result(setup):
    messages = [
        UserMessage(text="task"),
        AssistantMessage(tool_calls=[ToolCall(id="a", name="read_file", args={"path": "README.md"}),
                                     ToolCall(id="b", name="run", args={"command": "make"})]),
        ToolResultMessage(tool_call_id="a", name="read_file", content="ok"),
        UserMessage(text="continue"),
    ]
    repaired, added = repair_pending(messages)
    assert [m.kind for m in repaired] == ["user", "assistant", "tool_result", "tool_result", "user"]
    assert repaired[3].tool_call_id == "b" and repaired[3].content == INTERRUPTED and repaired[3].is_error
    assert added == [repaired[3]]


def test_broken_sandbox_ends_with_infra_error_and_resume_marks_the_call(setup, tmp_path):
    model = scripted([{"tool_calls": [tc("run", command="echo hi")]}, {"tool_calls": [tc("finish", summary="ok")]}])
    moved = tmp_path / "moved"
    shutil.move(setup.ws.path, moved)  # the worktree vanishes: the executor cannot start a command
    try:
        result = go(setup, model)
    finally:
        shutil.move(moved, setup.ws.path)
    assert result.reason == "infra_error" and "run:" in result.detail
    assert isinstance(result.messages[-1], AssistantMessage)  # the call has no result yet
    resumed = go(setup, model, task=None, messages=result.messages)
    assert resumed.reason == "finished"
    marked = [m for m in resumed.messages if isinstance(m, ToolResultMessage) and m.name == "run"]
    assert marked[0].content == INTERRUPTED


def test_model_error_ends_the_run(setup):
    import io

    from harness.agents.models.human import HumanModel

    result = go(setup, HumanModel(stdin=io.StringIO(""), stdout=io.StringIO()))
    assert result.reason == "model_error" and "input ended" in result.detail


def test_on_step_is_called_after_each_turn(setup):
    steps = []
    result = go(setup, scripted(FULL_SCRIPT[:2] + FULL_SCRIPT[-1:]), on_step=steps.append)
    assert result.reason == "finished" and steps == [1, 2]


def test_commands_do_not_run_past_the_time_budget(setup):
    import time

    model = scripted([{"tool_calls": [tc("run", command="sleep 20")]}] * 3)
    t0 = time.monotonic()
    result = go(setup, model, budget=Budget(max_seconds=1.5))
    assert result.reason == "budget_time" and result.turns == 1
    assert time.monotonic() - t0 < 10
    killed = next(m for m in result.messages if isinstance(m, ToolResultMessage))
    assert "timed out" in killed.content


def test_one_long_result_cannot_fill_a_small_context(setup):
    (setup.ws.path / "wide.txt").write_text("".join(f"{i} " + "y" * 150 + "\n" for i in range(150)))
    model = scripted([{"tool_calls": [tc("read_file", path="wide.txt", end_line=150)]},
                      {"tool_calls": [tc("finish", summary="ok")]}], cls=RecordingModel)
    model.context_window = 8000
    result = go(setup, model)
    assert result.reason == "finished", result.detail
    content = next(m for m in result.messages if isinstance(m, ToolResultMessage)).content
    assert "bytes cut ...]" in content and len(content) < 8000
