"""Anthropic Messages API with tool use and prompt caching.

Cache breakpoints (`cache_control: {"type": "ephemeral"}`, at most four) go on the stable
prefix, which the API caches in the order tools -> system -> messages:
the last tool definition, the last stable system block (role prompt, skill text, packet),
the task message (first user message), and the newest message so a long tool loop re-reads
its own history from the cache.
"""

from __future__ import annotations

import json
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
    system_blocks,
)
from harness.agents.models.pricing import Price, cost_usd, price_for
from harness.agents.models.retry import DEFAULT_MODEL_TIMEOUT_S, RetryPolicy, call_with_retries, read_reply

EPHEMERAL = {"type": "ephemeral"}


def _context_window(model: str) -> int:
    return 200_000


def to_wire_system(system: SystemPrompt) -> list[dict[str, Any]]:
    blocks = system_blocks(system)
    wire: list[dict[str, Any]] = [{"type": "text", "text": b.text} for b in blocks]
    stable = [i for i, b in enumerate(blocks) if b.stable]
    if stable:
        wire[stable[-1]]["cache_control"] = EPHEMERAL
    return wire


def to_wire_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    wire = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
    if wire:
        wire[-1]["cache_control"] = EPHEMERAL
    return wire


def _call_input(call: ToolCall) -> dict[str, Any]:
    # The Messages API only carries JSON objects as tool input; a raw string (malformed
    # arguments from another provider or a script) is wrapped so the history stays valid.
    return call.args if isinstance(call.args, dict) else {"raw_arguments": call.args}


def to_wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Neutral messages -> alternating user/assistant turns; tool results ride in user turns."""
    wire: list[dict[str, Any]] = []

    def user_block(block: dict[str, Any]) -> None:
        if wire and wire[-1]["role"] == "user":
            wire[-1]["content"].append(block)
        else:
            wire.append({"role": "user", "content": [block]})

    for m in messages:
        if isinstance(m, UserMessage):
            user_block({"type": "text", "text": m.text})
        elif isinstance(m, ToolResultMessage):
            user_block(
                {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content, "is_error": m.is_error}
            )
        elif isinstance(m, AssistantMessage):
            content: list[dict[str, Any]] = []
            if m.text:
                content.append({"type": "text", "text": m.text})
            for c in m.tool_calls:
                content.append({"type": "tool_use", "id": c.id, "name": c.name, "input": _call_input(c)})
            wire.append({"role": "assistant", "content": content or [{"type": "text", "text": "(no output)"}]})
    if wire:
        wire[0]["content"][0]["cache_control"] = EPHEMERAL
        if len(wire) > 1:
            wire[-1]["content"][-1]["cache_control"] = EPHEMERAL
    return wire


def from_wire_usage(u: Any) -> Usage:
    return Usage(
        input_tokens=getattr(u, "input_tokens", 0) or 0,
        output_tokens=getattr(u, "output_tokens", 0) or 0,
        cache_read_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
        cache_write_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
    )


class AnthropicModel(Model):
    provider = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        price: Price | str | None = None,
        timeout_s: float = DEFAULT_MODEL_TIMEOUT_S,
        max_output_tokens: int = 8192,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        import anthropic

        self._sdk = anthropic
        self.name = model
        self.price = price_for(model, price)
        self.context_window = _context_window(model)
        self.max_output_tokens = max_output_tokens
        self.retry = retry or RetryPolicy()
        self.client = sdk_client(anthropic.Anthropic, provider=self.provider, key_env="ANTHROPIC_API_KEY", url_env="ANTHROPIC_BASE_URL",
                                 api_key=api_key, base_url=base_url, timeout_s=timeout_s)

    def _complete(
        self, role: str, system: SystemPrompt, messages: list[Message], tools: list[ToolSpec]
    ) -> AssistantTurn:
        kwargs: dict[str, Any] = {
            "model": self.name,
            "max_tokens": self.max_output_tokens,
            "messages": to_wire_messages(messages),
        }
        if system_blocks(system):
            kwargs["system"] = to_wire_system(system)
        if tools:
            kwargs["tools"] = to_wire_tools(tools)
        # The reply is read inside the try: an empty or unreadable one is tried again like a 503.
        return call_with_retries(
            lambda: read_reply(self._parse, self.client.messages.create(**kwargs)),
            provider=self.provider,
            status_error=self._sdk.APIStatusError,
            connection_error=self._sdk.APIConnectionError,
            api_error=self._sdk.APIError,
            policy=self.retry,
        )

    def _parse(self, resp: Any) -> AssistantTurn:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in resp.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                args = block.input if isinstance(block.input, dict) else json.dumps(block.input)
                calls.append(ToolCall(id=block.id, name=block.name, args=args))
        return AssistantTurn(
            text="\n".join(texts), tool_calls=calls, usage=from_wire_usage(resp.usage), stop_reason=resp.stop_reason or ""
        )

    def cost_usd(self, usage: Usage) -> float:
        return cost_usd(self.name, usage, self.price)


def from_spec(arg: str, *, base_url: str | None = None, price: Price | str | None = None,
              **kwargs: Any) -> AnthropicModel:
    """The registry's factory for `anthropic:<model>`."""
    return AnthropicModel(arg, base_url=base_url, price=price, **kwargs)
