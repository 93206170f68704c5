"""Model providers behind one interface: `Model.complete(role, system, messages, tools)`.

`make_model(spec)` picks a provider by its spec string (harness.agents.providers):
  anthropic:<model>        Anthropic Messages API (tool use, prompt caching)
  openai:<model>           OpenAI Chat Completions, or any compatible server (base_url / OPENAI_BASE_URL)
  scripted:<file>          turns from a YAML/JSON file (see harness.agents.models.scripted)
  human                    a person types each tool call
  replay:<trajectory.jsonl> the model turns of a recorded run
"""

from __future__ import annotations

from typing import Any

from harness.agents.models.base import (
    AssistantMessage,
    AssistantTurn,
    Message,
    Model,
    ModelError,
    SystemBlock,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    Usage,
    UserMessage,
)
from harness.agents.models.pricing import Price, UnknownPriceError, cost_usd, parse_price, price_for
from harness.agents.models.retry import RetryPolicy

__all__ = [
    "AssistantMessage", "AssistantTurn", "Message", "Model", "ModelError", "SystemBlock", "ToolCall",
    "ToolResultMessage", "ToolSpec", "Usage", "UserMessage", "Price", "UnknownPriceError", "cost_usd",
    "parse_price", "price_for", "RetryPolicy", "make_model",
]

MIN_CONTEXT_WINDOW = 4096  # below this not even the system prompt and one tool result fit


def make_model(spec: str, base_url: str | None = None, *, price: Price | str | None = None,
               context_window: int | None = None, **kwargs: Any) -> Model:
    """Build the model named by `spec`. `context_window` (tokens) overrides what the provider
    assumes, for any provider (a local server with a small window, say). Extra keyword args go
    to the provider's constructor (e.g. `timeout_s`, `api_key`, `retry` for the API providers;
    `stdin`/`stdout` for human)."""
    model = _make(spec, base_url, price, **kwargs)
    if context_window is not None:
        if context_window < MIN_CONTEXT_WINDOW:
            raise ValueError(f"context window {context_window} is too small; at least {MIN_CONTEXT_WINDOW} tokens")
        model.context_window = context_window
        # The answer must fit in the same window as the prompt.
        out = getattr(model, "max_output_tokens", None)
        if out and out > context_window // 4:
            model.max_output_tokens = context_window // 4
    return model


def _make(spec: str, base_url: str | None, price: Price | str | None, **kwargs: Any) -> Model:
    from harness.agents.providers import provider_of, spec_help

    found = provider_of(spec)
    if found is None:
        raise ValueError(f"unknown model spec {spec!r}; expected {spec_help()}")
    provider, arg = found
    return provider.factory()(arg, base_url=base_url, price=price, **kwargs)

