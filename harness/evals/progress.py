"""Live progress of an eval, for either backend: attempts done / running / queued, an ETA,
per-model counts, the attempts running now, pass rate and spend so far.

On a terminal it is a live panel; otherwise (piped, CI logs) one plain line per event.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from harness.evals.runner import AttemptJob, EvalEvents

SHOW_RUNNING = 8  # names of running attempts shown; the rest are counted


@dataclass
class ModelCounts:
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    spend: float = 0.0

    @property
    def done(self) -> int:
        return self.passed + self.failed + self.errors

    def add(self, row: dict[str, Any]) -> None:
        outcome = row.get("outcome")
        if outcome == "pass":
            self.passed += 1
        elif outcome == "fail":
            self.failed += 1
        else:
            self.errors += 1
        self.spend += float(row.get("cost_usd") or 0.0)


def attempt_label(task: str, model: str, attempt: int) -> str:
    return f"{task} · {model} #{attempt}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class EvalProgress(EvalEvents):
    """Counts what the runner reports and shows it (a rich Live panel on a TTY, lines otherwise)."""

    def __init__(self, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live_mode = self.stream.isatty() if live is None else live
        self.models: dict[str, ModelCounts] = {}
        self.running: dict[tuple[str, str, int], float] = {}
        self.total = self.done_before = self.finished_now = 0
        self.spend = 0.0
        self.started_at = time.monotonic()
        self.note: str | None = None
        self._lock = threading.Lock()
        self._live = None

    # --- counting ----------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(m.done for m in self.models.values())

    @property
    def queued(self) -> int:
        return max(self.total - self.done - len(self.running), 0)

    def eta_s(self) -> float | None:
        """Time left at this run's pace so far (None until an attempt has finished)."""
        if not self.finished_now:
            return None
        per_attempt = (time.monotonic() - self.started_at) / self.finished_now
        return per_attempt * (self.queued + len(self.running))

    def summary(self) -> str:
        done = self.done
        passed = sum(m.passed for m in self.models.values())
        rate = f"{100 * passed / done:.0f}%" if done else "-"
        return (f"{done}/{self.total} done · {len(self.running)} running · {self.queued} queued · "
                f"pass {passed}/{done} ({rate}) · spent ${self.spend:.4f} · "
                f"elapsed {_duration(time.monotonic() - self.started_at)} · ETA {_duration(self.eta_s())}")

    def per_model(self) -> str:
        return "; ".join(f"{name}: {m.done}/{m.total} (pass {m.passed}, fail {m.failed}, error {m.errors})"
                         for name, m in self.models.items())

    def running_names(self) -> list[str]:
        now = time.monotonic()
        ordered = sorted(self.running.items(), key=lambda kv: kv[1])
        names = [f"{attempt_label(*key)} ({_duration(now - since)})" for key, since in ordered[:SHOW_RUNNING]]
        if len(ordered) > SHOW_RUNNING:
            names.append(f"and {len(ordered) - SHOW_RUNNING} more")
        return names

    # --- events ------------------------------------------------------------------------------

    def begin(self, total: int, done_rows: list[dict[str, Any]], queued: list[AttemptJob]) -> None:
        with self._lock:
            self.total = total
            for row in done_rows:
                self._counts(row["model"]).add(row)
                self.spend += float(row.get("cost_usd") or 0.0)
            self.done_before = len(done_rows)
            per_model_total: dict[str, int] = {}
            for job in queued:
                per_model_total[job.model] = per_model_total.get(job.model, 0) + 1
            for model, n in per_model_total.items():
                self._counts(model).total += n
            for row in done_rows:
                self._counts(row["model"]).total += 1
            self.started_at = time.monotonic()
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self, console=Console(file=self.stream), refresh_per_second=2, transient=False)
            self._live.start()
        else:
            self._line(f"eval: {len(queued)} attempts to run, {len(done_rows)} already done")

    def attempt_started(self, job: AttemptJob) -> None:
        with self._lock:
            self.running[job.key] = time.monotonic()
        self._line(f"start {attempt_label(*job.key)} | {self.summary()}")

    def attempt_finished(self, row: dict[str, Any]) -> None:
        key = (row["task"], row["model"], int(row["attempt"]))
        with self._lock:
            self.running.pop(key, None)
            self._counts(row["model"]).add(row)
            self.spend += float(row.get("cost_usd") or 0.0)
            self.finished_now += 1
        self._line(f"{row.get('outcome', 'error'):5} {attempt_label(*key)} ({float(row.get('wall_s') or 0):.1f} s) "
                   f"| {self.summary()} | {self.per_model()}")

    def stopped(self, reason: str) -> None:
        self.note = reason
        self._line(f"stopped: {reason}")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self.note and self.live_mode:
            print(f"stopped: {self.note}", file=self.stream, flush=True)

    # --- showing -----------------------------------------------------------------------------

    def _counts(self, model: str) -> ModelCounts:
        return self.models.setdefault(model, ModelCounts())

    def _line(self, text: str) -> None:
        if not self.live_mode:
            print(text, file=self.stream, flush=True)

    def __rich__(self):
        """The live panel (rich calls this on every refresh)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            table = Table(box=None, pad_edge=False)
            for col in ("model", "done", "pass", "fail", "error", "spent $"):
                table.add_column(col, justify="left" if col == "model" else "right")
            for name, m in self.models.items():
                table.add_row(name, f"{m.done}/{m.total}", str(m.passed), str(m.failed), str(m.errors),
                              f"{m.spend:.4f}")
            running = self.running_names()
            parts = [Text(self.summary(), style="bold"), table]
            if running:
                parts.append(Text("running: " + ", ".join(running), style="dim"))
            return Group(*parts)
