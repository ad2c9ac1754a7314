"""The DynamoDB saver's storage logic, shared by the sync and async savers.

Everything here is synchronous boto3: :class:`~graphyard.persistence.dynamodb.DynamoDBSaver`
calls it directly and :class:`~graphyard.persistence.dynamodb.aio.AsyncDynamoDBSaver` runs it
on its own thread pool. Layout and encoding: :mod:`._codec`; history walk: :mod:`._walk`.

Requests, per operation (``n`` pages of at most 1 MB each, normally 1):

- ``put``: one ``PutItem``; a payload over 350 KB first goes to S3 or to chunk items.
- ``put_writes``: one ``PutItem``: a task's writes are one item, so they are saved all
  together or not at all (LangGraph treats a task with any saved write as done). That is
  atomic without ``TransactWriteItems``, which would cost twice the write units and cap a
  task at 100 writes and 4 MB. Regular writes are insert-if-absent, special ones (errors,
  interrupts) replace, as in the official savers.
- ``get_tuple`` for the latest checkpoint: one strongly consistent ``Query`` that reads the
  checkpoint *and* the ancestors its DeltaChannels replay (the channels are recorded at put
  time), so the ``get_delta_channel_history`` LangGraph calls next costs no request. The
  saver remembers, per thread, how far back the last walk went and reads from there; a
  stale memory (another process wrote, forked or pruned) is detected by the walk, which
  then reads further. A cold saver reads from the newest item down, one 1 MB page at a
  time, until the walk is done.
- ``get_delta_channel_history`` without that prefetch: one ``Query`` over the same range.

Items carry ``ttl`` (epoch seconds) when a TTL is configured; reads drop expired items
before DynamoDB's own (lazy, up to days late) deletion does. Old items of an *active*
thread must not take its DeltaChannel history with them: when loading the latest
checkpoint finds that an item its state needs would expire within ``REBASE_AT`` of a TTL,
the saver writes a history record at that checkpoint and re-writes the checkpoint's items
with a fresh TTL (the "rebase"). So a thread's state outlives its last run by at least
90% of the TTL, only checkpoints the state no longer needs expire earlier, and an active
thread pays one extra write per tenth of a TTL.

Nothing here may run on an event loop thread: every call blocks on the network.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)

from graphyard.persistence.dynamodb._codec import (
    KIND_CHECKPOINT,
    KIND_CHUNK,
    KIND_HISTORY,
    KIND_WRITE,
    RECORDINGS_SUFFIX,
    TOP,
    Item,
    Placed,
    checkpoint_sk,
    dump_metadata,
    history_sk,
    ns_bounds,
    pack,
    place,
    s3_key,
    s3_thread_prefix,
    split_sk,
    strings,
    write_sk,
)
from graphyard.persistence.dynamodb._ops import all_items, batch_write
from graphyard.persistence.dynamodb._reader import Reader
from graphyard.persistence.dynamodb._walk import Group, NeedGroup, Walked, history_payload, walk

__all__ = ["BaseDynamoDBSaver"]

REBASE_AT = 0.9
"""Rebase when the state needs an item that expires sooner than this share of a TTL."""
_MEMORY = 4096
"""Threads whose last walk the saver remembers."""


@dataclass(slots=True)
class _Hint:
    latest: str
    """The newest checkpoint this saver wrote or read for the thread/namespace."""
    lo: str | None
    """A sort key from which a range read covers ``latest``'s DeltaChannel history."""


class BaseDynamoDBSaver(BaseCheckpointSaver[str]):
    """Storage logic over a boto3 DynamoDB client (and an S3 client for big payloads)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        ttl_seconds: int | None = None,
        s3_client: Any | None = None,
        s3_bucket: str | None = None,
        s3_prefix: str = "",
        serde: SerializerProtocol | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(serde=serde)
        if s3_bucket is not None and s3_client is None:
            raise ValueError("s3_bucket needs an s3_client")
        self.client = client
        self.table_name = table_name
        self.ttl_seconds = ttl_seconds
        self.s3_client = s3_client
        self.s3_bucket = s3_bucket
        self.s3_prefix = s3_prefix
        self.clock = clock
        """Seconds since the epoch; tests move it to expire items."""
        self._lock = threading.Lock()
        self._hints: OrderedDict[tuple[str, str], _Hint] = OrderedDict()
        self._prefetched: OrderedDict[
            tuple[str, str, str], tuple[frozenset[str], dict[str, DeltaChannelHistory]]
        ] = OrderedDict()

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as the official savers make them: a zero-padded counter plus a random
        fraction, so they sort as strings."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- small helpers -----------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock())

    def _ttl(self) -> int | None:
        return None if self.ttl_seconds is None else self._now() + self.ttl_seconds

    def _fetch_s3(self, key: str) -> bytes:
        assert self.s3_client is not None, "an item refers to S3 but no S3 client is set"
        return self.s3_client.get_object(Bucket=self.s3_bucket, Key=key)["Body"].read()

    def _place(self, item: Item, payload: bytes, ttl: int | None) -> Placed:
        return place(item, payload, ttl=ttl, s3_bucket=self.s3_bucket, s3_prefix=self.s3_prefix)

    def _remember(self, thread_id: str, ns: str, hint: _Hint | None) -> None:
        with self._lock:
            key = (thread_id, ns)
            if hint is None:
                self._hints.pop(key, None)
                return
            self._hints[key] = hint
            self._hints.move_to_end(key)
            while len(self._hints) > _MEMORY:
                self._hints.popitem(last=False)

    def _hint(self, thread_id: str, ns: str) -> _Hint | None:
        with self._lock:
            return self._hints.get((thread_id, ns))

    def _forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._hints if k[0] == thread_id]:
                del self._hints[key]
            for key in [k for k in self._prefetched if k[0] == thread_id]:
                del self._prefetched[key]

    # -- raw requests ------------------------------------------------------------------------

    def _query(self, **kwargs: Any) -> Iterator[tuple[list[Item], dict[str, Any] | None]]:
        """Pages of a ``Query`` on this table."""
        start = kwargs.pop("ExclusiveStartKey", None)
        while True:
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.query(TableName=self.table_name, **kwargs)
            start = response.get("LastEvaluatedKey")
            yield response.get("Items", []), start
            if start is None:
                return

    def _partition(self, thread_id: str, *, keys_only: bool = False) -> list[Item]:
        """Every item of a thread (expired ones included)."""
        extra: dict[str, Any] = {}
        if keys_only:
            extra = {
                "ProjectionExpression": "#pk, #sk, #k, #s3",
                "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#k": "k", "#s3": "s3"},
            }
        items: list[Item] = []
        for page, _ in self._query(
            KeyConditionExpression="pk = :t",
            ExpressionAttributeValues={":t": {"S": thread_id}},
            ConsistentRead=True,
            **extra,
        ):
            items.extend(page)
        return items

    def _batch(self, requests: Sequence[dict[str, Any]]) -> None:
        """``BatchWriteItem`` in batches of 25, retrying unprocessed items with backoff."""
        batch_write(self.client, self.table_name, requests)

    def _put_all(self, items: Sequence[Item]) -> None:
        self._batch([{"PutRequest": {"Item": item}} for item in items])

    def _delete_keys(self, items: Sequence[Item]) -> None:
        self._batch([{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in items])

    def _write_first(self, placed: Sequence[Placed]) -> None:
        """What the main items refer to: S3 objects and chunk items."""
        for p in placed:
            if p.s3 is not None:
                self.s3_client.put_object(Bucket=self.s3_bucket, Key=p.s3[0], Body=p.s3[1])  # type: ignore[union-attr]
        chunks = [c for p in placed for c in p.chunks]
        if chunks:
            self._put_all(chunks)

    def _discard(self, placed: Placed) -> None:
        """Best effort: remove the payload of a main item that was not written."""
        try:
            if placed.chunks:
                self._delete_keys(placed.chunks)
            if placed.s3 is not None:
                self.s3_client.delete_object(Bucket=self.s3_bucket, Key=placed.s3[0])  # type: ignore[union-attr]
        except Exception:  # garbage is left for delete_thread or the TTL
            pass

    def _insert_if_absent(self) -> dict[str, Any]:
        return {
            "ConditionExpression": "attribute_not_exists(sk) OR #t < :now",
            "ExpressionAttributeNames": {"#t": "ttl"},
            "ExpressionAttributeValues": {":now": {"N": str(self._now())}},
        }

    # -- reads -------------------------------------------------------------------------------

    def _read_group(self, thread_id: str, ns: str, cid: str) -> Group | None:
        """One checkpoint with its writes and records: one ``Query``."""
        sk = checkpoint_sk(ns, cid)
        reader = Reader(self, thread_id, ns, lo=sk, hi=sk + "#" + TOP, floor=sk)
        while reader.more():
            pass
        group = reader.groups.get(cid)
        return group if group is not None and group.readable else None

    def _walk(self, reader: Reader, target: Group, channels: Sequence[str]) -> Walked:
        while True:
            try:
                return walk(target, channels, reader.resolve, self.serde, self._fetch_s3)
            except NeedGroup:
                if not reader.more():  # pragma: no cover - resolve() never asks past the floor
                    raise

    def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        if cid := get_checkpoint_id(config):
            group = self._read_group(thread_id, ns, cid)
            return group.to_tuple(thread_id, self.serde, self._fetch_s3) if group else None
        hint = self._hint(thread_id, ns)
        reader = Reader(self, thread_id, ns, lo=hint.lo if hint else None, hi=ns_bounds(ns)[1])
        target = reader.latest()
        if target is None:
            self._remember(thread_id, ns, None)
            return None
        result = target.to_tuple(thread_id, self.serde, self._fetch_s3)
        channels = target.delta_hint
        walked = self._walk(reader, target, channels)
        if channels:
            with self._lock:
                key = (thread_id, ns, target.cid)
                self._prefetched[key] = (frozenset(channels), walked.histories(self.serde))
                while len(self._prefetched) > 32:
                    self._prefetched.popitem(last=False)
        lo = min(checkpoint_sk(ns, g.cid) for g in walked.visited)
        self._remember(thread_id, ns, _Hint(target.cid, lo))
        self._maybe_rebase(thread_id, target, walked)
        return result

    def _delta_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        if not channels:
            return {}
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        cid = get_checkpoint_id(config)
        if not cid:
            latest = self._get_tuple(config)
            if latest is None:
                return {ch: {"writes": []} for ch in channels}
            cid = latest.config["configurable"]["checkpoint_id"]
        with self._lock:
            cached = self._prefetched.pop((thread_id, ns, cid), None)
        if cached is not None and set(channels) <= cached[0]:
            return {ch: cached[1][ch] for ch in channels}
        hint = self._hint(thread_id, ns)
        lo = hint.lo if hint is not None and hint.latest == cid else None
        reader = Reader(self, thread_id, ns, lo=lo, hi=checkpoint_sk(ns, cid) + "#" + TOP)
        target = reader.group(cid)
        if target is None:
            return {ch: {"writes": []} for ch in channels}
        return self._walk(reader, target, channels).histories(self.serde)

    def _list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        before_id = get_checkpoint_id(before) if before else None
        wanted = get_checkpoint_id(config) if config else None
        remaining = limit

        def keep(group: Group) -> bool:
            if wanted is not None and group.cid != wanted:
                return False
            if before_id is not None and group.cid >= before_id:
                return False
            if filter:
                metadata = group.metadata()
                return all(metadata.get(k) == v for k, v in filter.items())
            return True

        def emit(thread_id: str, groups: Sequence[Group]) -> Iterator[CheckpointTuple]:
            nonlocal remaining
            for group in groups:
                if remaining is not None and remaining <= 0:
                    return
                if group.readable and keep(group):
                    if remaining is not None:
                        remaining -= 1
                    yield group.to_tuple(thread_id, self.serde, self._fetch_s3)

        if config is None:
            rows = self._scan_groups()
            rows.sort(key=lambda r: r[1].cid, reverse=True)
            for thread_id, group in rows:
                yield from emit(thread_id, [group])
            return
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns")
        if ns is None:  # every namespace of the thread, newest checkpoint first
            reader = Reader(self, thread_id, None, lo=None, hi=None)
            while reader.more():
                pass
            groups = sorted(reader.all_groups(), key=lambda g: g.cid, reverse=True)
            yield from emit(thread_id, groups)
            return
        lo, hi = ns_bounds(ns)
        if wanted is not None:
            lo, hi = checkpoint_sk(ns, wanted), checkpoint_sk(ns, wanted) + "#" + TOP
        elif before_id is not None:
            hi = checkpoint_sk(ns, before_id)
        reader = Reader(self, thread_id, ns, lo=lo, hi=hi, floor=lo)
        done: set[str] = set()
        while reader.more():
            ready = sorted(
                (g for g in reader.groups.values() if g.cid not in done and reader.is_complete(g)),
                key=lambda g: g.cid,
                reverse=True,
            )
            done.update(g.cid for g in ready)
            yield from emit(thread_id, ready)
            if remaining is not None and remaining <= 0:
                return

    def _scan_groups(self) -> list[tuple[str, Group]]:
        """Every checkpoint of every thread: a full table ``Scan`` (admin use only)."""
        now = self._now()
        groups: dict[tuple[str, str, str], Group] = {}
        start = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
            if start is not None:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.scan(**kwargs)
            for item in response.get("Items", []):
                if "ttl" in item and int(item["ttl"]["N"]) < now:
                    continue
                ns, cid = split_sk(item["sk"]["S"])
                key = (item["pk"]["S"], ns, cid)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = Group(ns, cid)
                group.add(item)
            start = response.get("LastEvaluatedKey")
            if start is None:
                return [(thread_id, g) for (thread_id, _, _), g in groups.items()]

    # -- writes ------------------------------------------------------------------------------

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        parent = configurable.get("checkpoint_id")
        cid = checkpoint["id"]
        meta = get_serializable_checkpoint_metadata(config, metadata)
        counters = meta.get("counters_since_delta_snapshot") or {}
        replay = [
            ch
            for ch in counters
            if ch in checkpoint["channel_versions"] and ch not in checkpoint["channel_values"]
        ]
        item: Item = {
            "pk": {"S": thread_id},
            "sk": {"S": checkpoint_sk(ns, cid)},
            "k": {"S": KIND_CHECKPOINT},
            "m": {"S": dump_metadata(meta)},
        }
        if parent:
            item["p"] = {"S": parent}
        if replay:
            item["dv"] = strings(replay)
        placed = self._place(item, pack(list(self.serde.dumps_typed(checkpoint))), self._ttl())
        self._write_first([placed])
        self.client.put_item(TableName=self.table_name, Item=placed.item)
        hint = self._hint(thread_id, ns)
        if not replay:
            self._remember(thread_id, ns, _Hint(cid, checkpoint_sk(ns, cid)))
        elif hint is not None and hint.latest == parent and hint.lo is not None:
            self._remember(thread_id, ns, _Hint(cid, hint.lo))
        else:
            self._remember(thread_id, ns, _Hint(cid, None))
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}

    def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """One item per call: a task's writes are saved together or not at all.

        Per ``(task, idx)`` the official savers' rules hold: a regular write keeps its first
        value (insert-or-ignore), a call of special writes (errors, interrupts, resumes)
        replaces. Items carry a sequence number; readers replay them in that order. A call
        saved again is the same item and, unless it is special, is not written twice.
        """
        if not writes:
            return
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        cid = str(configurable["checkpoint_id"])
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        rows = [
            [WRITES_IDX_MAP.get(channel, idx), channel, *self.serde.dumps_typed(value)]
            for idx, (channel, value) in enumerate(writes)
        ]
        item: Item = {
            "pk": {"S": thread_id},
            "sk": {"S": write_sk(ns, cid, task_id, rows[0][0], len(rows))},
            "k": {"S": KIND_WRITE},
            "q": {"N": str(time.time_ns())},
        }
        if task_path:
            item["tp"] = {"S": task_path}
        if replace:
            item["r"] = {"BOOL": True}
        placed = self._place(item, pack(rows), self._ttl())
        self._write_first([placed])
        condition = {} if replace else self._insert_if_absent()
        try:
            self.client.put_item(TableName=self.table_name, Item=placed.item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            self._discard(placed)  # saved before: the first value stays

    def _delete_thread(self, thread_id: str) -> None:
        thread_id = str(thread_id)
        items = self._partition(thread_id, keys_only=True)
        # Checkpoints first, newest first: an interrupted delete leaves an older, whole state.
        mains = sorted(
            (i for i in items if i["k"]["S"] == KIND_CHECKPOINT),
            key=lambda i: i["sk"]["S"],
            reverse=True,
        )
        rest = [i for i in items if i["k"]["S"] != KIND_CHECKPOINT]
        self._delete_keys(mains + rest)
        if self.s3_bucket is not None:
            self._delete_s3_prefix(s3_thread_prefix(self.s3_prefix, thread_id))
        self._delete_recordings(thread_id)
        self._forget_thread(thread_id)

    def _delete_recordings(self, thread_id: str) -> None:
        """The thread's recorded calls go with it: its partition in ``<table>-recordings``
        (:mod:`graphyard.replay._store_dynamodb`), if that table exists."""
        table = f"{self.table_name}{RECORDINGS_SUFFIX}"
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :t",
            "ExpressionAttributeValues": {":t": {"S": thread_id}},
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        try:
            keys = all_items(self.client.query, **kwargs)
        except self.client.exceptions.ResourceNotFoundException:
            return  # nothing was ever recorded beside this table
        batch_write(self.client, table, [{"DeleteRequest": {"Key": k}} for k in keys])

    def _delete_s3_prefix(self, prefix: str) -> None:
        assert self.s3_client is not None
        paginator = self.s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.s3_bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3_client.delete_objects(Bucket=self.s3_bucket, Delete={"Objects": keys})

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        now, ttl = self._now(), self._ttl()
        items = [
            i
            for i in self._partition(str(source_thread_id))
            if "ttl" not in i or int(i["ttl"]["N"]) >= now
        ]
        copies: list[Item] = []
        for item in items:
            new = dict(item)
            new["pk"] = {"S": str(target_thread_id)}
            if ttl is not None:
                new["ttl"] = {"N": str(ttl)}
            if "s3" in item:
                key = s3_key(self.s3_prefix, str(target_thread_id), item["sk"]["S"], item["g"]["S"])
                self.s3_client.copy_object(  # type: ignore[union-attr]
                    Bucket=self.s3_bucket,
                    Key=key,
                    CopySource={"Bucket": self.s3_bucket, "Key": item["s3"]["S"]},
                )
                new["s3"] = {"S": key}
            copies.append(new)
        # Payloads first, then writes and records, then checkpoints oldest first: a copy cut
        # short shows an older complete state, never a checkpoint missing its payload.
        rank = {KIND_CHUNK: 0, KIND_WRITE: 1, KIND_HISTORY: 1, KIND_CHECKPOINT: 2}
        copies.sort(key=lambda i: (rank[i["k"]["S"]], i["sk"]["S"]))
        self._put_all(copies)
        self._forget_thread(str(target_thread_id))

    def _prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                self._delete_thread(thread_id)
            else:
                self._keep_latest(thread_id)

    def _keep_latest(self, thread_id: str) -> None:
        """Keep each namespace's newest checkpoint, readable without its ancestors.

        The kept checkpoint first gets a history record for every channel it has a version
        but no value for (DeltaChannels among them); only then do its ancestors go, so an
        interrupted prune leaves the thread readable. Newer items (a run saving right now)
        are never touched.
        """
        reader = Reader(self, thread_id, None, lo=None, hi=None)
        while reader.more():
            pass
        by_ns: dict[str, list[Group]] = {}
        for group in reader.all_groups():
            by_ns.setdefault(group.ns, []).append(group)
        doomed: list[Item] = []
        for groups in by_ns.values():
            readable = {g.cid: g for g in groups if g.readable}
            if not readable:
                continue
            keep = readable[max(readable)]
            values = keep.checkpoint(self.serde, self._fetch_s3)
            channels = [
                ch for ch in values["channel_versions"] if ch not in values["channel_values"]
            ]
            walked = walk(keep, channels, readable.get, self.serde, self._fetch_s3)
            record = history_payload(walked, self.serde)
            if record:
                self._write_record(thread_id, keep, record, self._ttl())
            for group in groups:
                if group.cid < keep.cid:
                    doomed += [*group.items(), *self._chunk_items(thread_id, group)]
        self._delete_keys(doomed)
        self._delete_s3_keys([i["s3"]["S"] for i in doomed if "s3" in i])
        self._forget_thread(thread_id)

    def _delete_s3_keys(self, keys: Sequence[str]) -> None:
        if not keys or self.s3_client is None:
            return
        for start in range(0, len(keys), 1000):
            self.s3_client.delete_objects(
                Bucket=self.s3_bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
            )

    @staticmethod
    def _chunk_items(thread_id: str, group: Group) -> list[Item]:
        return [{"pk": {"S": thread_id}, "sk": {"S": sk}} for sk in group.chunks]

    def _write_record(
        self, thread_id: str, group: Group, record: dict[str, Any], ttl: int | None
    ) -> None:
        item: Item = {
            "pk": {"S": thread_id},
            "sk": {"S": history_sk(group.ns, group.cid)},
            "k": {"S": KIND_HISTORY},
        }
        placed = self._place(item, pack(record), ttl)
        self._write_first([placed])
        self.client.put_item(TableName=self.table_name, Item=placed.item)

    def _maybe_rebase(self, thread_id: str, target: Group, walked: Walked) -> None:
        """Keep an active thread's state alive when the items it depends on near expiry."""
        if self.ttl_seconds is None:
            return
        ttls = [t for g in walked.visited for t in g.ttls()]
        if not ttls or min(ttls) >= self._now() + self.ttl_seconds * REBASE_AT:
            return
        ttl = self._ttl()
        assert ttl is not None
        record = history_payload(walked, self.serde)
        if record:
            self._write_record(thread_id, target, record, ttl)
        fresh: list[Item] = []
        for sk, data in target.chunks.items():
            fresh.append(
                {"pk": {"S": thread_id}, "sk": {"S": sk}, "k": {"S": KIND_CHUNK}, "d": {"B": data}}
            )
        for item in target.items():
            if record and item is target.history:
                continue
            fresh.append(dict(item))
        for item in fresh:
            item["ttl"] = {"N": str(ttl)}
        # Chunks come first in ``fresh``: a re-written main item never outlives its payload.
        self._put_all(fresh)
