"""Recordings for ``dynamodb://`` checkpointers: a table beside the checkpoints, ``<table>-recordings``.

Before this module a DynamoDB server recorded nothing, so the deployment where production
failures happen (Lambda) was the one where none could be replayed.

One partition per thread (``pk`` = thread id), like the checkpoint table:

    r#{time_ns:020d}#{random}   one recorded call (write order = the order replay reads)
    m#{hash}                    one request message, stored once per thread (content hash)
    {either}#x{n}               chunk n of an item over 350 KB (DynamoDB refuses 400 KB)

An item's payload (the recording's row as JSON, or the message's canonical JSON) is zlib-
compressed in ``d``; a payload too big for one item goes into chunk items, written before
the item that counts them (``n``), so a reader never sees an item whose payload is not all
there.

Recordings follow their thread out: the DynamoDB saver's ``delete_thread`` (``DELETE
/threads/{id}``, ``graphyard threads delete|prune --idle``, the idle sweep) deletes the
thread's partition here too, and with ``GRAPHYARD_DYNAMODB_TTL`` every item carries the
same ``ttl`` horizon as the checkpoints written with it. Unlike the SQL stores' triggers,
recordings of checkpoints dropped by ``prune --keep-latest`` stay until their thread goes.

boto3 runs on the saver's worker threads; this module never reads or writes checkpoints.
"""

from __future__ import annotations

import json
import secrets
import time
import weakref
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from graphyard.persistence.dynamodb._ops import all_items, batch_get, batch_write
from graphyard.replay._store import Recording, _inline, _refs

if TYPE_CHECKING:
    from graphyard.persistence.dynamodb.aio import AsyncDynamoDBSaver

__all__ = ["DynamoDBRecordingStore", "recordings_table"]

_CHUNK = 350_000
_READY: weakref.WeakSet[Any] = weakref.WeakSet()


def recordings_table(checkpoint_table: str) -> str:
    """The recordings' table beside a checkpoint table (the saver deletes a thread's
    recordings there with the thread).

    >>> recordings_table("graphyard-checkpoints")
    'graphyard-checkpoints-recordings'
    """
    from graphyard.persistence.dynamodb._codec import RECORDINGS_SUFFIX

    return f"{checkpoint_table}{RECORDINGS_SUFFIX}"


class DynamoDBRecordingStore:
    """Recordings of a DynamoDB checkpointer's threads (see the module docstring)."""

    def __init__(self, saver: AsyncDynamoDBSaver) -> None:
        self.saver = saver
        self.client = saver.client
        self.table = recordings_table(saver.table_name)
        self._known: dict[str, set[str]] = {}
        """Message hashes this process already stored, per thread (to skip re-writing them)."""

    async def setup(self) -> None:
        if self.saver in _READY:
            return
        from graphyard.persistence.dynamodb._admin import create_table

        await self.saver._run(create_table, self.client, self.table)
        _READY.add(self.saver)

    async def put(self, recording: Recording) -> None:
        await self.setup()
        await self.saver._run(self._put, recording)

    async def for_thread(
        self, thread_id: str, checkpoint_ids: Sequence[str] | None = None
    ) -> list[Recording]:
        await self.setup()
        if checkpoint_ids is not None and not checkpoint_ids:
            return []
        return await self.saver._run(self._for_thread, thread_id, checkpoint_ids)

    async def count(self, thread_id: str | None = None) -> int:
        await self.setup()
        return await self.saver._run(self._count, "r#", thread_id)

    async def count_messages(self, thread_id: str | None = None) -> int:
        await self.setup()
        return await self.saver._run(self._count, "m#", thread_id)

    # --- blocking halves, on the saver's worker threads ------------------------------------

    def _ttl(self) -> dict[str, Any]:
        seconds = self.saver.ttl_seconds
        return {} if seconds is None else {"ttl": {"N": str(int(time.time()) + seconds)}}

    def _items(self, thread_id: str, sk: str, payload: bytes) -> list[dict[str, Any]]:
        """The item for ``payload`` under ``sk``, after its chunk items if it needs them."""
        data = zlib.compress(payload, 3)
        base = {"pk": {"S": thread_id}, **self._ttl()}
        if len(data) <= _CHUNK:
            return [{**base, "sk": {"S": sk}, "d": {"B": data}}]
        parts = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)]
        chunks = [
            {**base, "sk": {"S": f"{sk}#x{n:05d}"}, "d": {"B": part}}
            for n, part in enumerate(parts)
        ]
        return [*chunks, {**base, "sk": {"S": sk}, "n": {"N": str(len(parts))}}]

    def _put(self, recording: Recording) -> None:
        row, bodies = recording.stored()
        thread = recording.thread_id
        known = self._known.setdefault(thread, set())
        if len(self._known) > 1000:  # remember recent threads only
            self._known.pop(next(iter(self._known)))
        fresh = {h: b for h, b in bodies.items() if h not in known}
        # messages (and any chunks) first, then the recording that refers to them
        self._batch_put(
            [i for h, b in fresh.items() for i in self._items(thread, f"m#{h}", b.encode())]
        )
        known.update(fresh)
        sk = f"r#{time.time_ns():020d}#{secrets.token_hex(4)}"
        *chunks, main = self._items(thread, sk, json.dumps(row, default=str).encode())
        self._batch_put(chunks)
        self.client.put_item(TableName=self.table, Item=main)

    def _batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        batch_write(self.client, self.table, [{"PutRequest": {"Item": i}} for i in items])

    def _query(self, thread_id: str, prefix: str, **extra: Any) -> list[dict[str, Any]]:
        return all_items(
            self.client.query,
            **{
                "TableName": self.table,
                "KeyConditionExpression": "pk = :t AND begins_with(sk, :p)",
                "ExpressionAttributeValues": {":t": {"S": thread_id}, ":p": {"S": prefix}},
                "ConsistentRead": True,
                **extra,
            },
        )

    def _get(self, thread_id: str, sks: Sequence[str]) -> list[dict[str, Any]]:
        """These items of the thread that exist."""
        keys = [{"pk": {"S": thread_id}, "sk": {"S": sk}} for sk in sks]
        return batch_get(self.client, self.table, keys)

    def _payloads(self, items: Sequence[dict[str, Any]], thread_id: str) -> dict[str, bytes]:
        """Each main item's payload by sort key, chunked ones reassembled."""
        chunks = {i["sk"]["S"]: i["d"]["B"] for i in items if "#x" in i["sk"]["S"]}
        wanted = [
            f"{i['sk']['S']}#x{n:05d}" for i in items if "n" in i for n in range(int(i["n"]["N"]))
        ]
        missing = [k for k in wanted if k not in chunks]
        chunks.update({i["sk"]["S"]: i["d"]["B"] for i in self._get(thread_id, missing)})
        out: dict[str, bytes] = {}
        for item in items:
            sk = item["sk"]["S"]
            if "#x" in sk:
                continue
            if "n" in item:
                parts = [chunks[f"{sk}#x{n:05d}"] for n in range(int(item["n"]["N"]))]
                out[sk] = zlib.decompress(b"".join(parts))
            else:
                out[sk] = zlib.decompress(item["d"]["B"])
        return out

    def _for_thread(self, thread_id: str, checkpoint_ids: Sequence[str] | None) -> list[Recording]:
        items = self._query(thread_id, "r#")
        payloads = self._payloads(items, thread_id)
        recordings = [Recording.from_row(json.loads(payloads[sk])) for sk in sorted(payloads)]
        if checkpoint_ids is not None:
            wanted = set(checkpoint_ids)
            recordings = [r for r in recordings if r.checkpoint_id in wanted]
        refs = sorted(_refs(recordings))
        stored = self._payloads(self._get(thread_id, [f"m#{h}" for h in refs]), thread_id)
        bodies = {sk[2:]: data.decode() for sk, data in stored.items()}
        return _inline(recordings, bodies)

    def _count(self, prefix: str, thread_id: str | None) -> int:
        main = "NOT contains(sk, :x)"  # chunks are not recordings or messages
        values = {":p": {"S": prefix}, ":x": {"S": "#x"}}
        if thread_id is not None:
            items = self._query(
                thread_id,
                prefix,
                FilterExpression=main,
                ExpressionAttributeValues={":t": {"S": thread_id}, **values},
                ProjectionExpression="sk",
            )
            return len(items)
        items = all_items(
            self.client.scan,
            TableName=self.table,
            FilterExpression=f"begins_with(sk, :p) AND {main}",
            ExpressionAttributeValues=values,
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
        return len(items)
