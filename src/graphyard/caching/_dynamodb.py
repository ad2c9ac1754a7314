"""A LangGraph ``BaseCache`` in DynamoDB (LangGraph ships none), for ``dynamodb://`` checkpointers.

Entries live in their own table, ``<checkpoint table>-cache`` (created on first use, on-demand
billing, DynamoDB TTL on ``ttl``), not in the checkpoint table: the checkpoint table is
read thread by thread (listing, retention sweeps) and cache items there would look like
threads; a separate table can also be emptied or dropped without touching a conversation.
Items: ``pk`` = namespace, ``sk`` = key, ``val`` (binary) and ``enc``, ``expiry`` (exact,
seconds) and ``ttl`` (whole seconds, for DynamoDB's own sweeper, which runs late: reads
filter on ``expiry``). Counters are items under ``pk = "#stats"``, updated with ``ADD`` so
several instances add up.

boto3 is blocking: every async method runs it on a worker thread. This module must never
write to the checkpoint table.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.cache.base import FullKey, Namespace, ValueT

from graphyard.caching._backends import CacheCounts, NamespaceEntries, StatsBackend, _now
from graphyard.persistence.dynamodb._ops import all_items, batch_get, batch_write

__all__ = ["DynamoDBCache"]

_STATS = "#stats"


def _ns(ns: Namespace) -> str:
    return ",".join(ns)


class DynamoDBCache(StatsBackend[ValueT]):
    """Node and answer cache entries in a DynamoDB table of their own."""

    kind = "dynamodb"

    def __init__(self, client: Any, table: str) -> None:
        super().__init__()
        self.client = client
        self.table = table
        self.location = f"dynamodb table {table}"

    @classmethod
    def open(cls, url: str) -> DynamoDBCache[Any]:
        """The cache beside the checkpoint table of ``url``; creates its table if missing (blocking)."""
        from graphyard.persistence.dynamodb._admin import create_table, make_clients, parse_url

        target = parse_url(url)
        client, _ = make_clients(target)
        cache: DynamoDBCache[Any] = cls(client, f"{target.table}-cache")
        create_table(client, cache.table)
        return cache

    # --- BaseCache -------------------------------------------------------------------------

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        now = _now()
        out: dict[FullKey, ValueT] = {}
        wanted = list(dict.fromkeys((_ns(ns), key) for ns, key in keys))
        found = batch_get(
            self.client, self.table, [{"pk": {"S": p}, "sk": {"S": s}} for p, s in wanted]
        )
        for item in found:
            expiry = float(item["expiry"]["N"]) if "expiry" in item else None
            if expiry is not None and expiry < now:
                continue
            value = self.serde.loads_typed((item["enc"]["S"], bytes(item["val"]["B"])))
            out[(tuple(item["pk"]["S"].split(",")), item["sk"]["S"])] = value
        return out

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        return await asyncio.to_thread(self.get, keys) if keys else {}

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        now = _now()
        puts = []
        for (ns, key), (value, ttl) in pairs.items():
            encoding, raw = self.serde.dumps_typed(value)
            item: dict[str, Any] = {
                "pk": {"S": _ns(ns)},
                "sk": {"S": key},
                "enc": {"S": encoding},
                "val": {"B": raw},
            }
            if ttl is not None:
                item["expiry"] = {"N": repr(now + ttl)}
                item["ttl"] = {"N": str(math.ceil(now + ttl))}
            puts.append({"PutRequest": {"Item": item}})
        self._batch_write(puts)

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        if pairs:
            await asyncio.to_thread(self.set, pairs)

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        if namespaces is None:
            items = [i for i in self._scan("pk, sk") if i["pk"]["S"] != _STATS]
        else:
            items = [i for ns in namespaces for i in self._query(_ns(ns), "pk, sk")]
        self._delete(items)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await asyncio.to_thread(self.clear, namespaces)

    # --- counters and housekeeping ---------------------------------------------------------

    def count(self, counts: Sequence[CacheCounts]) -> None:
        for c in counts:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": _STATS}, "sk": {"S": c.name}},
                UpdateExpression="ADD hits :h, misses :m, stores :s, saved_usd :d",
                ExpressionAttributeValues={
                    ":h": {"N": str(c.hits)},
                    ":m": {"N": str(c.misses)},
                    ":s": {"N": str(c.stores)},
                    ":d": {"N": repr(float(c.saved_usd))},
                },
            )

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        await asyncio.to_thread(self.count, counts)

    def stats(self) -> list[CacheCounts]:
        return [
            CacheCounts(
                i["sk"]["S"],
                int(i.get("hits", {}).get("N", 0)),
                int(i.get("misses", {}).get("N", 0)),
                int(i.get("stores", {}).get("N", 0)),
                float(i.get("saved_usd", {}).get("N", 0)),
            )
            for i in sorted(self._query(_STATS, None), key=lambda i: i["sk"]["S"])
        ]

    async def astats(self) -> list[CacheCounts]:
        return await asyncio.to_thread(self.stats)

    def entries(self) -> list[NamespaceEntries]:
        now = _now()
        by_ns: dict[str, list[int]] = {}
        for item in self._scan("pk, expiry, val"):
            if item["pk"]["S"] == _STATS:
                continue
            row = by_ns.setdefault(item["pk"]["S"], [0, 0, 0])
            expired = "expiry" in item and float(item["expiry"]["N"]) < now
            row[1 if expired else 0] += 1
            row[2] += len(item["val"]["B"])
        return [NamespaceEntries(ns, *row) for ns, row in sorted(by_ns.items())]

    async def aentries(self) -> list[NamespaceEntries]:
        return await asyncio.to_thread(self.entries)

    def purge_expired(self) -> int:
        now = _now()
        old = [
            i
            for i in self._scan("pk, sk, expiry")
            if i["pk"]["S"] != _STATS and "expiry" in i and float(i["expiry"]["N"]) < now
        ]
        self._delete(old)
        return len(old)

    async def apurge_expired(self) -> int:
        return await asyncio.to_thread(self.purge_expired)

    async def areset_stats(self) -> None:
        await asyncio.to_thread(lambda: self._delete(self._query(_STATS, "pk, sk")))

    # --- helpers ---------------------------------------------------------------------------

    def _scan(self, projection: str) -> list[dict[str, Any]]:
        return all_items(self.client.scan, TableName=self.table, ProjectionExpression=projection)

    def _query(self, pk: str, projection: str | None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": pk}},
            "ConsistentRead": True,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
        return all_items(self.client.query, **kwargs)

    def _delete(self, items: Sequence[dict[str, Any]]) -> None:
        self._batch_write(
            [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items]
        )

    def _batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        batch_write(self.client, self.table, requests)
