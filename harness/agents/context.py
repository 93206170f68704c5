"""The model's view of a conversation, trimmed to fit its context window.

The trajectory and the saved messages keep everything; only what is sent is trimmed. Old
turns are trimmed from the oldest on (tool results become a short "[trimmed]" note, long
texts and arguments are cut), always keeping the task message (packet + plan) and the
newest turn whole. Trimming jumps down to a low-water mark and then stays put while the
conversation grows again, so the trimmed prefix is identical from call to call and the
provider's prompt cache keeps hitting. While anything is trimmed, the task message says so
(how many older results were condensed and how to get one back).

Tokens are estimated at about 4 characters each; real tokenizers need fewer characters for
code and JSON, so the view keeps a margin (TOKENIZER_MARGIN) below the window. Estimates are
cached per message, so building the view costs the same on call 400 as on call 4.
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
TOKENIZER_MARGIN = 1.25  # a real token may be as short as ~3.2 characters of code or JSON


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


TRIMMED_SHARE = 0.25  # trimmed turns may fill this share of the budget; older turns are dropped
MAX_LISTED = 12  # dropped calls named in the note (the newest ones)
NOTE_CHARS = 2000  # the note's most; its tokens are counted before it is written
MIN_REPLY_TOKENS = 1024  # a reply limit never goes below this, however small the window


def condensed_note(trimmed_count: int, dropped: list[Message]) -> str:
    """What the agent is told about the part of the conversation it no longer sees whole."""
    calls = [c for m in dropped if isinstance(m, AssistantMessage) for c in m.tool_calls]
    parts = []
    if calls:
        named = ", ".join(f"{c.name}({_brief(c.args)})" for c in calls[-MAX_LISTED:])
        more = f"{len(calls) - MAX_LISTED} earlier calls and " if len(calls) > MAX_LISTED else ""
        parts.append(f"your first {len(calls)} tool calls are no longer shown ({more}the latest of them: {named})")
    if trimmed_count:
        parts.append(f"the {trimmed_count} messages after them are condensed (long tool results became one-line "
                     "notes, long arguments were cut)")
    text = "; ".join(parts)[:NOTE_CHARS - 200]
    return ("\n\n[Note from the harness: to fit the model's context window, " + text
            + ". Call a tool again if you need one of those results.]")


def _brief(args: dict[str, Any] | str) -> str:
    if isinstance(args, str):
        return "..."
    text = ", ".join(f"{k}={v!r}" for k, v in args.items() if isinstance(v, (str, int, float)) and len(str(v)) <= 60)
    return text[:100]


class ContextView:
    """Builds the trimmed view; keeps its trim and drop points between calls (see module docstring)."""

    def __init__(self, window_tokens: int, fixed_tokens: int, reserve_tokens: int | None = None) -> None:
        self.window = window_tokens
        self.fixed = fixed_tokens  # system prompt + tool definitions
        self.reserve = reserve_tokens if reserve_tokens is not None else min(8192, window_tokens // 4)
        self.drop_before = 1  # messages 1..drop_before-1 are not sent (named in the note)
        self.trim_before = 1  # messages drop_before..trim_before-1 are sent trimmed; 0 is the task
        self.last_estimate = 0
        # Per message: (the message, its full size, its trimmed form, the trimmed size).
        self._sizes: list[tuple[Message, int, Message, int]] = []
        self._note: tuple[tuple[int, int], str] | None = None

    @property
    def budget(self) -> int:
        return int((self.window - self.reserve) / TOKENIZER_MARGIN) - self.fixed

    def reply_limit(self) -> int:
        """The most tokens one assistant reply may take. The newest turn is never trimmed, so it
        must leave room beside the task message, the note and the results of its own calls."""
        task = self._sizes[0][1] if self._sizes else 0
        room = self.budget - task - approx_tokens("x" * NOTE_CHARS)
        return max(MIN_REPLY_TOKENS, room // 2)

    def _measure(self, messages: list[Message]) -> None:
        """Sizes of new (or replaced) messages only; the rest come from the cache."""
        keep = 0
        while keep < min(len(self._sizes), len(messages)) and self._sizes[keep][0] is messages[keep]:
            keep += 1
        del self._sizes[keep:]
        for m in messages[keep:]:
            short = trimmed(m)
            self._sizes.append((m, message_tokens(m), short, message_tokens(short) if short is not m else 0))

    def _note_text(self, messages: list[Message]) -> str:
        key = (self.drop_before, self.trim_before)
        if self._note is None or self._note[0] != key:
            self._note = (key, condensed_note(self.trim_before - self.drop_before, messages[1:self.drop_before]))
        return self._note[1]

    def build(self, messages: list[Message]) -> list[Message] | None:
        """The view to send, or None when even the most condensed view does not fit."""
        self._measure(messages)
        full = [size for _, size, _, _ in self._sizes]
        short = [full[i] if i == 0 or s is m else ss for i, (m, _, s, ss) in enumerate(self._sizes)]
        # Never trim the newest assistant turn or what came after it; drop only whole turns.
        turns = [i for i, m in enumerate(messages) if isinstance(m, AssistantMessage)]
        limit = turns[-1] if turns else len(messages)
        self.trim_before = max(1, min(self.trim_before, limit))
        self.drop_before = max(1, min(self.drop_before, self.trim_before))

        def size() -> int:
            note = approx_tokens("x" * NOTE_CHARS) if self.drop_before > 1 or self.trim_before > 1 else 0
            return full[0] + note + sum(short[self.drop_before:self.trim_before]) + sum(full[self.trim_before:])

        def drop_one_turn() -> bool:
            later = [i for i in turns if i > self.drop_before and i <= self.trim_before]
            if not later:
                return False
            self.drop_before = later[0]
            return True

        total = size()
        if total > self.budget:
            target = int(self.budget * LOW_WATER)
            while self.trim_before < limit and size() > target:
                self.trim_before += 1
            while (sum(short[self.drop_before:self.trim_before]) > self.budget * TRIMMED_SHARE
                   or size() > target) and drop_one_turn():
                pass
            total = size()
        condensed = self.drop_before > 1 or self.trim_before > 1
        self.last_estimate = total + self.fixed
        if total > self.budget:
            return None
        if not condensed:
            return list(messages)
        task = messages[0]
        first = UserMessage(text=task.text + self._note_text(messages)) if isinstance(task, UserMessage) else task
        view: list[Message] = [first]
        view += [self._sizes[i][2] for i in range(self.drop_before, self.trim_before)]
        view += messages[self.trim_before:]
        return view


