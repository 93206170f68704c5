"""The trajectory file: what is written, how it reads back, and how `harness show` renders it."""

from __future__ import annotations

import json

from rich.console import Console

from harness.agents.models.base import AssistantTurn, ToolCall, Usage
from harness.agents.trajectory import Redactor, Trajectory, read_events, read_turns, render_trajectory


def test_events_read_back_and_render(tmp_path):
    path = tmp_path / "run" / "trajectory.jsonl"
    traj = Trajectory(path, Redactor(env={}))
    traj.agent_start("planner", "scripted:x", "plan it")
    turn = AssistantTurn(text="look", tool_calls=[ToolCall(id="a", name="read_file", args={"path": "README.md"})],
                         usage=Usage(input_tokens=120, output_tokens=30), stop_reason="tool_use")
    traj.model_turn("planner", "scripted:x", 1, turn, 0.0123, 0.5)
    traj.tool_result("planner", "a", "read_file", "README.md (lines 1-1 of 1)", False, 0.01)
    traj.tool_result("planner", "b", "edit_file", "old text matches 2 times", True, 0.01)
    traj.agent_end("planner", "finished", 1, Usage(input_tokens=120, output_tokens=30), 0.0123)
    with open(path, "a") as fh:
        fh.write('{"event": "model_tu')  # a writer killed mid-line
    events = list(read_events(path))
    assert [e["event"] for e in events] == ["agent_start", "model_turn", "tool_result", "tool_result", "agent_end"]
    assert events[1]["usage"]["input_tokens"] == 120 and events[1]["cost_usd"] == 0.0123
    assert all(e["ts"].endswith("+00:00") for e in events)
    assert read_turns(path) == {"planner": [AssistantTurn(text="look", tool_calls=turn.tool_calls,
                                                          stop_reason="tool_use")]}
    console = Console(record=True, width=160)
    console.print(render_trajectory(path))
    text = console.export_text()
    assert "read_file" in text and "reason=finished" in text and "0.0123" in text
    assert "per role" in text and "150" in text


def test_redactor_env_names_and_token_shapes():
    r = Redactor(env={"MY_TOKEN": "abcdef123456", "SHORT_KEY": "1", "PATH": "/usr/bin:/usr/local/bin"})
    text = r.text("t=abcdef123456 p=/usr/bin:/usr/local/bin k=1 hf_ABCDEFGHIJKLMNOPQRST1 sk-ant-api03-xyzxyzxyz")
    assert "abcdef123456" not in text and "[REDACTED:MY_TOKEN]" in text
    assert "/usr/bin:/usr/local/bin" in text and "k=1" in text  # not secret-named / too short
    assert "hf_ABCD" not in text and "sk-ant-api03" not in text
    nested = r({"args": {"content": ["abcdef123456"]}, "n": 3})
    assert json.dumps(nested) == '{"args": {"content": ["[REDACTED:MY_TOKEN]"]}, "n": 3}'


def test_redaction_takes_whole_tokens_only_and_never_alters_harness_paths():
    key = "sk-proj-" + "Q3vX9kLm2PzR7tYw4NbC8dFg1HjK5sAe"
    r = Redactor(env={"OPENAI_API_KEY": key, "HF_TOKEN": "hf_" + "AbCdEfGhIjKlMnOpQrStUv"},
                 keep=["/runs/sk-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8"])
    names = ("ask-vae-two-definitions", "task-sk-abcdefghijklmnop", "disk-0123456789abcdefgh",
             "sk-vae-two-definitions-crop", "sk-0123456789abcdef0123", "hf_weights_path")
    for name in names:  # task ids and paths that merely contain a key prefix are ordinary text
        assert r.text(f"/srv/{name}/tests/x.py") == f"/srv/{name}/tests/x.py"
    assert r.text(f"key={key}.") == "key=[REDACTED:OPENAI_API_KEY]."
    assert r.text(f"a x{key}b") == "a x[REDACTED:OPENAI_API_KEY]b"  # a generated value, even glued to text
    plain = Redactor(env={"DEPLOY_TOKEN": "vae-two-definitions"})  # not generated: whole tokens only
    assert plain.text("ask-vae-two-definitions and vae-two-definitions") == "ask-vae-two-definitions and [REDACTED:DEPLOY_TOKEN]"
    assert r.text("Bearer sk-" + "Ab12Cd34Ef56Gh78Ij90Kl") == "Bearer [REDACTED]"  # key-shaped, not held
    assert r.text("sk-ant-api03-xyzxyzxyz ok") == "[REDACTED] ok"
    # A harness-made path stays whole even when it looks like a key.
    assert r.text("cd /runs/sk-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8/logs") == "cd /runs/sk-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8/logs"
    assert r.text("sk-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8") == "[REDACTED]"


def test_one_detector_for_documents_and_redaction():
    from harness.contracts.secrets import find_secret

    assert find_secret("task ask-vae-two-definitions at /tmp/sk-vaetwodefinitions-crop") is None
    assert "API key" in find_secret("use sk-" + "Ab12Cd34Ef56Gh78Ij90Kl")
    assert Redactor(env={}).text("use sk-" + "Ab12Cd34Ef56Gh78Ij90Kl") == "use [REDACTED]"
