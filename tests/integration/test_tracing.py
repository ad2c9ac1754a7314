"""OpenTelemetry tracing: the span tree of a run, in memory and exported over OTLP.

In-process, the app is given an SDK ``TracerProvider`` with an ``InMemorySpanExporter``;
over real uvicorn, tracing is turned on by the standard ``OTEL_*`` variables alone and the
spans arrive at a small OTLP/HTTP receiver in this test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from scripted_server import ServerProcess, read_stream

from graphyard.config import TIERS, ModelPrice, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

PRICE = ModelPrice(input=1.0, output=5.0)


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_one_run_is_a_span_tree_of_run_nodes_model_and_tool_calls(
    settings: Settings, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans_out = exporter
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    settings = settings.model_copy(
        update={**tiers, "api_keys": {"sk-alice": "alice"}, "prices": {"scripted:cheap": PRICE}}
    )
    model = ScriptedChatModel(responses=["Order A1001 has shipped and arrives Friday."])
    app = create_app(settings, models=dict.fromkeys(TIERS, model), tracer_provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://g", headers={"x-api-key": "sk-alice"}
        ) as client:
            body = (
                await client.post("/chat/trace-1", json={"content": "where is order A1001"})
            ).text
            runs = (await client.get("/threads/trace-1/runs")).json()
    summary = [line for line in body.splitlines() if '"cost_usd"' in line]
    assert summary, body
    spans = _wait_for_run_span(spans_out)

    by_id = {s.context.span_id: s for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["invoke_agent support"]
    root = roots[0]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    attrs = root.attributes or {}
    assert attrs["graphyard.run_id"] == runs[0]["run_id"]
    assert attrs["graphyard.thread_id"] == attrs["gen_ai.conversation.id"] == "trace-1"
    assert attrs["user.id"] == "alice"
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["graphyard.run.status"] == "success"

    def parent_name(span: ReadableSpan) -> str:
        assert span.parent is not None
        return by_id[span.parent.span_id].name

    nodes = [s for s in spans if s.name.startswith("node ")]
    assert {parent_name(n) for n in nodes} == {root.name}
    node_names = [n.name for n in sorted(nodes, key=lambda s: s.start_time or 0)]
    assert node_names[:4] == ["node router", "node trim", "node planner", "node executor"]
    assert node_names[-1] == "node critic"

    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert [t.name for t in tools] == ["execute_tool order_status"]
    assert parent_name(tools[0]) == "node executor"
    assert (tools[0].attributes or {})["gen_ai.tool.name"] == "order_status"

    chats = [s for s in spans if s.name.startswith("chat ")]
    assert chats and all(parent_name(c) == "node planner" for c in chats)
    calls = [c.attributes or {} for c in chats]
    for call in calls:
        assert call["gen_ai.operation.name"] == "chat"
        assert call["graphyard.tier"] == "cheap" and call["graphyard.model"] == "scripted:cheap"
        assert call["gen_ai.provider.name"] == "scripted"
        assert call["gen_ai.usage.input_tokens"] > 0 and call["gen_ai.usage.output_tokens"] > 0
        expected = (
            call["gen_ai.usage.input_tokens"] * 1.0 + call["gen_ai.usage.output_tokens"] * 5.0
        ) / 1e6
        assert call["graphyard.cost_usd"] == pytest.approx(expected)
    assert attrs["gen_ai.usage.input_tokens"] == sum(c["gen_ai.usage.input_tokens"] for c in calls)
    assert attrs["graphyard.cost_usd"] == pytest.approx(sum(c["graphyard.cost_usd"] for c in calls))
    assert len(model.calls) == len(chats)
    text = "".join(str(v) for s in spans for v in (s.attributes or {}).values())
    assert "A1001 has shipped" not in text and "where is order" not in text  # no content


async def test_an_interrupted_run_span_is_not_an_error_and_is_ended(
    settings: Settings, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans_out = exporter
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    model = ScriptedChatModel(responses=["A ticket it is."])
    app = create_app(
        settings.model_copy(update=tiers),
        models=dict.fromkeys(TIERS, model),
        tracer_provider=provider,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            body = (
                await client.post(
                    "/chat/trace-2", json={"content": "I want a real person, open a ticket"}
                )
            ).text
    assert '"interrupt"' in body  # create_ticket waits for approval
    spans = _wait_for_run_span(spans_out)
    root = next(s for s in spans if s.parent is None)
    assert root.status.is_ok and (root.attributes or {})["graphyard.run.status"] == "success"
    waiting = [s for s in spans if (s.attributes or {}).get("graphyard.interrupted")]
    assert waiting, [s.name for s in spans]
    assert all(s.status.is_ok for s in waiting)
    assert all(s.end_time is not None for s in spans)


def _wait_for_run_span(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The run's span ends when its final status is stored, just after its stream ends."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = list(exporter.get_finished_spans())
        if any(s.parent is None for s in spans):
            return spans
        time.sleep(0.02)
    raise AssertionError(f"no run span: {[s.name for s in exporter.get_finished_spans()]}")


class _Receiver(BaseHTTPRequestHandler):
    requests: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.requests.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Receiver", (_Receiver,), {"requests": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.mark.server
def test_otel_variables_alone_turn_tracing_on_and_spans_reach_an_otlp_endpoint(
    start_server: Callable[..., ServerProcess],
    otlp_receiver: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, received = otlp_receiver
    server = start_server(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": url,
            "OTEL_SERVICE_NAME": "support-bot",
            "GRAPHYARD_ROUTER": "rules",  # "hello" goes to the cheap tier
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    with server.client() as client:
        assert read_stream(client, "otlp-1", {"content": "hello"}).status == 200
    deadline = time.monotonic() + 15
    names: dict[str, dict[str, Any]] = {}
    services: set[str] = set()
    while time.monotonic() < deadline and "invoke_agent support" not in names:
        for path, body in list(received):
            assert path == "/v1/traces"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for attr in resource_spans.resource.attributes:
                    if attr.key == "service.name":
                        services.add(attr.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        names[span.name] = {a.key: a.value for a in span.attributes}
        time.sleep(0.1)
    assert "invoke_agent support" in names, (names, server.log())
    assert {"node router", "node planner", "chat cheap"} <= set(names)
    assert names["invoke_agent support"]["graphyard.thread_id"].string_value == "otlp-1"
    assert names["chat cheap"]["gen_ai.usage.output_tokens"].int_value > 0
    assert services == {"support-bot"}


async def test_metrics_and_tracing_do_not_block_the_event_loop(
    settings: Settings, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    from blockbuster import blockbuster_ctx

    provider, spans_out = exporter
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    model = ScriptedChatModel(responses=["Order A1001 has shipped."])
    app = create_app(
        settings.model_copy(update=tiers),
        models=dict.fromkeys(TIERS, model),
        tracer_provider=provider,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            with blockbuster_ctx(["graphyard", "langgraph", "langchain_core", "opentelemetry"]):
                turn = await client.post("/chat/nb-1", json={"content": "where is order A1001"})
                scrape = await client.get("/metrics")
    assert turn.status_code == 200 and '"error"' not in turn.text
    assert "graphyard_model_tokens_total" in scrape.text
    assert any(s.name == "chat cheap" for s in spans_out.get_finished_spans())
