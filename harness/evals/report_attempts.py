"""One section per attempt in the HTML report: why it was graded so, what it changed, how its
last parity run ended, the handoff it wrote, and its trajectory as turns.

Everything is read from the attempt's directory and embedded in the page (escaped, and cut to
a readable size), so the report stays one self-contained file. A section is hidden until its
link is followed (CSS `:target`), so the page needs no script to show it.
"""

from __future__ import annotations

import json
import re
from harness.printable import html_text as escape
from pathlib import Path
from typing import Any

MAX_DIFF_CHARS = 60_000
LOG_TAIL_LINES = 60
MAX_TEXT_CHARS = 4_000  # one trajectory text or tool result
MAX_EVENTS = 400

CSS = """
section.attempt{display:none;border:1px solid #ccc;padding:8px 14px;margin:14px 0;background:#fcfcfc}
section.attempt:target{display:block}
section.attempt pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:520px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
.diff .add{color:#116329} .diff .del{color:#b31d28} .diff .hunk{color:#6f42c1}
.turn{border-left:3px solid #4e79a7;margin:6px 0;padding:2px 8px} .turn.result{border-color:#aaa}
.turn.result.err{border-color:#c62828} details summary{cursor:pointer;font-size:13px}
"""


def attempt_anchor(row: dict[str, Any]) -> str:
    """The id of the row's section (stable, safe in a URL fragment)."""
    raw = f"attempt-{row.get('model')}-{row.get('task')}-{row.get('attempt')}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", raw)


def attempt_sections(rows: list[dict[str, Any]]) -> str:
    return "".join(attempt_section(r) for r in sorted(rows, key=lambda r: (r["task"], r["model"], r["attempt"])))


def attempt_section(row: dict[str, Any]) -> str:
    files = AttemptFiles(row)
    outcome = escape(str(row.get("outcome")))
    reasons = "".join(f"<li>{escape(str(x))}</li>" for x in row.get("reasons") or []) or "<li>none</li>"
    checks = row.get("checks") or (files.grade or {}).get("checks") or {}
    check_rows = "".join(f"<tr><td class=l>{escape(str(k))}</td><td class=l>{escape(json.dumps(v, default=str))}</td></tr>"
                         for k, v in checks.items())
    retries = "".join(f"<li>{escape(str(r.get('error_class')))}: {escape('; '.join(map(str, r.get('reasons') or [])))}</li>"
                      for r in row.get("retries") or [])
    parts = [
        f'<section class=attempt id="{attempt_anchor(row)}">',
        f"<h3>{escape(row['task'])} / {escape(row['model'])} / attempt {row['attempt']}: "
        f"<span class={outcome}>{outcome}</span></h3>",
        f"<p>kind {escape(str(row.get('kind')))}, error class {escape(str(row.get('error_class') or '-'))}, "
        f"run status {escape(str(row.get('status')))}, {row.get('turns', 0)} turns, "
        f"{float(row.get('wall_s') or 0):.1f}s. <a href=\"#attempts\">back to the attempts</a></p>",
        "<h4>Grader's reasons</h4>", f"<ul class=reasons>{reasons}</ul>",
    ]
    if check_rows:
        parts.append(f"<table class=checks><tbody>{check_rows}</tbody></table>")
    if row.get("agent_stop"):
        parts.append(f"<p><b>Why the run stopped:</b> {escape(str(row['agent_stop']))}</p>")
    if row.get("continuation"):
        c = row["continuation"]
        why = "; ".join(map(str, c.get("reasons") or [])) or "no grader reasons"
        parts.append(f"<p><b>Continued after a person's answer</b> ({escape('; '.join(c.get('answers') or []))}): "
                     f"run {escape(str(c.get('status')))}, next step {escape(str(c.get('next_step')))}, graded as a "
                     f"port: <span class={escape(str(c.get('outcome')))}>{escape(str(c.get('outcome')))}</span> "
                     f"({escape(why)})</p>")
    elif row.get("answer_command"):
        parts.append(f"<p>Answer it: <code>{escape(str(row['answer_command']))}</code>, then "
                     "<code>harness eval score</code> shows the continuation.</p>")
    if retries:
        parts.append(f"<p>Earlier tries (infrastructure):</p><ul>{retries}</ul>")
    parts += ["<h4>Diff</h4>", _diff_html(files.diff())]
    parts += ["<h4>Last parity log (tail)</h4>", f"<pre class=parity-log>{escape(files.parity_tail())}</pre>"]
    parts += ["<h4>Handoff</h4>", f"<pre class=handoff>{escape(files.handoff())}</pre>"]
    parts += ["<h4>Trajectory</h4>", _trajectory_html(files.trajectory_events())]
    parts.append("</section>")
    return "".join(parts)


class AttemptFiles:
    """Where an attempt's evidence lies: its last try, run directory and worktree."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.run_dir = Path(row["run_dir"]) if row.get("run_dir") else None
        attempt_dir = Path(row["attempt_dir"]) if row.get("attempt_dir") else None
        tries = sorted(attempt_dir.glob("try*"), key=lambda p: p.name) if attempt_dir and attempt_dir.is_dir() else []
        self.try_dir = tries[-1] if tries else None
        self.grade = _read_json(self.try_dir / "grade.json") if self.try_dir else None

    def diff(self) -> str:
        """The run's changes against the commit it started from (worktree included)."""
        if self.run_dir is None:
            return "(no run directory: the run did not start)"
        home, run_id = self.run_dir.parent.parent, self.run_dir.name
        meta = _read_json(home / "worktrees" / f"{run_id}.json") or {}
        worktree = home / "worktrees" / run_id
        if not worktree.is_dir() or not meta.get("base_commit") or not meta.get("repo"):
            return "(no worktree left for this run)"
        try:
            # Through the workspace: the hardened host git, which never walks the agent's tree.
            from harness.sandbox.workspace import Workspace

            text = Workspace.open(meta["repo"], run_id, root=home).diff()
        except Exception as err:  # a report section, not a reason to stop the report
            return f"(no diff: {err})"
        if len(text) > MAX_DIFF_CHARS:
            text = text[:MAX_DIFF_CHARS] + f"\n... (diff cut at {MAX_DIFF_CHARS} characters)"
        return text or "(no changes)"

    def parity_tail(self) -> str:
        logs = sorted((self.run_dir / "logs").glob("parity-*.log")) if self.run_dir else []
        if not logs:
            return "(no parity run)"
        lines = logs[-1].read_text(encoding="utf-8", errors="replace").splitlines()
        head = f"{logs[-1].name} (last {min(LOG_TAIL_LINES, len(lines))} of {len(lines)} lines)\n"
        return head + "\n".join(lines[-LOG_TAIL_LINES:])

    def handoff(self) -> str:
        path = self.run_dir / "handoff.md" if self.run_dir else None
        return path.read_text(encoding="utf-8", errors="replace") if path and path.is_file() else "(no handoff)"

    def trajectory_events(self) -> list[dict[str, Any]]:
        path = self.run_dir / "trajectory.jsonl" if self.run_dir else None
        events = []
        if path and path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and event.get("event"):
                    events.append(event)
        return events


def _diff_html(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        cls = ("add" if line.startswith("+") and not line.startswith("+++") else
               "del" if line.startswith("-") and not line.startswith("---") else
               "hunk" if line.startswith("@@") else "")
        out.append(f"<span class={cls}>{escape(line)}</span>" if cls else escape(line))
    return "<pre class=diff>" + "\n".join(out) + "</pre>"


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, indent=1, default=str)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + f"\n... ({len(text)} characters)"


def _trajectory_html(events: list[dict[str, Any]]) -> str:
    if not events:
        return "<p>(no trajectory)</p>"
    out = []
    for event in events[:MAX_EVENTS]:
        kind, role = event.get("event"), escape(str(event.get("role", "")))
        if kind == "agent_start":
            out.append(f"<h5>{role} ({escape(str(event.get('model', '')))})</h5>")
        elif kind == "model_turn":
            text = f"<p>{escape(_cut(event.get('text')))}</p>" if event.get("text") else ""
            calls = "".join(
                f"<details class=call><summary>call <b>{escape(str(c.get('name')))}</b></summary>"
                f"<pre>{escape(_cut(c.get('args')))}</pre></details>" for c in event.get("tool_calls") or [])
            out.append(f"<div class=turn><small>{role} turn {event.get('turn', '')}</small>{text}{calls}</div>")
        elif kind == "tool_result":
            err = " err" if event.get("is_error") else ""
            out.append(f"<div class='turn result{err}'><details class=result><summary>result of "
                       f"{escape(str(event.get('name')))}{' (error)' if err else ''}</summary>"
                       f"<pre>{escape(_cut(event.get('content')))}</pre></details></div>")
        elif kind == "agent_end":
            out.append(f"<p><small>{role} ended: {escape(str(event.get('reason')))} "
                       f"{escape(str(event.get('detail') or ''))}</small></p>")
    if len(events) > MAX_EVENTS:
        out.append(f"<p>... {len(events) - MAX_EVENTS} more events in trajectory.jsonl</p>")
    return "".join(out)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
