"""Descending range reads of one thread, grouped per checkpoint, for the saver and the walk.

A :class:`Reader` reads a sort-key range newest first, one page (at most 1 MB) at a time,
only as far as its caller needs: :meth:`Reader.latest` stops at the newest checkpoint,
:meth:`Reader.resolve` asks for the next page when the history walk reaches a checkpoint
below what was read. A range that starts above the namespace's floor (the saver's memory of
how far back the last walk went) widens down to the floor by itself when that was not
enough. Expired items are dropped as they arrive.

Reads are strongly consistent. This module must never write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from graphyard.persistence.dynamodb._codec import Item, checkpoint_sk, ns_bounds, split_sk
from graphyard.persistence.dynamodb._walk import Group, NeedGroup

if TYPE_CHECKING:
    from graphyard.persistence.dynamodb.base import BaseDynamoDBSaver

__all__ = ["Reader"]


class Reader:
    """Descending range reads over one namespace of a thread (or, with ``ns=None``, all of
    it), grouped per checkpoint. Everything at or above :attr:`covered` has been read."""

    def __init__(
        self,
        saver: BaseDynamoDBSaver,
        thread_id: str,
        ns: str | None,
        *,
        lo: str | None,
        hi: str | None,
        floor: str | None = None,
    ) -> None:
        self.saver = saver
        self.thread_id = thread_id
        self.ns = ns
        self.floor = floor if floor is not None else (ns_bounds(ns)[0] if ns is not None else None)
        self.lo = lo if lo is not None else self.floor
        self.hi = hi
        self.covered: str | None = None
        self.now = saver._now()
        self._groups: dict[tuple[str, str], Group] = {}
        self._pages: Iterator[tuple[list[Item], dict[str, Any] | None]] | None = None
        self._segment_lo = self.lo

    @property
    def groups(self) -> dict[str, Group]:
        return {cid: g for (ns, cid), g in self._groups.items() if ns == self.ns}

    def all_groups(self) -> list[Group]:
        return list(self._groups.values())

    def _ingest(self, items: Sequence[Item]) -> None:
        for item in items:
            if "ttl" in item and int(item["ttl"]["N"]) < self.now:
                continue  # expired: DynamoDB deletes it eventually, we ignore it now
            key = split_sk(item["sk"]["S"])
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = Group(*key)
            group.add(item)

    def _open(self, lo: str | None, hi: str | None) -> None:
        values: dict[str, Any] = {":t": {"S": self.thread_id}}
        condition = "pk = :t"
        if lo is not None and hi is not None:
            condition += " AND sk BETWEEN :lo AND :hi"
            values.update({":lo": {"S": lo}, ":hi": {"S": hi}})
        self._segment_lo = lo
        self._pages = self.saver._query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
        )

    def more(self) -> bool:
        """Read one more page (1 MB at most); False once nothing is left to read."""
        if self._pages is None:
            if self.covered is not None:
                # The segment is done; widen down to the floor if it did not start there.
                if self._segment_lo is None or self._segment_lo == self.floor:
                    return False
                self._open(self.floor, self._segment_lo)
            else:
                self._open(self.lo, self.hi)
        assert self._pages is not None
        try:
            items, last = next(self._pages)
        except StopIteration:  # pragma: no cover - _query always yields a last page
            self._pages = None
            return self.more()
        self._ingest(items)
        if last is not None:
            self.covered = last["sk"]["S"]
        else:
            self.covered = self._segment_lo or ""
            self._pages = None
        return True

    def is_complete(self, group: Group) -> bool:
        return self.covered is not None and checkpoint_sk(group.ns, group.cid) >= self.covered

    def latest(self) -> Group | None:
        """The newest readable checkpoint of the namespace."""
        while True:
            ready = [g for g in self.groups.values() if g.readable and self.is_complete(g)]
            if ready:
                return max(ready, key=lambda g: g.cid)
            if not self.more():
                return None

    def group(self, cid: str) -> Group | None:
        """The checkpoint ``cid`` (None if it does not exist), reading as far as needed."""
        assert self.ns is not None
        while self.covered is None or self.covered > checkpoint_sk(self.ns, cid):
            if not self.more():
                break
        group = self.groups.get(cid)
        return group if group is not None and group.readable else None

    def resolve(self, cid: str) -> Group | None:
        """For :func:`walk`: the group, None if it does not exist, or :class:`NeedGroup`."""
        assert self.ns is not None
        sk = checkpoint_sk(self.ns, cid)
        if self.hi is not None and sk > self.hi:
            # A parent newer than its child (IDs from two machines' clocks): read it apart.
            extra = self.saver._read_group(self.thread_id, self.ns, cid)
            if extra is not None:
                self._groups[(self.ns, cid)] = extra
            return extra
        if self.covered is not None and sk >= self.covered:
            group = self.groups.get(cid)
            return group if group is not None and group.readable else None
        raise NeedGroup(cid)
