"""What route handlers share: the services, the caller's identity, owned-thread lookup,
and the JSON shapes of threads, runs and states that the LangGraph SDK expects."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from langgraph.types import StateSnapshot

from graphyard._runtime import Runtime
from graphyard.errors import ThreadNotFound
from graphyard.server._auth import Authenticator, authenticate
from graphyard.server._errors import ApiError
from graphyard.server._limits import RateLimiter
from graphyard.server._runs import RunManager
from graphyard.server._serialize import jsonable
from graphyard.server._store import RunRecord, ThreadRecord
from graphyard.server._store_postgres import ServerStore

__all__ = [
    "IdPath",
    "Services",
    "Svc",
    "assistant_json",
    "run_json",
    "services",
    "state_json",
    "thread_json",
]

_ASSISTANT_NS = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")  # uuid5 namespace, like LangGraph


@dataclass(slots=True)
class Services:
    runtime: Runtime
    store: ServerStore
    runs: RunManager
    auth: Authenticator | None
    created_at: float
    limiter: RateLimiter

    @property
    def graph_id(self) -> str:
        return self.runtime.graph_id

    @property
    def assistant_id(self) -> str:
        return str(uuid.uuid5(_ASSISTANT_NS, self.graph_id))

    def check_assistant(self, assistant_id: str) -> None:
        if assistant_id not in (self.assistant_id, self.graph_id):
            raise ApiError(404, "not_found", f"assistant {assistant_id!r} not found")

    async def user(self, request: Request) -> str:
        user = await authenticate(self.auth, request.headers)
        if user is None:
            raise ApiError(401, "unauthorized", "missing or invalid API key (x-api-key header)")
        if wait := self.limiter.check(user):
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests; retry in {wait:g}s",
                headers={"Retry-After": str(max(int(wait + 0.999), 1))},
            )
        return user

    async def thread(self, thread_id: str, user: str) -> ThreadRecord:
        """The caller's thread; another user's thread is indistinguishable from none."""
        record = await self.store.get_thread(thread_id)
        if record is None:
            _, record = await self.adopt(thread_id)
        if record is None or record.owner != user:
            raise ThreadNotFound(thread_id)
        return record

    async def create_thread(
        self, thread_id: str, user: str, metadata: dict[str, Any]
    ) -> ThreadRecord | None:
        """A new thread record for ``user``; None if the thread exists, as a record or only
        as checkpoints (it is then adopted for the owner they name, never for ``user``)."""
        if await self.store.get_thread(thread_id) is None:
            exists, _ = await self.adopt(thread_id)
            if exists:
                return None
        return await self.store.create_thread(thread_id, user, metadata)

    async def adopt(self, thread_id: str) -> tuple[bool, ThreadRecord | None]:
        """For a thread with no record: whether the checkpointer has it, and a record for
        the owner its latest checkpoint names, now stored (every served run and state update
        writes ``user_id`` into its checkpoint's metadata). That is the case of a server
        whose records are not in the checkpointer's database (DynamoDB: each Lambda instance
        starts with an empty ``/tmp``), and of threads written by the CLI or before the
        server kept records: those name no owner and become the anonymous user's when auth
        is off, nobody's when it is on."""
        snapshot = await self.runtime.graph.aget_state({"configurable": {"thread_id": thread_id}})
        if snapshot.created_at is None:
            return False, None
        owner = (snapshot.metadata or {}).get("user_id")
        if not isinstance(owner, str) or not owner:
            if self.auth is not None:
                return True, None  # whose it is cannot be shown: nobody's
            owner = "anonymous"
        await self.store.create_thread(thread_id, owner, {})
        return True, await self.store.get_thread(thread_id)

    async def run(self, thread_id: str, run_id: str, user: str) -> RunRecord:
        await self.thread(thread_id, user)
        run = await self.store.get_run(run_id)
        if run is None or run.thread_id != thread_id or run.owner != user:
            raise ApiError(404, "not_found", f"run {run_id!r} not found")
        return run


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop on
    # every request (under 200 streaming clients it had grown 40 threads)
    return request.app.state.services  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]
"""A route parameter receiving the app's :class:`Services`."""

IdPath = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:-]+$")]
"""A thread or run id in a route's path: anything else answers 422 before the handler runs."""


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat()


def assistant_json(svc: Services) -> dict[str, Any]:
    created = _iso(svc.created_at)
    return {
        "assistant_id": svc.assistant_id,
        "graph_id": svc.graph_id,
        "name": svc.graph_id,
        "description": None,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }


def _interrupts_by_task(snapshot: StateSnapshot) -> dict[str, Any]:
    return {t.id: jsonable(t.interrupts) for t in snapshot.tasks if t.interrupts}


async def thread_json(svc: Services, record: ThreadRecord) -> dict[str, Any]:
    snapshot = await svc.runtime.graph.aget_state({"configurable": {"thread_id": record.thread_id}})
    return {
        "thread_id": record.thread_id,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "metadata": record.metadata,
        "status": record.status,
        "values": jsonable(snapshot.values) if snapshot.created_at else None,
        "interrupts": _interrupts_by_task(snapshot),
    }


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "status": run.status,
        "metadata": run.metadata,
        "multitask_strategy": run.multitask_strategy,
        "kwargs": run.kwargs,
    }


def _checkpoint(config: Any) -> dict[str, Any] | None:
    if not config:
        return None
    c = config.get("configurable", {})
    return {
        "thread_id": c.get("thread_id"),
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": c.get("checkpoint_map"),
    }


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    return {
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "checkpoint": _checkpoint(snapshot.config),
        "metadata": jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "path": jsonable(t.path),
                "error": t.error,
                "interrupts": jsonable(t.interrupts),
                "checkpoint": None,
                "state": None,
                "result": jsonable(t.result),
            }
            for t in snapshot.tasks
        ],
        "interrupts": jsonable(snapshot.interrupts),
    }
