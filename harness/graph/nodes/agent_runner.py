"""An agent's conversation inside a node (plan, implement, debug): its tools and system prompt,
a conversation kept on disk while it runs so a killed process can continue it, a commit after
every tool call that may have changed files, and the node's update from what the agent did.
An escape hatch it asks is handed to ask_human; a fault of the environment stops the run
resumable from the checkpoint before the node."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from harness.agents import worklog
from harness.agents.concerns import merge
from harness.agents.loop import FAULT_REASONS, run_agent
from harness.agents.models.base import Message
from harness.agents.prompts import environment_text
from harness.agents.tools import ToolContext
from harness.agents.trajectory import Trajectory
from harness.contracts.secrets import Redactor
from harness.graph.faults import RunFault
from harness.graph.hatch_policy import review_escape_hatch
from harness.graph.nodes import tasks
from harness.graph.nodes.budget import agent_budget
from harness.graph.nodes.common import Update, instructions, jsonable, packet_of, parity_dict, parity_from_dict
from harness.graph.state import RunState
from harness.runs.answers import answer_for_agent
from harness.runs.resources import RunResources
from harness.sandbox.executors import InfrastructureError
from harness.sandbox.pytest_runner import run_parity_test
from harness.skills import skill_for

# The limits that can end an agent before it finishes, by the option that sets each.
STOPPING_LIMITS = {"budget_turns": "--max-turns", "budget_usd": "--max-usd", "budget_time": "--max-seconds",
                   "budget_tokens": "the token budget", "context_overflow": "the model's context window (--context-window)"}


def run_agent_node(node: str, state: RunState, res: RunResources, task: str) -> Update:
    """Run (or continue) the agent of `node` on `task`; the node's update from what it did."""
    role = tasks.ROLE_FOR_NODE[node]
    packet = packet_of(state)
    ws = res.workspace
    resuming = state.get("asked_by") == node and bool(state.get("hatch_answer"))
    saved = (state.get("saved_messages") or {}).get(node) if resuming else None
    agent_runs: list[Any] = []
    last_parity = parity_from_dict(state.get("last_parity"))

    def agent_parity() -> Any:
        run = _run_test(res, packet)
        agent_runs.append(run)
        return run

    def policy(hatch: Any) -> str | None:
        latest = agent_runs[-1] if agent_runs else last_parity
        return review_escape_hatch(hatch, last_parity=latest)

    concerns = list(state.get("concerns") or [])
    ctx = ToolContext(ws, res.executor, role, run_parity=agent_parity, hatch_policy=policy,
                      concerns=concerns, resolved=dict(state.get("resolved_concerns") or {}),
                      instructions=instructions(state), phase=f"{packet.mode} {node}", logs_dir=res.logs_dir)
    skill = skill_for(packet.component_type, res.cfg.repo)
    model = res.model(state)
    progress = _progress_path(res, node, state)
    # A conversation a killed or suspended process left continues as it was (an answer it was
    # given is in it already).
    crashed = _load_progress(progress, res)
    if crashed is not None:
        saved, resuming = crashed, False
        res.log.warning("continuing the %s conversation a stopped process left (%d messages)", role, len(saved))
    res.emit("agent_start", node=node, role=role, resuming=resuming or crashed is not None)
    fresh = not (resuming or crashed is not None)
    result = run_agent(
        role, model, ctx,
        system=tasks.system_prompt(role, skill, state.get("packet") or {},
                                   _environment(ws, res.executor if role != "planner" else None),
                                   parity_test_exists=(ws.path / packet.parity_test).is_file()),
        task=task if fresh else None,
        budget=agent_budget(state),
        trajectory=CheckpointingTrajectory(res.run_dir / "trajectory.jsonl", ws, node,
                                           Redactor(keep=_harness_paths(res, ws))),
        messages=_messages_from(saved) if saved else None,
        resume_answer=answer_for_agent(state["hatch_answer"]) if resuming else None,
        on_messages=ProgressLog(progress, res),
    )
    res.model_s += model.seconds
    if result.reason in FAULT_REASONS:
        # The environment's stop: the conversation stays on disk for `harness resume`, and the
        # node raises, so the checkpoint before it is where the run continues.
        ws.checkpoint(f"{node}: {role} stopped by a fault ({result.reason})")
        raise RunFault(f"{role}: {result.detail}")
    progress.unlink(missing_ok=True)  # the result now lives in the graph state
    if result.reason in STOPPING_LIMITS:  # said where the person watching sees it, not only in the log
        res.emit("cap", text=f"{role} stopped: {STOPPING_LIMITS[result.reason]} reached ({result.detail})")
    ws.checkpoint(f"{node}: {role} ended ({result.reason})")
    return _agent_update(node, state, res, result, ctx, agent_runs)


def _run_test(res: RunResources, packet: Any) -> Any:
    """The agent's own run_parity_test tool: the test in the run's warm sandbox."""
    start = time.monotonic()
    try:
        return run_parity_test(res.executor, packet.parity_test, res.logs_dir, timeout_s=res.cfg.test_timeout_s)
    except InfrastructureError:
        # The agent stops on it (infra_error); whatever runs next must get a live sandbox, not the dead one.
        res.restart_executor()
        raise
    finally:
        res.test_s += time.monotonic() - start


def _harness_paths(res: RunResources, ws: Any) -> list[str]:
    """Paths the harness made: never altered by redaction, whatever they contain."""
    paths = [str(ws.path), str(res.run_dir), str(res.home), res.run_id]
    if getattr(ws, "official_ref_dir", None):
        paths.append(str(ws.official_ref_dir))
    for p in list(paths):
        try:
            paths.append(str(Path(p).resolve()))
        except OSError:
            pass
    return paths


def _environment(ws: Any, executor: Any) -> str:
    official = str(ws.official_ref_dir) if getattr(ws, "official_ref_dir", None) else None
    return environment_text(str(ws.path), official, executor)


def _progress_path(res: RunResources, node: str, state: RunState) -> Path:
    """Where one visit of an agent node keeps its conversation while it runs."""
    visit = int(state.get("debug_rounds") or 0) if node == "debug" else 0
    return res.run_dir / "agents" / f"{node}-{visit}.jsonl"


class ProgressLog:
    """One agent node visit's conversation, kept on disk while it runs, so a killed process
    can continue it. JSON lines, appended: each turn writes only its new messages (and the
    scripted model's place), so the cost per turn stays flat however long the run gets. The
    first save of a process rewrites the file once (a resumed conversation may be repaired)."""

    def __init__(self, path: Path, res: RunResources) -> None:
        self.path, self.res = path, res
        self.saved: int | None = None

    def __call__(self, messages: list[Any]) -> None:
        positions = json.dumps({"model_positions": self.res.model_positions()})
        if self.saved is None or self.saved > len(messages):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps({"message": jsonable(m)}) + "\n" for m in messages) + positions + "\n")
            os.replace(tmp, self.path)  # atomic: a kill leaves the old or the new conversation, never half
        else:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps({"message": jsonable(m)}) + "\n" for m in messages[self.saved:])
                         + positions + "\n")
        self.saved = len(messages)


def _load_progress(path: Path, res: RunResources) -> list[Any] | None:
    """The conversation a killed process left for this node visit, if any. A tool call it made
    without a result is answered "interrupted" by the agent loop; a line torn by the kill is
    dropped."""
    if not path.is_file():
        return None
    messages: list[Any] = []
    positions: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if "message" in record:
            messages.append(record["message"])
        else:
            positions = record.get("model_positions") or positions
    res.restore_model_positions(positions)
    return messages or None


class CheckpointingTrajectory(Trajectory):
    """The run's trajectory, plus a commit after every tool call that may have changed files,
    so a killed run loses no agent step."""

    WRITES = frozenset({"edit_file", "write_file", "run", "run_parity_test"})

    def __init__(self, path: Path, workspace: Any, node: str, redactor: Any = None) -> None:
        super().__init__(path, redactor)
        self.workspace = workspace
        self.node = node

    def tool_result(self, role: str, call_id: str, name: str, *args: Any, **kwargs: Any) -> None:
        super().tool_result(role, call_id, name, *args, **kwargs)
        if name in self.WRITES:
            self.workspace.checkpoint(f"{self.node}: {role} {name}")


def _agent_update(node: str, state: RunState, res: RunResources, result: Any, ctx: Any, agent_runs: list[Any]) -> Update:
    role = tasks.ROLE_FOR_NODE[node]
    usage = result.usage
    update: Update = {
        "agent_results": [{
            "node": node, "role": role, "reason": result.reason,
            "turns": result.turns, "cost_usd": result.cost_usd, "finish_args": jsonable(result.finish_args),
        }],
        "usage": {node: {
            "input_tokens": getattr(usage, "input_tokens", 0), "output_tokens": getattr(usage, "output_tokens", 0),
            "cost_usd": float(result.cost_usd or 0), "turns": int(result.turns or 0),
        }},
        "concerns": merge(list(ctx.concerns), [str(c) for c in result.concerns], instructions(state)),
        "resolved_concerns": dict(ctx.resolved),
        "finish_args": jsonable(result.finish_args) or {},
        "last_agent_reason": result.reason,
        "model_positions": res.model_positions(),
    }
    if agent_runs:
        update["parity_runs"] = [parity_dict(r, f"agent:{node}", None) for r in agent_runs]
    if result.reason != "asked":
        # What the role did, read from its conversation: handed on when it ended without finish.
        update["work_log"] = worklog.build(role, result.reason, result.turns, result.messages,
                                           res.workspace).model_dump(mode="json")
        if node == "plan":
            update["kept_reads"] = worklog.kept_reads(result.messages, res.workspace)
    saved = dict(state.get("saved_messages") or {})
    if result.reason == "asked" and result.escape_hatch is not None:
        saved[node] = [jsonable(m) for m in result.messages]
        update.update(pending_hatch=jsonable(result.escape_hatch), asked_by=node, saved_messages=saved)
        return update
    saved.pop(node, None)
    update.update(saved_messages=saved, hatch_answer=None, asked_by=None)
    if result.reason in ("model_error", "context_overflow"):
        detail = result.detail
        update["agent_stop"] = f"{role} stopped: {result.reason}{': ' + str(detail) if detail else ''}"
    elif result.reason in ("budget_usd", "budget_time", "budget_tokens"):
        update["budget_spent"] = f"{role} stopped on {result.reason}"
    return update


_MESSAGES = TypeAdapter(list[Message])


def _messages_from(saved: list[Any]) -> list[Any]:
    return _MESSAGES.validate_python(saved)
