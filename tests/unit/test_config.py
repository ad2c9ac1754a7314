"""Settings come from arguments, ``GRAPHYARD_*`` variables and ``graphyard.toml``, in that
order; tiers resolve to chat models, falling back to the bundled model without credentials.

The autouse fixture in ``tests/conftest.py`` runs each test in an empty directory with no
``GRAPHYARD_*`` or provider keys in the environment.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from graphyard.config import Settings, TierConfig
from graphyard.errors import ConfigError
from graphyard.models import LOCAL_MODEL_ID, BundledChatModel, LocalModelServer, resolve_tiers

TIERS_LOGGER = "graphyard.models._tiers"


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- sources and precedence ------------------------------------------------------------------


def test_defaults_serve_the_bundled_model_cheaply_and_anthropic_above_it() -> None:
    settings = Settings()

    assert settings.cheap.model == "local:smollm2"
    assert settings.mid.model.startswith("anthropic:")
    assert settings.strong.model.startswith("anthropic:")
    assert settings.max_revisions == 2
    assert settings.tool_calls_per_turn == 6


def test_a_nested_environment_variable_sets_one_tier_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHYARD_MID__MODEL", "ollama:qwen3:8b")
    monkeypatch.setenv("GRAPHYARD_TOOL_CALLS_PER_TURN", "3")

    settings = Settings()

    assert settings.mid.model == "ollama:qwen3:8b"
    assert settings.mid.max_tokens == 512, "the tier's other fields keep their defaults"
    assert settings.tool_calls_per_turn == 3


def test_changing_one_field_of_a_tier_keeps_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHYARD_CHEAP__MAX_TOKENS", "48")

    settings = Settings()

    assert settings.cheap.max_tokens == 48
    assert settings.cheap.model == "local:smollm2"


def test_a_graphyard_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write_toml(
        tmp_path / "graphyard.toml",
        'max_revisions = 4\n[strong]\nmodel = "openai:gpt-4.1"\nmax_tokens = 2048\n',
    )

    settings = Settings()

    assert settings.max_revisions == 4
    assert settings.strong == TierConfig(model="openai:gpt-4.1", max_tokens=2048)


def test_load_reads_the_given_file_instead_of_the_working_directory_one(tmp_path: Path) -> None:
    write_toml(tmp_path / "graphyard.toml", "max_revisions = 4\n")
    other = write_toml(
        tmp_path / "prod.toml", 'max_revisions = 1\n[mid]\nmodel = "ollama:qwen3:8b"\n'
    )

    settings = Settings.load(other)

    assert isinstance(settings, Settings)
    assert settings.max_revisions == 1
    assert settings.mid.model == "ollama:qwen3:8b"


def test_load_of_a_missing_file_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        Settings.load(tmp_path / "nope.toml")


def test_environment_wins_over_the_toml_file_and_arguments_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_toml(
        tmp_path / "graphyard.toml",
        'max_revisions = 4\ntool_calls_per_turn = 5\n[mid]\nmodel = "openai:gpt-4.1-mini"\n'
        'base_url = "http://gpu-box:8000/v1"\n',
    )
    monkeypatch.setenv("GRAPHYARD_MAX_REVISIONS", "1")
    monkeypatch.setenv("GRAPHYARD_MID__MODEL", "ollama:qwen3:8b")

    from_cwd = Settings()
    loaded = Settings.load(config)
    overridden = Settings.load(config, max_revisions=0)

    for settings in (from_cwd, loaded):
        assert settings.max_revisions == 1
        assert settings.tool_calls_per_turn == 5
        assert settings.mid.model == "ollama:qwen3:8b"
        assert settings.mid.base_url == "http://gpu-box:8000/v1"
    assert overridden.max_revisions == 0


def test_api_keys_are_read_from_the_providers_usual_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")

    settings = Settings()

    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-ant-test"
    assert settings.openai_api_key is not None
    assert "sk-openai-test" not in repr(settings), "keys must not leak into logs"


def test_a_model_without_a_provider_prefix_is_a_config_error_that_shows_the_fix() -> None:
    with pytest.raises((ConfigError, ValidationError), match="needs a provider prefix") as info:
        Settings(mid={"model": "claude-haiku-4-5"})

    assert "'anthropic:claude-haiku-4-5'" in str(info.value)


def test_a_model_without_a_provider_prefix_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPHYARD_STRONG__MODEL", "gpt-4.1")

    with pytest.raises((ConfigError, ValidationError), match=r"'gpt-4\.1' needs a provider prefix"):
        Settings()


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path / "graphyard.toml", "max_revision = 3\n")  # typo

    with pytest.raises(ValidationError, match="max_revision"):
        Settings()


# --- tiers -------------------------------------------------------------------------------------


def test_without_an_anthropic_key_mid_and_strong_fall_back_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=TIERS_LOGGER)

    tiers = resolve_tiers(Settings(), LocalModelServer())

    warnings = [r.getMessage() for r in caplog.records if r.name == TIERS_LOGGER]
    assert len(warnings) == 2
    for name in ("mid", "strong"):
        assert tiers[name].model_id == LOCAL_MODEL_ID
        assert tiers[name].fallback_from == Settings().tier(name).model
        assert isinstance(tiers[name].chat_model, BundledChatModel)
        assert tiers[name].supports_tools is False
        mine = [w for w in warnings if f"tier {name!r}" in w]
        assert len(mine) == 1, warnings
        assert "ANTHROPIC_API_KEY" in mine[0]
    assert tiers["cheap"].fallback_from is None


def test_the_fallback_does_not_start_the_bundled_model() -> None:
    local = LocalModelServer()

    resolve_tiers(Settings(), local)

    assert local.running is False


def test_with_an_anthropic_key_mid_and_strong_are_anthropic_models(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_anthropic import ChatAnthropic

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    caplog.set_level(logging.WARNING, logger=TIERS_LOGGER)

    tiers = resolve_tiers(Settings(), LocalModelServer())

    assert [r for r in caplog.records if r.name == TIERS_LOGGER] == []
    for name, model in (("mid", "claude-haiku-4-5"), ("strong", "claude-sonnet-4-5")):
        tier = tiers[name]
        assert isinstance(tier.chat_model, ChatAnthropic)
        assert tier.chat_model.model == model
        assert tier.model_id == f"anthropic:{model}"
        assert tier.fallback_from is None
        assert tier.supports_tools is True
    assert tiers["strong"].max_tokens == 1024


def test_an_ollama_tier_talks_to_its_base_url() -> None:
    from langchain_ollama import ChatOllama

    settings = Settings(
        mid=TierConfig(
            model="ollama:qwen3:8b", base_url="http://gpu-box:11434", context_window=16384
        )
    )

    tier = resolve_tiers(settings, LocalModelServer())["mid"]

    assert isinstance(tier.chat_model, ChatOllama)
    assert tier.chat_model.base_url == "http://gpu-box:11434"
    assert tier.chat_model.model == "qwen3:8b"
    assert tier.context_window == 16384
    assert tier.fallback_from is None


def test_an_openai_compatible_tier_with_a_base_url_needs_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from langchain_openai import ChatOpenAI

    caplog.set_level(logging.WARNING, logger=TIERS_LOGGER)
    settings = Settings(
        strong=TierConfig(model="openai:llama-3.3-70b", base_url="http://vllm:8000/v1")
    )

    tier = resolve_tiers(settings, LocalModelServer())["strong"]

    assert isinstance(tier.chat_model, ChatOpenAI)
    assert tier.chat_model.openai_api_base == "http://vllm:8000/v1"
    assert tier.model_id == "openai:llama-3.3-70b"
    assert tier.fallback_from is None
    assert not any("'strong'" in r.getMessage() for r in caplog.records)


def test_an_openai_tier_without_base_url_or_key_falls_back_naming_openai_api_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=TIERS_LOGGER)
    settings = Settings(strong=TierConfig(model="openai:gpt-4.1"))

    tier = resolve_tiers(settings, LocalModelServer())["strong"]

    assert tier.model_id == LOCAL_MODEL_ID
    assert tier.fallback_from == "openai:gpt-4.1"
    [warning] = [r.getMessage() for r in caplog.records if "'strong'" in r.getMessage()]
    assert "OPENAI_API_KEY" in warning


def test_an_unknown_provider_is_a_config_error_naming_the_tier() -> None:
    settings = Settings(mid=TierConfig(model="bedrock:claude-haiku"))

    with pytest.raises(ConfigError, match=r"tier 'mid': unknown provider 'bedrock'"):
        resolve_tiers(settings, LocalModelServer())


def test_a_local_model_other_than_the_bundled_one_needs_a_model_path() -> None:
    settings = Settings(cheap=TierConfig(model="local:llama-3.2-1b"))

    with pytest.raises(ConfigError, match="GRAPHYARD_LOCAL__MODEL_PATH"):
        resolve_tiers(settings, LocalModelServer())
