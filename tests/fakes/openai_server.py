"""A fake OpenAI Chat Completions API (POST /v1/chat/completions) speaking the real JSON format."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.fakes.server import FakeServer, Faults, Reply

_ids = itertools.count(1)


def completion(
    text: str | None = None,
    tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None,
    *,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
    cached_tokens: int | None = None,
    model: str = "gpt-4.1",
) -> Reply:
    """A completion; a tool call's arguments may be a raw string (sent as-is, e.g. malformed JSON)."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{next(_ids):04d}",
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for name, args in tool_calls
        ]
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
    return Reply(
        200,
        {
            "id": f"chatcmpl-{next(_ids):04d}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None,
                 "finish_reason": "tool_calls" if tool_calls else "stop"}
            ],
            "usage": usage,
        },
    )


def error(status: int, msg: str, code: str | None = None, headers: dict[str, str] | None = None,
          delay_s: float = 0.0) -> Reply:
    body = {"error": {"message": msg, "type": "invalid_request_error", "param": None, "code": code}}
    return Reply(status, body, headers or {}, delay_s)




def prompt_tokens(body: dict[str, Any]) -> int:
    """A server-side token count: 3.5 characters a token of the messages and tools as sent
    (stricter than the harness's own 4-character estimate, as real tokenizers are for code)."""
    chars = len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))
    return int(chars / 3.5)


def empty_choices() -> Reply:
    """A 200 whose `choices` is empty (seen from overloaded compatible servers)."""
    return Reply(200, {"id": "chatcmpl-empty", "object": "chat.completion", "created": 1_700_000_000,
                       "model": "gpt-4.1", "choices": [], "usage": None})


def truncated() -> Reply:
    """A completion whose body stops half-way: the connection closes before the declared length."""
    whole = completion("this reply is cut short")
    return Reply(200, whole.body, cut_at=len(json.dumps(whole.body)) // 2)


def server(window_tokens: int | None = None, faults: Faults | None = None) -> FakeServer:
    """The fake API; with `window_tokens`, a request whose prompt plus requested output does not
    fit is refused with HTTP 400, worded like vLLM's and OpenAI's own error. `faults` makes it
    fail on command (see tests.fakes.server.Faults)."""

    def refuse(body: Any) -> Reply | None:
        if faults is not None and (fault := faults(body)) is not None:
            return fault
        if window_tokens is None or not isinstance(body, dict):
            return None
        asked = prompt_tokens(body) + int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        if asked <= window_tokens:
            return None
        return error(400, f"This model's maximum context length is {window_tokens} tokens. However, you "
                          f"requested {asked} tokens. Please reduce the length of the messages.",
                     code="context_length_exceeded")

    return FakeServer(error(500, "fake server: no more prepared replies"), refuse)
