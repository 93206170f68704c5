"""Model providers behind one interface: `Model.complete(role, system, messages, tools)`.

`make_model(spec)` picks a provider by its spec string:
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
    "parse_price", "price_for", "RetryPolicy", "make_model", "SPEC_HELP",
]

SPEC_HELP = "anthropic:<model> | openai:<model> | scripted:<file> | human | replay:<trajectory.jsonl>"


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
    kind, _, rest = spec.partition(":")
    if kind == "anthropic" and rest:
        from harness.agents.models.anthropic_model import AnthropicModel

        return AnthropicModel(rest, base_url=base_url, price=price, **kwargs)
    if kind == "openai" and rest:
        from harness.agents.models.openai_model import OpenAIModel

        return OpenAIModel(rest, base_url=base_url, price=price, **kwargs)
    if kind == "scripted" and rest:
        from harness.agents.models.scripted import ScriptedModel

        return ScriptedModel.from_file(rest, price=price)
    if kind == "replay" and rest:
        from harness.agents.models.replay import ReplayModel

        return ReplayModel.from_file(rest)
    if spec == "human":
        from harness.agents.models.human import HumanModel

        return HumanModel(**kwargs)
    raise ValueError(f"unknown model spec {spec!r}; expected {SPEC_HELP}")
