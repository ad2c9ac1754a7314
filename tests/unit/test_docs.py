"""The README's configuration reference and examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import graphyard
from graphyard.config import Settings, config_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_matches_the_settings_class() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- config-reference:.*?-->\n(.*?)\n<!-- /config-reference -->", text, re.S
    )
    assert block, "README lost its generated configuration reference"
    assert block.group(1) == config_reference(), (
        "README's configuration table is stale; regenerate it from "
        "graphyard.config.config_reference()"
    )


def test_readme_toml_example_configures_graphyard(tmp_path: Path) -> None:
    toml = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert toml
    (tmp_path / "graphyard.toml").write_text(toml.group(1), encoding="utf-8")

    settings = Settings()  # reads ./graphyard.toml (the test runs in tmp_path)

    assert settings.mid.model == "ollama:qwen3:8b"
    assert settings.mid.base_url == "http://gpu-box:11434"
    assert settings.mid.max_tokens == 512  # unset fields keep their defaults
    assert settings.prices["ollama:qwen3:8b"].output == 0.10
    assert settings.checkpointer.endswith("threads.db")


def test_public_api_is_pinned() -> None:
    assert sorted(graphyard.__all__) == sorted(
        [
            "AgentState",
            "BudgetExceeded",
            "ConfigError",
            "GraphSource",
            "GraphyardError",
            "ModelUnavailable",
            "RunError",
            "Runtime",
            "Settings",
            "ThreadBusy",
            "ThreadNotFound",
            "TierConfig",
            "__version__",
            "open_runtime",
        ]
    )
    for name in graphyard.__all__:
        assert hasattr(graphyard, name)
