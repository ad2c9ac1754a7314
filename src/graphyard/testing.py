"""Helpers for testing graphs built on graphyard without any real model.

Example::

    >>> from graphyard.testing import ScriptedChatModel, scripted_tiers
    >>> tiers = scripted_tiers(ScriptedChatModel(responses=["Hello"]))
    >>> sorted(tiers), tiers["mid"].model_id
    (['cheap', 'mid', 'strong'], 'scripted:mid')
"""

from __future__ import annotations

from collections.abc import Mapping

from langchain_core.language_models import BaseChatModel

from graphyard.config import TIERS, TierName
from graphyard.models import ScriptedChatModel, Tier

__all__ = ["ScriptedChatModel", "scripted_tiers"]


def scripted_tiers(
    model: BaseChatModel | Mapping[TierName, BaseChatModel],
    *,
    context_window: int = 8192,
    max_tokens: int = 256,
    supports_tools: bool = False,
) -> dict[TierName, Tier]:
    """Tiers served by scripted models: one model for all, or one per tier."""
    models = model if isinstance(model, Mapping) else dict.fromkeys(TIERS, model)
    return {
        name: Tier(
            name=name,
            model_id=f"scripted:{name}",
            chat_model=chat,
            context_window=context_window,
            max_tokens=max_tokens,
            supports_tools=supports_tools,
        )
        for name, chat in models.items()
    }
