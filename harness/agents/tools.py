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
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.agents import lint
from harness.agents.models.base import ToolCall, ToolSpec

READ_WINDOW = 200
MAX_READ_LINES = 1000
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
    concerns: list[str] = field(default_factory=list)
    phase: str | None = None  # for the escape hatch's state snapshot; defaults to the role
    read_window: int = READ_WINDOW
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


def _resolve(ctx: ToolContext, path: str, write: bool = False) -> Path:
    from harness.sandbox.workspace import PathEscapeError

    try:
        real = ctx.workspace.resolve(path, write=write)
    except PathEscapeError as err:
        raise ToolError(f"path refused: {err}") from None
    if write:
        reason = _protected(_rel(ctx, real))
        if reason:
            raise ToolError(f"path refused: {path}: {reason}")
    return real


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
    path: str = Field(description="File path relative to the workspace root (or under the official reference dir).")
    start_line: int | None = Field(None, ge=1, description="First line to show (1-based). Default 1.")
    end_line: int | None = Field(None, ge=1, description="Last line to show. Default: a window of lines from start_line.")


class ListDirArgs(_Args):
    path: str = Field(".", description="Directory relative to the workspace root.")


class GrepArgs(_Args):
    pattern: str = Field(description="Python regular expression searched line by line.")
    path: str = Field(".", description="File or directory to search (default: the workspace root).")
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


class RecordConcernArgs(_Args):
    text: str = Field(min_length=1, description="A concern or unknown to carry into the handoff.")


class RaiseEscapeHatchArgs(_Args):
    decision_type: Literal["scope", "dependency", "auth", "cost", "destructive", "ambiguity", "blocker"]
    question: str = Field(min_length=1, description="One precise question for a person.")
    options: list[str] = Field(
        min_length=1, max_length=4, description="Each option with its consequence: one recommendation plus at most three alternatives."
    )
    recommended_option: str = Field(min_length=1, description="The safe recommended choice (one of the options).")
    safe_default: str = Field(description="What you will do after approval, or 'none'.")
    evidence: str = Field(min_length=1, description="Exact evidence: command, path, short error text, parity excerpt, or PORT_STATUS row id.")


class FinishArgs(BaseModel):
    model_config = ConfigDict(extra="allow")
    summary: str = Field(description="What was done and what the next step should know.")


class PlannerFinishArgs(FinishArgs):
    plan: dict[str, Any] | None = Field(
        None,
        description=(
            "The plan: reuse_or_port, reuse_evidence, target_files, entry_class, config_export, "
            "key_dumps, parity_test (exists / scaffold), steps (ordered), concerns."
        ),
    )


class ImplementerFinishArgs(FinishArgs):
    files_changed: list[str] | None = Field(None, description="Paths you created or edited.")
    key_dumps: dict[str, str] | None = Field(None, description="{official, fastvideo} key dump paths (prototype mode).")


class DebuggerFinishArgs(FinishArgs):
    diagnosis: str | None = Field(None, description="The first divergent operation or tensor, and why.")
    fix: str | None = Field(None, description="What you changed to fix it.")
    blocker: str | None = Field(None, description="The exact missing dependency / weights / numeric mismatch, if blocked.")
    conversion_retry_request: dict[str, Any] | None = Field(
        None, description="When conversion is implicated: {failing_keys, expected_actual_shapes, source_prefix_or_path, evidence, suspected_fix}."
    )


# --- the tools --------------------------------------------------------------------------


def read_file(ctx: ToolContext, a: ReadFileArgs) -> ToolOutcome:
    real = _resolve(ctx, a.path)
    lines = _read_text(real, a.path).splitlines()
    total = len(lines)
    start = a.start_line or 1
    if total == 0:
        return ToolOutcome(f"{a.path}: empty file")
    if start > total:
        raise ToolError(f"{a.path} has {total} lines; start_line={start} is past the end")
    end = a.end_line or start + ctx.read_window - 1
    if end < start:
        raise ToolError(f"end_line={end} is before start_line={start}")
    end = min(end, total, start + MAX_READ_LINES - 1)
    body = _numbered(lines[start - 1 : end], start)
    left = total - end
    tail = f"[{left} more lines below; call read_file with start_line={end + 1}]" if left else "[end of file]"
    return ToolOutcome(f"{a.path} (lines {start}-{end} of {total})\n{body}\n{tail}")


def list_dir(ctx: ToolContext, a: ListDirArgs) -> ToolOutcome:
    real = _resolve(ctx, a.path)
    if not real.is_dir():
        raise ToolError(f"{a.path}: not a directory" if real.exists() else f"{a.path}: no such directory")
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
    return ToolOutcome(f"{a.path}: {len(entries)} entries\n" + "\n".join(shown) + more)


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
    base = _resolve(ctx, a.path)
    if not base.exists():
        raise ToolError(f"{a.path}: no such file or directory")
    hits: list[str] = []
    files_with_hits = 0
    prefix = "" if a.path.strip("/") in (".", "") else a.path.rstrip("/") + "/"
    for full, rel in _grep_files(base, a.glob):
        try:
            if full.stat().st_size > MAX_GREP_FILE_BYTES:
                continue
            data = full.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue
        shown = a.path if base.is_file() else prefix + rel
        matched = False
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if rx.search(line):
                matched = True
                hits.append(f"{shown}:{n}: {line[:300]}")
                if len(hits) >= MAX_GREP_MATCHES:
                    break
        files_with_hits += matched
        if len(hits) >= MAX_GREP_MATCHES:
            hits.append(f"[stopped at {MAX_GREP_MATCHES} matches; narrow the pattern, path or glob]")
            break
    if not hits:
        return ToolOutcome(f"no matches for {a.pattern!r} in {a.path}" + (f" (glob {a.glob})" if a.glob else ""))
    return ToolOutcome(f"{len(hits)} match(es) in {files_with_hits} file(s)\n" + "\n".join(hits))


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


def run(ctx: ToolContext, a: RunArgs) -> ToolOutcome:
    if ctx.executor is None:
        raise ToolError("no executor in this context; commands cannot be run here")
    timeout = min(a.timeout_s or ctx.default_timeout_s, ctx.max_timeout_s)
    if ctx.deadline is not None:
        timeout = max(1.0, min(timeout, ctx.deadline - time.monotonic()))
    ctx.last_command = a.command
    res = ctx.executor.run(a.command, timeout_s=timeout)
    head = f"exit code: {res.exit_code}" + (f" (timed out after {timeout:g}s, killed)" if res.timed_out else "")
    head += f"  [{res.duration_s:.1f}s]"
    out = truncate_middle(res.stdout, OUTPUT_LIMIT_BYTES) if res.stdout else "(empty)"
    err = truncate_middle(res.stderr, OUTPUT_LIMIT_BYTES) if res.stderr else "(empty)"
    return ToolOutcome(f"{head}\n--- stdout ---\n{out}\n--- stderr ---\n{err}", is_error=res.exit_code != 0 or res.timed_out)


def run_parity_test(ctx: ToolContext, a: RunParityTestArgs) -> ToolOutcome:
    if ctx.run_parity is None:
        raise ToolError("the parity test cannot be run from this step (no parity runner was given)")
    pr = ctx.run_parity()
    ctx.last_command = getattr(pr, "command", None) or ctx.last_command
    lines = [pr.summary_line() if hasattr(pr, "summary_line") else f"status: {pr.status}"]
    lines.append(
        f"status={pr.status} passed={pr.passed} failed={pr.failed} errors={pr.errors} skipped={pr.skipped}"
    )
    for label, value in (
        ("skip reasons", "; ".join(getattr(pr, "skip_reasons", None) or [])),
        ("first failure", getattr(pr, "first_failure", None)),
        ("metrics", ", ".join(f"{k}={v}" for k, v in (getattr(pr, "metrics", None) or {}).items())),
        ("blocker", getattr(pr, "blocker", None)),
        ("command", getattr(pr, "command", None)),
        ("log", getattr(pr, "log_path", None)),
    ):
        if value:
            lines.append(f"{label}: {value}")
    return ToolOutcome("\n".join(lines))


def record_concern(ctx: ToolContext, a: RecordConcernArgs) -> ToolOutcome:
    ctx.concerns.append(a.text)
    return ToolOutcome(f"concern recorded ({len(ctx.concerns)} in total)")


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


def finish(ctx: ToolContext, a: FinishArgs) -> ToolOutcome:
    return ToolOutcome("finished", end="finished", data=a.model_dump(exclude_none=True))


# --- registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    handler: Callable[[ToolContext, Any], ToolOutcome]

    @property
    def spec(self) -> ToolSpec:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)


READ_TOOLS = [
    Tool("read_file", "Show a file with line numbers, a window of lines at a time.", ReadFileArgs, read_file),
    Tool("list_dir", "List a directory (directories end with '/').", ListDirArgs, list_dir),
    Tool("grep", "Search files for a regular expression; prints path:line: text.", GrepArgs, grep),
]
WRITE_TOOLS = [
    Tool("edit_file", "Replace one exact, unique occurrence of `old` with `new` in a file.", EditFileArgs, edit_file),
    Tool("write_file", "Create or overwrite a whole file.", WriteFileArgs, write_file),
    Tool("run", "Run a shell command in the sandbox (cwd: the workspace). Output is cut in the middle when long.", RunArgs, run),
    Tool("run_parity_test", "Run the component's parity test (pytest <parity_test> -v -s) and get the parsed result.",
         RunParityTestArgs, run_parity_test),
]
COMMON_TOOLS = [
    Tool("record_concern", "Record a concern or unknown for the handoff.", RecordConcernArgs, record_concern),
    Tool("raise_escape_hatch", "Pause and ask a person a decision the workflow may not make (scope, dependency, auth, "
         "cost, destructive, incompatible sources, loosening parity). Never for recoverable failures.",
         RaiseEscapeHatchArgs, raise_escape_hatch),
]
FINISH_MODELS: dict[str, type[FinishArgs]] = {
    "planner": PlannerFinishArgs,
    "implementer": ImplementerFinishArgs,
    "debugger": DebuggerFinishArgs,
}


def tools_for_role(role: str) -> list[Tool]:
    if role not in FINISH_MODELS:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(FINISH_MODELS)}")
    fin = Tool("finish", "End your step with a summary (and the fields of your role).", FINISH_MODELS[role], finish)
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
