"""The run's trajectory: every model turn and tool call/result, appended as JSON lines.

`<run_dir>/trajectory.jsonl` is written as things happen (flush + fsync per line) so a killed
run keeps its record. Secrets are redacted before a line is written, by the project's one detector
(`harness.contracts.secrets.Redactor`): the values of secret-named environment variables and
key-shaped tokens, each only as a whole token.

Events (one JSON object a line, all with `event`, `ts` (UTC ISO time) and `role`):
  agent_start  {model, task}
  model_turn   {model, turn, text, tool_calls: [{id, name, args}], usage, cost_usd, stop_reason, duration_s}
  tool_result  {tool_call_id, name, content, is_error, duration_s}
  agent_end    {reason, turns, usage, cost_usd, detail}
The `replay:` model reads the `model_turn` events back.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from harness.agents.models.base import AssistantTurn, ToolCall, Usage
from harness.contracts.secrets import Redactor

__all__ = ["Redactor", "Trajectory", "read_events", "read_turns", "render_trajectory"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Trajectory:
    """Append-only JSONL record of a run; safe to share between the graph's nodes."""

    def __init__(self, path: str | Path, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.redact = redactor or Redactor()
        self._lock = threading.Lock()

    def write(self, event: str, role: str, **fields: Any) -> None:
        record = {"event": event, "ts": now_iso(), "role": role, **fields}
        line = json.dumps(self.redact(record), ensure_ascii=False, default=str)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def agent_start(self, role: str, model: str, task: str) -> None:
        self.write("agent_start", role, model=model, task=task)

    def model_turn(
        self, role: str, model: str, turn_no: int, turn: AssistantTurn, cost: float, duration_s: float
    ) -> None:
        self.write(
            "model_turn",
            role,
            model=model,
            turn=turn_no,
            text=turn.text,
            tool_calls=[c.model_dump() for c in turn.tool_calls],
            usage=turn.usage.model_dump(),
            cost_usd=round(cost, 8),
            stop_reason=turn.stop_reason,
            duration_s=round(duration_s, 3),
        )

    def tool_result(
        self, role: str, call_id: str, name: str, content: str, is_error: bool, duration_s: float
    ) -> None:
        self.write(
            "tool_result",
            role,
            tool_call_id=call_id,
            name=name,
            content=content,
            is_error=is_error,
            duration_s=round(duration_s, 3),
        )

    def agent_end(self, role: str, reason: str, turns: int, usage: Usage, cost: float, detail: str = "") -> None:
        self.write(
            "agent_end", role, reason=reason, turns=turns, usage=usage.model_dump(), cost_usd=round(cost, 8), detail=detail
        )


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a trajectory file; a torn last line (killed writer) is ignored."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_turns(path: str | Path) -> dict[str, list[AssistantTurn]]:
    """The recorded model turns per role, in order (what `replay:` serves)."""
    turns: dict[str, list[AssistantTurn]] = {}
    for ev in read_events(path):
        if ev.get("event") != "model_turn":
            continue
        turns.setdefault(ev["role"], []).append(
            AssistantTurn(
                text=ev.get("text", ""),
                tool_calls=[ToolCall.model_validate(c) for c in ev.get("tool_calls", [])],
                stop_reason=ev.get("stop_reason", ""),
            )
        )
    return turns


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_trajectory(path: str | Path) -> Any:
    """A rich renderable of a trajectory: one row per event, then totals per role."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    events = Table(title=f"trajectory {path}", expand=True, show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("time", {}), ("role", {}), ("event", {}), ("detail", {"ratio": 1}),
                    ("tokens", {"justify": "right"}), ("usd", {"justify": "right"})):
        events.add_column(col, **kw)
    totals: dict[str, list[float]] = {}
    from harness.printable import printable_data

    for n, ev in enumerate(read_events(path), 1):
        ev = printable_data(ev)  # what the model and the tools wrote reaches a terminal
        kind, role = ev.get("event", "?"), ev.get("role", "")
        tokens, usd, style = "", "", None
        if kind == "model_turn":
            u = Usage.model_validate(ev.get("usage", {}))
            tokens, usd = str(u.total), f"{ev.get('cost_usd', 0):.4f}"
            t = totals.setdefault(role, [0, 0, 0.0])
            t[0], t[1], t[2] = t[0] + 1, t[1] + u.total, t[2] + float(ev.get("cost_usd", 0))
            calls = ", ".join(f"{c['name']}({_short(c.get('args'), 60)})" for c in ev.get("tool_calls", []))
            detail = _short((ev.get("text") or "") + (" → " if ev.get("text") and calls else "") + calls)
        elif kind == "tool_result":
            detail = f"{ev.get('name')}: {_short(ev.get('content', ''))}"
            style = "red" if ev.get("is_error") else None
        elif kind == "agent_end":
            detail = f"reason={ev.get('reason')} turns={ev.get('turns')} {_short(ev.get('detail', ''))}"
            style = "bold"
        elif kind == "agent_start":
            detail = f"model={ev.get('model')}"
            style = "bold"
        else:
            detail = _short({k: v for k, v in ev.items() if k not in ("event", "ts", "role")})
        events.add_row(str(n), str(ev.get("ts", ""))[11:19], Text(str(role)), Text(str(kind)),
                       Text(detail, style=style or ""), tokens, usd)
    summary = Table(title="per role", expand=False)
    for col in ("role", "model turns", "tokens", "usd"):
        summary.add_column(col)
    for role, (turns, tokens, usd) in totals.items():
        summary.add_row(role, str(int(turns)), str(int(tokens)), f"{usd:.4f}")
    return Group(events, summary)
