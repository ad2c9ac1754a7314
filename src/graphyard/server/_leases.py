"""One run per thread across machines for ``dynamodb://`` servers: thread leases in DynamoDB.

A DynamoDB server keeps its thread and run records in each process's own
``graphyard-server.db`` (a full DynamoDB run store is still to come), so its thread lock held
on one machine only. On Lambda every concurrent request is its own instance: a message sent
twice, or from two tabs, ran twice on the same thread at once, and the two runs wrote
sibling checkpoints (one answer silently lost from the history).

:class:`LeasedSqliteServerStore` adds a lease to the local lock: before a run claims its
thread, it takes the thread's item in ``<table>-leases`` with a conditional ``PutItem``
(free, or its lease expired), keeps it alive from the run manager's heartbeat, and deletes
it when the run ends. A run that cannot take the lease stays ``pending``: with
``multitask_strategy="reject"`` (what ``/chat`` uses) the request answers 409; enqueued
runs start, on whichever instance holds them, within a second of the lease's release. An
instance that dies holding a lease frees it after ``run_lease_seconds`` (DynamoDB's TTL
sweeps the item later; reads compare ``expires`` themselves). ``interrupt`` and ``rollback``
cannot reach a run on another instance: there they wait, like ``enqueue``.

Items: ``pk`` = thread id, ``sk`` = ``lease``, ``holder`` (worker and run id), ``expires``
(seconds, exact) and ``ttl`` (whole seconds). boto3 runs on the checkpointer's worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphyard.server._store import RunRecord, RunStatus, SqliteServerStore, ThreadStatus

__all__ = ["DynamoDBThreadLeases", "LeasedSqliteServerStore", "leases_table"]

log = logging.getLogger(__name__)


def leases_table(checkpoint_table: str) -> str:
    """The thread leases' table beside a checkpoint table.

    >>> leases_table("graphyard-checkpoints")
    'graphyard-checkpoints-leases'
    """
    return f"{checkpoint_table}-leases"


class DynamoDBThreadLeases:
    """Conditional-write leases, one item per busy thread."""

    def __init__(
        self,
        client: Any,
        table: str,
        run: Callable[..., Awaitable[Any]],
        *,
        seconds: float,
    ) -> None:
        self.client = client
        self.table = table
        self._run = run
        self.seconds = seconds

    async def setup(self) -> None:
        from graphyard.persistence.dynamodb._admin import create_table

        await self._run(create_table, self.client, self.table)

    def _key(self, thread_id: str) -> dict[str, Any]:
        return {"pk": {"S": thread_id}, "sk": {"S": "lease"}}

    def _acquire(self, thread_id: str, holder: str) -> bool:
        now = time.time()
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(thread_id),
                    "holder": {"S": holder},
                    "expires": {"N": repr(now + self.seconds)},
                    "ttl": {"N": str(int(now + self.seconds) + 1)},
                },
                ConditionExpression="attribute_not_exists(pk) OR expires < :now OR holder = :me",
                ExpressionAttributeValues={":now": {"N": repr(now)}, ":me": {"S": holder}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _renew(self, thread_id: str, holder: str) -> bool:
        now = time.time()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(thread_id),
                UpdateExpression="SET expires = :e, #t = :ttl",
                ConditionExpression="holder = :me",
                ExpressionAttributeNames={"#t": "ttl"},
                ExpressionAttributeValues={
                    ":e": {"N": repr(now + self.seconds)},
                    ":ttl": {"N": str(int(now + self.seconds) + 1)},
                    ":me": {"S": holder},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _release(self, thread_id: str, holder: str) -> None:
        # expired and taken by another run meanwhile: not ours to delete
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.delete_item(
                TableName=self.table,
                Key=self._key(thread_id),
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )

    async def acquire(self, thread_id: str, holder: str) -> bool:
        """Take the thread for ``holder``; False while another holder's lease is alive."""
        return bool(await self._run(self._acquire, thread_id, holder))

    async def renew(self, thread_id: str, holder: str) -> bool:
        """Extend ``holder``'s lease; False if it is no longer theirs."""
        return bool(await self._run(self._renew, thread_id, holder))

    async def release(self, thread_id: str, holder: str) -> None:
        await self._run(self._release, thread_id, holder)


class LeasedSqliteServerStore(SqliteServerStore):
    """The per-process SQLite run store, with each thread lock also leased in DynamoDB."""

    def __init__(self, path: str, leases: DynamoDBThreadLeases) -> None:
        super().__init__(path)
        self.leases = leases
        self._held: dict[str, str] = {}
        """thread id -> holder, for the leases this process holds."""

    async def open(self) -> None:
        await self.leases.setup()
        await super().open()

    async def _take(self, thread_id: str, run_id: str, worker: str) -> str | None:
        holder = f"{worker}/{run_id}"
        return holder if await self.leases.acquire(thread_id, holder) else None

    async def insert_run(self, run: RunRecord, *, claim_for: str | None = None) -> bool:
        holder = None
        if claim_for is not None:
            holder = await self._take(run.thread_id, run.run_id, claim_for)
        claimed = False
        try:
            claimed = await super().insert_run(run, claim_for=claim_for if holder else None)
        finally:
            await self._keep_or_release(run.thread_id, holder, claimed)
        return claimed

    async def claim(self, run_id: str, thread_id: str, worker: str) -> bool:
        holder = await self._take(thread_id, run_id, worker)
        if holder is None:
            return False
        claimed = False
        try:
            claimed = await super().claim(run_id, thread_id, worker)
        finally:
            await self._keep_or_release(thread_id, holder, claimed)
        return claimed

    async def _keep_or_release(self, thread_id: str, holder: str | None, claimed: bool) -> None:
        if holder is None:
            return
        if claimed:
            self._held[thread_id] = holder
        else:  # the local lock refused, or the store failed: give the lease back now
            await self.leases.release(thread_id, holder)

    async def finish(
        self, run: RunRecord, status: RunStatus, thread_status: ThreadStatus, error: str | None
    ) -> None:
        await super().finish(run, status, thread_status, error)
        holder = self._held.get(run.thread_id)
        if holder is not None and holder.endswith(f"/{run.run_id}"):
            del self._held[run.thread_id]
            try:
                await self.leases.release(run.thread_id, holder)
            except Exception:  # it expires on its own after run_lease_seconds
                log.exception("could not release the lease of thread %s", run.thread_id)

    async def heartbeat(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        requests = await super().heartbeat(run_ids)
        for thread_id, holder in list(self._held.items()):
            if not await self.leases.renew(thread_id, holder):
                log.error(
                    "run %s lost its lease on thread %s (this process stalled for longer than "
                    "run_lease_seconds): another instance may run the thread now",
                    holder.rsplit("/", 1)[1],
                    thread_id,
                )
                del self._held[thread_id]
        return requests
