"""Prometheus metrics: the series graphyard exports on ``/metrics``, and the ASGI middleware
that counts requests.

Every app owns a :class:`Metrics` with its own ``CollectorRegistry`` (never the process-wide
default), so two apps in one process (tests, a server beside a CLI) never collide or share
counts. Labels are bounded: routes are templates (``/threads/{thread_id}/runs``), never raw
paths; tiers and models come from configuration; statuses are HTTP or run statuses.

This module must never label a series with anything a caller controls without bound
(paths, thread or user ids, message text): every label value multiplies the series kept
in memory and by Prometheus.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""

UNMATCHED_ROUTE = "<unmatched>"
"""The ``route`` label of requests no route matched (404s, bodies refused before routing)."""

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TTFT = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
_RUN = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_MODEL = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_CHECKPOINT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """graphyard's Prometheus series, in a registry of their own.

    >>> m = Metrics()
    >>> m.tokens.labels(tier="cheap", model="local:smollm2", type="output").inc(12)
    >>> b'graphyard_model_tokens_total{model="local:smollm2",tier="cheap",type="output"} 12.0' in m.render()
    True
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "graphyard_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_errors = Counter(
            "graphyard_http_request_errors",
            "HTTP requests that failed on the server side (status 5xx or an exception).",
            ["method", "route"],
            registry=r,
        )
        self.request_latency = Histogram(
            "graphyard_http_request_duration_seconds",
            "Seconds from a request's arrival to its response headers (a stream's first byte).",
            ["method", "route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.active_streams = Gauge(
            "graphyard_active_streams",
            "Server-sent event streams open right now.",
            registry=r,
        )
        self.active_runs = Gauge(
            "graphyard_active_runs",
            "Runs executing in this process right now.",
            registry=r,
        )
        self.runs = Counter(
            "graphyard_runs",
            "Runs finished in this process, by final status.",
            ["status"],
            registry=r,
        )
        self.run_duration = Histogram(
            "graphyard_run_duration_seconds",
            "Seconds a run executed, from start to its final status.",
            ["status"],
            buckets=_RUN,
            registry=r,
        )
        self.ttft = Histogram(
            "graphyard_time_to_first_token_seconds",
            "Seconds from a run's start to the first answer token of its first model call "
            "that answered with text (the whole answer when the model did not stream), by "
            "the tier of that call.",
            ["tier"],
            buckets=_TTFT,
            registry=r,
        )
        self.model_calls = Counter(
            "graphyard_model_calls",
            "Chat model calls, by tier, model and outcome (ok or error).",
            ["tier", "model", "outcome"],
            registry=r,
        )
        self.model_latency = Histogram(
            "graphyard_model_call_duration_seconds",
            "Seconds a chat model call took, by tier and model.",
            ["tier", "model"],
            buckets=_MODEL,
            registry=r,
        )
        self.tokens = Counter(
            "graphyard_model_tokens",
            "Tokens reported by chat models, by tier, model and type: input (including "
            "cached), output, cache_read, cache_write.",
            ["tier", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "graphyard_model_cost_dollars",
            "Dollars spent on chat model calls at current prices, by tier and model.",
            ["tier", "model"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "graphyard_cache_lookups",
            "Answer-cache lookups by cache and result (hit or miss).",
            ["cache", "result"],
            registry=r,
        )
        self.cache_saved = Counter(
            "graphyard_cache_saved_dollars",
            "Dollars the model calls that cache hits replaced had cost.",
            ["cache"],
            registry=r,
        )
        self.router_decisions = Counter(
            "graphyard_router_decisions",
            "Tiers chosen by the router node, one per routed request.",
            ["tier"],
            registry=r,
        )
        self.checkpoint_writes = Histogram(
            "graphyard_checkpoint_write_duration_seconds",
            "Seconds the checkpointer took to store a checkpoint (put) or a step's pending "
            "writes (put_writes).",
            ["operation"],
            buckets=_CHECKPOINT,
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class MetricsMiddleware:
    """ASGI middleware: requests, server errors and latency by route template; open SSE
    streams. Adds one dictionary lookup and three metric updates per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = self.metrics
        started = time.perf_counter()
        status = 0
        streaming = counted = False

        def count(failed: bool = False) -> None:
            nonlocal counted
            counted = True
            method, route = scope["method"], _route_of(scope)
            m.requests.labels(method, route, str(status)).inc()
            if failed or status >= 500:
                m.request_errors.labels(method, route).inc()

        async def observed_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = int(message["status"])
                m.request_latency.labels(scope["method"], _route_of(scope)).observe(
                    time.perf_counter() - started
                )
                streaming = _is_event_stream(message)
                if streaming:
                    m.active_streams.inc()
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # counted before the last byte leaves, so a client that has read the whole
                # response finds it counted
                if streaming:
                    streaming = False
                    m.active_streams.dec()
                if not counted:
                    count()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            if not status:
                status = 500
            if not counted:
                count(failed=True)
            raise
        except BaseException:  # cancelled: the client went away or the server is stopping
            if not status:
                status = 499  # as nginx says: the client closed the request
            if not counted:
                count()
            raise
        finally:
            if streaming:  # the stream ended without its last body message
                m.active_streams.dec()
        if not counted:  # the app returned without finishing the response
            status = status or 500
            count()


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers") or ():
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"text/event-stream")
    return False
