"""Dollars for a model call, from its ``usage_metadata`` and the prices in ``genai-prices``.

Prices come from the package's bundled snapshot: graphyard never asks genai-prices to
update them over the network. Self-hosted models (``local:``, ``ollama:``) cost $0 unless
a price is configured for them; a model genai-prices does not know costs $0 with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache

from langchain_core.messages.ai import UsageMetadata

from graphyard.config import ModelPrice

__all__ = ["call_cost", "split_model_id"]

log = logging.getLogger(__name__)

SELF_HOSTED = frozenset({"local", "ollama", "scripted"})

_MTOK = 1_000_000


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"anthropic:claude-haiku-4-5"`` -> ``("anthropic", "claude-haiku-4-5")``."""
    provider, _, name = model_id.partition(":")
    return provider, name


def _token_counts(usage: UsageMetadata) -> tuple[int, int, int, int]:
    details = usage.get("input_token_details") or {}
    return (
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(details.get("cache_read") or 0),
        int(details.get("cache_creation") or 0),
    )


def call_cost(
    model_id: str, usage: UsageMetadata | None, overrides: Mapping[str, ModelPrice] = {}
) -> float:
    """Dollars one call cost. ``input_tokens`` includes cached tokens, as LangChain reports them.

    >>> round(call_cost("anthropic:claude-haiku-4-5", {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200}), 6)
    0.002
    """
    if not usage:
        return 0.0
    inp, out, cache_read, cache_write = _token_counts(usage)
    if (price := overrides.get(model_id)) is not None:
        read = price.input if price.cache_read is None else price.cache_read
        write = price.input if price.cache_write is None else price.cache_write
        uncached = max(inp - cache_read - cache_write, 0)
        return (
            uncached * price.input + cache_read * read + cache_write * write + out * price.output
        ) / _MTOK
    provider, name = split_model_id(model_id)
    if provider in SELF_HOSTED:
        return 0.0
    return _genai_price(provider, name, inp, out, cache_read, cache_write)


def _genai_price(provider: str, name: str, inp: int, out: int, read: int, write: int) -> float:
    from genai_prices import Usage, calc_price

    kwargs: dict[str, int] = {"input_tokens": inp, "output_tokens": out}
    if read:
        kwargs["cache_read_tokens"] = read
    if write:
        kwargs["cache_write_tokens"] = write
    try:
        result = calc_price(Usage(**kwargs), model_ref=name, provider_id=provider)
    except LookupError:
        _warn_unpriced(provider, name)
        return 0.0
    return float(result.total_price)


@cache
def _warn_unpriced(provider: str, name: str) -> None:
    log.warning(
        "no price known for %s:%s; counting it as $0. Set GRAPHYARD_PRICES to price it.",
        provider,
        name,
    )
