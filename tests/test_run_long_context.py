"""A long run against a small-window OpenAI-compatible server, through the real OpenAI SDK: the
server refuses any request over its window with HTTP 400, as vLLM does. With --context-window the
harness keeps every one of 450 requests inside it; without it, the same server refuses the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals.fixtures.gold import gold_files
from tests.example_repo import copy_example
from tests.fakes import openai_server

pytestmark = pytest.mark.slow

WINDOW = 32_000
READS = [  # files of the example, read again and again as a long-running agent would
    ("read_file", {"path": "scripts/checkpoint_conversion/tinyvid_to_fastvideo.py"}),
    ("read_file", {"path": "tests/local_tests/vaes/test_tinyvid_vae_parity.py"}),
    ("grep", {"pattern": "def |class ", "path": "fastvideo"}),
    ("read_file", {"path": "tinyvid_official/vae.py"}),  # relative official path
]


def _replies(planner_calls: int) -> list:
    calls = [READS[i % len(READS)] for i in range(planner_calls - 1)]
    turns = [[c] for c in calls] + [[("finish", {"summary": "port the VAE", "plan": {"reuse_or_port": "port"}})]]
    turns.append([("write_file", {"path": rel, "content": text}) for rel, text in sorted(gold_files("vae").items())])
    turns.append([("finish", {"summary": "wrote model, config and export"})])
    return [openai_server.completion(tool_calls=t, prompt_tokens=1000, completion_tokens=50) for t in turns]


def _run(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    ex = copy_example(tmp_path / "example")
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-long-run-0123456789abcdef", "HARNESS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", "--packet", str(ex.packets["vae:parity-debug"]),
         "--repo", str(ex.repo), "--model", "openai:local-model", "--base-url", url, "--sandbox", "local",
         "--non-interactive", "--max-turns", "500", "--price", "0,0", *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )


def test_450_calls_fit_a_32k_server_with_context_window(tmp_path):
    replies = _replies(448)
    with openai_server.server(window_tokens=WINDOW).add(*replies) as srv:
        proc = _run(tmp_path, srv.url + "/v1", "--context-window", str(WINDOW))
        requests, refused = list(srv.requests), list(srv.refused)
    assert not refused, f"HTTP 400 after {len(requests) - len(refused)} good requests"
    assert len(requests) == 450, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sizes = [openai_server.prompt_tokens(r.body) for r in requests]
    assert max(sizes) <= WINDOW
    # The agent was told that older results were condensed.
    last_planner = requests[447].body["messages"]
    assert "[Note from the harness: to fit the model's context window" in last_planner[1]["content"]
    run_dir = next((tmp_path / "home" / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["parity_status"] == "non_skip_pass"


def test_without_context_window_the_same_server_refuses_the_run(tmp_path):
    # The honest baseline: the provider assumes a large window, the conversation outgrows the
    # server's 32k, and the run ends blocked on the server's own HTTP 400.
    replies = _replies(60)
    with openai_server.server(window_tokens=WINDOW).add(*replies) as srv:
        proc = _run(tmp_path, srv.url + "/v1")
        refused = list(srv.refused)
    assert refused
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    run_dir = next((tmp_path / "home" / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "400" in (summary.get("agent_stop") or "") or "maximum context length" in (summary.get("agent_stop") or "")
