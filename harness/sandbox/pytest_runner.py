"""Run a parity test in the sandbox and turn what pytest reported into a parity status.

The harness never reports a pass it did not see. A run is `non_skip_pass` only when
pytest exited 0, its junit report was read back, and the report and pytest's own summary
line agree on >=1 passed with 0 failed, 0 errors, 0 skipped, 0 xfailed and 0 xpassed.

Status rules, in order:
1. timeout                                   -> debug_red (the error says so)
2. pytest or python missing in the sandbox   -> blocked
3. failures or errors that are all caused by a missing asset -> blocked; any other failure
   or error -> debug_red.
   Missing asset = FileNotFoundError / "No such file or directory" naming a weight or config
   file (.safetensors .bin .pt .pth .ckpt .gguf .json .yaml .model ...) or a path under a
   weights dir, or ModuleNotFoundError of a third-party module (not `fastvideo`, not a
   package of the checkout itself), or no CUDA device. Anything else is a bug to debug.
4. no tests collected (exit 5 without skips), a missing or unreadable report, a non-zero
   exit code without failures                -> debug_red (never a pass)
5. any xfailed or xpassed                    -> debug_red: a parity test carries no xfail
   marks; an xfail hides a red result and an xpass means the marks are stale
6. skips (with or without passes)            -> scaffold_skip, with the reasons
7. >=1 passed and nothing else, exit code 0  -> non_skip_pass

The outcome comes from the junit report and the exit code only: what the tested code prints
(a logger's `ERROR` line, a line shaped like pytest's summary) is never a test status. The
log's summary line only tells a non-strict xpass apart, which junit counts as a pass.
"""

from __future__ import annotations

import re
import shlex
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from typing import Literal

from pydantic import BaseModel, ConfigDict

from harness.sandbox.executors.base import CommandResult, Executor
from harness.sandbox.executors.limits import DEFAULT_TEST_TIMEOUT_S

# The contract's parity status words (the same Literal as harness.contracts.ParityStatus; kept
# here so the sandbox does not import the contract models).
ParityStatus = Literal["scaffold_skip", "debug_red", "non_skip_pass", "blocked"]

_ASSET_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".json", ".yaml", ".yml",
                   ".model", ".npz", ".npy", ".onnx", ".msgpack", ".h5", ".tiktoken", ".txt")
_ASSET_DIRS = ("converted_weights", "weights", "checkpoints", "official_weights", "hf_cache", "huggingface")
# `name = number` pairs a parity test prints, e.g. `max_abs=1.2e-3 mean_abs=4e-5`.
_METRIC = re.compile(
    r"(?<![\w.])([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)(?![\w.])")
# pytest's final line, e.g. `==== 1 failed, 2 passed, 1 skipped in 0.12s ====`.
_SUMMARY = re.compile(r"^=+ (.*?) in [\d.]+s(?: \([^)]*\))? =+$", re.MULTILINE)
_SUMMARY_ITEM = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected|warnings?|rerun)")
_REPORT_SECTION = re.compile(r"^=+ (?:FAILURES|ERRORS|warnings summary|short test summary info) =+$",
                             re.MULTILINE)
# The path quoted (Python's OSError form) or bare at the end of the line (safetensors, torch).
_NO_SUCH_FILE = re.compile(
    r"(?:FileNotFoundError|No such file or directory)[^\n]*?(?:['\"]([^'\"\n]+)['\"]|:\s*(/?[\w.\-/]+\.\w+)[ \t]*$)",
    re.MULTILINE,
)
_NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
_NO_CUDA = re.compile(r"Torch not compiled with CUDA enabled|no CUDA GPUs are available|"
                      r"Found no NVIDIA driver|CUDA driver initialization failed")


class ParityRun(BaseModel):
    """One real pytest run of the parity test, as the harness saw it."""

    model_config = ConfigDict(extra="forbid")

    status: ParityStatus
    parity_test: str
    command: str
    exit_code: int
    timed_out: bool
    duration_s: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    xfailed: int = 0
    xpassed: int = 0
    skip_reasons: list[str] = []
    first_failure: str | None = None
    failures: list[str] = []  # every failing test's name and first assertion, in order
    metrics: dict[str, float] = {}  # `tensor.metric` when the test labels its line (`decode: max_abs=0.1`)
    comparison_lines: list[str] = []  # the test's own printed lines that hold metrics or mismatches
    comparisons: list[dict] = []  # each comparison the verdict measured (harness.verify.verdict)
    evidence: list[str] = []  # what the verdict says of its evidence (inputs seeded, comparisons seen)
    blocker: str | None = None
    log_path: str
    started_at: str

    def summary_line(self) -> str:
        """`<status>: 1 passed, 1 skipped in 2.3s` plus the blocker, error or skip reason."""
        counts = [f"{n} {name}" for name, n in (
            ("passed", self.passed), ("failed", self.failed), ("errors", self.errors),
            ("skipped", self.skipped), ("xfailed", self.xfailed), ("xpassed", self.xpassed)) if n]
        text = f"{self.status}: {', '.join(counts) or 'no tests ran'} in {self.duration_s:.1f}s"
        if self.timed_out:
            text += " (timed out)"
        detail = self.blocker or self.first_failure or (self.skip_reasons[0] if self.skip_reasons else None)
        if detail:
            text += " - " + detail.strip().splitlines()[0][:200]
        return text


@dataclass
class _Report:
    """Counts and details from the junit XML."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    xfailed: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def pytest_command(parity_test: str, report_path: str, python: str = "python", extra_args: str = "",
                   module: str = "pytest") -> str:
    """The pytest invocation: the contract's `pytest <parity_test> -v -s` plus a junit report
    (`python` may carry interpreter flags, `extra_args` more pytest options, `module` names a
    module run as `python -m pytest` would be)."""
    extra = f" {extra_args}" if extra_args else ""
    return (f"{python} -m {module} {shlex.quote(parity_test)} -v -s -p no:cacheprovider{extra} "
            f"--junitxml={shlex.quote(report_path)} -o junit_family=xunit2")


def _check_test_path(parity_test: str) -> str:
    path = PurePosixPath(parity_test)
    if not parity_test.strip() or path.is_absolute() or ".." in path.parts or parity_test.startswith("-"):
        raise ValueError(f"parity_test {parity_test!r} must be a path relative to the workspace root")
    return path.as_posix()


def run_parity_test(executor: Executor, parity_test: str, log_dir: str | Path, timeout_s: float = DEFAULT_TEST_TIMEOUT_S, *,
                    python: str = "python", extra_args: str = "", env: dict[str, str] | None = None,
                    module: str = "pytest") -> ParityRun:
    """Run the parity test through `executor`, save the log in `log_dir`, and judge the result."""
    parity_test = _check_test_path(parity_test)
    token = uuid.uuid4().hex
    # The report goes to the sandbox's /tmp, never into the committed tree; it is printed
    # after a marker only this run knows, and cut out of the output again.
    report_path = f"/tmp/fastvideo-harness-junit-{token}.xml"
    marker = f"=====FASTVIDEO-HARNESS-JUNIT-{token}====="
    command = pytest_command(parity_test, report_path, python, extra_args, module)
    script = (f"{command}; rc=$?; echo; echo {marker}; cat {report_path} 2>/dev/null; "
              f"rm -f {report_path}; exit $rc")
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    try:
        # run_test: the parity test is the one command that gets the --pass-env tokens.
        result = getattr(executor, "run_test", executor.run)(script, timeout_s=timeout_s, env=env)
    except KeyboardInterrupt as stop:  # keep the cut-off log: it shows how far the test got
        partial = getattr(stop, "partial_result", None)
        if partial is not None:
            stop.log_path = _save_log(  # type: ignore[attr-defined]
                Path(log_dir), parity_test, f"{command}  # INTERRUPTED", partial, partial.stdout, started_at)
        raise
    stdout, xml_text = _split_report(result.stdout, marker)
    log_path = _save_log(Path(log_dir), parity_test, command, result, stdout, started_at)
    run = judge(result, stdout, xml_text, parity_test=parity_test, command=command,
                log_path=str(log_path), started_at=started_at)
    run.duration_s = round(time.monotonic() - t0, 3)
    return run


def _split_report(stdout: str, marker: str) -> tuple[str, str | None]:
    """Pytest's own output and the junit XML printed after the marker (None if absent)."""
    head, sep, tail = stdout.rpartition("\n" + marker + "\n")
    if not sep:
        return stdout, None
    return head, tail.strip() or None


def _save_log(log_dir: Path, parity_test: str, command: str, result: CommandResult, stdout: str,
              started_at: str) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = log_dir / f"parity-{Path(parity_test).stem}-{stamp}.log"
    path.write_text(
        f"$ {command}\n# started {started_at}, exit code {result.exit_code}, "
        f"{result.duration_s:.2f}s{', TIMED OUT' if result.timed_out else ''}\n"
        f"--- stdout ---\n{stdout}\n--- stderr ---\n{result.stderr}\n"
    )
    return path


def _parse_junit(xml_text: str) -> _Report:
    root = ET.fromstring(xml_text)
    rep = _Report()
    for case in root.iter("testcase"):
        outcome = [child for child in case if child.tag in ("failure", "error", "skipped")]
        if not outcome:
            rep.passed += 1
            continue
        el = outcome[0]
        text = (el.get("message") or "") + "\n" + (el.text or "")
        if el.tag == "skipped":
            if el.get("type") == "pytest.xfail":
                rep.xfailed += 1
            else:
                rep.skipped += 1
                rep.skip_reasons.append(_skip_reason(el))
        elif el.tag == "failure":
            rep.failed += 1
            rep.failures.append(_failure_text(case, text))
        else:
            rep.errors += 1
            rep.failures.append(_failure_text(case, text))
    return rep


def _skip_reason(el: ET.Element) -> str:
    reason = el.get("message") or ""
    if reason in ("", "collection skipped"):
        # A module-level skip: the text is `('<file>', <line>, 'Skipped: <reason>')`.
        m = re.search(r"""['"]Skipped: (.*)['"]\)\s*$""", el.text or "", re.DOTALL)
        reason = m.group(1) if m else (el.text or "").strip() or reason
    return re.sub(r"^Skipped:\s*", "", reason).strip() or "skipped without a reason"


def _failure_text(case: ET.Element, text: str) -> str:
    """The test's name, the message and the `E ` lines of the traceback (the assertion)."""
    name = "::".join(p for p in (case.get("classname"), case.get("name")) if p)
    lines = text.splitlines()
    e_lines = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    message = lines[0].strip() if lines and lines[0].strip() else ""
    body = "\n".join(e_lines[:30]) or "\n".join(lines[1:31])
    out = f"{name}: {message}\n{body}".strip()
    return out[:4000]


def _summary_counts(stdout: str) -> dict[str, int] | None:
    """The counts of pytest's one summary line; None when there is none, and {"summaries": n}
    when there are several (a second line is printed by something other than pytest)."""
    found = _SUMMARY.findall(stdout)
    if not found:
        return None
    if len(found) > 1:
        return {"summaries": len(found)}
    counts: dict[str, int] = {}
    for n, name in _SUMMARY_ITEM.findall(found[-1]):
        key = {"error": "errors", "warning": "warnings"}.get(name, name)
        counts[key] = int(n)
    return counts


_HEADER_LINES = ("platform ", "rootdir:", "configfile:", "plugins:", "cachedir:", "collecting ", "collected ")
# `<label>:` right before the first metric of a line names the tensor the numbers belong to.
_LABEL = re.compile(r"([A-Za-z_][\w\-]*)\s*:\s*$")
# pytest -v -s prints the test id, then the test's own output on the same line.
_NODE_PREFIX = re.compile(r"^\S+::\S+\s+")
MAX_COMPARISON_LINES = 80


def _ran_lines(stdout: str) -> list[str]:
    """The lines printed while tests ran: the failure tracebacks pytest prints afterwards show
    source lines such as `x = 0.5`, which are not metrics."""
    ran = _REPORT_SECTION.split(stdout, maxsplit=1)[0]
    return [ln for ln in ran.splitlines() if not ln.startswith(_HEADER_LINES)]


def parse_metrics(stdout: str) -> dict[str, float]:
    """Every `name=number` printed by the test, keyed `label.name` when the line starts with a
    label (`decode_latents: max_abs=0.0` -> `decode_latents.max_abs`), else `name`; a repeated
    key keeps its last value."""
    metrics: dict[str, float] = {}
    for line in _ran_lines(stdout):
        found = list(_METRIC.finditer(line))
        if not found:
            continue
        label = _LABEL.search(line[:found[0].start()])
        prefix = f"{label.group(1)}." if label else ""
        for m in found:
            metrics[prefix + m.group(1)] = float(m.group(2))
    return metrics


def comparison_lines(stdout: str) -> list[str]:
    """The test's own lines that carry numbers or a mismatch (`x: shape (1, 2) != (1, 3)`),
    without pytest's test-id prefix; at most MAX_COMPARISON_LINES, each cut at 300 chars."""
    out = []
    for line in _ran_lines(stdout):
        text = _NODE_PREFIX.sub("", line).strip()
        text = re.sub(r"\s+(PASSED|FAILED|ERROR|SKIPPED.*)$", "", text)
        if text and (_METRIC.search(text) or " != " in text):
            out.append(text[:300])
    return out[:MAX_COMPARISON_LINES]


def missing_asset(text: str) -> str | None:
    """The blocker when `text` (an error) shows a missing asset rather than a bug; see module doc."""
    if m := _NO_SUCH_FILE.search(text):
        path = m.group(1) or m.group(2)
        parts = PurePosixPath(path).parts
        if path.lower().endswith(_ASSET_SUFFIXES) or any(p in _ASSET_DIRS for p in parts):
            return f"missing file: {path}"
    if m := _NO_MODULE.search(text):
        top = m.group(1).split(".")[0]
        if top not in ("fastvideo", "tests") and not _is_local_package(top, text):
            return f"missing dependency: python module {m.group(1)!r} is not installed in the sandbox"
    if m := _NO_CUDA.search(text):
        return f"needs a GPU: {m.group(0)}"
    return None


def _is_local_package(top: str, text: str) -> bool:
    # A module the traceback shows as a file of the checkout is project code, not a dependency.
    return f"/{top}/" in text and ("/workspace/" in text or "site-packages" not in text)


def judge(result: CommandResult, stdout: str, xml_text: str | None, *, parity_test: str, command: str,
          log_path: str, started_at: str) -> ParityRun:
    """Decide the parity status from one finished command; the rules are in the module doc."""
    base = dict(parity_test=parity_test, command=command, exit_code=result.exit_code,
                timed_out=result.timed_out, duration_s=round(result.duration_s, 3),
                log_path=log_path, started_at=started_at, metrics=parse_metrics(stdout),
                comparison_lines=comparison_lines(stdout))
    everything = stdout + "\n" + result.stderr

    if result.timed_out:
        return ParityRun(status="debug_red", first_failure=f"timed out after {result.duration_s:.0f}s "
                         "(the test and its child processes were killed)", **base)
    if "Permission denied" in result.stderr and (result.exit_code == 126 or "python" in result.stderr):
        return ParityRun(status="blocked", blocker=(
            f"the sandbox user may not run python (exit {result.exit_code}, Permission denied): "
            f"{_first_line_with(result.stderr, 'Permission denied')}"), **base)
    if result.exit_code == 126:
        return ParityRun(status="blocked", blocker=f"python cannot be executed in the sandbox (exit 126): "
                         f"{_tail(result.stderr, 1)}", **base)
    if result.exit_code == 127 or "python: not found" in result.stderr or "python: command not found" in result.stderr:
        return ParityRun(status="blocked", blocker="python is not on the sandbox's PATH (exit 127: not installed, "
                         "or --python names no interpreter)", **base)
    if re.search(r"No module named pytest\b", result.stderr):
        return ParityRun(status="blocked", blocker="pytest is not installed in the sandbox image", **base)

    if xml_text is None:
        detail = _tail(everything)
        blocker = missing_asset(everything)
        if blocker:
            return ParityRun(status="blocked", blocker=blocker, first_failure=detail, **base)
        return ParityRun(status="debug_red", first_failure=(
            f"pytest exited {result.exit_code} without a junit report, so the result cannot be "
            f"trusted: {detail}"), **base)
    try:
        rep = _parse_junit(xml_text)
    except ET.ParseError as exc:
        return ParityRun(status="debug_red", first_failure=f"unreadable junit report ({exc})", **base)

    counts = dict(passed=rep.passed, failed=rep.failed, skipped=rep.skipped, errors=rep.errors,
                  xfailed=rep.xfailed, skip_reasons=rep.skip_reasons)
    summary = _summary_counts(stdout) or {}
    # junit counts a non-strict xpass as a pass; pytest's summary line tells them apart (a
    # printed imitation can only turn a pass red here, never a failure green).
    xpassed = summary.get("xpassed", 0) if "summaries" not in summary else 0
    counts["passed"] = max(rep.passed - xpassed, 0)
    counts["xpassed"] = xpassed

    if rep.failed or rep.errors:
        # Blocked only when every failure is a missing asset; one real mismatch is work to do.
        causes = [missing_asset(text) for text in rep.failures]
        blocker = causes[0] if all(causes) else None
        status = "blocked" if blocker else "debug_red"
        return ParityRun(status=status, blocker=blocker, first_failure=rep.failures[0], failures=rep.failures,
                         **counts, **base)
    if rep.passed + rep.skipped + rep.xfailed == 0:
        return ParityRun(status="debug_red", first_failure=f"no tests were collected (pytest exit code {result.exit_code})",
                         **counts, **base)
    mismatch = _exit_disagreement(counts, result.exit_code)
    if mismatch:
        return ParityRun(status="debug_red", first_failure=mismatch, **counts, **base)
    if rep.xfailed or xpassed:
        return ParityRun(status="debug_red", first_failure=(
            "the parity test has xfail marks (xfailed or xpassed); a parity test must pass without them"),
            **counts, **base)
    if rep.skipped:
        return ParityRun(status="scaffold_skip", **counts, **base)
    return ParityRun(status="non_skip_pass", **counts, **base)


def _exit_disagreement(counts: dict, exit_code: int) -> str | None:
    """Why the junit report and pytest's exit code do not tell one story."""
    # Exit 5 (nothing collected) is expected only when a module-level skip took every test.
    allowed = (0, 5) if counts["skipped"] and not counts["passed"] else (0,)
    if exit_code not in allowed:
        return f"pytest exited {exit_code} although no test failed"
    return None


def _first_line_with(text: str, needle: str) -> str:
    return next((line.strip() for line in text.splitlines() if needle in line), "")[:300]


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
