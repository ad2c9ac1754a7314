"""What ``dynamodb://`` servers share across instances: each thread's run lease and owner.

A DynamoDB server keeps its thread and run records in each process's own
``graphyard-server.db`` (a full DynamoDB run store is still to come). On Lambda every
concurrent request is its own instance, so two things broke: the thread lock held on one
instance only (a message sent twice, or from two tabs, ran twice on the same thread at
once, and the two runs wrote sibling checkpoints: one answer silently lost), and a user's
thread list (``POST /threads/search``, the chat page's sidebar) showed only the threads the
answering instance happened to know.

:class:`SharedSqliteServerStore` keeps both in ``<table>-threads``:

- **Leases.** Before a run claims its thread, it takes the thread's lease with a
  conditional ``PutItem`` (free, or expired), keeps it alive from the run manager's
  heartbeat, and deletes it when the run ends. A run that cannot take it stays ``pending``:
  with ``multitask_strategy="reject"`` (what ``/chat`` uses) the request answers 409;
  enqueued runs start, on whichever instance holds them, within a second of the release. An
  instance that dies holding a lease frees it after ``run_lease_seconds`` (DynamoDB's TTL
  sweeps the item later; reads compare ``expires`` themselves). ``interrupt`` and
  ``rollback`` cannot reach a run on another instance: there they wait, like ``enqueue``.
- **The thread index.** Creating a thread adds it to its owner's partition and to its own
  (with its metadata and times); changing its metadata, a run ending and deleting it update
  both. Searching and counting a user's threads read the owner's partition (one ``Query``),
  taking status from this instance's records where it has them (else ``idle``); an instance
  asked for a thread it has no record of adopts it from the thread's item.

Items: ``pk`` = thread id, ``sk`` = ``lease``: ``holder`` (worker and run id), ``expires``
(seconds, exact), ``ttl``. The thread itself twice, for the two ways it is looked up:
``pk`` = ``owner#{owner}``, ``sk`` = thread id (search) and ``pk`` = thread id, ``sk`` =
``thread`` (an instance without the record adopts it, metadata and owner included): ``owner``,
``created_at``, ``updated_at``, ``metadata`` (JSON). Server thread ids never contain ``#``. boto3 runs on the
checkpointer's worker threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphyard.persistence.dynamodb._ops import all_items
from graphyard.server._store import (
    RunRecord,
    RunStatus,
    SqliteServerStore,
    ThreadRecord,
    ThreadStatus,
)

__all__ = ["DynamoDBThreads", "SharedSqliteServerStore", "threads_table"]

log = logging.getLogger(__name__)


def threads_table(checkpoint_table: str) -> str:
    """The shared threads table (leases, owner index) beside a checkpoint table.

    >>> threads_table("graphyard-checkpoints")
    'graphyard-checkpoints-threads'
    """
    return f"{checkpoint_table}-threads"


def _record(thread_id: str, item: dict[str, Any]) -> ThreadRecord:
    return ThreadRecord(
        thread_id,
        item["owner"]["S"],
        float(item["created_at"]["N"]),
        float(item["updated_at"]["N"]),
        json.loads(item["metadata"]["S"]),
        "idle",
        None,
    )


class DynamoDBThreads:
    """Run leases (one item per busy thread) and each owner's thread index."""

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

    def _index_keys(self, owner: str, thread_id: str) -> list[dict[str, Any]]:
        """The thread's item in its owner's partition, and its own (beside its lease)."""
        return [
            {"pk": {"S": f"owner#{owner}"}, "sk": {"S": thread_id}},
            {"pk": {"S": thread_id}, "sk": {"S": "thread"}},
        ]

    def _index_put(self, record: ThreadRecord) -> None:
        # a thread adopted here from another instance keeps the index's metadata and times
        for key in self._index_keys(record.owner, record.thread_id):
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        **key,
                        "owner": {"S": record.owner},
                        "created_at": {"N": repr(record.created_at)},
                        "updated_at": {"N": repr(record.updated_at)},
                        "metadata": {"S": json.dumps(record.metadata)},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )

    def _index_touch(self, owner: str, thread_id: str, metadata: dict[str, Any] | None) -> None:
        sets, values = ["updated_at = :u"], {":u": {"N": repr(time.time())}}
        keys = self._index_keys(owner, thread_id)
        if metadata is not None:
            sets.append("metadata = :m")
            values[":m"] = {"S": json.dumps(metadata)}
        else:  # only search reads updated_at: the thread's own item keeps its first one
            keys = keys[:1]
        for key in keys:
            # a thread never indexed (created before the index): leave it absent
            with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
                self.client.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues=values,
                )

    def _index_delete(self, owner: str, thread_id: str) -> None:
        for key in self._index_keys(owner, thread_id):
            self.client.delete_item(TableName=self.table, Key=key)

    def _index_get(self, thread_id: str) -> ThreadRecord | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": thread_id}, "sk": {"S": "thread"}},
            ConsistentRead=True,
        ).get("Item")
        return None if item is None else _record(thread_id, item)

    def _index_list(self, owner: str) -> list[ThreadRecord]:
        items = all_items(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :o",
            ExpressionAttributeValues={":o": {"S": f"owner#{owner}"}},
            ConsistentRead=True,
        )
        return [_record(i["sk"]["S"], i) for i in items]

    async def index_put(self, record: ThreadRecord) -> None:
        """Add a new thread to its owner's index."""
        await self._run(self._index_put, record)

    async def index_touch(
        self, owner: str, thread_id: str, metadata: dict[str, Any] | None = None
    ) -> None:
        """Record that the thread changed (and its new metadata, if given)."""
        await self._run(self._index_touch, owner, thread_id, metadata)

    async def index_delete(self, owner: str, thread_id: str) -> None:
        await self._run(self._index_delete, owner, thread_id)

    async def index_get(self, thread_id: str) -> ThreadRecord | None:
        """The thread as the index knows it (status ``idle``), or None."""
        return await self._run(self._index_get, thread_id)  # type: ignore[no-any-return]

    async def index_list(self, owner: str) -> list[ThreadRecord]:
        """Every thread of ``owner`` in the index (status ``idle``: the index keeps none)."""
        return list(await self._run(self._index_list, owner))

    async def acquire(self, thread_id: str, holder: str) -> bool:
        """Take the thread for ``holder``; False while another holder's lease is alive."""
        return bool(await self._run(self._acquire, thread_id, holder))

    async def renew(self, thread_id: str, holder: str) -> bool:
        """Extend ``holder``'s lease; False if it is no longer theirs."""
        return bool(await self._run(self._renew, thread_id, holder))

    async def release(self, thread_id: str, holder: str) -> None:
        await self._run(self._release, thread_id, holder)


class SharedSqliteServerStore(SqliteServerStore):
    """The per-process SQLite run store, with each thread lock also leased in DynamoDB."""

    def __init__(self, path: str, shared: DynamoDBThreads) -> None:
        super().__init__(path)
        self.shared = shared
        self._held: dict[str, str] = {}
        """thread id -> holder, for the leases this process holds."""

    async def open(self) -> None:
        await self.shared.setup()
        await super().open()

    async def _take(self, thread_id: str, run_id: str, worker: str) -> str | None:
        holder = f"{worker}/{run_id}"
        return holder if await self.shared.acquire(thread_id, holder) else None

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
            await self.shared.release(thread_id, holder)

    # --- the owner index --------------------------------------------------------------------

    async def create_thread(
        self,
        thread_id: str,
        owner: str,
        metadata: dict[str, Any],
        *,
        if_exists: str = "raise",
        created_at: float | None = None,
    ) -> ThreadRecord | None:
        record = await super().create_thread(
            thread_id, owner, metadata, if_exists=if_exists, created_at=created_at
        )
        if record is not None:
            await self.shared.index_put(record)
        return record

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        record = await super().get_thread(thread_id)
        if record is not None:
            return record
        shared = await self.shared.index_get(thread_id)  # created on another instance
        if shared is None:
            return None
        await super().create_thread(
            thread_id, shared.owner, shared.metadata, created_at=shared.created_at
        )
        return await super().get_thread(thread_id)

    async def _owner(self, thread_id: str) -> str | None:
        """Whose the thread is, without adopting it here (this instance's record, else the
        shared item)."""
        record = await super().get_thread(thread_id) or await self.shared.index_get(thread_id)
        return None if record is None else record.owner

    async def update_thread(
        self, thread_id: str, *, metadata: dict[str, Any] | None = None, status: str | None = None
    ) -> None:
        await super().update_thread(thread_id, metadata=metadata, status=status)
        owner = await self._owner(thread_id)
        if owner is not None:
            await self.shared.index_touch(owner, thread_id, metadata)

    async def delete_thread(self, thread_id: str) -> None:
        owner = await self._owner(thread_id)
        await super().delete_thread(thread_id)
        if owner is not None:
            await self.shared.index_delete(owner, thread_id)

    async def search_threads(
        self,
        owner: str | None,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[ThreadRecord]:
        if owner is None:  # every owner's threads: only this instance's records
            return await super().search_threads(
                owner,
                metadata=metadata,
                status=status,
                ids=ids,
                limit=limit,
                offset=offset,
                sort_by=sort_by,
                sort_order=sort_order,
            )
        indexed = await self.shared.index_list(owner)
        local = {
            t.thread_id: t
            for t in await super().search_threads(
                owner, ids=[t.thread_id for t in indexed], limit=len(indexed) or 1
            )
        }
        rows = []
        for t in indexed:
            here = local.get(t.thread_id)
            if here is not None:  # this instance's status and run; the index's metadata
                t.status, t.active_run_id = here.status, here.active_run_id
                t.updated_at = max(t.updated_at, here.updated_at)
            if ids is not None and t.thread_id not in ids:
                continue
            if status and t.status != status:
                continue
            if any(t.metadata.get(k) != v for k, v in (metadata or {}).items()):
                continue
            rows.append(t)
        key = (
            sort_by
            if sort_by in ("created_at", "updated_at", "thread_id", "status")
            else "created_at"
        )
        rows.sort(key=lambda t: getattr(t, key), reverse=sort_order.lower() != "asc")
        return rows[offset : offset + limit]

    async def count_threads(self, owner: str | None) -> int:
        if owner is None:
            return await super().count_threads(owner)
        return len(await self.shared.index_list(owner))

    async def finish(
        self, run: RunRecord, status: RunStatus, thread_status: ThreadStatus, error: str | None
    ) -> None:
        await super().finish(run, status, thread_status, error)
        try:
            await self.shared.index_touch(run.owner, run.thread_id)
        except Exception:  # the listing's order only; the run's end is stored
            log.exception("could not update thread %s in the owner index", run.thread_id)
        holder = self._held.get(run.thread_id)
        if holder is not None and holder.endswith(f"/{run.run_id}"):
            del self._held[run.thread_id]
            try:
                await self.shared.release(run.thread_id, holder)
            except Exception:  # it expires on its own after run_lease_seconds
                log.exception("could not release the lease of thread %s", run.thread_id)

    async def heartbeat(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        requests = await super().heartbeat(run_ids)
        for thread_id, holder in list(self._held.items()):
            if not await self.shared.renew(thread_id, holder):
                log.error(
                    "run %s lost its lease on thread %s (this process stalled for longer than "
                    "run_lease_seconds): another instance may run the thread now",
                    holder.rsplit("/", 1)[1],
                    thread_id,
                )
                del self._held[thread_id]
        return requests
