"""Serving scripted models: what a test of a graphyard app relies on when it replaces the tiers.

The server tests ran into both; the tests belong with the unit tests of
``graphyard.models`` and ``graphyard._runtime`` once those exist.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from graphyard.config import TIERS, LocalModelConfig, Settings
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel


def test_a_scripted_model_answers_with_a_function_of_the_prompt() -> None:
    model = ScriptedChatModel(responses=[lambda messages: f"seen {len(messages)}", "fixed"])
    assert model.invoke("hi").content == "seen 1"
    assert model.invoke("hi").content == "fixed"


async def test_an_app_whose_tiers_are_all_given_models_starts_without_the_bundled_model(
    settings: Settings, tmp_path: Path
) -> None:
    # A missing GGUF file stands in for a machine where the weights are not installed.
    settings = settings.model_copy(
        update={"local": LocalModelConfig(model_path=tmp_path / "missing.gguf")}
    )
    model = ScriptedChatModel(responses=["Hello."])
    app = create_app(settings, models=dict.fromkeys(TIERS, model))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            assert (await client.get("/ok")).status_code == 200
