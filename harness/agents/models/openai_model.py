"""OpenAI Chat Completions with tools; works with any OpenAI-compatible server (vLLM, Ollama).

The server is `base_url`, else `OPENAI_BASE_URL`, else api.openai.com. OpenAI caches prompt
prefixes by itself; cached tokens come from `usage.prompt_tokens_details.cached_tokens` when
the server reports them, and are subtracted from `input_tokens` (which counts uncached input).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from harness.agents.models.base import (
    AssistantMessage,
    AssistantTurn,
    Message,
    Model,
    SystemPrompt,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    Usage,
    UserMessage,
    sdk_client,
    system_text,
)
from harness.agents.models.pricing import Price, cost_usd, price_for
from harness.agents.models.retry import DEFAULT_MODEL_TIMEOUT_S, BadReply, RetryPolicy, call_with_retries, read_reply

CONTEXT_WINDOWS = {"gpt-4.1": 1_000_000, "gpt-5": 400_000, "gpt-4o": 128_000, "o3": 200_000, "o4-mini": 200_000}


def _context_window(model: str) -> int:
    for key, size in CONTEXT_WINDOWS.items():
        if model.startswith(key):
            return size
    return 128_000  # conservative for unknown OpenAI-compatible servers


def to_wire_messages(system: SystemPrompt, messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    sys_text = system_text(system)
    if sys_text:
        wire.append({"role": "system", "content": sys_text})
    for m in messages:
        if isinstance(m, UserMessage):
            wire.append({"role": "user", "content": m.text})
        elif isinstance(m, ToolResultMessage):
            wire.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif isinstance(m, AssistantMessage):
            # Some compatible servers reject an assistant turn with neither text nor tool calls.
            msg: dict[str, Any] = {"role": "assistant", "content": m.text or (None if m.tool_calls else "(no output)")}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.args if isinstance(c.args, str) else json.dumps(c.args),
                        },
                    }
                    for c in m.tool_calls
                ]
            wire.append(msg)
    return wire


def to_wire_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def parse_arguments(raw: Any) -> dict[str, Any] | str:
    """JSON object arguments, or the raw string when they are not one (fed back as an error)."""
    if isinstance(raw, dict):  # some compatible servers send an object instead of a string
        return raw
    if raw is None or str(raw).strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, dict) else raw


def from_wire_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    details = getattr(u, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    prompt = getattr(u, "prompt_tokens", 0) or 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=getattr(u, "completion_tokens", 0) or 0,
        cache_read_tokens=cached,
    )


class OpenAIModel(Model):
    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        price: Price | str | None = None,
        timeout_s: float = DEFAULT_MODEL_TIMEOUT_S,
        max_output_tokens: int | None = None,
        context_window: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        import openai

        self._sdk = openai
        self.name = model
        self.price = price_for(model, price)
        self.context_window = context_window or _context_window(model)
        self.max_output_tokens = max_output_tokens
        self.retry = retry or RetryPolicy()
        self.client = sdk_client(openai.OpenAI, provider=self.provider, key_env="OPENAI_API_KEY", url_env="OPENAI_BASE_URL",
                                 api_key=api_key, base_url=base_url, timeout_s=timeout_s)

    def _complete(
        self, role: str, system: SystemPrompt, messages: list[Message], tools: list[ToolSpec]
    ) -> AssistantTurn:
        kwargs: dict[str, Any] = {"model": self.name, "messages": to_wire_messages(system, messages)}
        if tools:
            kwargs["tools"] = to_wire_tools(tools)
        if self.max_output_tokens:
            kwargs["max_completion_tokens"] = self.max_output_tokens
        # The reply is read inside the try: an empty or unreadable one is tried again like a 503.
        return call_with_retries(
            lambda: read_reply(self._parse, self.client.chat.completions.create(**kwargs)),
            provider=self.provider,
            status_error=self._sdk.APIStatusError,
            connection_error=self._sdk.APIConnectionError,
            api_error=self._sdk.APIError,
            policy=self.retry,
        )

    def _parse(self, resp: Any) -> AssistantTurn:
        if not resp.choices:
            raise BadReply("response has no choices")
        choice = resp.choices[0]
        msg = choice.message
        calls: list[ToolCall] = []
        for n, c in enumerate(msg.tool_calls or []):
            if getattr(c, "function", None) is None:
                continue
            # Compatible servers sometimes send empty or repeated ids; results must match one call.
            call_id = c.id if c.id and all(c.id != k.id for k in calls) else f"call_{uuid.uuid4().hex[:12]}_{n}"
            calls.append(ToolCall(id=call_id, name=c.function.name, args=parse_arguments(c.function.arguments)))
        return AssistantTurn(
            text=msg.content or "", tool_calls=calls, usage=from_wire_usage(resp.usage), stop_reason=choice.finish_reason or ""
        )

    def cost_usd(self, usage: Usage) -> float:
        return cost_usd(self.name, usage, self.price)


def from_spec(arg: str, *, base_url: str | None = None, price: Price | str | None = None,
              **kwargs: Any) -> OpenAIModel:
    """The registry's factory for `openai:<model>`."""
    return OpenAIModel(arg, base_url=base_url, price=price, **kwargs)
