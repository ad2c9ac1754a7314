"""What one run reports while it executes: a LangChain callback handler for its metrics,
spans and model-call log lines, and the timing of the checkpointer's writes.

:class:`RunInstrument` is attached to a run's config (``RunManager.handlers``). From the
callbacks it sees it records, per chat model call, tokens, dollars and latency by tier and
model (``graphyard_tier``/``graphyard_model`` metadata from ``Tier.call_config``; for user
graphs LangChain's ``ls_provider``/``ls_model_name`` and tier ``unknown``); the run's time
to first token; the router node's decision; and, when tracing is on, a span tree: the run,
then one span per graph node, then one per model call and tool call, with GenAI
semantic-convention attributes (``gen_ai.usage.input_tokens``...).

It runs inline on the event loop (``run_inline``): every callback is a few dictionary
operations and metric updates. It must never do I/O, raise into the graph, or put message
content in a log record or span unless ``log_content`` is set.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult

from graphyard.config import TIERS, ModelPrice
from graphyard.models import CACHE_HIT_METADATA_KEY, call_cost, is_replayed, model_of

CACHE_EVENT = "graphyard_cache"
"""The custom callback event ``graphyard.caching`` dispatches on every answer-cache lookup."""

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from graphyard.observability._metrics import Metrics

__all__ = ["RunInstrument", "model_of", "time_checkpoint_writes"]

log = logging.getLogger("graphyard.runs")

UNKNOWN = "unknown"
_ROUTER_NODE = "router"


def _usage_counts(result: LLMResult) -> tuple[dict[str, Any], str, str | None, str | None]:
    """Summed ``usage_metadata``, answer text, response model and finish reason."""
    usage: dict[str, Any] = {}
    text, model, finish = "", None, None
    for generations in result.generations:
        for gen in generations:
            if not isinstance(gen, ChatGeneration):
                text += gen.text
                continue
            message = gen.message
            text += message.text if hasattr(message, "text") else str(message.content)
            meta = message.response_metadata or {}
            model = model or meta.get("model_name") or meta.get("model")
            finish = finish or meta.get("finish_reason") or meta.get("stop_reason")
            got = getattr(message, "usage_metadata", None) or {}
            for key in ("input_tokens", "output_tokens", "total_tokens"):
                usage[key] = usage.get(key, 0) + int(got.get(key) or 0)
            details = got.get("input_token_details") or {}
            if details:
                mine = usage.setdefault("input_token_details", {})
                for key in ("cache_read", "cache_creation"):
                    mine[key] = mine.get(key, 0) + int(details.get(key) or 0)
    return usage, text, model, finish


@dataclass(slots=True)
class _Call:
    tier: str
    model: str
    started: float
    span: Span | None = None
    prompt: list[dict[str, str]] | None = None
    cached: bool = False
    """An answer replayed from graphyard's answer cache: no model was called."""


@dataclass(slots=True)
class Totals:
    """What a run's model calls added up to."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class RunInstrument(BaseCallbackHandler):
    """One run's metrics, spans and model-call log lines (see the module docstring)."""

    run_inline = True
    raise_error = False

    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str,
        user_id: str | None,
        agent: str,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
        log_content: bool = False,
    ) -> None:
        self.run_id, self.thread_id, self.user_id, self.agent = run_id, thread_id, user_id, agent
        self.metrics = metrics
        self.tracer = tracer
        self.prices = prices or {}
        self.log_content = log_content
        self.started = time.perf_counter()
        self.ttft: float | None = None
        """Seconds from the run's start to its first answer token (None before it)."""
        self.totals = Totals()
        self._calls: dict[UUID, _Call] = {}
        self._router_runs: set[UUID] = set()
        self._root: Span | None = None
        self._spans: dict[UUID, Span] = {}
        """Open spans of chains and tool calls, by LangChain run id."""
        self._nearest: dict[UUID, Span] = {}
        """Every open chain or tool run -> the span its children nest under."""

    # --- chains: the graph, its nodes, and what runs inside them --------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name")
        meta = metadata or {}
        node = meta.get("langgraph_node")
        is_node = name is not None and name == node and _is_step(tags)
        if is_node and name == _ROUTER_NODE:
            self._router_runs.add(run_id)
        if self.tracer is None:
            return
        if parent_run_id is None or self._root is None:
            if self._root is None:
                self._root = self._start_root()
                self._spans[run_id] = self._root
            self._nearest[run_id] = self._root
            return
        parent = self._nearest.get(parent_run_id, self._root)
        if is_node:
            span = self._start(
                f"node {name}",
                parent,
                {"graphyard.node": str(name), "graphyard.step": int(meta.get("langgraph_step", 0))},
            )
            self._spans[run_id] = span
            self._nearest[run_id] = span
        else:
            self._nearest[run_id] = parent

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id in self._router_runs:
            self._router_runs.discard(run_id)
            tier = outputs.get("tier") if isinstance(outputs, dict) else None
            if self.metrics is not None and tier in TIERS:
                self.metrics.router_decisions.labels(tier).inc()
        if self.tracer is not None:
            self._nearest.pop(run_id, None)
            self._end(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._router_runs.discard(run_id)
        if self.tracer is not None:
            self._nearest.pop(run_id, None)
            self._end(run_id, error)

    # --- chat model calls ---------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tier, model = model_of(metadata or {})
        call = _Call(tier, model, time.perf_counter())
        if (metadata or {}).get(CACHE_HIT_METADATA_KEY):
            # the cached answer streams through a stand-in model: its first token is the
            # user's first token, but it is no model call (no tokens, dollars or span)
            call.cached = True
            self._calls[run_id] = call
            return
        if self.log_content:
            call.prompt = [
                {"role": getattr(m, "type", "?"), "content": str(getattr(m, "content", m))}
                for batch in messages
                for m in batch
            ]
        if self.tracer is not None:
            provider, _, name = model.partition(":")
            parent = self._nearest.get(parent_run_id) if parent_run_id else None
            call.span = self._start(
                f"chat {name or model}",
                parent or self._root,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": provider if name else UNKNOWN,
                    "gen_ai.request.model": name or model,
                    "graphyard.tier": tier,
                    "graphyard.model": model,
                },
                client=True,
            )
        self._calls[run_id] = call

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        if self.ttft is None and token:
            call = self._calls.get(run_id)
            self._first_token(call.tier if call else UNKNOWN)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        if call.cached or is_replayed(response):
            # a cached answer, or one a replay served from its recording: nothing spent
            if self.ttft is None:
                self._first_token(call.tier)
            if call.span is not None:
                call.span.end()
            return
        seconds = time.perf_counter() - call.started
        usage, text, response_model, finish = _usage_counts(response)
        if self.ttft is None and text:
            self._first_token(call.tier)  # the model did not stream: the answer is the first token
        details = usage.get("input_token_details") or {}
        counts = {
            "input": int(usage.get("input_tokens") or 0),
            "output": int(usage.get("output_tokens") or 0),
            "cache_read": int(details.get("cache_read") or 0),
            "cache_write": int(details.get("cache_creation") or 0),
        }
        cost = call_cost(call.model, usage, self.prices) if usage else 0.0  # type: ignore[arg-type]
        totals = self.totals
        totals.calls += 1
        totals.input_tokens += counts["input"]
        totals.output_tokens += counts["output"]
        totals.cost_usd += cost
        if (m := self.metrics) is not None:
            m.model_calls.labels(call.tier, call.model, "ok").inc()
            m.model_latency.labels(call.tier, call.model).observe(seconds)
            for kind, count in counts.items():
                m.tokens.labels(call.tier, call.model, kind).inc(count)
            m.cost.labels(call.tier, call.model).inc(cost)
        if call.span is not None:
            attributes: dict[str, Any] = {
                "gen_ai.usage.input_tokens": counts["input"],
                "gen_ai.usage.output_tokens": counts["output"],
                "gen_ai.usage.cache_read.input_tokens": counts["cache_read"],
                "gen_ai.usage.cache_creation.input_tokens": counts["cache_write"],
                "graphyard.cost_usd": cost,
            }
            if response_model:
                attributes["gen_ai.response.model"] = str(response_model)
            if finish:
                attributes["gen_ai.response.finish_reasons"] = [str(finish)]
            call.span.set_attributes(attributes)
            call.span.end()
        fields: dict[str, Any] = {
            "event": "model_call",
            "tier": call.tier,
            "model": call.model,
            "input_tokens": counts["input"],
            "output_tokens": counts["output"],
            "cache_read_tokens": counts["cache_read"],
            "cache_write_tokens": counts["cache_write"],
            "cost_usd": round(cost, 8),
            "seconds": round(seconds, 4),
        }
        if self.log_content:
            fields["prompt"] = call.prompt
            fields["answer"] = text
        log.info(
            "model call %s (%s): %d in / %d out tokens, $%.6f, %.3f s",
            call.model,
            call.tier,
            counts["input"],
            counts["output"],
            cost,
            seconds,
            extra=fields,
        )

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Answer-cache hits and misses (``graphyard.caching``) and the dollars hits saved."""
        if name != CACHE_EVENT or self.metrics is None or not isinstance(data, dict):
            return
        cache = str(data.get("cache") or UNKNOWN)
        if data.get("type") == "cache_hit":
            self.metrics.cache_lookups.labels(cache, "hit").inc()
            self.metrics.cache_saved.labels(cache).inc(float(data.get("saved_usd") or 0.0))
        elif data.get("type") == "cache_miss":
            self.metrics.cache_lookups.labels(cache, "miss").inc()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._calls.pop(run_id, None)
        if call is None or call.cached:
            return
        if self.metrics is not None:
            self.metrics.model_calls.labels(call.tier, call.model, "error").inc()
            self.metrics.model_latency.labels(call.tier, call.model).observe(
                time.perf_counter() - call.started
            )
        if call.span is not None:
            _fail(call.span, error)
            call.span.end()

    # --- tools --------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if self.tracer is None:
            return
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        parent = self._nearest.get(parent_run_id) if parent_run_id else None
        span = self._start(
            f"execute_tool {name}",
            parent or self._root,
            {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name},
        )
        self._spans[run_id] = span
        self._nearest[run_id] = span

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if self.tracer is not None:
            self._nearest.pop(run_id, None)
            self._end(run_id, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if self.tracer is not None:
            self._nearest.pop(run_id, None)
            self._end(run_id, error)

    # --- the run as a whole -------------------------------------------------------------

    def close(self, status: str, error: str | None = None) -> None:
        """The run is over: end every span still open (a cancelled run leaves some), the
        run's span last, with the run's status and totals."""
        for run_id in [r for r, s in self._spans.items() if s is not self._root]:
            self._end(run_id, None)
        for call in self._calls.values():
            if call.span is not None:
                call.span.end()
        self._calls.clear()
        root = self._root
        if root is None:
            return
        root.set_attributes(
            {
                "graphyard.run.status": status,
                "graphyard.model_calls": self.totals.calls,
                "gen_ai.usage.input_tokens": self.totals.input_tokens,
                "gen_ai.usage.output_tokens": self.totals.output_tokens,
                "graphyard.cost_usd": self.totals.cost_usd,
            }
        )
        if status == "error":
            from opentelemetry.trace import Status, StatusCode

            root.set_status(Status(StatusCode.ERROR, error or "run failed"))
        root.end()
        self._root = None
        self._spans.clear()
        self._nearest.clear()

    # --- helpers ------------------------------------------------------------------------

    def _first_token(self, tier: str) -> None:
        self.ttft = time.perf_counter() - self.started
        if self.metrics is not None:
            self.metrics.ttft.labels(tier).observe(self.ttft)

    def _start_root(self) -> Span:
        assert self.tracer is not None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self.agent,
            "gen_ai.conversation.id": self.thread_id,
            "graphyard.run_id": self.run_id,
            "graphyard.thread_id": self.thread_id,
        }
        if self.user_id:
            attributes["user.id"] = self.user_id
            attributes["graphyard.user_id"] = self.user_id
        return self.tracer.start_span(f"invoke_agent {self.agent}", attributes=attributes)

    def _start(
        self, name: str, parent: Span | None, attributes: dict[str, Any], *, client: bool = False
    ) -> Span:
        from opentelemetry import trace

        assert self.tracer is not None
        return self.tracer.start_span(
            name,
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL,
            attributes={**attributes, "graphyard.run_id": self.run_id},
        )

    def _end(self, run_id: UUID, error: BaseException | None) -> None:
        span = self._spans.pop(run_id, None)
        if span is None or span is self._root:
            return  # the run's span ends in close(), with the run's final status
        if error is not None:
            _fail(span, error)
        span.end()


def _is_step(tags: list[str] | None) -> bool:
    return bool(tags) and any(t.startswith("graph:step:") for t in tags)  # type: ignore[union-attr]


def _fail(span: Span, error: BaseException) -> None:
    from langgraph.errors import GraphBubbleUp
    from opentelemetry.trace import Status, StatusCode

    if isinstance(error, GraphBubbleUp):  # interrupt(): waiting for a human, not a failure
        span.set_attribute("graphyard.interrupted", True)
        return
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}"))
    span.set_attribute("error.type", type(error).__name__)


def time_checkpoint_writes(saver: Any, metrics: Metrics) -> None:
    """Time ``saver.aput`` and ``saver.aput_writes`` into
    ``graphyard_checkpoint_write_duration_seconds`` (idempotent).

    The saver keeps its type and every other method: only these two instance attributes
    are wrapped, keeping their signatures (LangGraph inspects ``aput_writes`` for
    ``task_path``).

    >>> import asyncio
    >>> from langgraph.checkpoint.memory import InMemorySaver
    >>> from graphyard.observability import Metrics
    >>> saver, m = InMemorySaver(), Metrics()
    >>> time_checkpoint_writes(saver, m)
    >>> type(saver).__name__, hasattr(saver.aput_writes, "__wrapped__")
    ('InMemorySaver', True)
    """
    for attr, operation in (("aput", "put"), ("aput_writes", "put_writes")):
        original = getattr(saver, attr)
        if not getattr(original, "_graphyard_timed", False):
            setattr(saver, attr, _timed(original, metrics.checkpoint_writes.labels(operation)))


def _timed(original: Any, histogram: Any) -> Any:
    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    timed._graphyard_timed = True  # type: ignore[attr-defined]
    return timed
