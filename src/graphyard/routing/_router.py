"""Choosing the router the settings ask for, and the interface every router keeps.

A router turns the request text into a tier. ``route`` is synchronous; ``aroute`` is what
the agent awaits on the event loop (the learned router loads its model off the loop on
first use; the LLM router awaits its model call).

This module must never load a model itself: it only wires configured pieces together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, assert_never, runtime_checkable

from graphyard.config import Settings, TierName
from graphyard.errors import ConfigError
from graphyard.routing._learned import LearnedRouter
from graphyard.routing._llm import LLMRouter
from graphyard.routing._rules import RuleRouter

if TYPE_CHECKING:
    from graphyard.models import Tier

__all__ = ["Router", "aroute", "build_router"]


@runtime_checkable
class Router(Protocol):
    """Anything with ``route(text) -> tier``; ``aroute`` is used when it has one."""

    def route(self, text: str) -> TierName: ...


async def aroute(router: Router, text: str) -> TierName:
    """Route without blocking the event loop (``aroute`` when the router has one)."""
    method = getattr(router, "aroute", None)
    if method is not None:
        return await method(text)  # type: ignore[no-any-return]
    return router.route(text)


def build_router(settings: Settings, tiers: Mapping[TierName, Tier] | None = None) -> Router:
    """The router ``settings.router`` names.

    >>> from graphyard.config import Settings
    >>> type(build_router(Settings(router="rules"))).__name__
    'RuleRouter'
    >>> build_router(Settings()).targets
    {'cheap': 0.7, 'mid': 0.2, 'strong': 0.1}
    """
    kind = settings.router
    if kind == "learned":
        return LearnedRouter(settings.router_model, targets=settings.router_targets)
    if kind == "rules":
        return RuleRouter()
    if kind == "llm":
        if not tiers or "cheap" not in tiers:
            raise ConfigError(
                "GRAPHYARD_ROUTER=llm asks the cheap tier's model to label requests, "
                "but no cheap tier was given; configure GRAPHYARD_CHEAP__MODEL"
            )
        return LLMRouter(tiers["cheap"].chat_model)
    assert_never(kind)
