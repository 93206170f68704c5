"""The graph on LangGraph's own server: `langgraph dev` serves a copy of this repository on
loopback, and the LangGraph SDK client drives a scripted port to its escape hatch, checks the
human-interrupt payload, answers it in that shape, and reaches the handoff."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_run_cli import SCOPE_HATCH
from tests.test_run_helpers import example, harness_cli, load_handoff, plan_turns, write_gold_turns, write_script

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).parent / "langgraph"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_of_repository(dest: Path) -> Path:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.fixture
def served(tmp_path):
    """(SDK client, harness home): `langgraph dev` on a free loopback port in a copy of the repo."""
    if not LANGGRAPH.is_file():
        pytest.fail("langgraph-cli[inmem] is not installed; it is in the test extra", pytrace=False)
    served_dir = copy_of_repository(tmp_path / "served")
    home = tmp_path / "home"  # outside the served folder
    port = free_port()
    env = {**os.environ, "HARNESS_HOME": str(home), "LANGSMITH_TRACING": "false", "HARNESS_SERVER_SANDBOX": "local",
           "LANGGRAPH_CLI_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([str(LANGGRAPH), "dev", "--no-browser", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=served_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while True:
        try:
            client.assistants.search(graph_id="skill_loop")
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("langgraph dev did not start:\n" + (tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield client, home, tmp_path / "server.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_langgraph_dev_serves_a_port_to_the_interrupt_and_the_answer_reaches_the_handoff(tmp_path, served):
    client, home, server_log = served
    (assistant,) = client.assistants.search(graph_id="skill_loop")
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    assert "run_id" in json.dumps(schemas["state_schema"])
    assert "home" in json.dumps(schemas["context_schema"])
    assert "Failed to get" not in server_log.read_text()  # every schema loaded

    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    config = {"packet": str(ex.packets["vae:parity-debug"]), "repo": str(ex.repo), "model": f"scripted:{script}",
              "run_id": "served1"}
    thread = client.threads.create()
    client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"config": config})

    state = client.threads.get_state(thread["thread_id"])
    (pending,) = [i for task in state["tasks"] for i in task.get("interrupts", [])]
    request = pending["value"]
    assert set(request["action_request"]) == {"action", "args"}
    assert request["action_request"]["action"] == "escape_hatch:scope"
    args = request["action_request"]["args"]
    assert "drop that variant" in args["question"] and len(args["options"]) == 2
    assert args["recommended_option"] == "Keep the variant out"
    assert request["config"] == {"allow_respond": True, "allow_accept": True, "allow_edit": False, "allow_ignore": False}
    assert "tinyvid_official/vae.py defines two decode paths" in request["description"]
    run_dir = home / "runs" / "served1"
    assert json.loads((run_dir / "run.json").read_text())["config"]["home"] == str(home)
    assert not (tmp_path / "served" / ".harness").exists()  # nothing written in the served folder
    listed = harness_cli(["runs", "--json"], home, tmp_path)
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [("served1", "served")]

    # An inbox's answer: accept the recommended option.
    client.runs.wait(thread["thread_id"], assistant["assistant_id"], command={"resume": {"type": "accept", "args": None}})
    final = client.threads.get_state(thread["thread_id"])
    assert not final["next"], final["next"]
    assert final["values"]["outcome"] == "completed"
    (accepted,) = final["values"]["accepted_hatches"]
    assert accepted["answer"]["option"] == 1 and accepted["answer"]["text"].startswith("Keep the variant out")
    assert load_handoff_from(final["values"]["handoff"], run_dir).parity_status == "non_skip_pass"


def load_handoff_from(values_handoff: dict, run_dir: Path):
    handoff = load_handoff(run_dir)  # on disk, validated, both forms
    assert handoff.model_dump(mode="json")["parity_status"] == values_handoff["parity_status"]
    return handoff


def test_bad_input_through_the_server_creates_nothing(tmp_path, served):
    client, home, _ = served
    (assistant,) = client.assistants.search(graph_id="skill_loop")
    ex = example(tmp_path)
    thread = client.threads.create()
    config = {"packet": str(tmp_path / "missing.json"), "repo": str(ex.repo), "model": "human"}
    client.runs.wait(thread["thread_id"], assistant["assistant_id"], input={"config": config})
    values = client.threads.get_state(thread["thread_id"])["values"]
    assert values["outcome"] == "invalid" and any("does not exist" in p for p in values["problems"])
    # Where the agent's code runs is the server's to say: a client asking for it is refused.
    for sandbox_field in ({"sandbox": "local"}, {"network": True}, {"pass_env": ["HF_TOKEN"]}, {"python": "/usr/bin/python3"}):
        thread = client.threads.create()
        client.runs.wait(thread["thread_id"], assistant["assistant_id"],
                         input={"config": {"packet": str(ex.packets["vae:parity-debug"]), "repo": str(ex.repo),
                                           "model": "human", **sandbox_field}})
        values = client.threads.get_state(thread["thread_id"])["values"]
        (name,) = sandbox_field
        assert values["outcome"] == "invalid" and any(f"config.{name}: set by the server" in p for p in values["problems"])
    assert not (home / "runs").exists()
