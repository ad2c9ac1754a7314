"""Model tiers: turn the configured provider strings into chat models.

A tier whose provider has no credentials falls back to the bundled local model, with one
warning at startup that names the tier and the missing variable, so a fresh machine with
no API keys still runs every feature offline.

A tier with ``proxy`` set sends its requests through that proxy (Tailscale's userspace
SOCKS5/HTTP proxy is the case in mind: processes other than tailscaled have no route to the
tailnet); tiers without one go direct, ignoring ``OPENAI_PROXY``/``ANTHROPIC_PROXY``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs

from graphyard.config import TIERS, Settings, TierConfig, TierName
from graphyard.errors import ConfigError
from graphyard.models._local import BundledChatModel, LocalModelServer

__all__ = [
    "CACHE_HIT_METADATA_KEY",
    "LOCAL_MODEL_ID",
    "MODEL_METADATA_KEY",
    "REPLAYED_KEY",
    "TIER_METADATA_KEY",
    "Tier",
    "build_chat_model",
    "is_replayed",
    "model_of",
    "resolve_tiers",
]

log = logging.getLogger(__name__)

LOCAL_MODEL_ID = "local:smollm2"
DEFAULT_CONTEXT_WINDOW = 8192
"""Used when neither the configuration nor the model's profile gives a window."""
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
TIER_METADATA_KEY = "graphyard_tier"
"""Metadata key naming the tier of a model call (see :meth:`Tier.call_config`)."""
MODEL_METADATA_KEY = "graphyard_model"
"""Metadata key naming the provider string of a model call."""
CACHE_HIT_METADATA_KEY = "graphyard_cache_hit"
"""Metadata of the stand-in model call that streams an answer from graphyard's answer cache
(``graphyard.caching``): no model is called, so ledgers and metrics count nothing."""
REPLAYED_KEY = "graphyard_replayed"
"""``response_metadata`` key on an answer a replay served from its recording
(``graphyard.replay``): nothing was spent."""


def model_of(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """``(tier, model)`` of a model call from its callback metadata: graphyard's keys
    (:meth:`Tier.call_config`), else LangChain's ``ls_provider:ls_model_name`` and tier
    ``unknown`` (a user's graph).

    >>> model_of({"graphyard_tier": "mid", "graphyard_model": "anthropic:claude-haiku-4-5"})
    ('mid', 'anthropic:claude-haiku-4-5')
    >>> model_of({"ls_provider": "openai", "ls_model_name": "gpt-4.1-mini"})
    ('unknown', 'openai:gpt-4.1-mini')
    """
    tier = metadata.get(TIER_METADATA_KEY)
    model = metadata.get(MODEL_METADATA_KEY)
    if not model:
        name, provider = metadata.get("ls_model_name"), metadata.get("ls_provider")
        model = f"{provider}:{name}" if name and provider else (name or "unknown")
    return (tier if isinstance(tier, str) and tier else "unknown"), str(model)


def is_replayed(response: LLMResult) -> bool:
    """Whether a replay served this answer from its recording (:data:`REPLAYED_KEY`), so
    no model was called and nothing was spent.

    >>> is_replayed(LLMResult(generations=[]))
    False
    """
    return any(
        getattr(getattr(g, "message", None), "response_metadata", {}).get(REPLAYED_KEY)
        for gens in response.generations
        for g in gens
    )


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier ready to call."""

    name: TierName
    model_id: str
    """The provider string actually served (after any fallback)."""
    chat_model: BaseChatModel
    context_window: int
    """Tokens the model accepts in one prompt."""
    max_tokens: int
    """Completion budget per call."""
    supports_tools: bool
    """Whether the model is given tool schemas (otherwise the agent plans tool calls itself)."""
    fallback_from: str | None = None
    """The configured provider string, when it could not be served and the bundled model was."""

    def call_config(self, config: RunnableConfig | None = None) -> RunnableConfig:
        """``config`` plus this tier's name and model in the call's metadata.

        Every graphyard model call goes through it, so callback handlers (the cost ledger,
        metrics, tracing, replay recording) know the tier and model of each call; the
        parent's metadata (thread, node, step) is kept.

        >>> from graphyard.models import ScriptedChatModel
        >>> tier = Tier("cheap", "scripted", ScriptedChatModel(responses=[]), 8192, 256, True)
        >>> tier.call_config({"metadata": {"thread_id": "t1"}})["metadata"]
        {'thread_id': 't1', 'graphyard_tier': 'cheap', 'graphyard_model': 'scripted'}
        """
        extra: RunnableConfig = {
            "metadata": {TIER_METADATA_KEY: self.name, MODEL_METADATA_KEY: self.model_id}
        }
        return merge_configs(config, extra)


def resolve_tiers(
    settings: Settings,
    local: LocalModelServer,
    *,
    models: Mapping[TierName, BaseChatModel] | None = None,
) -> dict[TierName, Tier]:
    """Build every tier, warning once per tier that falls back to the bundled model.

    ``models`` replaces the chat model of some tiers (tests pass scripted models here).
    """
    tiers: dict[TierName, Tier] = {}
    for name in TIERS:
        config = settings.tier(name)
        if models and name in models:
            tiers[name] = _given(name, config, models[name])
            continue
        missing = missing_credentials(config, settings)
        if missing is None:
            tiers[name] = build_chat_model(name, config, settings, local)
            continue
        log.warning(
            "tier %r wants %s but %s is not set; serving the bundled model %s instead",
            name,
            config.model,
            missing,
            LOCAL_MODEL_ID,
        )
        fallback = config.model_copy(
            update={"model": LOCAL_MODEL_ID, "context_window": None, "proxy": None}
        )
        tier = build_chat_model(name, fallback, settings, local)
        tiers[name] = Tier(
            name=name,
            model_id=tier.model_id,
            chat_model=tier.chat_model,
            context_window=tier.context_window,
            max_tokens=min(tier.max_tokens, settings.cheap.max_tokens),
            supports_tools=tier.supports_tools,
            fallback_from=config.model,
        )
    return tiers


def missing_credentials(config: TierConfig, settings: Settings) -> str | None:
    """The environment variable a tier needs and lacks, or ``None`` if it can be served."""
    provider = config.model.partition(":")[0]
    if provider == "anthropic" and settings.anthropic_api_key is None:
        return "ANTHROPIC_API_KEY"
    if provider == "openai" and config.base_url is None and settings.openai_api_key is None:
        return "OPENAI_API_KEY"
    return None


def _given(name: TierName, config: TierConfig, model: BaseChatModel) -> Tier:
    profile = getattr(model, "profile", None) or {}
    return Tier(
        name=name,
        model_id=config.model,
        chat_model=model,
        context_window=config.context_window
        or profile.get("max_input_tokens")
        or DEFAULT_CONTEXT_WINDOW,
        max_tokens=config.max_tokens,
        supports_tools=bool(profile.get("tool_calling", False)),
    )


def build_chat_model(
    name: TierName, config: TierConfig, settings: Settings, local: LocalModelServer
) -> Tier:
    """One tier's chat model from its provider string."""
    provider, _, model = config.model.partition(":")
    if config.proxy and config.proxy.startswith("socks"):
        _require_socks(name)
    common: dict[str, Any] = {"max_tokens": config.max_tokens}
    if config.temperature is not None:
        common["temperature"] = config.temperature

    chat: BaseChatModel
    if provider == "local":
        if model != "smollm2" and settings.local.model_path is None:
            raise ConfigError(
                f"tier {name!r}: 'local:{model}' needs GRAPHYARD_LOCAL__MODEL_PATH; "
                "only local:smollm2 is bundled"
            )
        if config.proxy is not None:
            raise ConfigError(
                f"tier {name!r}: {config.model!r} runs inside this process; remove its proxy "
                f"(GRAPHYARD_{name.upper()}__PROXY)"
            )
        window = min(
            config.context_window or settings.local.context_window, settings.local.context_window
        )
        chat = BundledChatModel(server=local, model_name=model, context_window=window, **common)
        return Tier(name, config.model, chat, window, config.max_tokens, supports_tools=False)
    if provider == "anthropic":
        cls = _import("langchain_anthropic", "ChatAnthropic", "anthropic")
        # anthropic_proxy=None explicitly: the tier's own setting decides, not ANTHROPIC_PROXY.
        chat = cls(
            model=model,
            api_key=settings.anthropic_api_key,
            max_retries=2,
            anthropic_proxy=config.proxy,
            **common,
        )
    elif provider == "openai":
        cls = _import("langchain_openai", "ChatOpenAI", "openai")
        key = settings.openai_api_key or "not-needed"
        chat = cls(
            model=model,
            base_url=config.base_url,
            api_key=key,
            stream_usage=True,
            openai_proxy=config.proxy,  # explicit None: OPENAI_PROXY does not apply either
            **common,
        )
    elif provider == "ollama":
        cls = _import("langchain_ollama", "ChatOllama", "ollama")
        window = config.context_window or DEFAULT_CONTEXT_WINDOW
        chat = cls(
            model=model,
            base_url=config.base_url or DEFAULT_OLLAMA_URL,
            num_ctx=window,
            num_predict=config.max_tokens,
            # ChatOllama hands client_kwargs to its httpx clients; proxy= goes to httpx.
            client_kwargs={"proxy": config.proxy} if config.proxy else {},
            **({"temperature": config.temperature} if config.temperature is not None else {}),
        )
    else:
        raise ConfigError(
            f"tier {name!r}: unknown provider {provider!r} in {config.model!r}; "
            "use local:, anthropic:, openai: or ollama:"
        )
    profile = getattr(chat, "profile", None) or {}
    window = config.context_window or profile.get("max_input_tokens") or DEFAULT_CONTEXT_WINDOW
    return Tier(
        name,
        config.model,
        chat,
        int(window),
        config.max_tokens,
        supports_tools=bool(profile.get("tool_calling", provider in ("anthropic", "openai"))),
    )


def _import(module: str, attr: str, extra: str) -> Any:
    import importlib

    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ConfigError(f"{module} is not installed: pip install 'graphyard[{extra}]'") from exc


def _require_socks(name: TierName) -> None:
    try:
        import socksio  # noqa: F401  (httpx's SOCKS support)
    except ImportError as exc:
        raise ConfigError(
            f"tier {name!r} uses a SOCKS proxy, which needs socksio: pip install 'httpx[socks]'"
        ) from exc
