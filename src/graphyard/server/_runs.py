"""Runs: background execution, per-thread concurrency, resumable event streams.

A run is created as ``pending`` in the database, then *claimed*: the claim takes the
thread's lock (a conditional UPDATE the database serializes) and marks the run
``running``. Whatever process claims it executes it, so two servers sharing one database
run exactly one run per thread at a time. ``multitask_strategy`` decides what a new run
does when the thread is busy: ``reject`` (409), ``enqueue`` (waits its turn),
``interrupt`` (stops the active run, keeping its progress) or ``rollback`` (stops it and
erases it).

Every event a run emits gets a sequence number, goes to live subscribers in this
process, and is written to the database in small batches, so a client can reconnect with
``Last-Event-ID`` (to this or another process) and receive each event exactly once, in
order.

Each process heartbeats the runs it executes; a run whose process died (same host, pid
gone) or whose lease expired is marked ``error`` and its thread's lock released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessageChunk, convert_to_messages, message_chunk_to_message
from langgraph.pregel import Pregel
from langgraph.types import Command

from graphyard.errors import BudgetExceeded, ThreadBusy
from graphyard.server._serialize import dumps, jsonable
from graphyard.server._store import RunRecord, RunStatus, ThreadStatus
from graphyard.server._store_postgres import ServerStore

__all__ = ["HandlerFactory", "RunManager", "RunObserver", "StreamEvent"]

log = logging.getLogger(__name__)

RunKind = Callable[[RunRecord, dict[str, Any]], AsyncIterator[tuple[str, Any]]]
"""Executes a special run: gets the run and its config (callbacks included), yields
``(event, data)`` like the graph stream does."""

StreamEvent = tuple[int, str, str]
"""``(seq, event name, JSON data)``; ``seq`` is the SSE ``id``."""

HandlerFactory = Callable[[RunRecord], BaseCallbackHandler | None]
"""Makes one run's LangChain callback handler (cost ledger, metrics, tracing, recording);
``None`` when it has nothing to do for that run."""


class RunObserver(Protocol):
    """Told about each run this process executes: ``run_started`` runs in the run's own
    task before the graph starts (context variables it sets reach the whole run);
    ``run_finished`` once its final status is stored."""

    def run_started(self, run: RunRecord) -> None: ...

    def run_finished(self, run: RunRecord, status: RunStatus, error: str | None) -> None: ...


_END = "end"
_FLUSH_SECONDS = 0.05
_KEEP_FINISHED_SECONDS = 15.0
"""A finished run's events stay in memory this long for clients joining late; after that
they are read from the store. (At 120 s a server finishing 100 20-token runs a second held
~240,000 events, ~200 MB.)"""


@dataclass(eq=False)
class _LiveRun:
    """Events of a run executing (or recently executed) in this process."""

    run: RunRecord
    events: list[StreamEvent] = field(default_factory=list)
    unflushed: list[StreamEvent] = field(default_factory=list)
    done: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    cancel_action: str | None = None
    finished_at: float | None = None

    def publish(self, event: str, data: Any) -> None:
        item = (len(self.events) + 1, event, data if isinstance(data, str) else dumps(data))
        self.events.append(item)
        self.unflushed.append(item)
        self.changed.set()
        self.changed = asyncio.Event()


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _worker_is_dead(worker: str | None, me: str) -> bool:
    """A worker on this host whose process is gone (a restart) is dead for sure."""
    if not worker or worker == me:
        return False
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only its lease can tell
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # our pid, another incarnation (we restarted)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunManager:
    """Creates, executes, cancels and streams runs for one graph."""

    def __init__(
        self,
        graph: Pregel,
        store: ServerStore,
        *,
        assistant_id: str,
        durability: str = "sync",
        lease_seconds: float = 15.0,
        saver: Any = None,
        handlers: Sequence[HandlerFactory] = (),
        events_ttl: float | None = None,
    ) -> None:
        self.graph = graph
        self.handlers = list(handlers)
        """Callback handler factories applied to every run (append to add one)."""
        self.kinds: dict[str, RunKind] = {}
        """Runs that are not a plain graph stream, by ``kwargs["kind"]`` (e.g. ``replay``):
        they get the same lock, events, handlers and ``Last-Event-ID`` as any run."""
        self.observers: list[RunObserver] = []
        """Told when each run executed here starts and ends (append to add one)."""
        self.finish_hooks: list[Callable[[RunRecord], Awaitable[None]]] = []
        """Awaited after a run's graph stops and before the run is recorded as finished (e.g.
        the cost ledger writes the run's calls); a failing hook is logged, never fatal."""
        self.store = store
        self.assistant_id = assistant_id
        self.durability = durability
        self.lease = lease_seconds
        self.events_ttl = events_ttl
        """Seconds after a run ends before its stored events are deleted (None: never)."""
        self.saver = saver
        self.worker = _worker_id()
        self._live: dict[str, _LiveRun] = {}
        self._background: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.reap_orphans()
        self._background = [
            asyncio.create_task(self._heartbeat_loop(), name="graphyard-heartbeat"),
            asyncio.create_task(self._dispatch_loop(), name="graphyard-dispatch"),
        ]
        if self.events_ttl is not None:
            self._background.append(
                asyncio.create_task(self._prune_events_loop(), name="graphyard-event-ttl")
            )

    async def stop(self, grace: float = 10.0) -> None:
        """Let running runs finish for ``grace`` seconds, then cancel them (marked error)."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        tasks = [live.task for live in self._live.values() if live.task and not live.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None

    async def reap_orphans(self) -> int:
        """Mark runs whose server died as ``error`` and free their threads."""
        orphans = await self.store.orphaned_runs(
            self.lease, lambda w: _worker_is_dead(w, self.worker)
        )
        for run in orphans:
            if run.run_id in self._live:
                continue
            log.warning(
                "run %s on thread %s lost its server; marking it error", run.run_id, run.thread_id
            )
            await self.store.finish(run, "error", "error", "the server running this run stopped")
        return len(orphans)

    async def _prune_events_loop(self) -> None:
        """Delete the stored events of runs that ended more than ``events_ttl`` ago, every
        half TTL (at most every 5 minutes, at least every second). Each pass starts a little
        before where the last one stopped, for runs another process finished meanwhile."""
        assert self.events_ttl is not None
        every = max(1.0, min(self.events_ttl / 2, 300.0))
        since = 0.0
        while True:
            before = time.time() - self.events_ttl
            try:
                deleted = await self.store.prune_events(since, before)
                since = max(0.0, before - 2 * every - self.lease)
                if deleted:
                    log.info("deleted %d stream events of runs ended before %.0f", deleted, before)
            except Exception:
                log.exception("could not delete old run events; will retry")
            await asyncio.sleep(every)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease / 3, 0.2))
            try:
                mine = [rid for rid, live in self._live.items() if not live.done]
                requests = await self.store.heartbeat(mine)
                for run_id, action in requests.items():
                    live = self._live.get(run_id)
                    if action and live and not live.done and live.cancel_action is None:
                        self._cancel_local(live, action)
                await self.reap_orphans()
                self._forget_finished()
            except Exception:  # the loop must survive a transient database error
                log.exception("heartbeat failed")

    async def _dispatch_loop(self) -> None:
        """Pick up pending runs whose thread is free (e.g. enqueued by another process)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
            self._wakeup.clear()
            try:
                for thread_id in await self.store.pending_threads():
                    await self._dispatch(thread_id)
            except Exception:
                log.exception("dispatch failed")

    def _forget_finished(self) -> None:
        now = time.monotonic()
        for run_id in [
            rid
            for rid, live in self._live.items()
            if live.finished_at and now - live.finished_at > _KEEP_FINISHED_SECONDS
        ]:
            del self._live[run_id]

    # --- creating and executing ------------------------------------------------------------

    async def create(
        self,
        thread_id: str,
        owner: str,
        kwargs: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        multitask_strategy: str = "reject",
    ) -> RunRecord:
        """Create a run on a thread, applying ``multitask_strategy`` if the thread is busy."""
        now = time.time()
        run = RunRecord(
            run_id=str(uuid.uuid4()),
            thread_id=thread_id,
            assistant_id=self.assistant_id,
            owner=owner,
            status="pending",
            created_at=now,
            updated_at=now,
            metadata=metadata or {},
            kwargs=kwargs,
            multitask_strategy=multitask_strategy,
        )
        if await self.store.insert_run(run, claim_for=self.worker):
            self._start(run)
            return run
        current = await self.store.get_run(run.run_id)
        if current is not None and current.status != "pending":
            return current  # another process's dispatcher claimed it first: it is running
        active = await self.store.active_run_of(thread_id)
        if multitask_strategy == "reject":
            await self.store.delete_run(run.run_id)
            raise ThreadBusy(
                f"thread {thread_id!r} already has an active run"
                + (f" ({active.run_id})" if active else "")
                + "; use multitask_strategy 'enqueue', 'interrupt' or 'rollback'"
            )
        if multitask_strategy in ("interrupt", "rollback") and active is not None:
            await self.cancel(active, multitask_strategy)
        # enqueue (and the run after an interrupt/rollback) starts when the lock frees
        self._wakeup.set()
        return (await self.store.get_run(run.run_id)) or run

    async def _claim_and_start(self, run: RunRecord) -> bool:
        if not await self.store.claim(run.run_id, run.thread_id, self.worker):
            return False
        self._start(run)
        return True

    def _start(self, run: RunRecord) -> None:
        """Execute a run this process has just claimed."""
        run.status, run.worker = "running", self.worker
        live = _LiveRun(run)
        self._live[run.run_id] = live
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="graphyard-events")
        live.task = asyncio.create_task(self._execute(live), name=f"run:{run.run_id}")

    async def _dispatch(self, thread_id: str) -> None:
        run = await self.store.next_pending(thread_id)
        if run is not None:
            await self._claim_and_start(run)

    async def _execute(self, live: _LiveRun) -> None:
        run = live.run
        status: RunStatus = "success"
        error: str | None = None
        self._tell("run_started", run)
        # to the client at once (reading the checkpointer for _mark can wait behind other
        # runs' checkpoint writes); stored below, before the graph writes anything
        live.publish("metadata", {"run_id": run.run_id, "attempt": 1})
        before = await self._mark(run.thread_id)
        try:
            # stored before the graph writes anything: a run whose input survives a crash
            # always has the start of its stream to replay
            await self._flush(live)
            async for event, data in self._graph_events(run):
                live.publish(event, data)
        except asyncio.CancelledError:
            status = "interrupted"
            if live.cancel_action is None:  # server shutdown, not a user's cancel
                status, error = "error", "the server stopped during this run"
                live.publish("error", {"error": "ServerShutdown", "message": error})
        except BudgetExceeded as exc:  # a clean stop: the last checkpoint is intact
            status, error = "error", f"budget_exceeded: {exc}"
            log.info("run %s on thread %s stopped: %s", run.run_id, run.thread_id, exc)
            details = exc.details() if callable(getattr(exc, "details", None)) else {}
            live.publish("error", {"error": "budget_exceeded", "message": str(exc), **details})
        except Exception as exc:
            status, error = "error", f"{type(exc).__name__}: {exc}"
            log.exception("run %s on thread %s failed", run.run_id, run.thread_id)
            live.publish("error", {"error": type(exc).__name__, "message": str(exc)})
        live.publish(_END, None)
        # Store every event before the run is recorded as over, so a reader in another
        # process that sees the final status also finds the final events. (Never cancel a
        # flush: it may be inside a transaction.)
        with contextlib.suppress(Exception):
            await asyncio.shield(self._flush(live))
        try:
            await asyncio.shield(self._finish(live, status, error, before))
        finally:
            live.done = True
            live.finished_at = time.monotonic()
            live.changed.set()
            self._wakeup.set()
            self._tell("run_finished", run, status, error)

    def _tell(self, event: str, *args: Any) -> None:
        """Tell every observer (metrics, tracing, logs) that a run started or finished."""
        for observer in self.observers:
            try:
                getattr(observer, event)(*args)
            except Exception:  # an observer's bug must not fail the run
                log.exception("run observer %r failed on %s", observer, event)

    async def _finish(
        self, live: _LiveRun, status: RunStatus, error: str | None, before: Any
    ) -> None:
        run = live.run
        thread_status: ThreadStatus = "error" if status == "error" else "idle"
        if live.cancel_action == "rollback":
            await self._rollback_checkpoints(run.thread_id, before)
        with contextlib.suppress(Exception):
            snapshot = await self.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
            if snapshot.next and status != "error":
                thread_status = "interrupted"
        for hook in self.finish_hooks:
            try:
                await hook(run)
            except Exception:
                log.exception("finish hook %r failed for run %s", hook, run.run_id)
        await self.store.finish(run, status, thread_status, error)
        if live.cancel_action == "rollback":
            await self.store.delete_run(run.run_id)

    async def _mark(self, thread_id: str) -> Any:
        """Where the thread stands before a run, so a rollback can return it there."""
        from graphyard.persistence import mark_thread

        try:
            return await mark_thread(self.saver, thread_id)
        except NotImplementedError:
            return None

    async def _rollback_checkpoints(self, thread_id: str, before: Any) -> None:
        from graphyard.persistence import rollback_to

        if before is None:
            log.warning("cannot roll back thread %s on this checkpointer; run kept", thread_id)
            return
        await rollback_to(self.saver, before)

    async def _flush_loop(self) -> None:
        """Every ``_FLUSH_SECONDS``, store the new events of all live runs in one transaction:
        one commit per tick for the whole process, not one per run (200 streaming runs were
        200 transactions and 200 timer tasks per tick)."""
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            try:
                await asyncio.shield(self._flush(*self._live.values()))
            except Exception:
                log.exception("could not store run events; will retry")

    async def _flush(self, *lives: _LiveRun) -> None:
        # Take the batches and enter the store's write lock with no await in between: the
        # lock is FIFO, so a run's batches commit in the order they were taken and a reader
        # in another process never sees a later event before an earlier one.
        batches = [(live, live.unflushed) for live in lives if live.unflushed]
        if not batches:
            return
        for live, _ in batches:
            live.unflushed = []
        try:
            await self.store.append_events_many([(live.run.run_id, b) for live, b in batches])
        except BaseException:
            for live, batch in batches:  # keep them for the next flush
                live.unflushed = batch + live.unflushed
            raise

    # --- the graph stream in the SDK's event format ----------------------------------------

    async def _graph_events(self, run: RunRecord) -> AsyncIterator[tuple[str, Any]]:
        kw = run.kwargs
        requested: list[str] = list(kw.get("stream_mode") or ["values"])
        config = _run_config(run)
        handlers = [h for factory in self.handlers if (h := factory(run)) is not None]
        if handlers:
            config["callbacks"] = [*(config.get("callbacks") or []), *handlers]
        if (kind := self.kinds.get(str(kw.get("kind")))) is not None:
            async for item in kind(run, config):  # e.g. a replay (server/_api_replay.py)
                yield item
            return
        graph_input: Any = kw.get("input")
        if command := kw.get("command"):
            graph_input = Command(
                resume=command.get("resume"),
                update=command.get("update"),
                goto=command.get("goto") or (),
            )
        modes = {m for m in requested if m not in ("events", "messages-tuple")}
        if "messages-tuple" in requested:
            modes.add("messages")
        only_interrupts = "updates" not in modes
        modes.add("updates")
        subgraphs = bool(kw.get("stream_subgraphs"))
        options: dict[str, Any] = {
            "stream_mode": sorted(modes),
            "durability": kw.get("durability") or self.durability,
            "subgraphs": subgraphs,
        }
        for key in ("interrupt_before", "interrupt_after"):
            if kw.get(key):
                options[key] = kw[key]
        partial: dict[str, BaseMessageChunk] = {}

        def translate(ns: Sequence[str], mode: str, chunk: Any) -> list[tuple[str, Any]]:
            suffix = f"|{'|'.join(ns)}" if ns else ""
            if mode == "messages":
                if "messages-tuple" in requested:
                    return [("messages" + suffix, chunk)]  # encoded once, by publish
                if "messages" not in requested:
                    return []
                return _messages_v1(partial, chunk, suffix)
            if mode == "updates" and only_interrupts:
                if isinstance(chunk, dict) and chunk.get("__interrupt__"):
                    return [("values" + suffix, chunk)]
                return []
            return [(mode + suffix, chunk)]

        if "events" in requested:
            root: str | None = None
            async for event in self.graph.astream_events(
                graph_input, config, version="v2", **options
            ):
                root = root or event.get("run_id")
                if event.get("event") == "on_chain_stream" and event.get("run_id") == root:
                    chunk = event["data"]["chunk"]
                    ns, mode, data = chunk if subgraphs else ((), *chunk)
                    for item in translate(ns, mode, data):
                        yield item
                yield "events", event
            return
        async for item in self.graph.astream(graph_input, config, **options):
            ns, mode, chunk = item if subgraphs else ((), *item)
            for out in translate(ns, mode, chunk):
                yield out

    # --- cancel, wait, stream --------------------------------------------------------------

    def _cancel_local(self, live: _LiveRun, action: str) -> None:
        live.cancel_action = action
        if live.task and not live.task.done():
            live.task.cancel()

    async def cancel(self, run: RunRecord, action: str = "interrupt") -> None:
        """Stop a run: at once if it runs here, through the database if elsewhere."""
        live = self._live.get(run.run_id)
        if live is not None and not live.done:
            self._cancel_local(live, action)
        else:
            await self.store.request_cancel(run.run_id, action)
            if action == "rollback":
                current = await self.store.get_run(run.run_id)
                if (
                    current is not None
                    and current.status == "interrupted"
                    and current.worker is None
                ):
                    await self.store.delete_run(run.run_id)  # it never started
        self._wakeup.set()

    async def wait(self, run: RunRecord, *, poll: float = 0.1) -> RunRecord:
        """Wait for a run to end; returns its final record."""
        live = self._live.get(run.run_id)
        if live is not None:
            while not live.done:
                await live.changed.wait()
        while True:
            current = await self.store.get_run(run.run_id)
            if current is None or current.status not in ("pending", "running"):
                return current or run
            await asyncio.sleep(poll)

    async def events(self, run: RunRecord, after: int = 0) -> AsyncIterator[StreamEvent]:
        """The run's events after ``after``, then live ones until it ends; each exactly once."""
        async for batch in self.event_batches(run, after):
            for item in batch:
                yield item

    async def event_batches(
        self, run: RunRecord, after: int = 0
    ) -> AsyncIterator[list[StreamEvent]]:
        """Like :meth:`events`, but every event available at once comes as one list: a
        client that fell behind (a loaded server, a slow network) catches up in one write
        instead of one per token."""
        live = self._live.get(run.run_id)
        last = after
        if live is not None:
            while True:
                if last < len(live.events):
                    batch = live.events[last:]
                    last += len(batch)
                    yield batch
                    continue  # more may have come while the client was written to
                if live.done:
                    return
                await live.changed.wait()
        while True:  # executed by another process (or before our restart): read the database
            stored = await self.store.read_events(run.run_id, last)
            if stored:
                ended = next((i for i, item in enumerate(stored) if item[1] == _END), None)
                if ended is not None:
                    yield stored[: ended + 1]
                    return
                last = stored[-1][0]
                yield stored
            current = await self.store.get_run(run.run_id)
            if current is None or current.status not in ("pending", "running"):
                rest = await self.store.read_events(run.run_id, last)
                if rest:
                    yield rest
                return
            live = self._live.get(run.run_id)
            if live is not None:  # it was dispatched here meanwhile
                async for batch in self.event_batches(run, last):
                    yield batch
                return
            await asyncio.sleep(0.1)


def _run_config(run: RunRecord) -> dict[str, Any]:
    kw = run.kwargs
    given = dict(kw.get("config") or {})
    configurable = {**(given.get("configurable") or {}), **(kw.get("context") or {})}
    configurable["thread_id"] = run.thread_id
    checkpoint = kw.get("checkpoint") or {}
    if checkpoint_id := kw.get("checkpoint_id") or checkpoint.get("checkpoint_id"):
        configurable["checkpoint_id"] = checkpoint_id
    if checkpoint.get("checkpoint_ns"):
        configurable["checkpoint_ns"] = checkpoint["checkpoint_ns"]
    configurable["user_id"] = run.owner
    metadata = {**(given.get("metadata") or {}), **run.metadata, "run_id": run.run_id}
    config: dict[str, Any] = {**given, "configurable": configurable, "metadata": metadata}
    config["run_id"] = uuid.UUID(run.run_id)
    if "recursion_limit" in given:
        config["recursion_limit"] = given["recursion_limit"]
    return config


def _messages_v1(
    partial: dict[str, BaseMessageChunk], chunk: Any, suffix: str
) -> list[tuple[str, Any]]:
    """The SDK's non-tuple ``messages`` mode: metadata once per message, then partials."""
    message, meta = chunk
    if isinstance(message, dict):
        message = convert_to_messages([message])[0]
    out: list[tuple[str, Any]] = []
    key = str(message.id)
    if key not in partial:
        out.append(("messages/metadata" + suffix, {key: {"metadata": jsonable(meta)}}))
        partial[key] = message
    elif isinstance(message, BaseMessageChunk):
        partial[key] = partial[key] + message  # type: ignore[operator]
    else:
        partial[key] = message
    current = partial[key]
    if isinstance(message, BaseMessageChunk):
        out.append(("messages/partial" + suffix, [jsonable(current)]))
    else:
        out.append(("messages/complete" + suffix, [jsonable(message_chunk_to_message(current))]))  # type: ignore[arg-type]
    return out
