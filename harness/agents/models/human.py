"""The human model: a person types each tool call at a prompt.

Each turn shows what came back since the person's last turn (the task on the first turn,
then the tool results), lists the tools, and asks for a tool name, then its JSON arguments
(empty line = `{}`). Input is read line by line, so it works at a terminal (pty) and with
piped stdin. End of input is a `ModelError`, which ends the agent with `model_error`.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from harness.agents.models.base import (
    AssistantMessage,
    AssistantTurn,
    Message,
    Model,
    ModelError,
    SystemPrompt,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)

SHOW_CHARS = 4000


class HumanModel(Model):
    provider = "human"
    name = "human"

    def __init__(self, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
        super().__init__()
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._turn = 0

    def _say(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def _ask(self, prompt: str) -> str:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if line == "":
            raise ModelError("human: input ended (no more tool calls)", provider="human")
        return line.strip()

    def _show_since_last_turn(self, messages: list[Message]) -> None:
        tail: list[Message] = []
        for m in reversed(messages):
            if isinstance(m, AssistantMessage):
                break
            tail.append(m)
        for m in reversed(tail):
            if isinstance(m, UserMessage):
                self._say(f"[message]\n{_clip(m.text)}")
            elif isinstance(m, ToolResultMessage):
                status = "error" if m.is_error else "ok"
                self._say(f"[last tool result: {m.name}, {status}]\n{_clip(m.content)}")

    def _complete(
        self, role: str, system: SystemPrompt, messages: list[Message], tools: list[ToolSpec]
    ) -> AssistantTurn:
        self._turn += 1
        self._say(f"\n=== {role} · turn {self._turn} ===")
        self._show_since_last_turn(messages)
        names = [t.name for t in tools]
        self._say("tools: " + ", ".join(names))
        while True:
            name = self._ask("tool> ")
            if name in names:
                break
            self._say(f"unknown tool {name!r}; choose one of: {', '.join(names)}")
        self._say(_arg_help(next(t for t in tools if t.name == name)))
        while True:
            raw = self._ask("args (JSON object, empty for {})> ")
            try:
                args = json.loads(raw) if raw else {}
            except json.JSONDecodeError as err:
                self._say(f"not JSON: {err}")
                continue
            if isinstance(args, dict):
                break
            self._say("arguments must be a JSON object, e.g. {\"path\": \"README.md\"}")
        # The id depends on the conversation length so a resumed conversation never reuses one.
        call = ToolCall(id=f"human-{role}-{len(messages)}", name=name, args=args)
        return AssistantTurn(tool_calls=[call], stop_reason="tool_use")


def _arg_help(tool: ToolSpec) -> str:
    props = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    parts = [f"{k}{'' if k in required else '?'}" for k in props]
    return f"{tool.name}: {tool.description}\n  arguments: {', '.join(parts) or '(none)'}"


def _clip(text: str) -> str:
    if len(text) <= SHOW_CHARS:
        return text
    return text[: SHOW_CHARS // 2] + f"\n[... {len(text) - SHOW_CHARS} chars not shown ...]\n" + text[-SHOW_CHARS // 2 :]


def from_spec(arg: str = "", *, base_url: str | None = None, price: object = None, **kwargs: Any) -> HumanModel:
    """The registry's factory for `human` (`stdin`/`stdout` may be given)."""
    return HumanModel(**kwargs)
