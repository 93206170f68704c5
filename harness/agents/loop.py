"""The agent loop: one role talks to one model, calling tools until it finishes or must stop.

Planner, implementer and debugger are this same loop with different prompts and tools.
A run ends when the agent calls `finish` (reason `finished`), raises an escape hatch the
policy accepts (`asked`), or a budget ends it: turns, tokens, dollars (checked before each
call with that call's expected cost, so a cap is overshot by at most one call's estimation
error), wall time, the context window, a model error or a broken sandbox. Two of those are
the environment's, not the agent's: `model_unavailable` (the provider stayed down through
the retry policy, or refused the key) and `infra_error` (the sandbox broke); the graph stops
the run resumable on them.

A reply too large for the model's window (one huge `write_file`, pages of text) is not a
stop: it is kept in short form, and each of its calls is answered "not run" with the sizes,
so the model makes smaller ones. Only a model that keeps doing it (OVERSIZED_IN_A_ROW replies)
is treated as broken: `model_unavailable`, so a resumed run tries again.

Resuming: pass the saved `messages`. A tool call that never got a result (the process died,
or the sandbox broke mid-call) gets an explicit "interrupted" result; a pending
`raise_escape_hatch` call gets the person's answer when `resume_answer` is given.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from harness.agents.context import ContextView, message_tokens, trimmed
from harness.agents.models.base import (
    AssistantMessage,
    Message,
    Model,
    ModelError,
    SystemPrompt,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
    approx_tokens,
    system_text,
)
from harness.agents.tools import Tool, ToolContext, execute, tools_for_role, truncate_middle
from harness.agents.trajectory import Redactor, Trajectory

Reason = Literal[
    "finished", "asked", "budget_turns", "budget_tokens", "budget_usd", "budget_time",
    "context_overflow", "model_error", "model_unavailable", "infra_error",
]
# The environment's stops: the run stops resumable, the agent's conversation is kept.
FAULT_REASONS = ("model_unavailable", "infra_error")

INTERRUPTED = (
    "interrupted: the harness stopped before this tool call returned, so its effect is unknown. "
    "Check the current state (read the file, list the directory) before repeating it."
)
NOT_RUN = "not run: an earlier call in the same turn ended the step"
NUDGE = "You replied without calling a tool. Continue with a tool call; call finish when your step is done."
OVERSIZED = (
    "not run: your reply was about {size} tokens, more than the {limit} one reply may take in this model's "
    "context window, so none of its calls ran and it is kept only in short form. Make smaller calls: write a "
    "long file in parts (write_file with the first part, then edit_file to add the next), keep text short."
)
LAST_TURN = ("[Note from the harness: this is your last turn ({used} of {limit} used{why}): call finish now; "
             "what you found, did and still suspect goes in its summary.]")
FIRST_OUTPUT_GUESS = 2000  # tokens expected from the first call, before any output was seen
OVERSIZED_IN_A_ROW = 3  # replies too large for the window, one after another, before the model counts as broken


class Budget(BaseModel):
    """Limits of one agent run; None means no limit.

    `max_tokens` counts every token of every call: uncached input, output, cache reads and
    cache writes. `max_usd` is checked before each call against that call's expected cost
    (prompt size at full input price plus the last output size), an upper bound.
    """

    max_turns: int | None = 50
    max_tokens: int | None = None
    max_usd: float | None = None
    max_seconds: float | None = None

    def describe(self) -> str:
        """The budget as the agent's task states it."""
        parts = []
        if self.max_turns is not None:
            parts.append(f"{self.max_turns} model turns (a turn is one reply, with any number of tool calls)")
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens} tokens")
        if self.max_usd is not None:
            parts.append(f"${self.max_usd:.2f} of the run's money")
        if self.max_seconds is not None:
            parts.append(f"{self.max_seconds:.0f} s of the run's time")
        if not parts:
            return "Your budget for this step: no limit is set."
        return "Your budget for this step: " + "; ".join(parts) + ". The harness says when your last turn has come."


class AgentResult(BaseModel):
    """The outcome of `run_agent`; plain data so the graph can checkpoint it."""

    role: str
    reason: Reason
    detail: str = ""
    finish_args: dict[str, Any] | None = None
    escape_hatch: dict[str, Any] | None = None  # EscapeHatch.model_dump() of the accepted hatch
    messages: list[Message] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    turns: int = 0
    duration_s: float = 0.0
    concerns: list[str] = Field(default_factory=list)


def _answer_text(answer: str | dict[str, Any]) -> str:
    body = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    return f"A person answered your escape hatch: {body}"


def repair_pending(
    messages: list[Message], resume_answer: str | dict[str, Any] | None = None
) -> tuple[list[Message], list[ToolResultMessage]]:
    """Give every tool call without a result one, right after its turn's other results.

    Returns the repaired list and the results that were added.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolResultMessage)}
    pending_hatches = [
        c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls
        if c.id not in answered and c.name == "raise_escape_hatch"
    ]
    if resume_answer is not None and not pending_hatches:
        raise ValueError("resume_answer was given but no raise_escape_hatch call is waiting for an answer")
    answer_for = pending_hatches[-1] if resume_answer is not None else None
    out: list[Message] = []
    added: list[ToolResultMessage] = []
    pending: list[ToolCall] = []

    def flush() -> None:
        for call in pending:
            if call.id == answer_for:
                res = ToolResultMessage(tool_call_id=call.id, name=call.name, content=_answer_text(resume_answer))
            else:
                res = ToolResultMessage(tool_call_id=call.id, name=call.name, content=INTERRUPTED, is_error=True)
            out.append(res)
            added.append(res)
        pending.clear()

    for m in messages:
        if isinstance(m, AssistantMessage):
            flush()
            out.append(m)
            pending.extend(c for c in m.tool_calls if c.id not in answered)
        elif isinstance(m, ToolResultMessage):
            out.append(m)
        else:
            flush()
            out.append(m)
    flush()
    return out, added


class _Run:
    """The state of one `run_agent` call, so each step reads as one small method."""

    def __init__(self, role: str, model: Model, ctx: ToolContext, system: SystemPrompt, tools: list[Tool],
                 budget: Budget, trajectory: Trajectory | None, clock: Callable[[], float]) -> None:
        self.role, self.model, self.ctx, self.system = role, model, ctx, system
        self.tools, self.specs = tools, [t.spec for t in tools]
        self.budget, self.traj, self.clock = budget, trajectory, clock
        self.redact = trajectory.redact if trajectory else Redactor()
        self.start = clock()
        self.usage, self.cost, self.turns = Usage(), 0.0, 0
        self.last_output = FIRST_OUTPUT_GUESS
        self.oversized = 0  # oversized replies in a row
        fixed = approx_tokens(system_text(system)) + approx_tokens(json.dumps([s.model_dump() for s in self.specs]))
        self.view = ContextView(model.context_window, fixed)
        self.messages: list[Message] = []
        self.warned = False  # the last-turn note was given
        # Called with the conversation whenever it grows, so a crash can resume it.
        self.on_messages: Callable[[list[Message]], Any] | None = None

    def end(self, reason: Reason, detail: str = "", finish_args: dict | None = None, hatch: Any = None) -> AgentResult:
        if self.traj:
            self.traj.agent_end(self.role, reason, self.turns, self.usage, self.cost, detail)
        return AgentResult(
            role=self.role, reason=reason, detail=detail, finish_args=finish_args,
            escape_hatch=hatch.model_dump(mode="json") if hatch is not None else None,
            messages=self.messages, usage=self.usage, cost_usd=self.cost, turns=self.turns,
            duration_s=self.clock() - self.start, concerns=list(self.ctx.concerns),
        )

    def add_result(self, call: ToolCall, content: str, is_error: bool, duration_s: float = 0.0) -> None:
        # One result may fill at most a third of the model's view, so small-context models
        # (local servers) are not overflowed by a single long output.
        content = truncate_middle(self.redact.text(content), max(2000, self.view.budget * 4 // 3))
        self.messages.append(ToolResultMessage(tool_call_id=call.id, name=call.name, content=content, is_error=is_error))
        if self.traj:
            self.traj.tool_result(self.role, call.id, call.name, content, is_error, duration_s)

    def saved(self) -> None:
        if self.on_messages is not None:
            self.on_messages(self.messages)

    def budget_stop(self, est_input: int) -> Reason | None:
        b = self.budget
        if b.max_seconds is not None and self.clock() - self.start >= b.max_seconds:
            return "budget_time"
        if b.max_turns is not None and self.turns >= b.max_turns:
            return "budget_turns"
        if b.max_tokens is not None and self.usage.total + est_input + self.last_output > b.max_tokens:
            return "budget_tokens"
        if b.max_usd is not None and self.cost + self.model.estimate_cost_usd(est_input, self.last_output) > b.max_usd:
            return "budget_usd"
        return None

    def last_call(self, est_input: int) -> str | None:
        """Why the coming call is the agent's last one (turns, or money/tokens for one more call), or None."""
        b = self.budget
        if b.max_turns is not None and self.turns + 1 >= b.max_turns:
            return ""
        twice = est_input + self.last_output
        if b.max_tokens is not None and self.usage.total + 2 * twice > b.max_tokens:
            return "; the token budget allows no more calls after this one"
        if b.max_usd is not None and self.cost + 2 * self.model.estimate_cost_usd(est_input, self.last_output) > b.max_usd:
            return "; the money budget allows no more calls after this one"
        return None

    def step(self) -> AgentResult | None:
        shown = self.view.build(self.messages)
        if shown is None:
            return self.end("context_overflow", f"the conversation needs about {self.view.last_estimate} tokens even "
                            f"trimmed; the model's window is {self.model.context_window}")
        stop = self.budget_stop(self.view.last_estimate)
        if stop:
            return self.end(stop, self._budget_detail(stop))
        why = self.last_call(self.view.last_estimate)
        if why is not None and not self.warned:
            self.warned = True
            self.messages.append(UserMessage(text=LAST_TURN.format(
                used=self.turns, limit=self.budget.max_turns if self.budget.max_turns is not None else "?", why=why)))
            shown = self.view.build(self.messages) or shown
        t0 = self.clock()
        try:
            turn = self.model.complete(self.role, self.system, shown, self.specs)
        except ModelError as err:
            return self.end("model_unavailable" if err.resumable else "model_error", str(err))
        self.turns += 1
        self.usage = self.usage + turn.usage
        cost = self.model.cost_usd(turn.usage)
        self.cost += cost
        reply = AssistantMessage(text=turn.text, tool_calls=turn.tool_calls)
        size, limit = message_tokens(reply), self.view.reply_limit()
        if size > limit:
            self.oversized += 1
            self.refuse_oversized(turn, reply, size, limit, cost, t0)
            if self.oversized >= OVERSIZED_IN_A_ROW:
                return self.end("model_unavailable", f"{self.model.name}: {self.oversized} replies in a row too large "
                                f"for the context window (last about {size} tokens, at most {limit} fit); check the "
                                "server's output limit and --context-window")
            return None
        self.oversized = 0
        self.last_output = max(turn.usage.output_tokens, approx_tokens(turn.model_dump_json()))
        if self.traj:
            self.traj.model_turn(self.role, self.model.name, self.turns, turn, cost, self.clock() - t0)
        self.messages.append(reply)
        self.saved()  # before the tools run: a call cut short by a crash is then marked interrupted
        if not turn.tool_calls:
            self.messages.append(UserMessage(text=NUDGE))
            return None
        return self.run_calls(turn.tool_calls)

    def refuse_oversized(self, turn: Any, reply: AssistantMessage, size: int, limit: int, cost: float,
                         t0: float) -> None:
        """Keep an oversized reply in short form (the trajectory too) and answer each of its
        calls "not run", so the next call fits and the model learns why."""
        short = trimmed(reply)
        assert isinstance(short, AssistantMessage)
        self.last_output = min(limit, max(turn.usage.output_tokens, 1))
        if self.traj:
            kept = turn.model_copy(update={"text": short.text, "tool_calls": short.tool_calls})
            self.traj.model_turn(self.role, self.model.name, self.turns, kept, cost, self.clock() - t0)
        self.messages.append(short)
        note = OVERSIZED.format(size=size, limit=limit)
        for call in short.tool_calls:
            self.add_result(call, note, True)
        if not short.tool_calls:
            self.messages.append(UserMessage(text=note))
        self.saved()
        return None

    def run_calls(self, calls: list[ToolCall]) -> AgentResult | None:
        from harness.sandbox.executors import InfrastructureError

        # Commands may not run past the time budget (the tools use the real monotonic clock).
        self.ctx.deadline = None
        if self.budget.max_seconds is not None:
            left = self.budget.max_seconds - (self.clock() - self.start)
            self.ctx.deadline = time.monotonic() + max(1.0, left)
        for i, call in enumerate(calls):
            t0 = self.clock()
            try:
                out = execute(self.ctx, self.tools, call)
            except InfrastructureError as err:
                # The call stays without a result; a resumed run marks it interrupted.
                return self.end("infra_error", f"{call.name}: {err}")
            if out.end == "asked":
                # The hatch call waits for the person's answer (resume_answer); the rest is skipped.
                for later in calls[i + 1:]:
                    self.add_result(later, NOT_RUN, True)
                return self.end("asked", out.data.question if hasattr(out.data, "question") else "", hatch=out.data)
            self.add_result(call, out.content, out.is_error, self.clock() - t0)
            if out.end == "finished":
                for later in calls[i + 1:]:
                    self.add_result(later, NOT_RUN, True)
                return self.end("finished", finish_args=out.data)
        return None

    def _budget_detail(self, reason: Reason) -> str:
        b = self.budget
        return {
            "budget_time": f"{self.clock() - self.start:.1f}s used of {b.max_seconds}s",
            "budget_turns": f"{self.turns} turns used of {b.max_turns}",
            "budget_tokens": f"{self.usage.total} tokens used of {b.max_tokens}; the next call would need about "
                             f"{self.view.last_estimate + self.last_output}",
            "budget_usd": f"${self.cost:.4f} used of ${b.max_usd}; the next call could cost about "
                          f"${self.model.estimate_cost_usd(self.view.last_estimate, self.last_output):.4f}",
        }.get(reason, "")


def run_agent(
    role: str,
    model: Model,
    ctx: ToolContext,
    *,
    system: SystemPrompt,
    task: str | None = None,
    budget: Budget | None = None,
    trajectory: Trajectory | None = None,
    messages: list[Message] | None = None,
    resume_answer: str | dict[str, Any] | None = None,
    tools: list[Tool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_step: Callable[[int], Any] | None = None,
    on_messages: Callable[[list[Message]], Any] | None = None,
) -> AgentResult:
    """Run `role` until it finishes, asks, or a budget ends it. See the module docstring.

    `task` starts a conversation; with `messages` it is appended as a new user message.
    `on_step(turn_number)` is called after each turn's tool calls ran (the graph commits there).
    `on_messages(messages)` gets the conversation after each model turn and each step, to be
    saved: passed back as `messages` after a crash, it continues where the agent was.
    """
    if not messages and not task:
        raise ValueError("run_agent needs a task (first run) or the saved messages (resume)")
    budget = budget or Budget()
    r = _Run(role, model, ctx, system, tools or tools_for_role(role), budget, trajectory, clock)
    r.on_messages = on_messages
    if task:
        task = f"{task}\n\n{budget.describe()}"  # every role knows its budget from its first message
    if trajectory:
        trajectory.agent_start(role, model.name, task or "(resumed)")
    if messages:
        repaired, added = repair_pending(list(messages), resume_answer)
        r.messages = repaired
        for res in added:
            if trajectory:
                trajectory.tool_result(role, res.tool_call_id, res.name, res.content, res.is_error, 0.0)
        r.warned = any(isinstance(m, UserMessage) and m.text.startswith(LAST_TURN[:40]) for m in r.messages)
        if task:
            # A new instruction for a continued conversation (e.g. the next parity result).
            r.messages.append(UserMessage(text=r.redact.text(task)))
            r.warned = False
    else:
        if resume_answer is not None:
            raise ValueError("resume_answer needs the saved messages of the conversation it answers")
        r.messages = [UserMessage(text=r.redact.text(task or ""))]
    while True:
        result = r.step()
        if result is not None:
            return result
        r.saved()
        if on_step is not None:
            on_step(r.turns)
