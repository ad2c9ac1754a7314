"""``/metrics``: what Prometheus scrapes after real runs, over real uvicorn and in-process.

The token, cost and latency series are checked against what the run itself reported in
its ``/chat`` stream (the turn's usage and cost), with a price configured for the scripted
model so that dollars are not zero.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage
from prometheus_client.parser import text_string_to_metric_families
from scripted_server import ServerProcess, iter_sse, read_stream

from graphyard.config import TIERS, ModelPrice, Settings, TierConfig
from graphyard.models import call_cost
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

PRICES = {"scripted:cheap": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(client: httpx.Client, until: Callable[[Samples], bool] | None = None) -> Samples:
    """Scrape ``/metrics`` (again, for up to 10 s, until ``until`` holds)."""
    deadline = time.monotonic() + 10
    while True:
        response = client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        samples = parse(response.text)
        if until is None or until(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def run_finished(samples: Samples) -> bool:
    """The run's final status is stored (it is, shortly after its stream ends)."""
    return (value(samples, "graphyard_runs_total", status="success") or 0) >= 1


@pytest.mark.server
def test_a_scrape_after_a_run_shows_its_tokens_cost_and_latency_by_tier_and_model(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        response="Hello! How can I help you with your order today?",
        env={"GRAPHYARD_ROUTER": "rules", "GRAPHYARD_PRICES": json.dumps(PRICES)},
    )
    with server.client() as client:
        stream = read_stream(client, "metrics-thread-1", {"content": "hello there"})
        assert stream.status == 200
        summary = stream.summary
        samples = scrape(client, until=run_finished)

    usage = summary["usage"]
    assert summary["tier"] == "cheap" and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    model = {"tier": "cheap", "model": "scripted:cheap"}
    tokens = "graphyard_model_tokens_total"
    assert value(samples, tokens, type="input", **model) == usage["input_tokens"]
    assert value(samples, tokens, type="output", **model) == usage["output_tokens"]
    assert value(samples, tokens, type="cache_read", **model) == 0
    dollars = value(samples, "graphyard_model_cost_dollars_total", **model)
    expected = (usage["input_tokens"] * 3.0 + usage["output_tokens"] * 15.0) / 1e6
    assert dollars == pytest.approx(expected) and dollars == pytest.approx(summary["cost_usd"])
    assert value(samples, "graphyard_model_calls_total", outcome="ok", **model) == 1

    assert value(samples, "graphyard_time_to_first_token_seconds_count", tier="cheap") == 1
    ttft = value(samples, "graphyard_time_to_first_token_seconds_sum", tier="cheap")
    run = value(samples, "graphyard_run_duration_seconds_sum", status="success")
    assert value(samples, "graphyard_run_duration_seconds_count", status="success") == 1
    assert ttft is not None and run is not None and 0 < ttft <= run
    assert value(samples, "graphyard_router_decisions_total", tier="cheap") == 1
    assert (
        value(samples, "graphyard_checkpoint_write_duration_seconds_count", operation="put") or 0
    ) >= 1
    assert (
        value(samples, "graphyard_checkpoint_write_duration_seconds_count", operation="put_writes")
        or 0
    ) >= 1

    chat = {"method": "POST", "route": "/chat/{thread_id}"}
    assert value(samples, "graphyard_http_requests_total", status="200", **chat) == 1
    assert value(samples, "graphyard_http_request_duration_seconds_count", **chat) == 1
    assert all("metrics-thread-1" not in v for (_, labels) in samples for _, v in labels)
    assert value(samples, "graphyard_active_runs") == 0
    assert value(samples, "graphyard_active_streams") == 0


@pytest.mark.server
def test_active_runs_and_streams_count_a_stream_while_it_is_open(
    slow_server: ServerProcess,
) -> None:
    with slow_server.client() as client, httpx.Client(base_url=slow_server.url) as scraper:
        with client.stream("POST", "/chat/gauges-1", json={"content": "hello"}) as response:
            frames = iter_sse(response)
            for kind, frame in frames:
                if kind == "data" and isinstance(frame, dict) and frame.get("token"):
                    during = scrape(scraper)  # the answer is still streaming
                    break
            for _ in frames:
                pass
        after = scrape(
            scraper,
            until=lambda s: (
                value(s, "graphyard_active_runs") == 0 and value(s, "graphyard_active_streams") == 0
            ),
        )
    assert value(during, "graphyard_active_runs") == 1
    assert value(during, "graphyard_active_streams") == 1
    assert value(after, "graphyard_active_runs") == 0
    assert value(after, "graphyard_active_streams") == 0


async def _app_client(settings: Settings, model: ScriptedChatModel) -> Any:
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    return create_app(settings.model_copy(update=tiers), models=dict.fromkeys(TIERS, model))


async def test_cache_tokens_and_their_dollars_are_counted_as_the_model_reports_them(
    settings: Settings,
) -> None:
    usage = {
        "input_tokens": 1200,
        "output_tokens": 40,
        "total_tokens": 1240,
        "input_token_details": {"cache_read": 1000, "cache_creation": 100},
    }
    answer = AIMessage(content="Your order shipped yesterday.", usage_metadata=usage)  # type: ignore[arg-type]
    prices = {k: ModelPrice(**v) for k, v in PRICES.items()}
    app = await _app_client(
        settings.model_copy(update={"prices": prices}), ScriptedChatModel(responses=[answer])
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            response = await client.post("/chat/cache-1", json={"content": "hello"})
            assert response.status_code == 200
            assert (await client.get("/no/such/page/123")).status_code == 404
            samples = parse((await client.get("/metrics")).text)

    model = {"tier": "cheap", "model": "scripted:cheap"}
    tokens = "graphyard_model_tokens_total"
    assert value(samples, tokens, type="input", **model) == 1200
    assert value(samples, tokens, type="output", **model) == 40
    assert value(samples, tokens, type="cache_read", **model) == 1000
    assert value(samples, tokens, type="cache_write", **model) == 100
    expected = (100 * 3.0 + 1000 * 0.3 + 100 * 3.75 + 40 * 15.0) / 1e6
    assert call_cost("scripted:cheap", usage, prices) == pytest.approx(expected)  # type: ignore[arg-type]
    assert value(samples, "graphyard_model_cost_dollars_total", **model) == pytest.approx(expected)
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(samples, "graphyard_http_requests_total", **unmatched) == 1
    assert (
        value(samples, "graphyard_http_request_errors_total", method="GET", route="<unmatched>")
        is None
    )


async def test_metrics_need_an_api_key_when_auth_is_on_unless_configured_open(
    settings: Settings,
) -> None:
    keys = {"sk-ops": "ops"}
    for access, anonymous_status in (("auth", 401), ("open", 200)):
        app = await _app_client(
            settings.model_copy(update={"api_keys": keys, "metrics": access}),
            ScriptedChatModel(responses=["ok"]),
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
                anonymous = await client.get("/metrics")
                assert anonymous.status_code == anonymous_status, access
                if anonymous_status == 401:
                    assert anonymous.json()["error"] == "unauthorized"
                    wrong = await client.get("/metrics", headers={"x-api-key": "sk-wrong"})
                    assert wrong.status_code == 401
                keyed = await client.get("/metrics", headers={"authorization": "Bearer sk-ops"})
                assert keyed.status_code == 200
                assert "graphyard_http_requests_total" in keyed.text


async def test_metrics_off_serves_no_endpoint_and_records_nothing(settings: Settings) -> None:
    app = await _app_client(
        settings.model_copy(update={"metrics": "off"}), ScriptedChatModel(responses=["ok"])
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            assert (await client.post("/chat/off-1", json={"content": "hi"})).status_code == 200
            assert (await client.get("/metrics")).status_code == 404
    assert app.state.observability.metrics is None
    saver = app.state.services.runtime.saver
    assert not hasattr(saver.aput, "__wrapped__")  # the checkpointer was left alone


async def test_two_apps_in_one_process_keep_separate_counts(
    settings: Settings, tmp_path: Path
) -> None:
    apps = []
    for name in ("a", "b"):
        apps.append(
            await _app_client(
                settings.model_copy(
                    update={
                        "checkpointer": f"sqlite:///{tmp_path / name}.db",
                        "shop_db": tmp_path / f"{name}.shop",
                    }
                ),
                ScriptedChatModel(responses=["ok"]),
            )
        )
    counts = []
    for i, app in enumerate(apps):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
                for _ in range(i + 1):
                    assert (await client.get("/ok")).status_code == 200
                samples = parse((await client.get("/metrics")).text)
        counts.append(
            value(samples, "graphyard_http_requests_total", method="GET", route="/ok", status="200")
        )
    assert counts == [1, 2]


async def test_an_answer_cache_hit_counts_as_a_hit_and_its_savings_not_as_a_model_call(
    settings: Settings,
) -> None:
    usage = {"input_tokens": 300, "output_tokens": 30, "total_tokens": 330}
    answer = AIMessage(content="Refunds take five to seven days.", usage_metadata=usage)  # type: ignore[arg-type]
    prices = {f"scripted:{t}": ModelPrice(**PRICES["scripted:cheap"]) for t in TIERS}
    model = ScriptedChatModel(responses=[answer])
    app = await _app_client(settings.model_copy(update={"prices": prices}), model)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            for thread in ("first", "second"):  # the same help question, two threads
                response = await client.post(
                    f"/chat/{thread}", json={"content": "What is your refund policy?"}
                )
                assert response.status_code == 200
            samples = parse((await client.get("/metrics")).text)

    calls = {
        dict(labels)["model"]: v
        for (name, labels), v in samples.items()
        if name == "graphyard_model_calls_total"
    }
    [(served_by, count)] = calls.items()  # the hit added no call of any model
    assert served_by.startswith("scripted:") and count == len(model.calls) == 1
    assert value(samples, "graphyard_cache_lookups_total", cache="answers", result="hit") == 1
    assert value(samples, "graphyard_cache_lookups_total", cache="answers", result="miss") == 1
    saved = value(samples, "graphyard_cache_saved_dollars_total", cache="answers")
    assert saved == pytest.approx(call_cost(served_by, usage, prices))  # type: ignore[arg-type]
    assert saved > 0
