"""The LangChain callback handler that records every model call of a run and enforces budgets.

One handler per run (the server attaches it through ``RunManager.handlers``). For each chat
model call it reads the tier and model from the call's metadata (``graphyard_tier`` /
``graphyard_model``, which :meth:`graphyard.models.Tier.call_config` sets; for user graphs
LangChain's ``ls_provider`` / ``ls_model_name`` and tier ``unknown``), and

- before the call: checks every budget against what was spent so far plus the prompt's
  estimated cost, and refuses the call (:class:`OverBudget`) if it would not fit;
- on each streamed token: adds the token's estimated output cost to the call's running
  cost and stops the call the moment a budget is exceeded (the provider bills tokens as
  they stream, so waiting for the end would overspend by a whole answer);
- at the end: queues a :class:`CallRecord` with the provider's own ``usage_metadata``
  (an aborted call is recorded too, with its tokens estimated).

Calls that reach no provider are neither checked nor recorded: answers from graphyard's
answer cache, and calls a replay serves from its recording or refuses
(:func:`graphyard.replay.replay_answers`), so a thread over its budget can still be replayed.

A call that is not streamed (``ainvoke`` with no ``messages`` stream mode) is checked before
it starts and counted when it ends, but cannot be cut short: its answer is paid for by then,
so it is kept and the run's next call is refused. (Forcing such calls to stream would mean
posing as LangChain's ``_StreamingCallbackHandler``, and ``Runnable.astream`` taps only the
first such handler, so ours could hide ``astream_events``' own.)

LangChain swallows exceptions raised in callbacks unless the handler sets ``raise_error``:
this one does, and raises only :class:`OverBudget` on purpose; any other failure in here
is logged and ignored, so a ledger problem never breaks a run. ``run_inline`` keeps the
checks on the model's own task, in order with the tokens.

The token path does arithmetic only: no I/O, no price lookup (per-token prices are
computed once per call). Budgets are enforced for async model calls (``ainvoke``,
``astream``, what LangGraph's async API uses); LangChain runs an async handler's methods
for a *sync* model call in a separate event loop and always swallows their errors there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import LLMResult

from graphyard.config import ModelPrice, Settings
from graphyard.ledger._budgets import BudgetName, Budgets, OverBudget
from graphyard.ledger._records import CallRecord, CallStatus
from graphyard.ledger._store import Ledger, utc_day_start
from graphyard.models import CACHE_HIT_METADATA_KEY, call_cost, is_replayed, model_of
from graphyard.replay import replay_answers

__all__ = ["LedgerHandler", "RunIdentity", "handler_factory"]

log = logging.getLogger(__name__)


class _QuietBudgetStops(logging.Filter):
    """LangChain logs every exception a callback raises as "Error in ... callback", even
    with ``raise_error``; a budget stop is not an error of the handler, so drop that line
    (the server logs the stop itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            len(args) == 3 and args[0] == "LedgerHandler" and str(args[2]).startswith("OverBudget(")
        )


logging.getLogger("langchain_core.callbacks.manager").addFilter(_QuietBudgetStops())

_MTOK = 1_000_000
_CHARS_PER_TOKEN = 4  # what count_tokens_approximately assumes


class RunIdentity(Protocol):
    """What the handler needs to know about a run (the server's ``RunRecord`` has it)."""

    run_id: str
    thread_id: str
    owner: str


@dataclass(slots=True)
class _Call:
    model: str
    tier: str
    node: str | None
    started_at: float
    started: float
    input_tokens: int
    input_cost: float
    output_price: float
    """Dollars per output token."""
    limits: list[tuple[BudgetName, float, float]] = field(default_factory=list)
    """``(budget, limit, spent before this call)`` for each budget that is set."""
    output_tokens: int = 0
    stopped: bool = False

    @property
    def running_cost(self) -> float:
        return self.input_cost + self.output_tokens * self.output_price


def _usage(response: LLMResult) -> UsageMetadata | None:
    for generations in response.generations:
        for generation in generations:
            message = getattr(generation, "message", None)
            if message is not None and getattr(message, "usage_metadata", None):
                return message.usage_metadata  # type: ignore[no-any-return]
    token_usage = (response.llm_output or {}).get("token_usage") or {}
    if token_usage:
        inp = int(token_usage.get("prompt_tokens") or 0)
        out = int(token_usage.get("completion_tokens") or 0)
        return UsageMetadata(input_tokens=inp, output_tokens=out, total_tokens=inp + out)
    return None


class LedgerHandler(AsyncCallbackHandler):
    """Records one run's model calls in a :class:`Ledger` and stops the run over budget.

    >>> import asyncio
    >>> from graphyard.config import ModelPrice
    >>> from graphyard.ledger import Budgets, LedgerHandler, OverBudget, open_ledger
    >>> from graphyard.models import ScriptedChatModel
    >>> async def main() -> str:
    ...     async with open_ledger("sqlite:///:memory:") as ledger:
    ...         handler = LedgerHandler(ledger, run_id="r1", thread_id="t1", user_id="alice",
    ...             budgets=Budgets(run_usd=0.03),
    ...             prices={"scripted:x": ModelPrice(output=10_000)})  # $0.01 per token
    ...         model = ScriptedChatModel(responses=["one two three four five"])
    ...         config = {"callbacks": [handler], "metadata": {"graphyard_model": "scripted:x"}}
    ...         try:
    ...             async for _ in model.astream("hi", config):
    ...                 pass
    ...         except OverBudget as exc:
    ...             return exc.budget
    ...         return "finished"
    >>> asyncio.run(main())
    'run'
    """

    raise_error = True
    run_inline = True

    def __init__(
        self,
        ledger: Ledger,
        *,
        run_id: str,
        thread_id: str,
        user_id: str,
        budgets: Budgets | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
        thread_since: Callable[[], Awaitable[float | None]] | float | None = None,
    ) -> None:
        self.ledger = ledger
        self.run_id, self.thread_id, self.user_id = run_id, thread_id, user_id
        self.budgets = budgets or Budgets()
        self.prices: Mapping[str, ModelPrice] = prices or {}
        self._thread_since = thread_since
        self._since_known = not callable(thread_since)
        self._calls: dict[UUID, _Call] = {}
        self.spent_usd = 0.0
        """Dollars this run's finished (or aborted) calls cost."""

    # --- callbacks -------------------------------------------------------------------------

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            tokens = sum(count_tokens_approximately(m) for m in messages)
        except Exception:  # an unusual message type must not break the run
            tokens = 0
        await self._start(run_id, metadata or {}, tokens)

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tokens = sum(len(p) for p in prompts) // _CHARS_PER_TOKEN
        await self._start(run_id, metadata or {}, tokens)

    async def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        call = self._calls.get(run_id)
        if call is None or call.stopped:
            return
        message = getattr(chunk, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage and usage.get("output_tokens"):
            call.output_tokens = int(usage["output_tokens"])  # the provider's own count
        elif token:
            # one token per chunk (OpenAI, llama.cpp, Ollama), or ~4 characters per token
            # for providers that stream several tokens at once (Anthropic)
            call.output_tokens += max(1, len(token) // _CHARS_PER_TOKEN)
        else:
            return
        cost = call.running_cost
        for budget, limit, before in call.limits:
            if before + cost > limit:
                call.stopped = True
                raise OverBudget(budget, limit, before + cost)

    async def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        call = self._calls.pop(run_id, None)
        if call is None or is_replayed(response):
            return  # a replay served this answer from its recording: nothing was spent
        try:
            usage = _usage(response)
            if usage is None:  # a model that reports nothing: count what we saw
                self._store(run_id, call, "ok", None)
            else:
                self._store(run_id, call, "ok", usage)
        except Exception:
            log.exception("could not record model call %s in the ledger", run_id)

    async def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        try:
            self._store(run_id, call, "aborted", None)
        except Exception:
            log.exception("could not record aborted model call %s in the ledger", run_id)

    # --- internals -------------------------------------------------------------------------

    async def _start(self, call_id: UUID, metadata: Mapping[str, Any], tokens: int) -> None:
        if metadata.get(CACHE_HIT_METADATA_KEY):
            return  # an answer replayed from graphyard's cache: no model was called
        if replay_answers(call_id):
            # a replay serves this call from its recording (or refuses it): nothing is
            # sent, so no budget may refuse it and nothing is recorded
            return
        try:
            tier, model = model_of(metadata)
            input_cost = call_cost(
                model,
                UsageMetadata(input_tokens=tokens, output_tokens=0, total_tokens=tokens),
                self.prices,
            )
            output_price = (
                call_cost(
                    model,
                    UsageMetadata(input_tokens=0, output_tokens=_MTOK, total_tokens=_MTOK),
                    self.prices,
                )
                / _MTOK
            )
            call = _Call(
                model=model,
                tier=tier,
                node=metadata.get("langgraph_node"),
                started_at=time.time(),
                started=time.monotonic(),
                input_tokens=tokens,
                input_cost=input_cost,
                output_price=output_price,
            )
        except Exception:
            log.exception("ledger: could not start tracking model call %s", call_id)
            return
        try:
            call.limits = await self._spent_so_far()
        except Exception:  # the database is unreachable: record the call, skip the checks
            log.exception("ledger: could not read spend; budgets unchecked for call %s", call_id)
        self._calls[call_id] = call
        for budget, limit, before in call.limits:
            if before + call.input_cost > limit:
                call.stopped = True
                del self._calls[call_id]  # refused before it started: nothing was spent
                raise OverBudget(budget, limit, before, next_call_usd=call.input_cost)

    async def _spent_so_far(self) -> list[tuple[BudgetName, float, float]]:
        limits = self.budgets.limits()
        if not limits:
            return []
        in_flight = sum(c.running_cost for c in self._calls.values())
        out: list[tuple[BudgetName, float, float]] = []
        for budget, limit in limits:
            if budget == "run":
                spent = self.spent_usd + in_flight
            elif budget == "thread":
                spent = in_flight + await self.ledger.spend(
                    thread_id=self.thread_id, since=await self._since()
                )
            else:
                spent = in_flight + await self.ledger.spend(
                    user_id=self.user_id, since=utc_day_start()
                )
            out.append((budget, limit, spent))
        return out

    async def _since(self) -> float | None:
        if not self._since_known:
            assert callable(self._thread_since)
            self._thread_since = await self._thread_since()
            self._since_known = True
        return self._thread_since  # type: ignore[return-value]

    def _store(
        self, call_id: UUID, call: _Call, status: CallStatus, usage: UsageMetadata | None
    ) -> None:
        if usage is None:
            usage = UsageMetadata(
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                total_tokens=call.input_tokens + call.output_tokens,
            )
        details = usage.get("input_token_details") or {}
        cost = call_cost(call.model, usage, self.prices)
        self.spent_usd += cost
        self.ledger.record(
            CallRecord(
                call_id=str(call_id),
                run_id=self.run_id,
                thread_id=self.thread_id,
                user_id=self.user_id,
                tier=call.tier,
                model=call.model,
                node=call.node,
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                cache_read_tokens=int(details.get("cache_read") or 0),
                cache_write_tokens=int(details.get("cache_creation") or 0),
                cost_usd=cost,
                latency_s=time.monotonic() - call.started,
                started_at=call.started_at,
                status=status,
            )
        )


def handler_factory(
    ledger: Ledger,
    settings: Settings,
    *,
    thread_created: Callable[[str], Awaitable[float | None]] | None = None,
) -> Callable[[RunIdentity], LedgerHandler]:
    """A ``RunManager.handlers`` factory: one :class:`LedgerHandler` per run, with the
    budgets and prices of ``settings``. ``thread_created(thread_id)`` gives the thread's
    creation time: a thread's budget counts only calls made since (a deleted thread's
    calls stay in the ledger and must not count against a new thread of the same id).

    >>> import asyncio
    >>> from types import SimpleNamespace
    >>> from graphyard.config import Settings
    >>> from graphyard.ledger import open_ledger
    >>> async def main() -> str:
    ...     async with open_ledger("sqlite:///:memory:") as ledger:
    ...         make = handler_factory(ledger, Settings(budget_run_usd=1.0))
    ...         return make(SimpleNamespace(run_id="r1", thread_id="t1", owner="alice")).user_id
    >>> asyncio.run(main())
    'alice'
    """
    budgets = Budgets.from_settings(settings)

    def make(run: RunIdentity) -> LedgerHandler:
        since: Callable[[], Awaitable[float | None]] | None = None
        if thread_created is not None:
            created = thread_created

            def since() -> Awaitable[float | None]:
                return created(run.thread_id)

        return LedgerHandler(
            ledger,
            run_id=run.run_id,
            thread_id=run.thread_id,
            user_id=run.owner,
            budgets=budgets,
            prices=settings.prices,
            thread_since=since,
        )

    return make
