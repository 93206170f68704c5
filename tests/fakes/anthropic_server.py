"""A fake Anthropic Messages API (POST /v1/messages) speaking the real JSON format."""

from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.server import FakeServer, Faults, Reply

_ids = itertools.count(1)


def message(
    text: str | None = None,
    tool_uses: list[tuple[str, dict[str, Any]]] | None = None,
    *,
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_write: int = 0,
    cache_read: int = 0,
    model: str = "claude-sonnet-4-5",
) -> Reply:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    for name, args in tool_uses or []:
        content.append({"type": "tool_use", "id": f"toolu_{next(_ids):04d}", "name": name, "input": args})
    return Reply(
        200,
        {
            "id": f"msg_{next(_ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if tool_uses else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
            },
        },
    )


def error(status: int, kind: str, msg: str, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": msg}}, headers or {}, delay_s)


def server(faults: Faults | None = None) -> FakeServer:
    """The fake API; `faults` makes it fail on command (see tests.fakes.server.Faults)."""
    return FakeServer(error(500, "api_error", "fake server: no more prepared replies"), faults)
