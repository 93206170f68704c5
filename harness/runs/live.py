"""The live view of a run in the terminal, and the final summary table.

The view is fed by the run's events (node start/end, parity results, questions) and reads
the trajectory file for agent turns, tokens and cost, so it needs no hook into the agent loop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


class TrajectoryTail:
    """Reads the lines appended to trajectory.jsonl since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.role = "-"
        self.turns = 0
        self.tokens = 0
        self.cost = 0.0
        self.last_tool = "-"

    def poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind("\n") + 1]  # a half-written line waits for the next look
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            try:
                self._take(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue

    def _take(self, event: dict[str, Any]) -> None:
        self.role = event.get("role", self.role)
        if event.get("event") == "model_turn":
            self.turns += 1
            usage = event.get("usage") or {}
            self.tokens += sum(int(v or 0) for v in usage.values() if isinstance(v, (int, float)))
            self.cost += float(event.get("cost_usd") or 0)
            calls = event.get("tool_calls") or []
            if calls:
                self.last_tool = ", ".join(str(c.get("name")) for c in calls)


class LiveView:
    """An event sink (`__call__`) and a rich renderable (`__rich__`) at once."""

    def __init__(self, run_dir_hint: Path | None = None) -> None:
        self.started = time.monotonic()
        self.run_id = "-"
        self.node = "starting"
        self.last_test = "not run yet"
        self.notes: list[str] = []
        self.caps: list[str] = []  # a budget that stopped a role, kept for after the live view
        self.tail: TrajectoryTail | None = TrajectoryTail(run_dir_hint / "trajectory.jsonl") if run_dir_hint else None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "run":
            self.attach(Path(data["run_dir"]))
        elif kind == "node_start":
            self.node = str(data.get("node"))
        elif kind == "parity":
            self.last_test = str(data.get('summary') or data.get('status'))
        elif kind == "question":
            self.notes.append(f"question {data.get('hatch_id')}: {(data.get('hatch') or {}).get('question')}")
        elif kind == "guards":
            self.notes.append("guards: " + "; ".join(data.get("findings") or []))
        elif kind == "error":
            self.notes.append(f"error: {data.get('error')}")
        elif kind == "cap":
            self.notes.append(str(data.get("text")))
            self.caps.append(str(data.get("text")))
        self.notes = self.notes[-4:]

    def attach(self, run_dir: Path) -> None:
        self.run_id = run_dir.name
        self.tail = TrajectoryTail(run_dir / "trajectory.jsonl")

    def __rich__(self) -> Panel:
        if self.tail is not None:
            self.tail.poll()
        t = self.tail
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("node", self.node)
        grid.add_row("agent", f"{t.role if t else '-'} (last tool: {t.last_tool if t else '-'})")
        grid.add_row("turns", str(t.turns if t else 0))
        grid.add_row("tokens", f"{t.tokens if t else 0:,}")
        grid.add_row("cost", f"${t.cost if t else 0:.4f}")
        grid.add_row("last test", self.last_test)
        grid.add_row("elapsed", f"{time.monotonic() - self.started:.0f}s")
        parts: list[Any] = [grid]
        parts += [Text(n, style="yellow") for n in self.notes]
        return Panel(Group(*parts), title=f"harness run {self.run_id}", border_style="cyan")


def summary_renderables(summary: dict[str, Any]) -> list[Any]:
    """The final summary: outcome, time per node (model / test / overhead), tokens and cost,
    and where to find the run."""
    from harness.printable import printable_data

    summary = printable_data(summary)  # the agent's words (blocker, question) reach a terminal
    status = summary.get("status", "?")
    colour = {"completed": "green", "paused": "yellow", "blocked": "red", "invalid": "red", "error": "red"}.get(status, "white")
    out: list[Any] = [Text(f"Outcome: {summary.get('outcome_line', status)}", style=f"bold {colour}")]
    nodes = summary.get("nodes") or {}
    if nodes:
        table = Table(title="Time and cost per node", show_lines=False)
        for col in ("node", "runs", "total s", "model s", "test s", "overhead s", "tokens in", "tokens out", "cost $"):
            table.add_column(col, justify="left" if col == "node" else "right", no_wrap=col == "node")
        for name, n in nodes.items():
            table.add_row(name, str(n["calls"]), f"{n['total_s']:.2f}", f"{n['model_s']:.2f}", f"{n['test_s']:.2f}",
                          f"{n['overhead_s']:.2f}", str(n["input_tokens"]), str(n["output_tokens"]), f"{n['cost_usd']:.4f}")
        tot = summary.get("totals") or {}
        if tot:
            table.add_row("total", "", f"{tot['total_s']:.2f}", f"{tot['model_s']:.2f}", f"{tot['test_s']:.2f}",
                          f"{tot['overhead_s']:.2f}", str(int(tot['input_tokens'])), str(int(tot['output_tokens'])),
                          f"{tot['cost_usd']:.4f}", style="bold")
        out.append(table)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    for label, key in (("run id", "run_id"), ("run dir", "run_dir"), ("handoff", "handoff_path"),
                       ("branch", "branch"), ("worktree", "worktree"), ("last parity", "last_parity"),
                       ("blocker", "blocker"), ("error", "error")):
        if summary.get(key) not in (None, "", "none"):
            facts.add_row(label, Text(str(summary[key])))
    out.append(facts)
    return out


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    for part in summary_renderables(summary):
        console.print(part)
