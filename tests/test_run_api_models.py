"""`harness run` with the real Anthropic and OpenAI SDKs, end to end, against loopback servers
that speak each API's wire format: the model's tool calls port the VAE, the harness runs the
parity test itself, and the handoff, cost and trajectory come out right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals.fixtures.gold import gold_files
from tests.example_repo import copy_example
from tests.fakes import anthropic_server, openai_server
from tests.test_run_helpers import load_handoff

pytestmark = pytest.mark.slow

SECRET = "sk-test-do-not-leak-0123456789abcdef"


def _port_turns() -> list[tuple[str, list[tuple[str, dict]]]]:
    """(role, tool calls) per model turn: the planner finishes, the implementer writes the gold port."""
    writes = [("write_file", {"path": rel, "content": text}) for rel, text in sorted(gold_files("vae").items())]
    return [
        ("planner", [("read_file", {"path": "fastvideo/models/vaes/base.py", "end_line": 20})]),
        ("planner", [("finish", {"summary": "port the VAE natively", "plan": {"reuse_or_port": "port"}})]),
        ("implementer", writes),
        ("implementer", [("finish", {"summary": "wrote model, config and export"})]),
    ]


def _run(tmp_path: Path, model: str, base_url: str, key_env: str) -> subprocess.CompletedProcess:
    ex = copy_example(tmp_path / "example")
    env = {**os.environ, key_env: SECRET, "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", "--packet", str(ex.packets["vae:parity-debug"]),
         "--repo", str(ex.repo), "--model", model, "--base-url", base_url, "--sandbox", "local",
         "--non-interactive"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )


def _header(request, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name)


def _run_dir(tmp_path: Path) -> Path:
    runs = list((tmp_path / "home" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def _assert_honest_success(tmp_path: Path, proc: subprocess.CompletedProcess) -> Path:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = _run_dir(tmp_path)
    handoff = load_handoff(run_dir)
    assert handoff.parity_status == "non_skip_pass"
    assert handoff.next_step == "phase_6_continue"
    assert "fastvideo/models/vaes/tinyvid.py" in handoff.files_changed
    trajectory = (run_dir / "trajectory.jsonl").read_text()
    assert SECRET not in trajectory
    assert SECRET not in proc.stdout + proc.stderr
    return run_dir


def test_run_with_openai_sdk_against_wire_format_server(tmp_path):
    turns = _port_turns()
    replies = [openai_server.completion(tool_calls=calls, prompt_tokens=2000, completion_tokens=300)
               for _, calls in turns]
    with openai_server.server().add(*replies) as srv:
        proc = _run(tmp_path, "openai:gpt-4.1", srv.url + "/v1", "OPENAI_API_KEY")
        requests = list(srv.requests)
    run_dir = _assert_honest_success(tmp_path, proc)

    assert len(requests) == len(turns)  # the harness, not the model, ran the test and ended the run
    first = requests[0].body
    assert requests[0].path == "/v1/chat/completions"
    assert _header(requests[0], "authorization") == f"Bearer {SECRET}"
    assert first["model"] == "gpt-4.1"
    assert first["messages"][0]["role"] == "system"
    assert "add-model-04-port-vae" in json.dumps(first["messages"])  # the skill reached the model
    planner_tools = {t["function"]["name"] for t in first["tools"]}
    assert "write_file" not in planner_tools and "read_file" in planner_tools  # planner is read-only
    implementer_tools = {t["function"]["name"] for t in requests[2].body["tools"]}
    assert {"write_file", "edit_file", "run_parity_test"} <= implementer_tools
    # The implementer saw the results of its own earlier call on the next request.
    assert any(m.get("role") == "tool" for m in requests[3].body["messages"])

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["totals"]["cost_usd"] > 0  # priced from the table, never a silent $0


def test_run_with_anthropic_sdk_against_wire_format_server(tmp_path):
    turns = _port_turns()
    replies = [anthropic_server.message(tool_uses=calls, input_tokens=2000, output_tokens=300,
                                        cache_read=1500 if i else 0, cache_write=0 if i else 1500)
               for i, (_, calls) in enumerate(turns)]
    with anthropic_server.server().add(*replies) as srv:
        proc = _run(tmp_path, "anthropic:claude-sonnet-4-5", srv.url, "ANTHROPIC_API_KEY")
        requests = list(srv.requests)
    _assert_honest_success(tmp_path, proc)

    assert len(requests) == len(turns)
    body = requests[0].body
    assert requests[0].path == "/v1/messages"
    # The SDK sends the key as x-api-key or as a bearer token, by version.
    assert SECRET in (_header(requests[0], "x-api-key") or "") + (_header(requests[0], "authorization") or "")
    # Prompt caching: the stable prefix (system blocks and tools) carries cache_control markers.
    assert any("cache_control" in block for block in body["system"])
    assert "cache_control" in body["tools"][-1]
