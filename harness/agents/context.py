"""The model's view of a conversation, trimmed to fit its context window.

The trajectory and the saved messages keep everything; only what is sent is trimmed. Old
turns are trimmed from the oldest on (tool results become a short "[trimmed]" note, long
texts and arguments are cut), always keeping the task message (packet + plan) and the
newest turn whole. Trimming jumps down to a low-water mark and then stays put while the
conversation grows again, so the trimmed prefix is identical from call to call and the
provider's prompt cache keeps hitting. Tokens are estimated at about 4 characters each.
"""

from __future__ import annotations

import json
from typing import Any

from harness.agents.models.base import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    approx_tokens,
)

LOW_WATER = 0.6  # after trimming, the view uses at most this share of its budget
KEEP_CHARS = 200


def message_tokens(m: Message) -> int:
    return approx_tokens(m.model_dump_json())


def _cut(text: str) -> str:
    return text if len(text) <= KEEP_CHARS else text[:KEEP_CHARS] + f" [trimmed {len(text) - KEEP_CHARS} chars]"


def _cut_args(args: dict[str, Any] | str) -> dict[str, Any] | str:
    if isinstance(args, str):
        return _cut(args)
    out: dict[str, Any] = {}
    for k, v in args.items():
        if isinstance(v, str):
            out[k] = _cut(v)
        elif isinstance(v, (dict, list)) and len(json.dumps(v)) > KEEP_CHARS:
            out[k] = "[trimmed]"
        else:
            out[k] = v
    return out


def trimmed(m: Message) -> Message:
    """The short form of an old message (ids and tool names stay, so the wire stays valid)."""
    if isinstance(m, ToolResultMessage):
        if len(m.content) <= KEEP_CHARS:
            return m
        note = f"[trimmed: old {m.name} result of {len(m.content)} chars; call the tool again if you need it]"
        return m.model_copy(update={"content": note})
    if isinstance(m, AssistantMessage):
        calls = [ToolCall(id=c.id, name=c.name, args=_cut_args(c.args)) for c in m.tool_calls]
        return AssistantMessage(text=_cut(m.text), tool_calls=calls)
    return UserMessage(text=_cut(m.text))


class ContextView:
    """Builds the trimmed view; keeps its trim point between calls (see module docstring)."""

    def __init__(self, window_tokens: int, fixed_tokens: int, reserve_tokens: int | None = None) -> None:
        self.window = window_tokens
        self.fixed = fixed_tokens  # system prompt + tool definitions
        self.reserve = reserve_tokens if reserve_tokens is not None else min(8192, window_tokens // 4)
        self.trim_before = 1  # messages 1..trim_before-1 are trimmed; 0 is the task
        self.last_estimate = 0

    @property
    def budget(self) -> int:
        return self.window - self.reserve - self.fixed

    def build(self, messages: list[Message]) -> list[Message] | None:
        """The view to send, or None when even the most trimmed view does not fit."""
        full = [message_tokens(m) for m in messages]
        short = [message_tokens(trimmed(m)) if i > 0 else full[0] for i, m in enumerate(messages)]
        # Never trim the newest assistant turn or what came after it.
        limit = max((i for i, m in enumerate(messages) if isinstance(m, AssistantMessage)), default=len(messages))
        self.trim_before = max(1, min(self.trim_before, limit))
        total = sum(short[:self.trim_before]) + sum(full[self.trim_before:])
        if total > self.budget:
            target = int(self.budget * LOW_WATER)
            while self.trim_before < limit and total > target:
                total -= full[self.trim_before] - short[self.trim_before]
                self.trim_before += 1
        self.last_estimate = total + self.fixed
        if total > self.budget:
            return None
        return [trimmed(m) if 0 < i < self.trim_before else m for i, m in enumerate(messages)]
