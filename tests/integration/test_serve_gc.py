"""``graphyard serve`` hides its startup heap from the garbage collector (full collections
took 180-280 ms under load without it); an app made for tests leaves the collector alone."""

from __future__ import annotations

import gc

import httpx

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel


async def _frozen_while_serving(settings: Settings, *, freeze: bool) -> int:
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    model = ScriptedChatModel(responses=["Hello."])
    app = create_app(
        settings.model_copy(update=tiers),
        models=dict.fromkeys(TIERS, model),
        freeze_startup_heap=freeze,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
                assert (await client.get("/ok")).status_code == 200
            return gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process goes on making apps


async def test_serve_freezes_the_startup_heap_and_tests_do_not(settings: Settings) -> None:
    gc.unfreeze()
    assert await _frozen_while_serving(settings, freeze=False) == 0
    assert await _frozen_while_serving(settings, freeze=True) > 10_000
