"""OpenTelemetry tracing: off by default, on with the standard ``OTEL_*`` variables.

Which exporters to use is decided here from :class:`~graphyard.config.Settings` (which reads
``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``
and ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``); everything else (endpoint, headers,
timeout, compression, sampler, batch sizes, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``) the OpenTelemetry SDK and its exporters read themselves, as
they document. Two deliberate differences from the SDK's own auto-configuration:

- tracing is *off* unless ``OTEL_TRACES_EXPORTER`` names an exporter or an OTLP endpoint
  is set (the SDK would default to ``otlp``);
- ``otlp`` with no protocol set means ``http/protobuf`` (the OpenTelemetry specification's
  recommended default, and the exporter the ``otel`` extra installs), where the Python SDK
  defaults to gRPC.

If a global SDK ``TracerProvider`` is already configured (e.g. by ``opentelemetry-instrument``)
graphyard uses it; otherwise it builds its own and leaves the global one alone.

Without ``opentelemetry-sdk`` installed tracing is a no-op, and if the variables ask for it
the server says so once. This module must never export anything when tracing is off, nor
block the event loop: spans are exported by the SDK's batch processor in its own thread.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from graphyard.config import Settings
from graphyard.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Tracing", "exporter_names"]

log = logging.getLogger(__name__)

_PROTOCOLS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_INSTALL_HINT = {
    "otlp_proto_http": "pip install 'graphyard[otel]'",
    "otlp_proto_grpc": "pip install opentelemetry-exporter-otlp-proto-grpc, or set "
    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
}


def exporter_names(settings: Settings) -> list[str]:
    """The SDK entry point names of the span exporters the settings ask for (none: off).

    >>> exporter_names(Settings())
    []
    >>> exporter_names(Settings(otel_exporter_otlp_endpoint="http://collector:4318"))
    ['otlp_proto_http']
    >>> exporter_names(Settings(otel_traces_exporter="console,otlp", otel_exporter_otlp_protocol="grpc"))
    ['console', 'otlp_proto_grpc']
    """
    if settings.otel_sdk_disabled:
        return []
    given = settings.otel_traces_exporter
    if given is None:
        names = ["otlp"] if settings.otel_exporter_otlp_endpoint else []
    else:
        names = [n.strip().lower() for n in given.split(",") if n.strip()]
    if names == ["none"]:
        return []
    out: list[str] = []
    for name in names:
        if name == "otlp":
            protocol = (settings.otel_exporter_otlp_protocol or "http/protobuf").strip()
            if protocol not in _PROTOCOLS:
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use "
                    "http/protobuf (the default) or grpc"
                )
            name = _PROTOCOLS[protocol]
        if name != "none" and name not in out:
            out.append(name)
    return out


@functools.cache
def _say_sdk_missing(names: tuple[str, ...]) -> None:
    log.warning(
        "OTEL_* variables ask for traces (%s) but opentelemetry-sdk is not installed; "
        "tracing is off. Install it with: pip install 'graphyard[otel]'",
        ", ".join(names),
    )


class Tracing:
    """Where graphyard's spans go: a ``TracerProvider``, or nowhere.

    >>> Tracing.from_settings(Settings()).enabled
    False
    """

    def __init__(self, provider: Any = None, *, owned: bool = False) -> None:
        self.provider = provider
        """The SDK ``TracerProvider`` spans are sent to; ``None`` when tracing is off."""
        self.owned = owned
        """Whether graphyard built the provider (and so shuts it down)."""
        self.tracer: Tracer | None = None
        if provider is not None:
            import graphyard

            self.tracer = provider.get_tracer("graphyard", graphyard.__version__)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """Tracing as the ``OTEL_*`` variables ask; off when they don't (or the SDK is missing)."""
        names = exporter_names(settings)
        if not names:
            return cls()
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.util._importlib_metadata import entry_points
        except ImportError:
            _say_sdk_missing(tuple(names))
            return cls()
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            log.info("tracing: using the TracerProvider already configured in this process")
            return cls(current)
        exporters = []
        for name in names:
            found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
            if not found:
                hint = _INSTALL_HINT.get(name, "check OTEL_TRACES_EXPORTER")
                raise ConfigError(f"no OpenTelemetry span exporter {name!r} is installed: {hint}")
            exporters.append(found[0].load())
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "graphyard"}))
        provider = TracerProvider(resource=resource)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter()))
        log.info("tracing: exporting spans with %s", ", ".join(names))
        return cls(provider, owned=True)

    def shutdown(self) -> None:
        """Flush and stop graphyard's own provider (blocking: call it off the event loop)."""
        if self.owned and self.provider is not None:
            self.provider.shutdown()
