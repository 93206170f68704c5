"""Problems an edit introduced into a Python file (pyflakes before vs after).

Only new problems are reported, as SWE-agent does: an agent fixing one function should not
be distracted by an unused import that was already there. Problems are compared without
line numbers (an edit shifts them), by kind and arguments, counting duplicates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyflakes.api
import pyflakes.reporter


@dataclass(frozen=True)
class Flake:
    key: str  # kind + arguments, without position
    line: int
    text: str


class _Collect(pyflakes.reporter.Reporter):
    def __init__(self) -> None:
        self.found: list[Flake] = []

    def unexpectedError(self, filename: str, msg: str) -> None:  # noqa: N802 - pyflakes API
        self.found.append(Flake(f"unexpected:{msg}", 0, f"could not check: {msg}"))

    def syntaxError(self, filename: str, msg: str, lineno: int, offset: int, text: str) -> None:  # noqa: N802
        line = max(lineno or 0, 1)
        self.found.append(Flake("syntax", line, f"syntax error: {msg}"))

    def flake(self, message) -> None:  # type: ignore[no-untyped-def]
        key = f"{type(message).__name__}:{message.message_args!r}"
        text = message.message % message.message_args
        self.found.append(Flake(key, message.lineno, text))


def flakes(source: str, filename: str = "<file>") -> list[Flake]:
    reporter = _Collect()
    pyflakes.api.check(source, filename, reporter)
    return reporter.found


def introduced(before: str | None, after: str, filename: str = "<file>") -> list[Flake]:
    """Problems in `after` that `before` did not have (all of them for a new file)."""
    old = Counter(f.key for f in flakes(before, filename)) if before is not None else Counter()
    new: list[Flake] = []
    for f in flakes(after, filename):
        if old[f.key] > 0:
            old[f.key] -= 1
        else:
            new.append(f)
    return new


def report(before: str | None, after: str, filename: str) -> str:
    """A short note for the agent, or "" when the edit introduced nothing."""
    found = introduced(before, after, filename)
    if not found:
        return ""
    lines = [f"  line {f.line}: {f.text}" for f in found[:20]]
    more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
    return f"This edit introduced {len(found)} problem(s) in {filename} (pyflakes):\n" + "\n".join(lines) + more
