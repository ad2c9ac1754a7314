"""Recording: every model and tool call of a run, as a LangChain callback handler.

:class:`RecordingHandler` is attached to a run (the server appends
:func:`recording_handlers` to ``RunManager.handlers``; any other caller passes it in
``config["callbacks"]``). For each call it stores the canonical request and its
fingerprint, the output (the whole message: content, tool calls, usage) or the error, and
where it happened: the checkpoint its task ran from (read from LangGraph's
``ExecutionInfo`` of the running task), the task id, ``langgraph_step``,
``langgraph_node`` and the call's order within the task.

A request is canonical when what varies from run to run without changing what the model
is asked is left out: message ids and tool-call ids (the reference agent makes new ones
each run). What stays: each message's role, text, tool calls (name and arguments), tool
name and status, the model, and the tools offered.

The handler must never change a run's outcome: a failed write is logged, not raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage, message_to_dict
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables.config import var_child_runnable_config

from graphyard.models import CACHE_HIT_METADATA_KEY, REPLAYED_KEY
from graphyard.replay._store import CallKind, Recording, RecordingStore

__all__ = [
    "RecordingHandler",
    "TaskInfo",
    "canonical_message",
    "canonical_request",
    "fingerprint",
    "recording_handlers",
    "task_info",
]

log = logging.getLogger(__name__)

_CONTROL_FLOW = ("GraphInterrupt", "GraphBubbleUp", "ParentCommand", "NodeInterrupt")

ANSWER_CACHE_TIER = "cache"
"""The tier recorded for a call that graphyard's answer cache answered with its stand-in
model (callback metadata :data:`CACHE_HIT_METADATA_KEY`): no provider was called."""


def canonical_message(message: BaseMessage) -> dict[str, Any]:
    """What of a message a model is asked: role, text, tool calls, tool name and status.

    >>> from langchain_core.messages import HumanMessage
    >>> canonical_message(HumanMessage("hi", id="x"))
    {'role': 'human', 'content': 'hi'}
    """
    out: dict[str, Any] = {"role": message.type, "content": message.content}
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    if isinstance(message, ToolMessage):
        out["name"] = message.name
        if message.status != "success":
            out["status"] = message.status
    return out


def canonical_request(
    messages: Sequence[BaseMessage], *, model: str | None, tools: Sequence[str] = ()
) -> dict[str, Any]:
    """A model request without run-specific ids: what its fingerprint is taken of.

    >>> from langchain_core.messages import HumanMessage
    >>> canonical_request([HumanMessage("hi")], model="m")
    {'model': 'm', 'tools': [], 'messages': [{'role': 'human', 'content': 'hi'}]}
    """
    return {
        "model": model,
        "tools": sorted(tools),
        "messages": [canonical_message(m) for m in messages],
    }


def fingerprint(request: Any) -> str:
    """A short stable hash of a canonical request.

    >>> fingerprint({"a": 1}) == fingerprint({"a": 1})
    True
    """
    text = json.dumps(request, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _tool_names(invocation_params: Mapping[str, Any] | None) -> list[str]:
    names: list[str] = []
    for spec in (invocation_params or {}).get("tools") or ():
        if isinstance(spec, dict):
            fn = spec.get("function") if isinstance(spec.get("function"), dict) else spec
            if name := fn.get("name"):
                names.append(str(name))
    return names


def model_name(metadata: Mapping[str, Any] | None, invocation_params: Any = None) -> str:
    """The model of a call: graphyard's tier model, else LangChain's ``ls_model_name``."""
    from graphyard.models import MODEL_METADATA_KEY

    metadata = metadata or {}
    params = invocation_params or {}
    return str(
        metadata.get(MODEL_METADATA_KEY)
        or metadata.get("ls_model_name")
        or params.get("model")
        or params.get("model_name")
        or params.get("_type")
        or "unknown"
    )


class TaskInfo(tuple[str, str | None, str, int, str]):
    """``(checkpoint_ns, checkpoint_id, task_id, step, node)`` of the running task."""

    __slots__ = ()

    @property
    def key(self) -> str:
        return f"{self[0]}|{self[2]}"


def task_info(metadata: Mapping[str, Any] | None) -> TaskInfo | None:
    """Where a call runs: the task's graph namespace, checkpoint, id, step and node.

    The checkpoint comes from LangGraph's ``ExecutionInfo`` of the task (in the task's
    config); step and node from the callback metadata LangGraph sets on every task.
    """
    metadata = metadata or {}
    if "langgraph_step" not in metadata:
        return None
    task_ns = str(metadata.get("langgraph_checkpoint_ns") or "")
    graph_ns = task_ns.rpartition("|")[0] if "|" in task_ns else ""
    task_id = task_ns.rpartition(":")[2]
    checkpoint_id: str | None = None
    config = var_child_runnable_config.get() or {}
    info = getattr(
        (config.get("configurable") or {}).get("__pregel_runtime"), "execution_info", None
    )
    if info is not None and info.task_id == task_id:
        checkpoint_id = info.checkpoint_id
    # subgraph namespaces carry task ids; keep the node path only (stable across runs)
    path = "|".join(part.partition(":")[0] for part in graph_ns.split("|")) if graph_ns else ""
    return TaskInfo(
        (
            path,
            checkpoint_id,
            task_id,
            int(metadata["langgraph_step"]),
            str(metadata.get("langgraph_node") or ""),
        )
    )


def output_of(response: LLMResult) -> AIMessage | None:
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage):
                return generation.message
    return None


def _text(output: Any) -> Any:
    if isinstance(output, ToolMessage):
        return {"content": output.content, "status": output.status}
    if isinstance(output, BaseMessage):
        return {"content": output.content}
    if isinstance(output, (str, int, float, bool)) or output is None:
        return output
    return str(output)


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class RecordingHandler(AsyncCallbackHandler):
    """Records one run's model and tool calls into a :class:`RecordingStore`."""

    run_inline = True
    """Awaited in place, not through ``asyncio.gather``: LangChain calls every handler on
    every streamed token, and a non-inline one costs a task per token (``benchmarks/callbacks.py``:
    +31.8 us per token non-inline, +3.7 us inline)."""

    def __init__(
        self,
        store: RecordingStore,
        thread_id: str,
        *,
        run_id: str | None = None,
        prices: Any = None,
    ) -> None:
        self.store = store
        self.thread_id = thread_id
        self.graph_run_id = run_id
        self.prices = prices
        self._pending: dict[UUID, Recording] = {}
        self._seq: dict[tuple[str, CallKind], int] = {}
        self.written = 0
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._inflight: list[concurrent.futures.Future[None]] = []

    def _start(
        self, run_id: UUID, kind: CallKind, name: str, request: Any, metadata: Any
    ) -> Recording | None:
        where = task_info(metadata)
        if where is None:
            return None  # not inside a graph task: nothing to key it by
        ns, checkpoint_id, task_id, step, node = where
        counter = (where.key, kind)
        seq = self._seq.get(counter, 0)
        self._seq[counter] = seq + 1
        from graphyard.models import TIER_METADATA_KEY

        recording = Recording(
            thread_id=self.thread_id,
            checkpoint_ns=ns,
            checkpoint_id=checkpoint_id,
            task_id=task_id,
            step=step,
            node=node,
            seq=seq,
            kind=kind,
            name=name,
            fingerprint=fingerprint(request),
            input=request,
            tier=(
                ANSWER_CACHE_TIER
                if kind == "model" and (metadata or {}).get(CACHE_HIT_METADATA_KEY)
                else (metadata or {}).get(TIER_METADATA_KEY)
                or ("unknown" if kind == "model" else None)
            ),
            model=name if kind == "model" else None,
            run_id=self.graph_run_id,
        )
        self._pending[run_id] = recording
        return recording

    async def _finish(self, run_id: UUID) -> None:
        recording = self._pending.pop(run_id, None)
        if recording is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is not None and running is not self._loop and not self._loop.is_closed():
            # a sync tool runs in a worker thread, where LangChain gives async handlers a
            # private event loop; the store's connection belongs to the run's loop
            self._inflight.append(
                asyncio.run_coroutine_threadsafe(self._put(recording), self._loop)
            )
            return
        await self._put(recording)

    async def _put(self, recording: Recording) -> None:
        try:
            await self.store.put(recording)
            self.written += 1
        except Exception:
            log.exception("could not record a %s call of thread %s", recording.kind, self.thread_id)

    async def flush(self) -> None:
        """Wait for writes handed over from worker threads."""
        pending, self._inflight = self._inflight, []
        for future in pending:
            await asyncio.wrap_future(future)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        invocation_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        model = model_name(metadata, invocation_params)
        request = canonical_request(messages[0], model=model, tools=_tool_names(invocation_params))
        self._start(run_id, "model", model, request, metadata)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        recording = self._pending.get(run_id)
        if recording is None:
            return
        message = output_of(response)
        if message is not None:
            recording.output = message_to_dict(message)
            usage = message.usage_metadata or {}
            recording.input_tokens = int(usage.get("input_tokens") or 0)
            recording.output_tokens = int(usage.get("output_tokens") or 0)
            # what was spent: nothing for a stand-in or an answer a replay served
            spent = recording.tier != ANSWER_CACHE_TIER and not message.response_metadata.get(
                REPLAYED_KEY
            )
            if self.prices is not None and spent:
                from graphyard.models import call_cost

                recording.cost_usd = call_cost(recording.model or "", usage, self.prices)
        await self._finish(run_id)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if type(error).__name__ in ("ReplayDivergence", "ModelCallForbidden"):
            self._pending.pop(run_id, None)  # a replay refused the call: nothing was asked
            return
        recording = self._pending.get(run_id)
        if recording is not None:
            recording.error = _error(error)
        await self._finish(run_id)

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        request = {"tool": name, "args": inputs if inputs is not None else input_str}
        self._start(run_id, "tool", name, request, metadata)

    async def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        recording = self._pending.get(run_id)
        if recording is not None:
            recording.output = _text(output)
        await self._finish(run_id)

    async def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if type(error).__name__ in _CONTROL_FLOW:
            self._pending.pop(run_id, None)  # an interrupt() pauses the tool; it did not fail
            return
        recording = self._pending.get(run_id)
        if recording is not None:
            recording.error = _error(error)
        await self._finish(run_id)


def recording_handlers(
    store: RecordingStore | None, *, prices: Any = None
) -> Callable[[Any], RecordingHandler | None]:
    """A ``RunManager`` handler factory: one :class:`RecordingHandler` per run.

    >>> recording_handlers(None)(object()) is None
    True
    """

    def make(run: Any) -> RecordingHandler | None:
        if store is None:
            return None
        return RecordingHandler(store, run.thread_id, run_id=run.run_id, prices=prices)

    return make
