"""`harness eval` with a compatible model server (`--base-url`, the real OpenAI SDK against a
loopback server): the URL is checked before anything runs, recorded in each attempt's run.json,
reused when a person answers the attempt's question afterwards, and `harness eval score` shows
where the answered attempt went."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evals.runner import read_results
from harness.evals.tasks import load_suite
from tests.fakes import openai_server
from tests.fakes.server import FakeServer, Reply

TASK = "ask-vae-two-definitions"


class Asker:
    """The planner asks the task's expected question on its first call; every other call finishes."""

    def __init__(self, hatch: dict) -> None:
        self.hatch = hatch
        self.roles: list[str] = []

    def __call__(self, body: dict) -> Reply:
        messages = body["messages"]
        role = "planner" if "Your role: PLANNER" in messages[0]["content"] else "other"
        self.roles.append(role)
        if role == "planner" and not any(m.get("role") == "tool" for m in messages):
            return openai_server.completion(tool_calls=[("raise_escape_hatch", self.hatch)])
        return openai_server.completion(tool_calls=[("finish", {"summary": "done"})])


def _harness(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1200)


def test_eval_base_url_is_checked_before_anything_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    out = tmp_path / "out"
    # Nothing listens on the URL: refused with the fix, nothing written.
    proc = _harness(["eval", "--model", "openai:gpt-4.1", "--base-url", "http://127.0.0.1:9/v1", "--out", str(out),
                     "--sandbox", "local", "--no-progress"], env, tmp_path)
    assert proc.returncode == 2 and "does not answer" in proc.stderr and not out.exists()
    proc = _harness(["eval", "--model", "openai:gpt-4.1", "--base-url", "openai:other=http://x", "--out", str(out),
                     "--sandbox", "local", "--no-progress"], env, tmp_path)
    assert proc.returncode == 2 and "not one of the --model values" in proc.stderr and not out.exists()


@pytest.mark.slow
def test_eval_records_the_base_url_and_regrades_an_answered_attempt(tmp_path):
    task = next(t for t in load_suite("core") if t.id == TASK)
    policy = Asker(task.spec.expected_hatch.model_dump(exclude={"raised_by"}))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    out = tmp_path / "out"
    with FakeServer(Reply(500, {"error": {"message": "unused"}}), policy) as srv:
        url = srv.url + "/v1"
        proc = _harness(["eval", "--tasks", TASK, "--model", "openai:gpt-4.1", "--base-url", url,
                         "--context-window", "64000", "--out", str(out), "--sandbox", "local", "--no-progress"], env, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (row,) = read_results(out)
        assert (row["outcome"], row["status"]) == ("pass", "paused")  # the right question was asked
        run_json = json.loads((Path(row["run_dir"]) / "run.json").read_text())
        assert run_json["config"]["base_url"] == url and run_json["config"]["context_window"] == 64000
        assert json.loads((out / "provenance.json").read_text())["settings"]["base_urls"] == {"*": url}
        # The row says how to answer it; the answer continues the run on the same server, with no key set.
        command = row["answer_command"]
        assert command.startswith("HARNESS_HOME=") and f"harness answer {Path(row['run_dir']).name} --option N  # N = 1..3" in command
        home = shlex.split(command)[0].split("=", 1)[1]
        asked = len(policy.roles)
        answered = _harness(["answer", Path(row["run_dir"]).name, "--option", "1", "--non-interactive"],
                            {**env, "HARNESS_HOME": home}, tmp_path)
        assert answered.returncode in (0, 4), answered.stdout + answered.stderr
        assert len(policy.roles) > asked and policy.roles[asked] == "planner"  # the planner got the answer first
    summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
    assert summary["status"] in ("completed", "blocked") and summary["next_step"]

    # Re-grading shows where the answered attempt went, graded as a port.
    score = _harness(["eval", "score", str(out)], env, tmp_path)
    assert score.returncode == 0, score.stdout + score.stderr
    (row,) = read_results(out)
    assert row["outcome"] == "pass"  # the question itself was right
    cont = row["continuation"]
    assert cont["status"] == summary["status"] and cont["next_step"] == summary["next_step"]
    assert cont["outcome"] in ("pass", "fail") and cont["answers"] and "Port vae.py" in cont["answers"][0]
    if cont["outcome"] == "fail":
        assert cont["reasons"]
    report = _harness(["eval", "report", str(out)], {**env, "COLUMNS": "200"}, tmp_path)
    assert "Continued after a person's answer" in report.stdout and TASK in report.stdout
