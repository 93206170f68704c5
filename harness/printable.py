"""Text the agent wrote, made safe to show: what reaches a terminal or a report never carries
control characters (an escape sequence could write the clipboard, retitle the window, clear
the screen or hide lines) or bidirectional overrides (which reorder what a reader sees).
Each becomes a visible escape such as `\\x1b`; newlines and tabs stay."""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


def printable_data(value: Any) -> Any:
    """`printable` applied to every string inside dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_data(k): printable_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(printable_data(v) for v in value)
    return value


def html_text(value: Any) -> str:
    """`printable` text, HTML-escaped (quotes too): for the eval report."""
    import html

    return html.escape(printable(str(value)))
