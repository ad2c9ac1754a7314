"""The ledger on DynamoDB: a table of its own beside the checkpoints, ``<table>-ledger``.

Why not the checkpoint table: it is read thread by thread (listing and retention scan it,
and deleting a thread deletes its whole partition), and the ledger must outlive the threads
it counts. Why not the server's side SQLite file, as before: on Lambda each instance has its
own ``/tmp``, so every instance kept its own ledger, lost with the instance, and a per-user
daily budget counted only what that instance had spent.

Each call is written as two items (one ``BatchWriteItem`` for a whole batch of calls), so
each question the server asks is one ``Query`` on one partition:

    pk = t#{thread_id}   sk = {started_at:020.6f}#{call_id}    a thread's cost, its budget
    pk = u#{user_id}     sk = (the same)                       a user's day, ``costs --user``

Attributes are the ledger's column names (``graphyard_ledger`` in SQL). ``started_at`` at the
head of the sort key makes "since midnight" a key range; both items carry the whole record.
Writing a call twice writes the same two items (idempotent, like ``ON CONFLICT DO NOTHING``).
Totals over everyone (``graphyard costs`` without ``--user``) scan the user items: an admin
command, never a request path (the Lambda stack's role does not even allow ``Scan``).

boto3 is blocking: every call runs on the checkpointer's worker threads (or our own when
the ledger is opened without it, e.g. by the CLI). This module must never write to the
checkpoint table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

from graphyard.ledger._records import CallRecord, CostTotals, GroupBy
from graphyard.ledger._store import COLUMNS, Filter
from graphyard.persistence.dynamodb._ops import all_items, batch_write

__all__ = ["DynamoDBRows", "ledger_table"]

T = TypeVar("T")
_INTS = {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"}
_FLOATS = {"cost_usd", "latency_s", "started_at"}
_GROUP_FIELD = {"tier": "tier", "model": "model", "user": "user_id", "thread": "thread_id"}
_GROUP_FIELD["run"] = "run_id"


def ledger_table(checkpoint_table: str) -> str:
    """The ledger's table beside a checkpoint table.

    >>> ledger_table("graphyard-checkpoints")
    'graphyard-checkpoints-ledger'
    """
    return f"{checkpoint_table}-ledger"


def _key_time(t: float) -> str:
    return f"{t:020.6f}"


def _item(pk: str, r: CallRecord) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": f"{_key_time(r.started_at)}#{r.call_id}"}}
    for name in COLUMNS:
        value = getattr(r, name)
        if value is None:
            continue
        item[name] = {"N": repr(value)} if name in _INTS or name in _FLOATS else {"S": value}
    return item


def _record(item: dict[str, Any]) -> CallRecord:
    def value(name: str) -> Any:
        cell = item.get(name)
        if cell is None:
            return None
        if name in _INTS:
            return int(cell["N"])
        if name in _FLOATS:
            return float(cell["N"])
        return cell["S"]

    return CallRecord(*(value(name) for name in COLUMNS))


class DynamoDBRows:
    """The ledger's rows as DynamoDB items (see the module docstring)."""

    kind = "dynamodb"

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        run: Callable[..., Any] | None = None,
        target: Any = None,
    ) -> None:
        self.client = client
        self.table = table
        self._executor: ThreadPoolExecutor | None = None
        if run is None:
            self._executor = ThreadPoolExecutor(2, thread_name_prefix="graphyard-ledger")
        self._shared_run = run
        self._target = target
        """The checkpointer URL's target (``DynamoDBTarget``), for errors that say where."""

    @classmethod
    async def open(cls, url: str, *, saver: Any = None) -> DynamoDBRows:
        """The ledger beside the checkpoint table of ``url``, on ``saver``'s client and worker
        threads when it is the open DynamoDB checkpointer."""
        from graphyard.persistence.dynamodb._admin import make_clients, parse_url

        target = parse_url(url)
        client = getattr(saver, "client", None)
        if client is not None and getattr(saver, "table_name", None) == target.table:
            return cls(client, ledger_table(target.table), run=saver._run, target=target)
        client, _ = await asyncio.to_thread(make_clients, target)
        return cls(client, ledger_table(target.table), target=target)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._shared_run is not None:
            return await self._shared_run(fn, *args)  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    # --- Rows ------------------------------------------------------------------------------

    async def setup(self) -> None:
        from graphyard.persistence.dynamodb._admin import setup_errors

        errors = setup_errors(self._target, self.table) if self._target else nullcontext()
        with errors:
            await self._run(self._create)

    async def insert(self, records: Sequence[CallRecord]) -> None:
        await self._run(self._insert, records)

    async def spend(self, where: Filter) -> float:
        return sum(r.cost_usd for r in await self.select(where))

    async def select(self, where: Filter) -> list[CallRecord]:
        return await self._run(self._select, where)

    async def group(self, by: GroupBy, where: Filter) -> list[tuple[str, CostTotals]]:
        groups: dict[str, CostTotals] = {}
        for r in await self.select(where):
            key = (
                time.strftime("%Y-%m-%d", time.gmtime(r.started_at))
                if by == "day"
                else str(getattr(r, _GROUP_FIELD[by]))
            )
            groups.setdefault(key, CostTotals()).add(r)
        return list(groups.items())

    async def delete_threads(self, thread_ids: Sequence[str]) -> int:
        return await self._run(self._delete_threads, thread_ids)

    async def delete_before(self, when: float) -> int:
        return await self._run(self._delete_before, when)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # --- blocking halves, on a worker thread -----------------------------------------------

    def _create(self) -> None:
        """Create the table if it is missing (the Lambda stack creates it itself)."""
        from graphyard.persistence.dynamodb._admin import create_table

        create_table(self.client, self.table, ttl=False)

    def _insert(self, records: Sequence[CallRecord]) -> None:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for r in records:  # a call queued twice in one batch: DynamoDB refuses duplicate keys
            for pk in (f"t#{r.thread_id}", f"u#{r.user_id}"):
                item = _item(pk, r)
                items[(pk, item["sk"]["S"])] = item
        batch_write(self.client, self.table, [{"PutRequest": {"Item": i}} for i in items.values()])

    def _select(self, where: Filter) -> list[CallRecord]:
        if where.thread_id is not None or where.user_id is not None:
            pk = f"t#{where.thread_id}" if where.thread_id is not None else f"u#{where.user_id}"
            condition = "pk = :pk"
            values: dict[str, Any] = {":pk": {"S": pk}}
            if where.since is not None:
                condition += " AND sk >= :since"
                values[":since"] = {"S": _key_time(where.since)}
                if where.until is not None:  # a key range has one bound or BETWEEN
                    condition = "pk = :pk AND sk BETWEEN :since AND :until"
                    values[":until"] = {"S": _key_time(where.until)}
            elif where.until is not None:
                condition += " AND sk < :until"
                values[":until"] = {"S": _key_time(where.until)}
            items = all_items(
                self.client.query,
                TableName=self.table,
                ConsistentRead=True,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        else:  # everyone's calls: each once, from its user item
            items = all_items(
                self.client.scan,
                TableName=self.table,
                ConsistentRead=True,
                FilterExpression="begins_with(pk, :u)",
                ExpressionAttributeValues={":u": {"S": "u#"}},
            )
        # the key range is to the microsecond; the filter is exact
        records = [r for r in map(_record, items) if where.matches(r)]
        return sorted(records, key=lambda r: r.started_at)

    def _delete(self, records: Sequence[CallRecord]) -> None:
        keys = {
            (pk, f"{_key_time(r.started_at)}#{r.call_id}")
            for r in records
            for pk in (f"t#{r.thread_id}", f"u#{r.user_id}")
        }
        deletes = [{"DeleteRequest": {"Key": {"pk": {"S": p}, "sk": {"S": s}}}} for p, s in keys]
        batch_write(self.client, self.table, deletes)

    def _delete_threads(self, thread_ids: Sequence[str]) -> int:
        doomed = [r for t in thread_ids for r in self._select(Filter(thread_id=t))]
        self._delete(doomed)
        return len(doomed)

    def _delete_before(self, when: float) -> int:
        doomed = self._select(Filter(until=when))
        self._delete(doomed)
        return len(doomed)
