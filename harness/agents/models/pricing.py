"""Prices of common Claude and GPT models, in USD per million tokens.

A model missing from the table has no price: `price_for` raises `UnknownPriceError` unless the
caller gives one (`--price in,out[,cache_read,cache_write]`). A run is never silently costed $0.
Dated model ids (`claude-sonnet-4-5-20250929`, `gpt-4.1-2025-04-14`) match their family by the
longest table key they start with.
"""

from __future__ import annotations

from pydantic import BaseModel

from harness.agents.models.base import Usage


class UnknownPriceError(ValueError):
    """The model has no entry in the price table and no price was given."""


class Price(BaseModel):
    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


def _claude(inp: float, out: float) -> Price:
    # Anthropic: cache reads cost 0.1x input, 5-minute cache writes 1.25x input.
    return Price(input=inp, output=out, cache_read=round(inp * 0.1, 4), cache_write=round(inp * 1.25, 4))


def _gpt(inp: float, out: float, cached: float) -> Price:
    # OpenAI caches automatically: no write surcharge, cached reads at a discount.
    return Price(input=inp, output=out, cache_read=cached, cache_write=inp)


PRICES: dict[str, Price] = {
    "claude-opus-4-5": _claude(5.0, 25.0),
    "claude-opus-4-1": _claude(15.0, 75.0),
    "claude-opus-4": _claude(15.0, 75.0),
    "claude-sonnet-4-5": _claude(3.0, 15.0),
    "claude-sonnet-4": _claude(3.0, 15.0),
    "claude-3-7-sonnet": _claude(3.0, 15.0),
    "claude-3-5-sonnet": _claude(3.0, 15.0),
    "claude-haiku-4-5": _claude(1.0, 5.0),
    "claude-3-5-haiku": _claude(0.8, 4.0),
    "claude-3-haiku": _claude(0.25, 1.25),
    "gpt-5": _gpt(1.25, 10.0, 0.125),
    "gpt-5-mini": _gpt(0.25, 2.0, 0.025),
    "gpt-5-nano": _gpt(0.05, 0.4, 0.005),
    "gpt-4.1": _gpt(2.0, 8.0, 0.5),
    "gpt-4.1-mini": _gpt(0.4, 1.6, 0.1),
    "gpt-4.1-nano": _gpt(0.1, 0.4, 0.025),
    "gpt-4o": _gpt(2.5, 10.0, 1.25),
    "gpt-4o-mini": _gpt(0.15, 0.6, 0.075),
    "o3": _gpt(2.0, 8.0, 0.5),
    "o4-mini": _gpt(1.1, 4.4, 0.275),
}


def parse_price(text: str) -> Price:
    """Parse `in,out` or `in,out,cache_read,cache_write` (USD per million tokens)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"price {text!r}: expected numbers like '3,15' or '3,15,0.3,3.75'") from None
    if len(values) not in (2, 4) or any(v < 0 for v in values):
        raise ValueError(f"price {text!r}: give 2 or 4 non-negative numbers (in,out[,cache_read,cache_write])")
    if len(values) == 2:
        # Without cache prices, cached tokens are charged like input: an upper bound.
        values += [values[0], values[0]]
    return Price(input=values[0], output=values[1], cache_read=values[2], cache_write=values[3])


def price_for(model_name: str, override: Price | str | None = None) -> Price:
    if override is not None:
        return parse_price(override) if isinstance(override, str) else override
    keys = [k for k in PRICES if model_name == k or model_name.startswith(k + "-")]
    if not keys:
        raise UnknownPriceError(
            f"no price known for model {model_name!r}; give one with --price IN,OUT "
            "(USD per million input/output tokens, e.g. --price 0,0 for a free local server)"
        )
    return PRICES[max(keys, key=len)]


def cost_usd(model_name: str, usage: Usage, price: Price | str | None = None) -> float:
    p = price_for(model_name, price)
    return (
        usage.input_tokens * p.input
        + usage.output_tokens * p.output
        + usage.cache_read_tokens * p.cache_read
        + usage.cache_write_tokens * p.cache_write
    ) / 1_000_000
