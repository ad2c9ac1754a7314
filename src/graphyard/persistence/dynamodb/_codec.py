"""How checkpoints, writes and history records become DynamoDB items, and back.

One table, one partition per thread (``pk`` = thread id). Sort keys put everything a
checkpoint owns right after it, so one ``Query`` reads a checkpoint with its writes, and a
descending range read walks a thread's history newest first::

    {ns}#{checkpoint_id}                          the checkpoint (all its channel values)
    {ns}#{checkpoint_id}#h                        a history record (see _walk.py)
    {ns}#{checkpoint_id}#w#{task_id}#{idx}#{n}    one put_writes call: n writes from idx
    {sk of any of the above}#x#{gen}#{nnnnn}      a chunk of an oversized payload

``ns`` and ids are escaped (``%`` and ``#``) so ``#`` only ever separates fields. Attribute
names are one or two letters: DynamoDB bills (and limits items by) name bytes too.

Payloads are ``ormsgpack`` frames, zlib-compressed when that saves a tenth or more. A payload
too big for one item (DynamoDB's 400 KB limit) goes to S3 when a bucket is configured, else
into chunk items; either way it is written *before* the item that refers to it, so a reader
never sees an item whose payload is not all there. Chunk keys carry a per-write generation,
so re-writing an item never mixes old and new chunks.

This module does no I/O and must never import boto3.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import ormsgpack

__all__ = [
    "CHUNK_BYTES",
    "INLINE_MAX",
    "RECORDINGS_SUFFIX",
    "Item",
    "Placed",
    "checkpoint_sk",
    "chunk_prefix",
    "escape",
    "history_sk",
    "item_size",
    "ns_bounds",
    "pack",
    "place",
    "s3_key",
    "split_sk",
    "unescape",
    "unpack",
    "write_sk",
]

Item = dict[str, dict[str, Any]]
"""A DynamoDB item in the low-level client's typed form, e.g. ``{"pk": {"S": "t1"}}``."""

INLINE_MAX = 350_000
"""Largest payload kept inside its item; DynamoDB refuses items over 400 KB (names count)."""
CHUNK_BYTES = 350_000
"""Payload bytes per chunk item."""
COMPRESS_MIN = 512
"""Payloads smaller than this are stored as they are."""
TOP = "\U0010ffff"
"""Sorts after every character DynamoDB can store: the open end of a key range."""

RECORDINGS_SUFFIX = "-recordings"
"""The table beside the checkpoints where graphyard.replay keeps a thread's recorded calls
(deleted with the thread)."""

KIND_CHECKPOINT = "c"
KIND_HISTORY = "h"
KIND_WRITE = "w"
KIND_CHUNK = "x"


def escape(text: str) -> str:
    """Make ``text`` safe inside a sort key: ``#`` separates fields.

    >>> escape("child:1#2%"), unescape(escape("child:1#2%"))
    ('child:1%232%25', 'child:1#2%')
    """
    return text.replace("%", "%25").replace("#", "%23")


def unescape(text: str) -> str:
    return text.replace("%23", "#").replace("%25", "%")


def checkpoint_sk(ns: str, checkpoint_id: str) -> str:
    return f"{escape(ns)}#{escape(checkpoint_id)}"


def history_sk(ns: str, checkpoint_id: str) -> str:
    return f"{checkpoint_sk(ns, checkpoint_id)}#h"


def write_sk(ns: str, checkpoint_id: str, task_id: str, idx: int, count: int = 1) -> str:
    """The item of one ``put_writes`` call: its first write's index and how many it holds."""
    return f"{checkpoint_sk(ns, checkpoint_id)}#w#{escape(task_id)}#{idx}#{count}"


def chunk_prefix(main_sk: str, gen: str) -> str:
    return f"{main_sk}#x#{gen}#"


def split_sk(sk: str) -> tuple[str, str]:
    """``(ns, checkpoint_id)`` of any item's sort key.

    >>> split_sk(write_sk("a:b", "c1", "task", -1))
    ('a:b', 'c1')
    """
    ns, _, rest = sk.partition("#")
    return unescape(ns), unescape(rest.partition("#")[0])


def ns_bounds(ns: str) -> tuple[str, str]:
    """The inclusive sort-key range holding exactly one namespace."""
    prefix = f"{escape(ns)}#"
    return prefix, prefix + TOP


def s3_key(prefix: str, thread_id: str, sk: str, gen: str) -> str:
    """Where an offloaded payload lives; every object of a thread shares one key prefix."""
    return f"{prefix}{quote(thread_id, safe='')}/{quote(sk, safe='')}/{gen}"


def s3_thread_prefix(prefix: str, thread_id: str) -> str:
    return f"{prefix}{quote(thread_id, safe='')}/"


def pack(obj: Any) -> bytes:
    """Frame ``obj`` (msgpack), compressed when it is worth it; first byte says which."""
    raw = ormsgpack.packb(obj)
    if len(raw) >= COMPRESS_MIN:
        small = zlib.compress(raw, 3)
        if len(small) <= len(raw) * 0.9:
            return b"\x01" + small
    return b"\x00" + raw


def unpack(data: bytes) -> Any:
    """Inverse of :func:`pack`.

    >>> unpack(pack(["json", b"x" * 2000]))[1] == b"x" * 2000
    True
    """
    if data[:1] == b"\x01":
        return ormsgpack.unpackb(zlib.decompress(data[1:]))
    return ormsgpack.unpackb(data[1:])


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))


@dataclass(slots=True)
class Placed:
    """An item ready to write, with whatever must be written before it."""

    item: Item
    chunks: list[Item] = field(default_factory=list)
    """Chunk items, written before ``item``."""
    s3: tuple[str, bytes] | None = None
    """``(key, body)`` of an S3 object, written before ``item``."""


def place(
    item: Item,
    payload: bytes,
    *,
    ttl: int | None,
    s3_bucket: str | None,
    s3_prefix: str = "",
    inline_max: int = INLINE_MAX,
) -> Placed:
    """Attach ``payload`` to ``item``: inline, offloaded to S3, or split into chunks."""
    if ttl is not None:
        item["ttl"] = {"N": str(ttl)}
    if len(payload) <= inline_max:
        item["d"] = {"B": payload}
        return Placed(item)
    gen = secrets.token_hex(4)
    item["g"] = {"S": gen}
    main_sk = item["sk"]["S"]
    if s3_bucket is not None:
        key = s3_key(s3_prefix, item["pk"]["S"], main_sk, gen)
        item["s3"] = {"S": key}
        return Placed(item, s3=(key, payload))
    prefix = chunk_prefix(main_sk, gen)
    chunks: list[Item] = []
    for n, start in enumerate(range(0, len(payload), CHUNK_BYTES)):
        chunk: Item = {
            "pk": item["pk"],
            "sk": {"S": f"{prefix}{n:05d}"},
            "k": {"S": KIND_CHUNK},
            "d": {"B": payload[start : start + CHUNK_BYTES]},
        }
        if ttl is not None:
            chunk["ttl"] = {"N": str(ttl)}
        chunks.append(chunk)
    item["n"] = {"N": str(len(chunks))}
    return Placed(item, chunks=chunks)


def payload_size(placed: Placed) -> int:
    """Bytes of payload kept inside the main item."""
    data = placed.item.get("d")
    return len(data["B"]) if data else 0


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in raw.items())
    if kind in ("BOOL", "NULL"):
        return 1
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Item) -> int:
    """An item's size by DynamoDB's rules (names plus values), the size its limit applies to.

    >>> item_size({"pk": {"S": "t1"}, "d": {"B": b"123"}})
    8
    """
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def strings(values: Sequence[str]) -> dict[str, Any]:
    return {"L": [{"S": v} for v in values]}
