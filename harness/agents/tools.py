"""The agents' tools: what each one takes (a pydantic model), does, and answers.

Every path goes through `ctx.workspace.resolve()` (inside the worktree, or read-only in the
official reference dir). Commands go through `ctx.executor`. A tool never raises into the
loop for the agent's mistakes: unknown tools, bad or malformed arguments, refused paths,
ambiguous edits and failing commands all come back as error results the agent can act on.
Only a broken sandbox (`InfrastructureError`) escapes, because no agent can fix that.

Tool sets: the planner reads (read_file, list_dir, grep) and may record concerns, raise an
escape hatch and finish; it cannot run commands, because commands can write. The implementer
and the debugger also edit, write, run commands and run the parity test.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.agents import lint
from harness.agents.finish import finish_model
from harness.agents.models.base import ToolCall, ToolSpec
from harness.sandbox.workspace import SCRATCH_DIR

READ_CHARS = 12_000  # one page of read_file / read_parity_log, in characters (lines differ wildly in length)
MAX_READ_CHARS = 40_000  # the most one call may show, whatever end_line asks for
MAX_LINE_CHARS = 2000
MAX_LIST_ENTRIES = 300
MAX_GREP_MATCHES = 200
MAX_GREP_FILE_BYTES = 2_000_000
OUTPUT_LIMIT_BYTES = 12_000  # per stream of `run`, head + tail
RESULT_LIMIT_BYTES = 40_000  # any tool result
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "node_modules", ".mypy_cache", ".venv"}


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the agent."""


@dataclass
class ToolContext:
    """What the tools act on. `run_parity` and `hatch_policy` are supplied by the graph."""

    workspace: Any  # harness.sandbox.workspace.Workspace
    executor: Any = None  # harness.sandbox.executors.Executor
    role: str = "implementer"
    run_parity: Callable[[], Any] | None = None  # () -> ParityRun
    hatch_policy: Callable[[Any], str | None] | None = None  # EscapeHatch -> refusal reason | None
    concerns: list[str] = field(default_factory=list)  # the run's concerns, in order (C1 first)
    resolved: dict[str, Any] = field(default_factory=dict)  # concern text -> {"resolution", "by"}
    instructions: list[str] = field(default_factory=list)  # the packet's concerns_or_unknowns: given, not found
    phase: str | None = None  # for the escape hatch's state snapshot; defaults to the role
    read_chars: int = READ_CHARS
    logs_dir: Any = None  # where the harness keeps this run's parity logs (read_parity_log)
    default_timeout_s: float = 600.0
    max_timeout_s: float = 3600.0
    last_command: str | None = None
    deadline: float | None = None  # time.monotonic() after which commands are not given more time


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    end: Literal["finished", "asked"] | None = None
    data: Any = None  # finish arguments, or the accepted EscapeHatch


# --- helpers ----------------------------------------------------------------------------


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and tail of `text` (about `limit` UTF-8 bytes), marking the cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    half = limit // 2
    cut = len(data) - 2 * half
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[... {cut} bytes cut ...]\n{tail}"


def _rel(ctx: ToolContext, real: Path) -> str:
    root = Path(ctx.workspace.path).resolve()
    try:
        return real.relative_to(root).as_posix()
    except ValueError:
        return str(real)


def _protected(rel: str) -> str | None:
    """Why the component agents may not write `rel`, or None.

    Conversion scripts and converted weights belong to the conversion skill; the only
    exception is the prototype key dumps under converted_weights/<family>/_mapping/.
    """
    parts = Path(rel).parts
    if parts[:2] == ("scripts", "checkpoint_conversion"):
        return "scripts/checkpoint_conversion/ belongs to the conversion step; return a conversion_retry_request instead"
    if parts[:1] == ("converted_weights",):
        if len(parts) >= 4 and parts[2] == "_mapping":
            return None
        return (
            "converted_weights/ belongs to the conversion step (only key dumps under "
            "converted_weights/<family>/_mapping/ may be written); return a conversion_retry_request instead"
        )
    return None


def _official_root(ctx: ToolContext) -> Path | None:
    root = getattr(ctx.workspace, "official_ref_dir", None)
    return Path(root).resolve() if root else None


def _resolve(ctx: ToolContext, path: str, write: bool = False) -> Path:
    """The real path: in the worktree, or, for reads of a relative path the worktree lacks,
    in the official reference dir (packets name official files relative to it)."""
    from harness.sandbox.workspace import PathEscapeError

    try:
        real = ctx.workspace.resolve(path, write=write)
    except PathEscapeError as err:
        raise ToolError(f"path refused: {err}") from None
    official = _official_root(ctx)
    if not write and not real.exists() and official is not None and not Path(path).is_absolute():
        try:
            alt = ctx.workspace.resolve(official / path)
        except PathEscapeError:
            alt = None
        if alt is not None and alt.exists():
            return alt
    if write:
        reason = _protected(_rel(ctx, real))
        if reason:
            raise ToolError(f"path refused: {path}: {reason}")
    return real


def _missing(ctx: ToolContext, shown: str, what: str = "file") -> ToolError:
    """A "no such file" error that names both roots, so the agent knows where it looked."""
    official = _official_root(ctx)
    where = f"looked in the worktree {Path(ctx.workspace.path).resolve()}"
    if official is not None and not Path(shown).is_absolute():
        where += f" and in the official reference dir {official}"
    return ToolError(f"{shown}: no such {what} ({where})")


def _read_text(real: Path, shown: str) -> str:
    if not real.exists():
        raise ToolError(f"{shown}: no such file")
    if real.is_dir():
        raise ToolError(f"{shown} is a directory; use list_dir")
    data = real.read_bytes()
    if b"\0" in data[:8192]:
        raise ToolError(f"{shown} is a binary file ({len(data)} bytes); it cannot be shown as text")
    return data.decode("utf-8", "replace")


def _numbered(lines: list[str], start: int) -> str:
    out = []
    for n, line in enumerate(lines, start):
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f" [... line cut at {MAX_LINE_CHARS} chars]"
        out.append(f"{n:>6}\t{line}")
    return "\n".join(out)


# --- argument models ----------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(_Args):
    path: str = Field(description="Relative to the worktree, else to the official reference dir; or an absolute official path.")
    start_line: int | None = Field(None, ge=1, description="First line to show (1-based). Default 1.")
    end_line: int | None = Field(None, ge=1, description="Last line to show. Default: a page of about 12,000 characters.")


class ListDirArgs(_Args):
    path: str = Field(".", description="Directory, relative to the worktree and to the official reference dir.")


class GrepArgs(_Args):
    pattern: str = Field(description="Python regular expression searched line by line.")
    path: str = Field(".", description="File or directory, relative to the worktree and to the official reference dir.")
    glob: str | None = Field(None, description="Only files whose name or relative path matches, e.g. '*.py'.")


class EditFileArgs(_Args):
    path: str = Field(description="File to edit.")
    old: str = Field(description="Exact text to replace; must occur exactly once (include surrounding lines).")
    new: str = Field(description="Replacement text.")


class WriteFileArgs(_Args):
    path: str = Field(description="File to create or overwrite (parent directories are created).")
    content: str = Field(description="The whole new content of the file.")


class RunArgs(_Args):
    command: str = Field(description="Shell command run in the sandbox with the workspace as cwd.")
    timeout_s: float | None = Field(None, gt=0, description="Seconds before the command is killed (default 600).")


class RunParityTestArgs(_Args):
    pass


class ReadParityLogArgs(_Args):
    log: str | None = Field(None, description="Log file name from a run_parity_test result; default: the newest.")
    start_line: int | None = Field(None, ge=1, description="First line to show (1-based). Default 1.")
    pattern: str | None = Field(None, description="Only the lines matching this Python regular expression.")


class DiffArgs(_Args):
    path: str | None = Field(None, description="Only this file or directory (default: every change).")


class RecordConcernArgs(_Args):
    text: str = Field(min_length=1, description="A concern or unknown to carry into the handoff.")


class ResolveConcernArgs(_Args):
    concern: str = Field(min_length=1, description="Its number (e.g. C2) or its text.")
    resolution: str = Field(min_length=1, description="How it was settled, with the evidence.")


class RaiseEscapeHatchArgs(_Args):
    decision_type: Literal["scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker"]
    question: str = Field(min_length=1, description="One precise question for a person.")
    options: list[str] = Field(
        min_length=1, max_length=4, description="Each option with its consequence: one recommendation plus at most three alternatives."
    )
    recommended_option: str = Field(min_length=1, description="The safe recommended choice (one of the options).")
    safe_default: str = Field("none", description="What you will do once the recommended option is approved; "
                              "leave it out when nothing happens until the answer.")
    evidence: str = Field(min_length=1, description="Exact evidence: command, path, short error text, parity excerpt, or PORT_STATUS row id.")


# --- the tools --------------------------------------------------------------------------


def compact_json(data: Any) -> list[str]:
    """JSON as few, readable lines: objects one key per line, lists of plain values inline
    (a key/shape dump reads as `key: [320, 4, 3, 3]` instead of one integer per line)."""
    lines: list[str] = []

    def flat(value: Any) -> bool:
        return not isinstance(value, (dict, list)) or (
            isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value))

    def walk(value: Any, indent: str, label: str) -> None:
        if flat(value):
            lines.append(f"{indent}{label}{json.dumps(value, ensure_ascii=False)}")
        elif isinstance(value, dict):
            lines.append(f"{indent}{label}{{ ({len(value)} keys)")
            for k, v in value.items():
                walk(v, indent + "  ", f"{json.dumps(k, ensure_ascii=False)}: ")
            lines.append(indent + "}")
        else:
            lines.append(f"{indent}{label}[ ({len(value)} items)")
            for v in value:
                walk(v, indent + "  ", "")
            lines.append(indent + "]")

    walk(data, "", "")
    return lines


def page(lines: list[str], start: int, end: int | None, chars: int) -> tuple[str, int]:
    """Numbered lines from `start` (1-based) until `end` or about `chars` characters; at least
    one line. Returns the text and the last line shown."""
    out: list[str] = []
    used = 0
    last = start - 1
    stop = min(len(lines), end) if end is not None else len(lines)
    budget = min(chars, MAX_READ_CHARS) if end is None else MAX_READ_CHARS
    for n in range(start, stop + 1):
        piece = _numbered([lines[n - 1]], n)
        if out and used + len(piece) + 1 > budget:
            break
        out.append(piece)
        used += len(piece) + 1
        last = n
    return "\n".join(out), last


def show_lines(shown: str, lines: list[str], start: int | None, end: int | None, chars: int,
               tool: str = "read_file", view: str = "") -> str:
    total = len(lines)
    first = start or 1
    if total == 0:
        return f"{shown}: empty"
    if first > total:
        raise ToolError(f"{shown} has {total} lines{view}; start_line={first} is past the end")
    if end is not None and end < first:
        raise ToolError(f"end_line={end} is before start_line={first}")
    body, last = page(lines, first, end, chars)
    left = total - last
    tail = (f"[{left} more lines below; call {tool} with start_line={last + 1}]" if left and (end is None or last < min(end, total))
            else f"[{left} more lines below]" if left else "[end of file]")
    return f"{shown} (lines {first}-{last} of {total}{view})\n{body}\n{tail}"


def read_file(ctx: ToolContext, a: ReadFileArgs) -> ToolOutcome:
    real = _resolve(ctx, a.path)
    if not real.exists():
        raise _missing(ctx, a.path)
    text = _read_text(real, a.path)
    view = ""
    lines = text.splitlines()
    if real.suffix == ".json" and a.start_line is None and a.end_line is None:
        try:
            lines, view = compact_json(json.loads(text)), f"; compact JSON view of {len(lines)} raw lines, " \
                "give start_line for the raw text"
        except json.JSONDecodeError:
            pass
    return ToolOutcome(show_lines(a.path, lines, a.start_line, a.end_line, ctx.read_chars, view=view))


def _roots(ctx: ToolContext, path: str) -> list[tuple[str, Path, Path]]:
    """(label, root, real path) for each root that holds `path`: the worktree, and the official
    reference for a relative path (as read_file falls back to it). The official root is left
    out when it lies inside the worktree (already searched there)."""
    from harness.sandbox.workspace import PathEscapeError

    root = Path(ctx.workspace.path).resolve()
    found = []
    try:
        real = ctx.workspace.resolve(path)
    except PathEscapeError as err:
        raise ToolError(f"path refused: {err}") from None
    if real.exists():
        official = _official_root(ctx)
        inside_official = official is not None and real.resolve().is_relative_to(official)
        found.append(("official" if inside_official else "worktree", official if inside_official else root, real))
    official = _official_root(ctx)
    if official is not None and not Path(path).is_absolute() and not official.is_relative_to(root):
        try:
            alt = ctx.workspace.resolve(official / path)
        except PathEscapeError:
            alt = None
        if alt is not None and alt.exists() and all(alt != r for _, _, r in found):
            found.append(("official", official, alt))
    return found


def _shown(root: Path, real: Path) -> str:
    try:
        return real.relative_to(root).as_posix() or "."
    except ValueError:
        return str(real)


def list_dir(ctx: ToolContext, a: ListDirArgs) -> ToolOutcome:
    roots = _roots(ctx, a.path)
    if not roots:
        raise _missing(ctx, a.path, "directory")
    parts = []
    for label, root, real in roots:
        if not real.is_dir():
            parts.append(f"[{label}] {_shown(root, real)}: not a directory")
            continue
        entries = [e for e in os.scandir(real) if e.name != ".git"]
        entries.sort(key=lambda e: (not e.is_dir(follow_symlinks=False), e.name))
        shown = []
        for e in entries[:MAX_LIST_ENTRIES]:
            if e.is_symlink():
                shown.append(f"{e.name} -> {os.readlink(e.path)}")
            elif e.is_dir():
                shown.append(e.name + "/")
            else:
                shown.append(f"{e.name}  ({e.stat().st_size} bytes)")
        more = f"\n[{len(entries) - MAX_LIST_ENTRIES} more entries not shown]" if len(entries) > MAX_LIST_ENTRIES else ""
        parts.append(f"[{label}] {_shown(root, real)}: {len(entries)} entries\n" + "\n".join(shown) + more)
    if len(roots) == 1 and not roots[0][2].is_dir():
        raise ToolError(f"{a.path}: not a directory")
    return ToolOutcome("\n\n".join(parts))


def _grep_files(base: Path, glob: str | None) -> list[tuple[Path, str]]:
    """(file, path relative to base) pairs; symlinks are skipped so nothing leads outside."""
    if base.is_file():
        return [(base, base.name)]
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(base).as_posix()
            if full.is_symlink():
                continue
            if glob and not (fnmatch.fnmatch(name, glob) or fnmatch.fnmatch(rel, glob)):
                continue
            found.append((full, rel))
    return found


def grep(ctx: ToolContext, a: GrepArgs) -> ToolOutcome:
    try:
        rx = re.compile(a.pattern)
    except re.error as err:
        raise ToolError(f"invalid regular expression {a.pattern!r}: {err}") from None
    roots = _roots(ctx, a.path)
    if not roots:
        raise _missing(ctx, a.path, "file or directory")
    hits: list[str] = []
    files_with_hits = 0
    for label, root, base in roots:
        for full, rel in _grep_files(base, a.glob):
            try:
                if full.stat().st_size > MAX_GREP_FILE_BYTES:
                    continue
                data = full.read_bytes()
            except OSError:
                continue
            if b"\0" in data[:8192]:
                continue
            shown = _shown(root, full)  # relative to the root searched, so read_file finds it
            matched = False
            for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if rx.search(line):
                    matched = True
                    hits.append(f"[{label}] {shown}:{n}: {line[:300]}")
                    if len(hits) >= MAX_GREP_MATCHES:
                        break
            files_with_hits += matched
            if len(hits) >= MAX_GREP_MATCHES:
                break
        if len(hits) >= MAX_GREP_MATCHES:
            hits.append(f"[stopped at {MAX_GREP_MATCHES} matches; narrow the pattern, path or glob]")
            break
    where = " and ".join(f"the {label} ({_shown(root, real)})" for label, root, real in roots)
    if not hits:
        return ToolOutcome(f"no matches for {a.pattern!r} in {where}" + (f" (glob {a.glob})" if a.glob else ""))
    return ToolOutcome(f"{len(hits)} match(es) in {files_with_hits} file(s), searched {where}\n" + "\n".join(hits))


def _lint_note(path: str, before: str | None, after: str) -> str:
    if not path.endswith(".py"):
        return ""
    note = lint.report(before, after, path)
    return "\n" + note if note else ""


def edit_file(ctx: ToolContext, a: EditFileArgs) -> ToolOutcome:
    real = _resolve(ctx, a.path, write=True)
    before = _read_text(real, a.path)
    if a.old == "":
        raise ToolError("old is empty; give the exact text to replace (use write_file to create a file)")
    count = before.count(a.old)
    if count == 0:
        raise ToolError(
            f"old text not found in {a.path} (0 matches); read the file again and copy the exact text, whitespace included"
        )
    if count > 1:
        raise ToolError(f"old text matches {count} times in {a.path}; include more surrounding lines so it matches exactly once")
    after = before.replace(a.old, a.new, 1)
    real.write_text(after, encoding="utf-8")
    first = before[: before.index(a.old)].count("\n") + 1
    new_lines = after.splitlines()
    last = first + a.new.count("\n")
    lo, hi = max(1, first - 2), min(len(new_lines), last + 2)
    snippet = _numbered(new_lines[lo - 1 : hi], lo)
    return ToolOutcome(f"edited {a.path}: 1 replacement at line {first}\n{snippet}" + _lint_note(a.path, before, after))


def write_file(ctx: ToolContext, a: WriteFileArgs) -> ToolOutcome:
    real = _resolve(ctx, a.path, write=True)
    if real.is_dir():
        raise ToolError(f"{a.path} is a directory")
    before = _read_text(real, a.path) if real.exists() else None
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_text(a.content, encoding="utf-8")
    verb = "overwrote" if before is not None else "created"
    lines = a.content.count("\n") + (0 if a.content.endswith("\n") or not a.content else 1)
    return ToolOutcome(f"{verb} {a.path} ({lines} lines)" + _lint_note(a.path, before, a.content))


def sandbox_env(ctx: ToolContext) -> dict[str, str]:
    """What every `run` command gets: the worktree first on PYTHONPATH (so `fastvideo` imports
    from the agent's code) and a scratch dir that survives between commands."""
    workdir = str(getattr(ctx.executor, "workdir", "") or ".")
    return {"PYTHONPATH": workdir, "SCRATCH_DIR": f"{workdir.rstrip('/')}/{SCRATCH_DIR}"}


def run(ctx: ToolContext, a: RunArgs) -> ToolOutcome:
    if ctx.executor is None:
        raise ToolError("no executor in this context; commands cannot be run here")
    timeout = min(a.timeout_s or ctx.default_timeout_s, ctx.max_timeout_s)
    if ctx.deadline is not None:
        timeout = max(1.0, min(timeout, ctx.deadline - time.monotonic()))
    ctx.last_command = a.command
    try:
        (Path(ctx.workspace.path) / SCRATCH_DIR).mkdir(exist_ok=True)
    except OSError:
        pass  # a vanished worktree is the executor's to report (an infrastructure error)
    res = ctx.executor.run(a.command, timeout_s=timeout, env=sandbox_env(ctx))
    head = f"exit code: {res.exit_code}" + (f" (timed out after {timeout:g}s, killed)" if res.timed_out else "")
    head += f"  [{res.duration_s:.1f}s]"
    out = truncate_middle(res.stdout, OUTPUT_LIMIT_BYTES) if res.stdout else "(empty)"
    err = truncate_middle(res.stderr, OUTPUT_LIMIT_BYTES) if res.stderr else "(empty)"
    return ToolOutcome(f"{head}\n--- stdout ---\n{out}\n--- stderr ---\n{err}", is_error=res.exit_code != 0 or res.timed_out)


MAX_COMPARISON_LINES = 40
MAX_FAILURES_SHOWN = 8


def parity_report(pr: Any) -> str:
    """What an agent needs to act on a parity run: counts, the test's own comparison lines
    (bounded), metrics by tensor, every failing test's first assertion, and where the log is."""
    lines = [pr.summary_line() if hasattr(pr, "summary_line") else f"status: {pr.status}"]
    lines.append(f"status={pr.status} passed={pr.passed} failed={pr.failed} errors={pr.errors} skipped={pr.skipped}")
    if getattr(pr, "skip_reasons", None):
        lines.append("skip reasons: " + "; ".join(pr.skip_reasons))
    if getattr(pr, "blocker", None):
        lines.append(f"blocker: {pr.blocker}")
    shown = list(getattr(pr, "comparison_lines", None) or [])
    if shown:
        cut = len(shown) - MAX_COMPARISON_LINES
        lines.append("the test printed (comparison lines):")
        lines += [f"  {ln}" for ln in shown[:MAX_COMPARISON_LINES]]
        if cut > 0:
            lines.append(f"  [{cut} more lines in the log]")
    metrics = getattr(pr, "metrics", None) or {}
    if metrics:
        lines.append("metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
    failures = list(getattr(pr, "failures", None) or [])
    if not failures and getattr(pr, "first_failure", None):
        failures = [pr.first_failure]
    for n, text in enumerate(failures[:MAX_FAILURES_SHOWN], 1):
        lines.append(f"failure {n} of {len(failures)}:\n{truncate_middle(text, 1500)}")
    if len(failures) > MAX_FAILURES_SHOWN:
        lines.append(f"[{len(failures) - MAX_FAILURES_SHOWN} more failures in the log]")
    if getattr(pr, "command", None):
        lines.append(f"command: {pr.command}")
    if getattr(pr, "log_path", None):
        lines.append(f"log: {Path(pr.log_path).name} (read it with read_parity_log)")
    return "\n".join(lines)


def run_parity_test(ctx: ToolContext, a: RunParityTestArgs) -> ToolOutcome:
    if ctx.run_parity is None:
        raise ToolError("the parity test cannot be run from this step (no parity runner was given)")
    pr = ctx.run_parity()
    ctx.last_command = getattr(pr, "command", None) or ctx.last_command
    return ToolOutcome(parity_report(pr))


def read_parity_log(ctx: ToolContext, a: ReadParityLogArgs) -> ToolOutcome:
    logs = Path(ctx.logs_dir) if ctx.logs_dir else None
    found = sorted(logs.glob("parity-*.log"), key=lambda p: p.stat().st_mtime) if logs and logs.is_dir() else []
    if not found:
        raise ToolError("no parity log yet in this run; call run_parity_test first")
    if a.log is None:
        path = found[-1]
    else:
        path = next((p for p in found if p.name == Path(a.log).name), None)
        if path is None:
            names = ", ".join(p.name for p in found[-5:])
            raise ToolError(f"no parity log named {a.log!r}; the newest are: {names}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if a.pattern:
        try:
            rx = re.compile(a.pattern)
        except re.error as err:
            raise ToolError(f"invalid regular expression {a.pattern!r}: {err}") from None
        hits = [_numbered([ln], n) for n, ln in enumerate(lines, 1) if rx.search(ln)][:MAX_GREP_MATCHES]
        return ToolOutcome(f"{path.name}: {len(hits)} matching line(s)\n" + "\n".join(hits))
    return ToolOutcome(show_lines(path.name, lines, a.start_line, None, ctx.read_chars, tool="read_parity_log"))


def diff(ctx: ToolContext, a: DiffArgs) -> ToolOutcome:
    text = ctx.workspace.diff(a.path) if a.path else ctx.workspace.diff()
    if not text.strip():
        return ToolOutcome("no changes since the run started" + (f" in {a.path}" if a.path else ""))
    return ToolOutcome(truncate_middle(text, RESULT_LIMIT_BYTES - 200))


def record_concern(ctx: ToolContext, a: RecordConcernArgs) -> ToolOutcome:
    from harness.agents.concerns import add

    number, why = add(ctx.concerns, a.text, ctx.instructions)
    if number is None:
        return ToolOutcome(f"concern not recorded: {why}")
    still_open = sum(1 for c in ctx.concerns if c not in ctx.resolved)
    return ToolOutcome(f"concern {why} ({still_open} open)")


def resolve_concern(ctx: ToolContext, a: ResolveConcernArgs) -> ToolOutcome:
    from harness.agents.concerns import find

    number = find(ctx.concerns, a.concern)
    if number is None:
        listed = ", ".join(f"C{n}" for n in range(1, len(ctx.concerns) + 1)) or "none"
        raise ToolError(f"no concern {a.concern!r}; the concerns are {listed}")
    text = ctx.concerns[number - 1]
    ctx.resolved[text] = {"resolution": " ".join(a.resolution.split()), "by": ctx.role}
    return ToolOutcome(f"C{number} resolved; it leaves the handoff's open concerns and its resolution goes into "
                       "PORT_STATUS.md's handoff notes")


def raise_escape_hatch(ctx: ToolContext, a: RaiseEscapeHatchArgs) -> ToolOutcome:
    from harness.contracts import EscapeHatch, StateSnapshot

    try:
        files = ctx.workspace.files_changed()
    except Exception:  # a broken git state must not hide the question itself
        files = []
    try:
        hatch = EscapeHatch(
            needs_user_input="yes",
            decision_type=a.decision_type,
            question=a.question,
            recommended_option=a.recommended_option,
            options=a.options,
            safe_default=a.safe_default,
            blocked_until_answered="yes",
            state_snapshot=StateSnapshot(
                phase=ctx.phase or ctx.role,
                files_changed=files,
                command_or_test=ctx.last_command or "not_run",
                evidence=a.evidence,
            ),
        )
    except ValidationError as err:
        raise ToolError("escape hatch is not valid: " + _problems(err)) from None
    refusal = ctx.hatch_policy(hatch) if ctx.hatch_policy else None
    if refusal:
        return ToolOutcome(
            f"escape hatch refused: {refusal}\nThis is not a question for a person; keep working on it "
            "(debug it, or finish with a precise blocker).",
            is_error=True,
        )
    return ToolOutcome("escape hatch raised; the run pauses until a person answers", end="asked", data=hatch)


def finish(ctx: ToolContext, a: BaseModel) -> ToolOutcome:
    return ToolOutcome("finished", end="finished", data=a.model_dump(mode="json", exclude_defaults=True))


# --- registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    handler: Callable[[ToolContext, Any], ToolOutcome]

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=compact_schema(self.args_model))


def compact_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as the model is sent it: no titles, nested models inlined, and an
    optional field as its plain type (leaving it out means None). The pydantic model still
    validates every call, so the schema only has to say what to write, once."""
    full = model.model_json_schema()
    defs = full.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**next(o for o in options if o != {"type": "null"}), **rest}
        if "$ref" in node:
            inner = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
            inner.update({k: v for k, v in node.items() if k != "$ref"})
            node = inner
        return {k: walk(v) for k, v in node.items()
                if k != "title" and not (k == "default" and v is None)}

    return walk(full)


READ_TOOLS = [
    Tool("read_file", "Show a file with line numbers, a window of lines at a time.", ReadFileArgs, read_file),
    Tool("list_dir", "List a directory (dirs end with '/') in the worktree and the official reference, each "
         "labelled [worktree] or [official].", ListDirArgs, list_dir),
    Tool("grep", "Search the worktree and the official reference; prints [worktree|official] path:line: text "
         "(path relative to that root).", GrepArgs, grep),
]
WRITE_TOOLS = [
    Tool("edit_file", "Replace one exact, unique occurrence of `old` with `new` in a file.", EditFileArgs, edit_file),
    Tool("write_file", "Create or overwrite a whole file.", WriteFileArgs, write_file),
    Tool("run", "Run a shell command with `sh -c` in the sandbox (what it finds: \"Where things are\"). Output is "
         "cut in the middle when long.", RunArgs, run),
    Tool("run_parity_test", "Run the component's parity test (pytest <parity_test> -v -s) and get the parsed result: "
         "the test's printed comparison lines, metrics by tensor, each failing test's first assertion.",
         RunParityTestArgs, run_parity_test),
    Tool("read_parity_log", "Read a parity run's full log (pages of lines, or only the lines matching a pattern).",
         ReadParityLogArgs, read_parity_log),
    Tool("diff", "Show your changes: the unified diff from the run's start to the worktree now (read-only).",
         DiffArgs, diff),
]
COMMON_TOOLS = [
    Tool("record_concern", "Record a concern or unknown for the handoff (a repeat is kept once).", RecordConcernArgs,
         record_concern),
    Tool("resolve_concern", "Close an open concern (C1, C2, ... in your task) your work settled.", ResolveConcernArgs,
         resolve_concern),
    Tool("raise_escape_hatch", "Pause and ask a person a decision the workflow may not make (scope, dependency, auth, "
         "cost, destructive, incompatible sources, loosening parity). Never for recoverable failures.",
         RaiseEscapeHatchArgs, raise_escape_hatch),
]
def tools_for_role(role: str) -> list[Tool]:
    fin = Tool("finish", "End your step: a summary and the fields of your role.", finish_model(role), finish)
    if role == "planner":
        return [*READ_TOOLS, *COMMON_TOOLS, fin]
    return [*READ_TOOLS, *WRITE_TOOLS, *COMMON_TOOLS, fin]


def _problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in err.errors())


def execute(ctx: ToolContext, tools: list[Tool], call: ToolCall) -> ToolOutcome:
    """Run one tool call; every agent-side problem becomes an error result."""
    from harness.sandbox.executors import InfrastructureError

    by_name = {t.name: t for t in tools}
    tool = by_name.get(call.name)
    if tool is None:
        return ToolOutcome(f"unknown tool {call.name!r}; available tools: {', '.join(by_name)}", is_error=True)
    if isinstance(call.args, str):
        shown = call.args if len(call.args) <= 300 else call.args[:300] + "..."
        return ToolOutcome(
            f"arguments for {call.name} are not a JSON object: {shown!r}; resend the call with a JSON object "
            "matching the tool's schema",
            is_error=True,
        )
    try:
        args = tool.args_model.model_validate(call.args)
    except ValidationError as err:
        return ToolOutcome(f"invalid arguments for {call.name}: {_problems(err)}", is_error=True)
    try:
        out = tool.handler(ctx, args)
    except InfrastructureError:
        raise
    except ToolError as err:
        return ToolOutcome(str(err), is_error=True)
    except OSError as err:
        return ToolOutcome(f"{call.name} failed: {err.strerror or err}: {getattr(err, 'filename', '') or ''}".rstrip(": "), is_error=True)
    except Exception as err:  # a tool bug must not end the run; the agent sees what happened
        return ToolOutcome(f"{call.name} failed unexpectedly: {type(err).__name__}: {err}", is_error=True)
    out.content = truncate_middle(out.content, RESULT_LIMIT_BYTES)
    return out
