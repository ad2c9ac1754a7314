"""One app's observability: its metrics, its tracing and its run log lines, wired to the
run manager and the checkpointer.

The server makes one :class:`Observability` per app and calls :meth:`Observability.attach`
in its lifespan: the run manager then gets a callback handler per run (metrics, spans,
model-call log lines) and tells it when runs start and end (active runs, run duration,
the run's span status, the log context with the run's ids); the checkpointer's writes are
timed. This module must never read the environment (the settings did) nor block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from graphyard.config import Settings
from graphyard.observability._instrument import RunInstrument, time_checkpoint_writes
from graphyard.observability._logging import bind_run
from graphyard.observability._metrics import Metrics
from graphyard.observability._tracing import Tracing

if TYPE_CHECKING:
    from graphyard.server._runs import RunManager
    from graphyard.server._store import RunRecord

__all__ = ["Observability"]

log = logging.getLogger("graphyard.runs")


class Observability:
    """Metrics (unless ``GRAPHYARD_METRICS=off``), tracing (when ``OTEL_*`` asks, or with
    the ``tracer_provider`` given) and run log lines for one app.

    >>> from graphyard.config import Settings
    >>> obs = Observability(Settings())
    >>> obs.metrics is not None, obs.tracing.enabled
    (True, False)
    """

    def __init__(
        self, settings: Settings, *, tracer_provider: Any = None, agent: str = "graphyard"
    ) -> None:
        self.settings = settings
        self.agent = agent
        """``gen_ai.agent.name`` of run spans (the served graph's id once attached)."""
        self.metrics: Metrics | None = None if settings.metrics == "off" else Metrics()
        self.tracing = (
            Tracing(tracer_provider)
            if tracer_provider is not None
            else Tracing.from_settings(settings)
        )
        self._instruments: dict[str, RunInstrument] = {}
        self._started: dict[str, float] = {}

    def attach(self, runs: RunManager, *, saver: Any = None, agent: str | None = None) -> None:
        """Observe every run ``runs`` executes and time ``saver``'s writes."""
        if agent:
            self.agent = agent
        runs.handlers.append(self.handler)
        runs.observers.append(self)
        if saver is not None and self.metrics is not None:
            time_checkpoint_writes(saver, self.metrics)

    def handler(self, run: RunRecord) -> RunInstrument:
        """The callback handler of one run (a ``RunManager`` handler factory)."""
        instrument = RunInstrument(
            run_id=run.run_id,
            thread_id=run.thread_id,
            user_id=run.owner,
            agent=self.agent,
            metrics=self.metrics,
            tracer=self.tracing.tracer,
            prices=self.settings.prices,
            log_content=self.settings.log_content,
        )
        self._instruments[run.run_id] = instrument
        return instrument

    def run_started(self, run: RunRecord) -> None:
        """Called in the run's own task: log records from here on carry its ids."""
        bind_run(run.run_id, run.thread_id, run.owner)
        self._started[run.run_id] = time.perf_counter()
        if self.metrics is not None:
            self.metrics.active_runs.inc()

    def run_finished(self, run: RunRecord, status: str, error: str | None) -> None:
        started = self._started.pop(run.run_id, None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        instrument = self._instruments.pop(run.run_id, None)
        if self.metrics is not None:
            if started is not None:
                self.metrics.active_runs.dec()
            self.metrics.runs.labels(status).inc()
            self.metrics.run_duration.labels(status).observe(seconds)
        fields: dict[str, Any] = {
            "event": "run_finished",
            "status": status,
            "seconds": round(seconds, 4),
        }
        if instrument is not None:
            instrument.close(status, error)
            totals = instrument.totals
            fields |= {
                "model_calls": totals.calls,
                "input_tokens": totals.input_tokens,
                "output_tokens": totals.output_tokens,
                "cost_usd": round(totals.cost_usd, 8),
            }
            if instrument.ttft is not None:
                fields["ttft_seconds"] = round(instrument.ttft, 4)
        log.info("run %s %s in %.3f s", run.run_id, status, seconds, extra=fields)

    async def aclose(self) -> None:
        """Flush and stop graphyard's own tracer provider (off the event loop)."""
        if self.tracing.owned:
            await asyncio.to_thread(self.tracing.shutdown)
