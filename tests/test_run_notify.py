"""`--notify` and `--notify-url`: a loopback webhook and a shell command get the pause and end
events with the exact answer command, and never a planted secret; failing targets never stop
the run."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from tests.test_run_cli import SCOPE_HATCH, run_args
from tests.test_run_helpers import example, harness_cli, plan_turns, write_gold_turns, write_script

# Not a shape the contract's secret check knows, so the hatch is accepted and carries it; only
# the redaction (by the env var's name) keeps it out of a notification.
PLANTED = "zebra-violet-fortytwo"


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append({"path": self.path, "type": self.headers["content-type"], "body": body.decode()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    handler = type("Hook", (Receiver,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.received
    server.shutdown()


def hatch_with_secret() -> dict:
    turn = json.loads(json.dumps(SCOPE_HATCH))
    turn["tool_calls"][0]["args"]["evidence"] += f"; the deploy notes mention {PLANTED}"
    return turn


def test_webhook_and_command_get_pause_and_end_events_without_the_secret(tmp_path, receiver, monkeypatch):
    url, received = receiver
    monkeypatch.setenv("DEPLOY_API_KEY", PLANTED)
    ex = example(tmp_path)
    home = tmp_path / "home"
    events = tmp_path / "events.jsonl"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[hatch_with_secret()] + write_gold_turns())
    command = f'(cat; echo) >> {events}; echo "$HARNESS_EVENT $HARNESS_ANSWER_COMMAND" >> {tmp_path / "env.txt"}'
    paused = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "note1",
                                  "--notify-url", url, "--notify", command), home, tmp_path)
    assert paused.returncode == 3, paused.stdout + paused.stderr
    assert len(received) == 1 and received[0]["path"] == "/hook" and received[0]["type"] == "application/json"
    event = json.loads(received[0]["body"])
    assert event["event"] == "paused" and event["run_id"] == "note1"
    assert event["repo"] == str(ex.repo) and event["component"] == "vae" and event["model_family"] == "tinyvid"
    assert event["decision_type"] == "scope" and "drop that variant" in event["question"]
    assert event["options"][0].startswith("Keep the variant out") and len(event["options"]) == 2
    assert event["recommended_option"] == "Keep the variant out"
    assert event["answer_command"] == "harness answer note1 --option 1"
    assert "tinyvid_official/vae.py defines two decode paths" in event["evidence"]
    assert "[REDACTED:DEPLOY_API_KEY]" in event["evidence"]
    assert (tmp_path / "env.txt").read_text().split("\n")[0] == "paused harness answer note1 --option 1"

    answered = harness_cli(["answer", "note1", "--option", "1", "--non-interactive"], home, tmp_path)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert len(received) == 2
    end = json.loads(received[1]["body"])
    assert end["event"] == "ended" and end["status"] == "completed" and end["parity_status"] == "non_skip_pass"
    assert end["handoff_path"].endswith("note1/handoff.json")

    by_command = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    assert [e["event"] for e in by_command] == ["paused", "ended"]
    assert by_command == [json.loads(r["body"]) for r in received]
    for text in [r["body"] for r in received] + [events.read_text()]:
        assert PLANTED not in text
    # The honest baseline: the secret really was in what the agent raised.
    checkpoint = (home / "runs" / "note1" / "checkpoints.sqlite").read_bytes()
    assert PLANTED.encode() in checkpoint


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failing_targets_are_logged_and_the_run_goes_on(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=[SCOPE_HATCH] + write_gold_turns())
    result = harness_cli(run_args(ex, "vae:parity-debug", script, "--non-interactive", "--run-id", "note2",
                                  "--notify-url", f"http://127.0.0.1:{closed_port()}/hook",
                                  "--notify", "echo cannot deliver >&2; exit 7"), home, tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "harness answer note2 --option 1" in result.stdout
    log = (home / "runs" / "note2" / "run.log").read_text()
    assert "notify command failed (exit 7): cannot deliver" in log
    assert "notify url http://127.0.0.1:" in log


def test_a_bad_notify_url_is_invalid_input(tmp_path):
    ex = example(tmp_path)
    home = tmp_path / "home"
    result = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                          "--sandbox", "local", "--notify-url", "hooks.example/x", "--non-interactive"], home, tmp_path)
    assert result.returncode == 2 and "notify_url" in result.stdout
    assert not home.exists()
