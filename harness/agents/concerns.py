"""The run's concerns: recorded once, numbered, closed by a later role or by the evidence.

A concern is open until a role resolves it (`resolve_concern`) or the harness closes it: a
concern that only says parity is still red is closed once the harness's own run passes. The
same concern said twice (other spacing, case or punctuation, or one wording inside the other)
is kept once, and a restatement of the packet's own `concerns_or_unknowns` (instructions the
agents were given) is not a concern of the run.

State shape (plain JSON): `concerns` is the ordered list of every concern text (C1 is the
first); `resolved_concerns` maps a concern's text to {"resolution", "by"}.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# Words of a concern that only reports a red or failing parity run.
_STILL_RED = re.compile(
    r"\b(still (red|failing|fails|failed|not passing|diverg\w*)|debug_red|parity (is |stays |remains )?(red|failing)"
    r"|(test|parity) (still )?fails?|not (yet )?(a )?(non[- ]skip )?pass(ing)?)\b",
    re.IGNORECASE,
)
MIN_CONTAINED = 24  # a shorter text inside a longer one is a coincidence, not the same concern


def normalized(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", str(text).lower()).split())


def same(a: str, b: str) -> bool:
    """The same concern: equal once normalized, or one (long enough) inside the other."""
    na, nb = normalized(a), normalized(b)
    if not na or not nb:
        return na == nb
    if na == nb:
        return True
    short, long = sorted((na, nb), key=len)
    return len(short) >= MIN_CONTAINED and short in long


def restates(text: str, instructions: Iterable[str]) -> str | None:
    """The packet instruction `text` restates, or None."""
    return next((i for i in instructions if same(text, i)), None)


def add(concerns: list[str], text: str, instructions: Iterable[str] = ()) -> tuple[int | None, str]:
    """Add `text` unless it is already there or restates an instruction. Returns (number, why):
    the concern's 1-based number (the existing one for a repeat; None when not added) and a
    word for the agent."""
    text = " ".join(str(text).split())
    if not text or text.lower() == "none":
        return None, "empty"
    instruction = restates(text, instructions)
    if instruction is not None:
        return None, f"restates the packet's concerns_or_unknowns ({instruction!r}), which you were given; not a new concern"
    for n, existing in enumerate(concerns, 1):
        if same(existing, text):
            if len(normalized(text)) > len(normalized(existing)):
                concerns[n - 1] = text  # the fuller wording wins
            return n, f"already recorded as C{n}"
    concerns.append(text)
    return len(concerns), f"recorded as C{len(concerns)}"


def merge(concerns: list[str], new: Iterable[str], instructions: Iterable[str] = ()) -> list[str]:
    out = list(concerns)
    for text in new:
        add(out, text, instructions)
    return out


def find(concerns: list[str], ref: str) -> int | None:
    """The 1-based number of the concern `ref` names: `C3`, `3`, or its text."""
    m = re.fullmatch(r"\s*[Cc]?(\d+)\s*", str(ref))
    if m:
        n = int(m.group(1))
        return n if 1 <= n <= len(concerns) else None
    return next((n for n, c in enumerate(concerns, 1) if same(c, ref)), None)


def open_concerns(concerns: list[str], resolved: dict[str, Any]) -> list[tuple[int, str]]:
    return [(n, c) for n, c in enumerate(concerns, 1) if c not in resolved]


def still_red(text: str) -> bool:
    return bool(_STILL_RED.search(text))


def close_still_red(concerns: list[str], resolved: dict[str, Any], passed: str) -> dict[str, Any]:
    """Close every open concern that only says parity is red, now that the harness saw it pass."""
    out = dict(resolved)
    for _n, text in open_concerns(concerns, out):
        if still_red(text):
            out[text] = {"resolution": f"closed by the harness: its parity run passed ({passed})", "by": "harness"}
    return out


def render_open(concerns: list[str], resolved: dict[str, Any]) -> str:
    """The open concerns for a task message, numbered, or ''."""
    rows = open_concerns(concerns, resolved)
    if not rows:
        return ""
    lines = [f"- C{n}: {text}" for n, text in rows]
    return ("Open concerns (close one with resolve_concern when your work settles it; the rest go into the "
            "handoff):\n" + "\n".join(lines))
