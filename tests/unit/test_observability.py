"""graphyard.observability: log formats, tracing configuration from OTEL_* variables,
checkpoint write timing and the metric registry."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from prometheus_client.parser import text_string_to_metric_families

import graphyard.observability as obs
from graphyard.config import Settings
from graphyard.errors import ConfigError
from graphyard.observability import (
    JsonFormatter,
    Metrics,
    TextFormatter,
    Tracing,
    _tracing,
    configure_logging,
    exporter_names,
    model_of,
    run_context,
    time_checkpoint_writes,
)
from graphyard.observability._logging import resolve_format
from graphyard.persistence import open_saver


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("graphyard.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_run_ids_only_inside_the_run_and_the_extra_fields() -> None:
    formatter = JsonFormatter()
    outside = json.loads(formatter.format(_record("hello %s", "you")))
    with run_context("run-1", "thread-1", "alice"):
        inside = json.loads(formatter.format(_record("tokens", tier="cheap", input_tokens=12)))
    assert outside["message"] == "hello you" and outside["level"] == "info"
    assert "run_id" not in outside and "thread_id" not in outside
    assert inside["run_id"] == "run-1" and inside["thread_id"] == "thread-1"
    assert inside["user_id"] == "alice"
    assert inside["tier"] == "cheap" and inside["input_tokens"] == 12
    assert inside["ts"].endswith("+00:00") and inside["logger"] == "graphyard.test"


def test_a_json_line_with_an_exception_carries_its_traceback_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "", 0, "failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_text_lines_name_the_run_thread_and_user_after_the_message() -> None:
    with run_context("r9", "t9", "bob"):
        line = TextFormatter().format(_record("model call"))
    assert line == "INFO graphyard.test: model call [run=r9 thread=t9 user=bob]"
    assert TextFormatter().format(_record("idle")) == "INFO graphyard.test: idle"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_log_format_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert resolve_format("auto", _Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _Tty()) == "json"


def test_configure_logging_sends_uvicorn_lines_through_the_json_format() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("json", "info", stream=out)
        logging.getLogger("uvicorn.error").info(
            "Started server process", extra={"color_message": "\x1b[1m"}
        )
        line = json.loads(out.getvalue().splitlines()[-1])
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert line["logger"] == "uvicorn.error" and line["message"] == "Started server process"
    assert "color_message" not in line


def test_tracing_is_off_unless_an_exporter_or_an_otlp_endpoint_is_set() -> None:
    assert exporter_names(Settings()) == []
    assert exporter_names(Settings(otel_traces_exporter="none")) == []
    assert exporter_names(Settings(otel_exporter_otlp_endpoint="http://c:4318")) == [
        "otlp_proto_http"
    ]
    assert exporter_names(
        Settings(otel_traces_exporter="otlp", otel_exporter_otlp_protocol="grpc")
    ) == ["otlp_proto_grpc"]
    assert exporter_names(Settings(otel_traces_exporter="console", otel_sdk_disabled=True)) == []


def test_the_standard_otel_variables_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    assert exporter_names(Settings()) == ["otlp_proto_http", "console"]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert exporter_names(Settings()) == []


def test_an_unknown_otlp_protocol_or_exporter_is_a_config_error_that_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match="http/protobuf"):
        exporter_names(Settings(otel_traces_exporter="otlp", otel_exporter_otlp_protocol="smtp"))
    with pytest.raises(ConfigError, match="no OpenTelemetry span exporter 'zipkin_nope'"):
        Tracing.from_settings(Settings(otel_traces_exporter="zipkin_nope"))
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"):
        Tracing.from_settings(
            Settings(otel_traces_exporter="otlp", otel_exporter_otlp_protocol="grpc")
        )


def test_tracing_from_otel_variables_builds_its_own_provider_named_graphyard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing = Tracing.from_settings(Settings(otel_traces_exporter="console"))
    try:
        assert tracing.enabled and tracing.owned
        assert tracing.provider.resource.attributes["service.name"] == "graphyard"
    finally:
        tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    named = Tracing.from_settings(Settings(otel_traces_exporter="console"))
    try:
        assert named.provider.resource.attributes["service.name"] == "support-bot"
    finally:
        named.shutdown()


def test_without_the_sdk_tracing_is_a_no_op_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails
    _tracing._say_sdk_missing.cache_clear()
    settings = Settings(otel_exporter_otlp_endpoint="http://collector:4318")
    with caplog.at_level(logging.WARNING, logger="graphyard.observability._tracing"):
        first = Tracing.from_settings(settings)
        second = Tracing.from_settings(settings)
    assert not first.enabled and not second.enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pip install 'graphyard[otel]'" in warnings[0]
    _tracing._say_sdk_missing.cache_clear()


def test_model_calls_of_user_graphs_fall_back_to_langchains_model_metadata() -> None:
    assert model_of(
        {"graphyard_tier": "strong", "graphyard_model": "anthropic:claude-sonnet-4-5"}
    ) == (
        "strong",
        "anthropic:claude-sonnet-4-5",
    )
    assert model_of({"ls_provider": "ollama", "ls_model_name": "qwen3:8b"}) == (
        "unknown",
        "ollama:qwen3:8b",
    )
    assert model_of({}) == ("unknown", "unknown")


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.router_decisions.labels("mid").inc()
    assert b'graphyard_router_decisions_total{tier="mid"} 1.0' in a.render()
    assert b"graphyard_router_decisions_total{" not in b.render()


async def test_a_timed_sqlite_saver_still_passes_the_conformance_suite_and_is_timed(
    tmp_path: Path,
) -> None:
    metrics = Metrics()

    @checkpointer_test(name="graphyard-sqlite-timed")
    async def factory() -> AsyncIterator[object]:
        async with open_saver(f"sqlite:///{tmp_path / uuid.uuid4().hex}.db") as saver:
            time_checkpoint_writes(saver, metrics)
            time_checkpoint_writes(saver, metrics)  # idempotent: timed once
            yield saver

    report = await validate(factory, capabilities={c.value for c in BASE_CAPABILITIES})
    assert report.passed_all_base(), {
        k: r.failures for k, r in report.results.items() if r.failures
    }
    counts = {
        s.labels["operation"]: s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
        if s.name == "graphyard_checkpoint_write_duration_seconds_count"
    }
    assert counts["put"] > 0 and counts["put_writes"] > 0


def test_the_public_api_is_pinned() -> None:
    assert sorted(obs.__all__) == sorted(
        [
            "CONTENT_TYPE",
            "JsonFormatter",
            "Metrics",
            "MetricsMiddleware",
            "Observability",
            "RunInstrument",
            "TextFormatter",
            "Tracing",
            "bind_run",
            "configure_logging",
            "current_ids",
            "exporter_names",
            "model_of",
            "run_context",
            "time_checkpoint_writes",
        ]
    )
    for name in obs.__all__:
        assert hasattr(obs, name)
