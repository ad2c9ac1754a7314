"""Replay a thread from any checkpoint with the recorded model outputs, or live; fork; diff.

LangGraph's own replay re-executes every node after a checkpoint and calls the models
again: it costs money and answers differently each time. A graphyard replay serves each
model call from the recording instead, and reports the first call the recording does not
have (the code or the prompt changed) as a *divergence*: the step, the node and a short
diff of the request against the recorded one. Then it stops, or with ``live=True`` lets
that call and the rest go to the real models.

How a model call is answered from the recording, and why this way
-----------------------------------------------------------------
LangChain consults a ``BaseCache`` before every chat model call it makes through
``invoke``/``ainvoke``/``generate`` (what LangGraph nodes, ``create_agent`` and
``ToolNode`` users do), whatever the model class. So replay installs one process-wide
cache, :class:`ReplayCache`, that answers only inside a replay: the replay's
:class:`ReplaySession` travels in a ``ContextVar``, which LangGraph copies into every task
of that run and of no other, so concurrent live runs in the same server never see it (the
cache passes their lookups to whatever global cache was set before, or misses). This works
for any user graph without wrapping its models; wrapping the tiers' models would only
cover the reference agent.

Deciding is done one step earlier, by :class:`ReplayGuard`, a callback handler that runs
inline: at ``on_chat_model_start`` it fingerprints the request, finds the recorded call at
the same step, node and order, and queues for the cache lookup that LangChain makes next
(before any request leaves the process) either the recorded answer or, in recorded mode, a
refusal: the lookup raises :class:`ReplayDivergence` and the call is never made. A model that skips the cache
(built with ``cache=False``, or streamed with ``.astream()`` directly) is caught at its
first token or its end and the replay fails with :class:`ModelCallForbidden`: recorded mode
allows no model call at all, and the counts in the result say how many were served and
how many went live.

The guard is the first callback of a replay, so the run's cost ledger can ask
:func:`replay_answers` whether a call reaches a provider: served and refused calls are
neither budgeted nor billed. An answer cache that skips the model on a hit must follow the
recording, not its own contents, or a turn it answers now but not then (or the reverse)
diverges: :func:`recorded_answer_cache_hit` tells it which; a stand-in call it makes is
recorded with tier ``cache``.

Tools run live, from today's code
---------------------------------
Tools are the code under test: after a fix, a replay must run the fixed tool, and a tool
that still fails reproduces its error. Their recorded outputs are compared, not served.
A high-impact tool guarded by ``interrupt()`` (``create_ticket``) therefore pauses the
replay for a fresh approval instead of acting twice.

Where the replay goes
---------------------
A copy of the chosen checkpoint (its delta channels materialized, so it stands on its
own) is written as a new child of it, a new branch of the same thread, or with
``fork=True`` as the first checkpoint of a new thread; the graph then runs from the copy.
The original branch is never changed. Step numbers carry over, which is what lets a
replayed task find its recording.

This module must never call a model in recorded mode and never write to the original
branch.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.messages import BaseMessage, messages_from_dict
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from graphyard.errors import ConfigError, RunError
from graphyard.replay._branches import (
    _copy,
    _root_checkpoints,
    _turn_start,
    find_lineage,
)
from graphyard.replay._diff import diff_requests, diff_states
from graphyard.replay._record import (
    ANSWER_CACHE_TIER,
    CACHE_HIT_METADATA_KEY,
    REPLAYED_KEY,
    RecordingHandler,
    _tool_names,
    canonical_request,
    fingerprint,
    model_name,
    task_info,
)
from graphyard.replay._store import Recording, recording_store

__all__ = [
    "Divergence",
    "ModelCallForbidden",
    "ReplayCache",
    "ReplayDivergence",
    "ReplayGuard",
    "ReplayResult",
    "ReplaySession",
    "find_lineage",
    "recorded_answer_cache_hit",
    "replay",
    "replay_answers",
    "replay_events",
]


class ReplayDivergence(RunError):
    """The replayed graph asked a model for something the recording does not have."""


class ModelCallForbidden(RunError):
    """A model was called during a recorded-mode replay (it bypassed the recording)."""


@dataclass(slots=True)
class Divergence:
    """The first request of a replay that the recording does not have."""

    step: int
    node: str
    seq: int
    reason: str
    diff: list[str] = field(default_factory=list)
    recorded_fingerprint: str | None = None
    fingerprint: str | None = None

    def message(self) -> str:
        return f"step {self.step}, node {self.node!r}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Outcome:
    recording: Recording | None
    task_key: str
    consumed: bool = False
    refused: str | None = None
    """Why this call may not be made (a divergence in recorded mode)."""


class ReplaySession:
    """The recorded calls one replay may use, and what it did with them."""

    def __init__(self, recordings: Sequence[Recording], *, live: bool = False) -> None:
        self.live = live
        self._index: dict[tuple[str, int, str, int], list[Recording]] = {}
        for r in recordings:
            if r.kind == "model":
                self._index.setdefault((r.checkpoint_ns, r.step, r.node, r.seq), []).append(r)
        self.tools_recorded = [r for r in recordings if r.kind == "tool"]
        self._seq: dict[str, int] = {}
        self._queued: dict[str, deque[_Outcome]] = {}
        self._by_run: dict[UUID, _Outcome] = {}
        self.divergence: Divergence | None = None
        self.served = 0
        self.live_calls = 0
        self.tool_calls = 0
        self.tool_errors: list[str] = []

    # called by ReplayGuard.on_chat_model_start, before the model is asked anything
    def decide(
        self, run_id: UUID, messages: Sequence[BaseMessage], metadata: Any, params: Any
    ) -> None:
        where = task_info(metadata)
        if where is None:
            raise ReplayDivergence(
                "a model was called outside any graph task; replay serves only graph tasks"
            )
        path, _, _, step, node = where
        seq = self._seq.get(where.key, 0)
        self._seq[where.key] = seq + 1
        request = canonical_request(
            messages, model=model_name(metadata, params), tools=_tool_names(params)
        )
        fp = fingerprint(request)
        candidates = self._index.get((path, step, node, seq), [])
        match = next((c for c in candidates if c.fingerprint == fp and c.error is None), None)
        outcome = _Outcome(match, where.key)
        if match is None:
            stand_in = bool((metadata or {}).get(CACHE_HIT_METADATA_KEY))
            if candidates:
                recorded = candidates[-1]
                reason = (
                    f"the recorded call failed ({recorded.error})"
                    if recorded.fingerprint == fp
                    else "the model request differs from the recorded one"
                )
                if stand_in != (recorded.tier == ANSWER_CACHE_TIER):
                    reason += (
                        " (the answer cache answered this turn now but not in the recording)"
                        if stand_in
                        else " (the recording was answered from the answer cache)"
                    )
                found = Divergence(
                    step,
                    node,
                    seq,
                    reason,
                    diff_requests(recorded.input, request),
                    recorded.fingerprint,
                    fp,
                )
            else:
                found = Divergence(
                    step,
                    node,
                    seq,
                    f"the recording has no model call #{seq + 1} of node {node!r} at this step"
                    " (the graph took another path"
                    + (
                        "; the answer cache answered this turn now but not in the recording)"
                        if stand_in
                        else ")"
                    ),
                    diff_requests({"messages": []}, request),
                    None,
                    fp,
                )
            if self.divergence is None:
                self.divergence = found
            if not self.live:
                # refused by the cache lookup that follows, before any request is sent;
                # raising here would leave LangChain's other handlers' coroutines unawaited
                outcome.refused = found.message()
        self._queued.setdefault(where.key, deque()).append(outcome)
        self._by_run[run_id] = outcome

    def answers(self, run_id: UUID) -> bool:
        """Whether the replay answers this model call itself (served from the recording, or
        refused in recorded mode): no request leaves the process, so nothing is spent."""
        outcome = self._by_run.get(run_id)
        return outcome is not None and (
            outcome.recording is not None or outcome.refused is not None
        )

    def recorded_cache_hit(self) -> bool:
        """Whether the recording answered the running task's next model call from
        graphyard's answer cache (a stand-in call, see :data:`ANSWER_CACHE_TIER`)."""
        config = var_child_runnable_config.get() or {}
        where = task_info(config.get("metadata"))
        if where is None:
            return False
        path, _, _, step, node = where
        seq = self._seq.get(where.key, 0)
        return any(
            r.tier == ANSWER_CACHE_TIER for r in self._index.get((path, step, node, seq), [])
        )

    # called by ReplayCache.lookup, right after decide() for the same call
    def take(self) -> list[ChatGeneration] | None:
        config = var_child_runnable_config.get() or {}
        where = task_info(config.get("metadata"))
        queue = self._queued.get(where.key) if where else None
        if not queue:
            return None
        outcome = queue.popleft()
        if outcome.refused is not None:
            raise ReplayDivergence(outcome.refused)
        if outcome.recording is None:
            return None  # live after a divergence
        outcome.consumed = True
        message = messages_from_dict([outcome.recording.output])[0]
        # a cost ledger can tell a served answer (nothing spent) from a real call by this
        message.response_metadata = {**message.response_metadata, REPLAYED_KEY: True}
        return [ChatGeneration(message=message)]

    def check(self, run_id: UUID, *, ended: bool) -> None:
        outcome = self._by_run.get(run_id)
        if outcome is None:
            return
        if ended:
            del self._by_run[run_id]
            queue = self._queued.get(outcome.task_key)
            if queue and outcome in queue:
                queue.remove(outcome)
            if outcome.consumed:
                self.served += 1
            else:
                self.live_calls += 1
        if outcome.refused is not None:
            raise ReplayDivergence(outcome.refused)
        if outcome.recording is not None and not outcome.consumed and not self.live:
            raise ModelCallForbidden(
                "a model was called during a recorded replay: it bypassed LangChain's cache "
                "(cache=False, or .astream() called directly); replay it with live=True"
            )


_session: contextvars.ContextVar[ReplaySession | None] = contextvars.ContextVar(
    "graphyard_replay_session", default=None
)


def replay_answers(run_id: UUID) -> bool:
    """Whether the replay running in this context answers the model call ``run_id`` itself
    (from its recording, or by refusing it), so the call costs nothing: a cost ledger
    neither budgets nor records it. ``False`` outside a replay.

    >>> import uuid
    >>> replay_answers(uuid.uuid4())
    False
    """
    session = _session.get()
    return session is not None and session.answers(run_id)


def recorded_answer_cache_hit() -> bool | None:
    """For an answer cache, in a graph node before its model call: ``None`` outside a
    replay (use the cache as usual); inside one, whether the recording answered this
    task's next model call from the answer cache. A replay follows the recording: on
    ``False`` the cache must miss (and store nothing), so the replay makes the recorded call.

    >>> recorded_answer_cache_hit() is None
    True
    """
    session = _session.get()
    return None if session is None else session.recorded_cache_hit()


class ReplayCache(BaseCache):
    """The process-wide LLM cache: answers from the recording inside a replay, else defers
    to the cache that was set before (or misses)."""

    def __init__(self, fallback: BaseCache | None = None) -> None:
        self.fallback = fallback

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        session = _session.get()
        if session is None:
            return self.fallback.lookup(prompt, llm_string) if self.fallback else None
        return session.take()  # type: ignore[return-value]

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        session = _session.get()
        if session is None:
            return await self.fallback.alookup(prompt, llm_string) if self.fallback else None
        return session.take()  # type: ignore[return-value]

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.fallback is not None and _session.get() is None:
            self.fallback.update(prompt, llm_string, return_val)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.fallback is not None and _session.get() is None:
            await self.fallback.aupdate(prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        if self.fallback is not None:
            self.fallback.clear(**kwargs)


def install_cache() -> ReplayCache:
    """Install :class:`ReplayCache` as LangChain's global cache (once; keeps the old one)."""
    current = get_llm_cache()
    if isinstance(current, ReplayCache):
        return current
    cache = ReplayCache(current)
    set_llm_cache(cache)
    return cache


class ReplayGuard(BaseCallbackHandler):
    """Decides each model call of a replay before it is made; fails recorded mode's
    forbidden calls. Inline and raising: its verdict must stop the call."""

    run_inline = True
    raise_error = True

    def __init__(self, session: ReplaySession) -> None:
        self.session = session

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.session.decide(run_id, messages[0], metadata, invocation_params)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.session.check(run_id, ended=False)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.session.check(run_id, ended=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.session._by_run.pop(run_id, None)

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.session.tool_calls += 1

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        if type(error).__name__ not in ("GraphInterrupt", "GraphBubbleUp", "ParentCommand"):
            self.session.tool_errors.append(f"{type(error).__name__}: {error}")


_REPR = re.compile(r"^(\w+)\((['\"])(.*)\2\)$", re.S)


def _error_text(error: Any) -> str:
    """``"TypeName: message"`` for an exception, or for the ``repr`` LangGraph stores."""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    text = str(error)
    if match := _REPR.match(text):
        return f"{match.group(1)}: {match.group(3)}"
    return text


@dataclass(slots=True)
class ReplayResult:
    """What a replay did and how its final state differs from the original run's."""

    thread_id: str
    """Where the replay was written: the same thread (a new branch) or the fork."""
    source_thread_id: str
    checkpoint_id: str
    """The original checkpoint replayed from."""
    branch_checkpoint_id: str
    """The replay's first checkpoint (a copy of ``checkpoint_id``)."""
    mode: str
    """``recorded`` or ``live`` (recorded until a divergence, then the real models)."""
    model_calls_served: int = 0
    model_calls_live: int = 0
    tool_calls: int = 0
    divergence: dict[str, Any] | None = None
    error: str | None = None
    original_error: str | None = None
    reproduced: bool = False
    """The replay failed with the same error as the original run."""
    next: list[str] = field(default_factory=list)
    original_next: list[str] = field(default_factory=list)
    diff: list[dict[str, Any]] = field(default_factory=list)
    values: Any = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("values")
        return out


async def replay_events(
    graph: Pregel,
    thread_id: str,
    *,
    checkpoint_id: str | None = None,
    live: bool = False,
    fork: bool | str = False,
    config: RunnableConfig | None = None,
    stream_mode: Sequence[str] = ("updates",),
    raise_errors: bool = False,
) -> AsyncIterator[tuple[str, Any]]:
    """Replay ``thread_id`` from ``checkpoint_id``; yield ``(event, data)`` as it runs.

    Events: ``replay`` (where it starts), the graph's own stream modes, then
    ``replay/divergence`` (if any) and ``replay/result`` (a :class:`ReplayResult`). With
    ``raise_errors`` the run's error (a tool's, or :class:`ReplayDivergence`) is raised after
    the result, so a server run ends in ``error`` like the original did. ``fork=True`` (or a
    thread id) writes to a new thread instead of a new branch.

    >>> import asyncio
    >>> async def main(graph) -> None:  # doctest: +SKIP
    ...     async for event, data in replay_events(graph, "t1"):
    ...         print(event)
    """
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        raise ConfigError("replay needs a graph compiled with a checkpointer")
    store = recording_store(saver)
    if store is None:
        raise ConfigError(
            f"replay reads recordings beside the checkpoints; {type(saver).__name__} has none. "
            "Use a sqlite:/// or postgresql:// checkpointer"
        )
    checkpoints = await _root_checkpoints(saver, thread_id)
    if not checkpoints:
        from graphyard.errors import ThreadNotFound

        raise ThreadNotFound(thread_id)
    if checkpoint_id is not None and checkpoint_id not in checkpoints:
        raise ConfigError(
            f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}; "
            f"list them with `graphyard threads history {thread_id}`"
        )
    if checkpoint_id is None:
        whole = find_lineage(checkpoints)
        if not whole:
            raise ConfigError(f"thread {thread_id!r} has no run to replay; give --checkpoint")
        checkpoint_id = _turn_start(checkpoints, whole)
    elif (checkpoints[checkpoint_id].metadata or {}).get("source") == "input":
        # its input is a pending write, not state: start where the input was applied
        checkpoint_id = _turn_start(checkpoints, find_lineage(checkpoints, checkpoint_id))
    lineage = find_lineage(checkpoints, checkpoint_id)
    recordings = await store.for_thread(thread_id)
    on_path = set(lineage)
    session = ReplaySession(
        [r for r in recordings if r.checkpoint_ns or r.checkpoint_id in on_path], live=live
    )
    target = thread_id
    if fork:
        target = fork if isinstance(fork, str) else f"{thread_id}-replay-{uuid.uuid4().hex[:8]}"
    copied = await _copy(
        saver,
        graph,
        checkpoints[checkpoint_id],
        thread_id=target,
        parent_id=None if fork else checkpoint_id,
        source_thread=thread_id,
    )
    branch_id = copied["configurable"]["checkpoint_id"]
    result = ReplayResult(
        thread_id=target,
        source_thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        branch_checkpoint_id=branch_id,
        mode="live" if live else "recorded",
    )
    yield (
        "replay",
        {
            "thread_id": target,
            "source_thread_id": thread_id,
            "checkpoint_id": checkpoint_id,
            "branch_checkpoint_id": branch_id,
            "mode": result.mode,
            "recorded_calls": len(recordings),
        },
    )
    install_cache()
    given = dict(config or {})
    run_config: dict[str, Any] = {
        **given,
        "configurable": {
            **(given.get("configurable") or {}),
            "thread_id": target,
            "checkpoint_ns": "",
            "checkpoint_id": branch_id,
        },
        # the guard first: it decides each call before the run's other inline handlers
        # (a cost ledger) look at it, so they can tell a served call from a real one
        "callbacks": [ReplayGuard(session), *(given.get("callbacks") or [])],
    }
    failure: BaseException | None = None
    announced = False
    token = _session.set(session)
    try:
        async for mode, chunk in graph.astream(
            None,
            run_config,
            stream_mode=list(stream_mode),  # type: ignore[arg-type]
        ):
            yield mode, chunk
            if session.divergence is not None and not announced:
                announced = True
                yield "replay/divergence", session.divergence.as_json()
    except Exception as exc:  # the replay's failure is its result
        failure = exc
    finally:
        _session.reset(token)
    for handler in run_config["callbacks"]:
        if isinstance(handler, RecordingHandler):
            await handler.flush()  # writes handed over from sync tools' worker threads
    if session.divergence is not None and not announced:
        yield "replay/divergence", session.divergence.as_json()
    head = lineage[-1]
    original = await graph.aget_state(
        {"configurable": {"thread_id": thread_id, "checkpoint_id": head, "checkpoint_ns": ""}}
    )
    final = await graph.aget_state({"configurable": {"thread_id": target}})
    result.model_calls_served = session.served
    result.model_calls_live = session.live_calls
    result.tool_calls = session.tool_calls
    result.divergence = session.divergence.as_json() if session.divergence else None
    if failure is not None:
        cause = failure
        while isinstance(cause.__cause__, Exception) and type(cause).__name__ in ("ToolException",):
            cause = cause.__cause__
        result.error = _error_text(cause)
    recorded_errors = [
        r.error
        for r in recordings
        if r.error and r.checkpoint_id in on_path and not r.checkpoint_ns
    ]
    errors = recorded_errors + [_error_text(t.error) for t in original.tasks if t.error is not None]
    result.original_error = (
        recorded_errors[-1] if recorded_errors else (errors[0] if errors else None)
    )
    result.reproduced = result.error is not None and result.error == result.original_error
    result.next = list(final.next)
    result.original_next = list(original.next)
    result.values = final.values
    result.diff = diff_states(original.values, final.values)
    yield "replay/result", result
    if failure is not None and raise_errors:
        raise failure


async def replay(
    graph: Pregel,
    thread_id: str,
    *,
    checkpoint_id: str | None = None,
    live: bool = False,
    fork: bool | str = False,
    config: RunnableConfig | None = None,
) -> ReplayResult:
    """Replay a thread and return the :class:`ReplayResult` (see :func:`replay_events`).

    >>> import asyncio
    >>> async def main(graph) -> None:  # doctest: +SKIP
    ...     result = await replay(graph, "t1", checkpoint_id="1f0...")
    ...     print(result.model_calls_live, result.divergence)
    """
    result: ReplayResult | None = None
    async for event, data in replay_events(
        graph, thread_id, checkpoint_id=checkpoint_id, live=live, fork=fork, config=config
    ):
        if event == "replay/result":
            result = data
    assert result is not None
    return result
