"""Per-tier proxy settings: each provider's client gets the tier's proxy, tiers without one
go direct (even when OPENAI_PROXY / ANTHROPIC_PROXY are set), and bad values are refused
with a message that says how to fix them. (The request path through a real SOCKS5 proxy is
tested in tests/deploy/test_proxy_path.py.)"""

from __future__ import annotations

import pytest

from graphyard.config import Settings, TierConfig
from graphyard.errors import ConfigError
from graphyard.models import LocalModelServer
from graphyard.models._tiers import build_chat_model, resolve_tiers

PROXY = "socks5://localhost:1055"


def build(config: TierConfig) -> object:
    settings = Settings(anthropic_api_key="sk-ant-test", openai_api_key="sk-test")
    return build_chat_model("cheap", config, settings, LocalModelServer()).chat_model


def test_ollama_openai_and_anthropic_clients_get_the_tiers_proxy() -> None:
    ollama = build(
        TierConfig(model="ollama:qwen3:8b", base_url="http://gpu-box:11434", proxy=PROXY)
    )
    openai = build(
        TierConfig(model="openai:qwen3:8b", base_url="http://gpu-box:8080/v1", proxy=PROXY)
    )
    anthropic = build(TierConfig(model="anthropic:claude-haiku-4-5", proxy="http://localhost:1056"))

    assert ollama.client_kwargs == {"proxy": PROXY}  # type: ignore[attr-defined]
    assert openai.openai_proxy == PROXY  # type: ignore[attr-defined]
    assert anthropic.anthropic_proxy == "http://localhost:1056"  # type: ignore[attr-defined]


def test_tiers_without_a_proxy_ignore_the_providers_proxy_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_PROXY", "http://elsewhere:3128")
    monkeypatch.setenv("ANTHROPIC_PROXY", "http://elsewhere:3128")

    openai = build(TierConfig(model="openai:gpt-4.1-mini"))
    anthropic = build(TierConfig(model="anthropic:claude-haiku-4-5"))
    ollama = build(TierConfig(model="ollama:qwen3:8b"))

    assert openai.openai_proxy is None  # type: ignore[attr-defined]
    assert anthropic.anthropic_proxy is None  # type: ignore[attr-defined]
    assert ollama.client_kwargs == {}  # type: ignore[attr-defined]


def test_the_proxy_is_read_per_tier_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHYARD_CHEAP__MODEL", "ollama:qwen3:8b")
    monkeypatch.setenv("GRAPHYARD_CHEAP__PROXY", PROXY)

    settings = Settings()

    assert settings.cheap.proxy == PROXY
    assert settings.cheap.max_tokens == 256  # the tier's other defaults stay
    assert settings.mid.proxy is None and settings.strong.proxy is None


@pytest.mark.parametrize(
    "value", ["localhost:1055", "ftp://localhost:21", "socks4://h:1", "http://"]
)
def test_a_proxy_that_is_not_an_http_or_socks5_url_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="socks5://localhost:1055"):
        TierConfig(model="ollama:qwen3:8b", proxy=value)


def test_the_in_process_local_model_refuses_a_proxy() -> None:
    with pytest.raises(ConfigError, match="remove its proxy"):
        build(TierConfig(model="local:smollm2", proxy=PROXY))


def test_a_tier_falling_back_to_the_bundled_model_drops_its_proxy() -> None:
    settings = Settings(mid=TierConfig(model="anthropic:claude-haiku-4-5", proxy=PROXY))

    tiers = resolve_tiers(settings, LocalModelServer())  # no ANTHROPIC_API_KEY: fallback

    assert tiers["mid"].model_id == "local:smollm2"
    assert tiers["mid"].fallback_from == "anthropic:claude-haiku-4-5"
