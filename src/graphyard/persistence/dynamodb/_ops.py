"""Paging and batching on DynamoDB's low-level client, for every table graphyard keeps there.

DynamoDB answers a ``Query`` or ``Scan`` one page (1 MB) at a time, and a batch request may
come back with part of it left undone under throttling: each caller must loop. These are the
loops, once: the checkpoint saver's admin, the cache, the ledger, the recordings and the
thread leases all use them.

Blocking (boto3); call from a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BATCH_GET", "BATCH_WRITE", "all_items", "batch_get", "batch_write"]

BATCH_WRITE = 25
"""Most requests ``BatchWriteItem`` takes at once."""
BATCH_GET = 100
"""Most keys ``BatchGetItem`` takes at once."""
_TRIES = 10


def _backoff(attempt: int) -> None:
    time.sleep(min(0.05 * 2**attempt, 2.0))


def all_items(operation: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a paged ``query`` or ``scan`` (``operation`` is the client's method)."""
    items: list[dict[str, Any]] = []
    while True:
        page = operation(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_write(client: Any, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """``PutRequest`` / ``DeleteRequest`` entries in batches of 25, retrying unprocessed ones
    with backoff; raises if DynamoDB keeps refusing (throttled)."""
    for start in range(0, len(requests), BATCH_WRITE):
        pending: dict[str, Any] = {table: list(requests[start : start + BATCH_WRITE])}
        for attempt in range(_TRIES):
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError(f"DynamoDB kept refusing a batch write to {table} (throttled)")


def batch_get(
    client: Any, table: str, keys: Sequence[dict[str, Any]], *, consistent: bool = True
) -> list[dict[str, Any]]:
    """The items of these keys that exist, in batches of 100, retrying unprocessed keys."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET):
        pending: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": consistent}
        }
        for attempt in range(_TRIES):
            page = client.batch_get_item(RequestItems=pending)
            found += page.get("Responses", {}).get(table, [])
            pending = page.get("UnprocessedKeys") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise RuntimeError(f"DynamoDB kept refusing a batch read of {table} (throttled)")
    return found
