"""The scripted model: assistant turns read from a YAML or JSON file, for tests and demos.

File format (stable)::

    planner:            # role name: planner | implementer | debugger
      - text: "optional assistant text"
        tool_calls:
          - {name: read_file, args: {path: fastvideo/models/vaes/base.py}}
      - tool_calls: [{name: finish, args: {summary: "plan ...", plan: {...}}}]
    implementer: [...]
    debugger: [...]     # each entry of a role is used once, in order

- Each entry is one assistant turn: optional `text`, a list of `tool_calls` (`name`, `args`,
  optional `id`), and optional `usage` ({input_tokens, output_tokens, cache_read_tokens,
  cache_write_tokens}); without `usage` the tokens are estimated from the text sizes.
- `args` may be a raw string instead of a mapping, to test malformed tool arguments.
- A role that runs out of turns ends as if it called `finish` with summary "script exhausted".
- A conversation resumed in a new process (its earlier assistant turns passed back in
  `messages`) continues with the entry after the turns it already holds.
- Scripted turns cost $0 unless a price is given (to exercise cost budgets).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.agents.models.base import (
    ROLES,
    AssistantMessage,
    AssistantTurn,
    Message,
    Model,
    SystemPrompt,
    ToolCall,
    ToolSpec,
    Usage,
    approx_tokens,
    system_text,
)
from harness.agents.models.pricing import Price, parse_price

EXHAUSTED = "script exhausted"


class ScriptError(ValueError):
    """The script file or data does not follow the scripted format."""


class ScriptCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    args: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class ScriptTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    tool_calls: list[ScriptCall] = Field(default_factory=list)
    usage: Usage | None = None


def estimate_usage(system: SystemPrompt, messages: list[Message], turn: AssistantTurn) -> Usage:
    prompt = system_text(system) + "".join(m.model_dump_json() for m in messages)
    return Usage(input_tokens=approx_tokens(prompt), output_tokens=approx_tokens(turn.model_dump_json()))


def conversation_position(messages: list[Message]) -> int:
    return sum(1 for m in messages if isinstance(m, AssistantMessage))


class TurnQueueModel(Model):
    """Serves prepared turns per role, in order; shared by the scripted and replay models."""

    def __init__(self, turns: dict[str, list[AssistantTurn]], name: str, price: Price | None = None) -> None:
        super().__init__()
        self.turns = turns
        self.name = name
        self.price = price
        self.served: dict[str, int] = {}

    def _complete(
        self, role: str, system: SystemPrompt, messages: list[Message], tools: list[ToolSpec]
    ) -> AssistantTurn:
        index = max(self.served.get(role, 0), conversation_position(messages))
        self.served[role] = index + 1
        queue = self.turns.get(role, [])
        if index < len(queue):
            turn = queue[index].model_copy(deep=True)
            # Ids are made unique per position so resumed conversations never collide.
            for n, call in enumerate(turn.tool_calls):
                if not call.id:
                    call.id = f"{self.provider}-{role}-{index}-{n}"
        else:
            turn = AssistantTurn(
                tool_calls=[ToolCall(id=f"{self.provider}-{role}-{index}-end", name="finish", args={"summary": EXHAUSTED})],
                stop_reason="script_exhausted",
            )
        if turn.usage == Usage():
            turn.usage = estimate_usage(system, messages, turn)
        return turn

    def cost_usd(self, usage: Usage) -> float:
        if self.price is None:
            return 0.0
        p = self.price
        return (
            usage.input_tokens * p.input
            + usage.output_tokens * p.output
            + usage.cache_read_tokens * p.cache_read
            + usage.cache_write_tokens * p.cache_write
        ) / 1_000_000


class ScriptedModel(TurnQueueModel):
    provider = "scripted"

    @classmethod
    def from_dict(cls, data: Any, *, name: str = "scripted", price: Price | str | None = None) -> "ScriptedModel":
        if not isinstance(data, dict):
            raise ScriptError(f"{name}: a script is a mapping of role -> list of turns, got {type(data).__name__}")
        turns: dict[str, list[AssistantTurn]] = {}
        for role, entries in data.items():
            if role not in ROLES:
                raise ScriptError(f"{name}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
            if not isinstance(entries, list):
                raise ScriptError(f"{name}: {role}: expected a list of turns, got {type(entries).__name__}")
            turns[role] = []
            for i, entry in enumerate(entries):
                try:
                    st = ScriptTurn.model_validate(entry)
                except ValidationError as err:
                    problems = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or '(turn)'}: {e['msg']}" for e in err.errors()
                    )
                    raise ScriptError(f"{name}: {role}[{i}]: {problems}") from None
                turns[role].append(
                    AssistantTurn(
                        text=st.text,
                        tool_calls=[ToolCall(id=c.id or "", name=c.name, args=c.args) for c in st.tool_calls],
                        usage=st.usage or Usage(),
                        stop_reason="tool_use" if st.tool_calls else "end_turn",
                    )
                )
        if isinstance(price, str):
            price = parse_price(price)
        return cls(turns, name=name, price=price)

    @classmethod
    def from_file(cls, path: str | Path, *, price: Price | str | None = None) -> "ScriptedModel":
        p = Path(path)
        if not p.is_file():
            raise ScriptError(f"script file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ScriptError(f"{p}: cannot read it: {err}") from None
        try:
            data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ScriptError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {err}") from None
        except RecursionError:
            raise ScriptError(f"{p}: nested too deeply to be a script") from None
        return cls.from_dict(data or {}, name=f"scripted:{p}", price=price)


def from_spec(arg: str, *, base_url: str | None = None, price: Price | str | None = None,
              **kwargs: Any) -> ScriptedModel:
    """The registry's factory for `scripted:<file>` (no server, no SDK options)."""
    return ScriptedModel.from_file(arg, price=price)
