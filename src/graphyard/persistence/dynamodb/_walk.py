"""Items grouped per checkpoint, decoded lazily, and the DeltaChannel history walk over them.

A :class:`Group` is everything one checkpoint owns: its item, its pending writes, its
history record and the chunks of any of them. Groups are built from whatever range reads
return; nothing is decoded until asked for.

:func:`walk` rebuilds ``get_delta_channel_history`` from groups already read, following
parent links from the target (so a fork's siblings never contribute). It raises
:class:`NeedGroup` when the next ancestor was not read yet; the caller reads further and
walks again (the walk is cheap: decoded values are kept on the groups).

A *history record* (``#h``) stores, for some channels, exactly what the walk would return
at that checkpoint: the seed and the writes before it. ``prune`` and the TTL rebase write
one, after which the checkpoint's ancestors may go: a walk that reaches a record stops
there. A stored channel value (a ``_DeltaSnapshot``) always wins over a record.

This module does no I/O of its own (S3 payloads come through the ``fetch`` callback).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import (
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    SerializerProtocol,
    writes_sort_key,
)

from graphyard.persistence.dynamodb._codec import (
    KIND_CHECKPOINT,
    KIND_CHUNK,
    KIND_HISTORY,
    KIND_WRITE,
    Item,
    chunk_prefix,
    unescape,
    unpack,
)

__all__ = ["Group", "NeedGroup", "Walked", "history_payload", "walk"]

Fetch = Callable[[str], bytes]
"""Reads an offloaded payload from S3 by key."""

RawWrite = tuple[str, str, str, bytes]
"""``(task_id, channel, serde type, serialized value)``."""


class NeedGroup(Exception):
    """The walk needs a checkpoint that has not been read yet."""

    def __init__(self, checkpoint_id: str) -> None:
        super().__init__(checkpoint_id)
        self.checkpoint_id = checkpoint_id


class Group:
    """One checkpoint's items."""

    __slots__ = (
        "_checkpoint",
        "_record",
        "_writes",
        "chunks",
        "cid",
        "history",
        "main",
        "ns",
        "writes",
    )

    def __init__(self, ns: str, cid: str) -> None:
        self.ns = ns
        self.cid = cid
        self.main: Item | None = None
        self.history: Item | None = None
        self.writes: dict[str, Item] = {}
        self.chunks: dict[str, bytes] = {}
        self._checkpoint: Any = None
        self._record: dict[str, Any] | None = None
        self._writes: list[tuple[str, str, int, str, str, bytes]] | None = None

    def add(self, item: Item) -> None:
        kind = item["k"]["S"]
        if kind == KIND_CHECKPOINT:
            self.main = item
        elif kind == KIND_WRITE:
            self.writes[item["sk"]["S"]] = item
        elif kind == KIND_HISTORY:
            self.history = item
        elif kind == KIND_CHUNK:
            self.chunks[item["sk"]["S"]] = item["d"]["B"]

    def items(self) -> Iterable[Item]:
        """The group's main, history and write items (not chunks)."""
        if self.main is not None:
            yield self.main
        if self.history is not None:
            yield self.history
        yield from self.writes.values()

    # -- payloads ---------------------------------------------------------------------------

    def complete(self, item: Item) -> bool:
        """Whether every chunk of ``item``'s payload was read (S3 is trusted: written first)."""
        if "n" not in item:
            return True
        prefix = chunk_prefix(item["sk"]["S"], item["g"]["S"])
        return all(f"{prefix}{i:05d}" in self.chunks for i in range(int(item["n"]["N"])))

    def payload(self, item: Item, fetch: Fetch) -> bytes:
        if "d" in item:
            return bytes(item["d"]["B"])
        if "s3" in item:
            return fetch(item["s3"]["S"])
        prefix = chunk_prefix(item["sk"]["S"], item["g"]["S"])
        parts = [self.chunks[f"{prefix}{i:05d}"] for i in range(int(item["n"]["N"]))]
        return b"".join(parts)

    @property
    def readable(self) -> bool:
        """A checkpoint item is here with all of its payload."""
        return self.main is not None and self.complete(self.main)

    @property
    def parent(self) -> str | None:
        assert self.main is not None
        parent = self.main.get("p")
        return parent["S"] if parent else None

    @property
    def delta_hint(self) -> list[str]:
        """Channels LangGraph will replay for this checkpoint (stored at put time)."""
        assert self.main is not None
        dv = self.main.get("dv")
        return [v["S"] for v in dv["L"]] if dv else []

    def ttls(self) -> list[int]:
        return [int(i["ttl"]["N"]) for i in self.items() if "ttl" in i]

    def checkpoint(self, serde: SerializerProtocol, fetch: Fetch) -> Any:
        if self._checkpoint is None:
            assert self.main is not None
            type_, data = unpack(self.payload(self.main, fetch))
            self._checkpoint = serde.loads_typed((type_, data))
        return self._checkpoint

    def metadata(self) -> dict[str, Any]:
        assert self.main is not None
        return json.loads(self.main["m"]["S"])

    def raw_writes(self, fetch: Fetch) -> list[tuple[str, str, int, str, str, bytes]]:
        """``(task_path, task_id, idx, channel, type, bytes)`` in ``writes_sort_key`` order.

        ``put_writes`` calls are replayed in the order they were saved, with the official
        savers' rule per ``(task, idx)``: a regular write keeps its first value, a call of
        special writes replaces.
        """
        if self._writes is None:
            calls = []
            for sk, item in self.writes.items():
                if not self.complete(item):
                    continue  # its payload is not all there: the call was not saved
                task = unescape(sk.partition("#w#")[2].rsplit("#", 2)[0])
                task_path = item["tp"]["S"] if "tp" in item else ""
                rows = unpack(self.payload(item, fetch))
                calls.append((int(item["q"]["N"]), "r" in item, task_path, task, rows))
            calls.sort(key=lambda c: c[0])
            merged: dict[tuple[str, int], tuple[str, str, int, str, str, bytes]] = {}
            for _, replace, task_path, task, rows in calls:
                for idx, channel, type_, data in rows:
                    if replace or (task, idx) not in merged:
                        merged[(task, idx)] = (task_path, task, idx, channel, type_, data)
            self._writes = sorted(merged.values(), key=lambda r: writes_sort_key(r[0], r[1], r[2]))
        return self._writes

    def pending_writes(self, serde: SerializerProtocol, fetch: Fetch) -> list[PendingWrite]:
        return [(t, c, serde.loads_typed((y, d))) for _, t, _, c, y, d in self.raw_writes(fetch)]

    def record(self, fetch: Fetch) -> dict[str, Any]:
        """The history record: channel -> ``[seed (type, bytes) | None, [raw writes]]``."""
        if self._record is None:
            item = self.history
            self._record = (
                unpack(self.payload(item, fetch))
                if item is not None and self.complete(item)
                else {}
            )
        return self._record

    def to_tuple(self, thread_id: str, serde: SerializerProtocol, fetch: Fetch) -> CheckpointTuple:
        parent = self.parent
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": self.ns,
                    "checkpoint_id": self.cid,
                }
            },
            checkpoint=self.checkpoint(serde, fetch),
            metadata=self.metadata(),  # type: ignore[arg-type]
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": self.ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=self.pending_writes(serde, fetch),
        )


@dataclass(slots=True)
class Walked:
    """What :func:`walk` found for each channel, oldest write first."""

    writes: dict[str, list[RawWrite]]
    seeds: dict[str, Any]
    """Seed values (deserialized) of the channels that have one."""
    visited: list[Group]
    """The target and the ancestors the walk read, newest first."""

    def histories(self, serde: SerializerProtocol) -> dict[str, DeltaChannelHistory]:
        out: dict[str, DeltaChannelHistory] = {}
        for ch, raw in self.writes.items():
            entry: DeltaChannelHistory = {
                "writes": [(t, c, serde.loads_typed((y, d))) for t, c, y, d in raw]
            }
            if ch in self.seeds:
                entry["seed"] = self.seeds[ch]
            out[ch] = entry
        return out


def walk(
    target: Group,
    channels: Sequence[str],
    resolve: Callable[[str], Group | None],
    serde: SerializerProtocol,
    fetch: Fetch,
) -> Walked:
    """Per-channel writes and seed for ``target``, by ``BaseCheckpointSaver``'s contract.

    ``resolve(checkpoint_id)`` returns the group, None if it does not exist (the chain is
    broken there, like the default walk's ``get_tuple`` returning None), or raises
    :class:`NeedGroup`.
    """
    collected: dict[str, list[RawWrite]] = {ch: [] for ch in channels}  # newest first
    seeds: dict[str, Any] = {}
    remaining = set(channels)
    visited = [target]
    _take_record(target, remaining, collected, seeds, serde, fetch)
    seen = {target.cid}
    cursor = target.parent
    while cursor is not None and remaining:
        if cursor in seen:
            break  # a re-put checkpoint made the chain loop
        group = resolve(cursor)
        if group is None:
            break
        seen.add(cursor)
        visited.append(group)
        for _, task_id, _, ch, type_, data in reversed(group.raw_writes(fetch)):
            if ch in remaining:
                collected[ch].append((task_id, ch, type_, data))
        values: Mapping[str, Any] = group.checkpoint(serde, fetch).get("channel_values") or {}
        for ch in [c for c in remaining if c in values]:
            seeds[ch] = values[ch]
            remaining.discard(ch)
        _take_record(group, remaining, collected, seeds, serde, fetch)
        cursor = group.parent
    return Walked(
        writes={ch: list(reversed(collected[ch])) for ch in channels},
        seeds=seeds,
        visited=visited,
    )


def _take_record(
    group: Group,
    remaining: set[str],
    collected: dict[str, list[RawWrite]],
    seeds: dict[str, Any],
    serde: SerializerProtocol,
    fetch: Fetch,
) -> None:
    """Channels ``group``'s history record covers end their walk here (the group's own
    writes, which come after the record, were collected by the caller already)."""
    if group.history is None or not remaining:
        return
    record = group.record(fetch)
    for ch in [c for c in remaining if c in record]:
        seed, writes = record[ch]
        collected[ch].extend((t, ch, y, d) for t, y, d in reversed(writes))
        if seed is not None:
            seeds[ch] = serde.loads_typed((seed[0], seed[1]))
        remaining.discard(ch)


def history_payload(walked: Walked, serde: SerializerProtocol) -> dict[str, Any]:
    """A history record's content: what ``walked`` found, re-serialized."""
    out: dict[str, Any] = {}
    for ch, writes in walked.writes.items():
        if not writes and ch not in walked.seeds:
            continue
        seed = list(serde.dumps_typed(walked.seeds[ch])) if ch in walked.seeds else None
        out[ch] = [seed, [[t, y, d] for t, _, y, d in writes]]
    return out
