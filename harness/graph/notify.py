"""Tell a person when a run pauses on a question or ends: `--notify CMD` and `--notify-url URL`.

The event is one JSON object: the run, repo and component, and for a question its decision
type, text, options, recommended option, evidence and the exact `harness answer` command.
CMD runs through the shell with the JSON on stdin (and the main fields in HARNESS_* env vars);
URL gets it as a POST. Secrets are redacted the way the trajectory redacts them. A failure to
notify is logged in the run's log and never stops or changes the run.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from harness.agents.trajectory import Redactor
from harness.runs.answers import option_labels

COMMAND_TIMEOUT_S = 30.0
POST_TIMEOUT_S = 10.0


def build_event(summary: dict[str, Any], packet: dict[str, Any] | None) -> dict[str, Any]:
    """The notification for a run's summary: `paused` with the question, else `ended`."""
    packet = packet or {}
    event: dict[str, Any] = {
        "event": "paused" if summary.get("status") == "paused" else "ended",
        "run_id": summary.get("run_id"), "status": summary.get("status"),
        "exit_code": summary.get("exit_code"), "outcome": summary.get("outcome_line"),
        "repo": summary.get("repo"), "packet": summary.get("packet"),
        "model_family": packet.get("model_family"), "component": packet.get("component"),
        "mode": packet.get("mode"), "run_dir": summary.get("run_dir"),
    }
    if event["event"] == "paused":
        question = summary.get("question") or {}
        commands = answer_commands(str(summary.get("run_id")), question)
        event.update({
            "decision_type": question.get("decision_type"), "question": question.get("question"),
            "options": option_labels(question), "recommended_option": question.get("recommended_option"),
            "safe_default": question.get("safe_default"),
            "evidence": (question.get("state_snapshot") or {}).get("evidence") or question.get("evidence"),
            "asked_by": question.get("asked_by"), "hatch_id": question.get("hatch_id"),
            "answer_command": commands[0], "answer_commands": commands,
        })
    else:
        event.update({
            "parity_status": summary.get("parity_status"), "next_step": summary.get("next_step"),
            "blocker": summary.get("blocker"), "handoff_path": summary.get("handoff_path"),
            "branch": summary.get("branch"), "error": summary.get("error"),
        })
        if summary.get("status") == "interrupted":
            event["resume_command"] = f"harness resume {summary.get('run_id')}"
    return Redactor()(event)


def answer_commands(run_id: str, question: dict[str, Any]) -> list[str]:
    """One exact command per option, the recommended option's first; a text answer otherwise."""
    labels = option_labels(question)
    if not labels:
        return [f'harness answer {run_id} --text "..."']
    recommended = str(question.get("recommended_option") or "").strip().lower()
    first = next((i for i, label in enumerate(labels) if recommended and label.lower().startswith(recommended)), 0)
    order = [first] + [i for i in range(len(labels)) if i != first]
    return [f"harness answer {run_id} --option {i + 1}" for i in order]


def send(event: dict[str, Any], command: str | None, url: str | None, log: Any) -> None:
    """Deliver `event` to each configured target; failures are logged, never raised."""
    body = json.dumps(event, default=str)
    if command:
        try:
            env = {**os.environ, "HARNESS_EVENT": str(event["event"]), "HARNESS_RUN_ID": str(event["run_id"]),
                   "HARNESS_STATUS": str(event["status"]), "HARNESS_ANSWER_COMMAND": str(event.get("answer_command", ""))}
            done = subprocess.run(command, shell=True, input=body, text=True, env=env, capture_output=True,
                                  timeout=COMMAND_TIMEOUT_S)
            if done.returncode != 0:
                log.warning("notify command failed (exit %s): %s", done.returncode, done.stderr.strip()[-500:])
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("notify command failed: %s", err)
    if url:
        import httpx

        try:
            httpx.post(url, content=body, headers={"content-type": "application/json"},
                       timeout=POST_TIMEOUT_S).raise_for_status()
        except httpx.HTTPError as err:
            log.warning("notify url %s failed: %s", url, err)
