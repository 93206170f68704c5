"""What a role did, read back from its conversation: so nothing it learned is lost.

A role that finishes hands on its `finish`; a role cut by a budget hands on this record
instead: its last words, the files it read (with content hashes, so the next role knows
whether they changed since) and edited, and one line of gist per tool call. The planner's
reads of files that are unchanged are also carried into the implementer's task, so the
implementer does not read them again (`kept_reads`, `carried_text`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.agents.models.base import AssistantMessage, Message, ToolCall, ToolResultMessage

GIST_LINES = 24  # the newest tool calls of a cut role shown to the next one
GIST_CHARS = 160
LAST_TEXT_CHARS = 1500
CARRY_CHARS = 12_000  # the most of the planner's read results carried into the implementer's task
EDIT_TOOLS = ("edit_file", "write_file")


class FileRead(BaseModel):
    path: str             # as the role asked for it (relative to the worktree or the official reference)
    root: str             # "worktree" or "official"
    sha256: str | None    # of the whole file when the role ended; None when it could not be read
    shown: str = ""       # the range the tool showed, e.g. "lines 1-180 of 180"


class WorkLog(BaseModel):
    role: str
    reason: str                       # finished, asked, budget_turns, ...
    turns: int = 0
    last_text: str = ""               # the last thing the role said in words
    reads: list[FileRead] = Field(default_factory=list)
    edits: list[str] = Field(default_factory=list)
    gist: list[str] = Field(default_factory=list)

    def render(self, label: str) -> str:
        """The record for the next role's task, under what the earlier roles reported."""
        out = [f"- {label}: cut by its budget ({self.reason}, {self.turns} turns) before it called finish."
               if self.reason.startswith("budget") else f"- {label}: ended without finish ({self.reason})."]
        if self.last_text:
            out.append(f"  its last words: {self.last_text}")
        if self.reads:
            out.append("  it read: " + ", ".join(_read_label(r) for r in self.reads))
        if self.edits:
            out.append("  it edited: " + ", ".join(self.edits))
        if self.gist:
            out.append("  what its tools showed (newest last):")
            out += [f"    {line}" for line in self.gist]
        return "\n".join(out)


def _read_label(r: FileRead) -> str:
    where = "" if r.root == "worktree" else " (official)"
    sha = f" sha256:{r.sha256[:12]}" if r.sha256 else ""
    return f"{r.path}{where}{sha}"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _brief_args(args: dict[str, Any] | str) -> str:
    if isinstance(args, str):
        return "..."
    parts = []
    for k, v in args.items():
        if k in ("content", "new", "old"):
            parts.append(f"{k}=<{len(str(v))} chars>")
        elif isinstance(v, (str, int, float, bool)):
            parts.append(f"{k}={_one_line(v, 60)!s}")
    return ", ".join(parts)


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _locate(workspace: Any, rel: str) -> tuple[str, Path | None]:
    """Where a read_file path led: the worktree, else the official reference (as the tool does)."""
    root = Path(workspace.path)
    official = getattr(workspace, "official_ref_dir", None)
    candidate = Path(rel) if Path(rel).is_absolute() else root / rel
    if candidate.is_file():
        inside = official is not None and Path(candidate).resolve().is_relative_to(Path(official).resolve())
        return ("official" if inside else "worktree"), candidate
    if official is not None and not Path(rel).is_absolute() and (Path(official) / rel).is_file():
        return "official", Path(official) / rel
    return "worktree", None


def calls_and_results(messages: list[Message]) -> list[tuple[ToolCall, ToolResultMessage | None]]:
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolResultMessage)}
    return [(c, results.get(c.id)) for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]


def build(role: str, reason: str, turns: int, messages: list[Message], workspace: Any) -> WorkLog:
    """The record of one role's conversation (`messages` as the agent loop kept them)."""
    texts = [m.text for m in messages if isinstance(m, AssistantMessage) and m.text.strip()]
    log = WorkLog(role=role, reason=reason, turns=turns,
                  last_text=_one_line(texts[-1], LAST_TEXT_CHARS) if texts else "")
    seen: set[str] = set()
    gist = []
    for call, result in calls_and_results(messages):
        args = call.args if isinstance(call.args, dict) else {}
        path = args.get("path")
        ok = result is not None and not result.is_error
        if call.name == "read_file" and ok and isinstance(path, str) and path not in seen:
            seen.add(path)
            root, real = _locate(workspace, path)
            first = result.content.splitlines()[0] if result.content else ""
            shown = first[first.find("(") + 1: first.rfind(")")] if "(" in first else ""
            log.reads.append(FileRead(path=path, root=root, sha256=file_sha256(real) if real else None, shown=shown))
        if call.name in EDIT_TOOLS and ok and isinstance(path, str) and path not in log.edits:
            log.edits.append(path)
        if call.name == "finish":
            continue
        answer = _one_line(result.content.splitlines()[0] if result and result.content else "(no result)", GIST_CHARS)
        gist.append(f"{call.name}({_brief_args(call.args)}) -> {'error: ' if result and result.is_error else ''}{answer}")
    log.gist = gist[-GIST_LINES:]
    return log


def kept_reads(messages: list[Message], workspace: Any, limit: int = CARRY_CHARS) -> list[dict[str, Any]]:
    """The role's successful read_file calls with their results and the file's hash when it
    ended, newest first, each (path and range) once, within `limit` characters of results:
    what can be carried to the next role (plain JSON for the graph state)."""
    kept: list[dict[str, Any]] = []
    used = 0
    seen: set[str] = set()
    for call, result in reversed(calls_and_results(messages)):
        args = call.args if isinstance(call.args, dict) else {}
        path = args.get("path")
        if call.name != "read_file" or result is None or result.is_error or not isinstance(path, str):
            continue
        key = json.dumps(args, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        _root, real = _locate(workspace, path)
        if real is None or used + len(result.content) > limit:
            continue
        used += len(result.content)
        kept.append({"call": call.model_dump(mode="json"), "content": result.content, "sha256": file_sha256(real)})
    kept.reverse()
    return kept


def carried_text(kept: list[dict[str, Any]], workspace: Any) -> tuple[str, list[str]]:
    """The kept reads of files still unchanged, as a block of the next role's task (what the
    planner's read_file calls showed), and the paths that changed since (not carried: stale)."""
    shown: list[str] = []
    changed: list[str] = []
    for item in kept:
        call = ToolCall.model_validate(item["call"])
        args = call.args if isinstance(call.args, dict) else {}
        path = str(args.get("path", ""))
        _root, real = _locate(workspace, path)
        if real is None or file_sha256(real) != item.get("sha256"):
            changed.append(path)
            continue
        brief = ", ".join(f"{k}={v}" for k, v in args.items())
        shown.append(f"--- read_file({brief}), sha256:{str(item.get('sha256'))[:12]} ---\n{item['content']}")
    text = ""
    if shown:
        text = ("What the planner read, carried over by the harness (these files have not changed since; you need "
                "not read them again):\n" + "\n".join(shown))
    if changed:
        text += ("\n" if text else "") + f"Files the planner read that changed since (read them again): {', '.join(changed)}"
    return text, changed


def diff_gist(diff: str, max_lines: int = 8, width: int = 140) -> str | None:
    """A unified diff in one line per changed file: its first removed and added lines."""
    files: list[tuple[str, list[str]]] = []
    for line in diff.splitlines():
        if line.startswith("+++ "):
            files.append((line[6:] if line.startswith("+++ b/") else line[4:], []))
        elif files and line[:1] in "+-" and not line.startswith(("--- ", "+++ ")) and line[1:].strip():
            files[-1][1].append(line[0] + " " + _one_line(line[1:], width))
    if not files:
        return None
    parts = []
    for path, changes in files:
        shown = changes[:max_lines]
        more = f" (+{len(changes) - len(shown)} more lines)" if len(changes) > len(shown) else ""
        parts.append(f"{path}: " + " | ".join(shown) + more)
    return "; ".join(parts)
