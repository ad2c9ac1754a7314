"""Observability: Prometheus metrics, OpenTelemetry traces and structured JSON logs.

- ``/metrics`` (``GRAPHYARD_METRICS``): requests and errors by route template, time to first
  token and run duration histograms, tokens and dollars by tier and model, router
  decisions, checkpoint write latency, active runs and SSE streams (:class:`Metrics`).
- Tracing, off by default, on with the standard ``OTEL_*`` variables: a span per run, per
  graph node, per model call and tool call, with GenAI semantic-convention attributes
  (:class:`Tracing`; needs ``pip install 'graphyard[otel]'``).
- Logs as JSON lines carrying the run, thread and user ids of the run that logged them;
  never message content unless ``GRAPHYARD_LOG_CONTENT`` asks (:func:`configure_logging`).

The server wires all of it through one :class:`Observability` per app.
"""

from graphyard.observability._hub import Observability
from graphyard.observability._instrument import RunInstrument, model_of, time_checkpoint_writes
from graphyard.observability._logging import (
    JsonFormatter,
    TextFormatter,
    bind_run,
    configure_logging,
    current_ids,
    run_context,
)
from graphyard.observability._metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from graphyard.observability._tracing import Tracing, exporter_names

__all__ = [
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
