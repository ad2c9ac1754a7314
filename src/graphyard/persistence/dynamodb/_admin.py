"""The table's setup, the ``dynamodb://`` URL, and thread-level upkeep for retention.

- :func:`parse_url` / :func:`make_clients`: ``dynamodb://table?region=...&endpoint_url=...``
  (optional ``s3_bucket=``, ``s3_prefix=``) to boto3 clients. Credentials come from the
  standard AWS chain (environment, profile, instance role), never from the URL.
- :func:`create_table`: what ``graphyard db init`` runs; idempotent.
- :class:`DynamoDBThreadStore`: graphyard's ``ThreadStore`` protocol (list threads, idle
  threads, drop old checkpoints). Listing threads across a table is a full ``Scan`` (keys and
  kinds only): fine for an admin command, not for a request path. On DynamoDB, prefer the
  item TTL (``GRAPHYARD_DYNAMODB_TTL``) to the server's idle-thread sweep, which scans.

Nothing here runs on an event loop thread; the store's async methods use the saver's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from graphyard.errors import ConfigError
from graphyard.persistence.dynamodb._codec import (
    KIND_CHECKPOINT,
    checkpoint_sk,
    ns_bounds,
    split_sk,
)
from graphyard.persistence.dynamodb._ops import all_items

if TYPE_CHECKING:
    from graphyard.persistence._savers import ThreadSummary
    from graphyard.persistence._stores import Compaction
    from graphyard.persistence.dynamodb.base import BaseDynamoDBSaver

__all__ = [
    "DynamoDBTarget",
    "DynamoDBThreadStore",
    "create_table",
    "make_clients",
    "parse_url",
    "setup_errors",
]

T = TypeVar("T")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_PARAMS = ("region", "endpoint_url", "s3_bucket", "s3_prefix")


@dataclass(frozen=True, slots=True)
class DynamoDBTarget:
    """Where a ``dynamodb://`` URL points."""

    table: str
    region: str | None = None
    endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""


def parse_url(url: str) -> DynamoDBTarget:
    """Read a ``dynamodb://table?region=...&endpoint_url=...&s3_bucket=...`` URL.

    >>> parse_url("dynamodb://checkpoints?region=eu-west-1&s3_bucket=big")
    DynamoDBTarget(table='checkpoints', region='eu-west-1', endpoint_url=None, s3_bucket='big', s3_prefix='')
    """
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        raise ConfigError(
            f"checkpointer URL {url!r} is not a DynamoDB URL: use dynamodb://table?region=..."
        )
    table = parts.netloc or parts.path.lstrip("/")
    if not _TABLE_NAME.match(table):
        raise ConfigError(
            f"checkpointer URL {url!r} names no valid table: write dynamodb://<table>?region=<region> "
            "(3-255 letters, digits, '_', '-', '.')"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_PARAMS))
    if unknown:
        raise ConfigError(
            f"checkpointer URL {url!r} has unknown parameter(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(_PARAMS)}"
        )
    one = {k: v[-1] for k, v in query.items() if v and v[-1]}
    return DynamoDBTarget(
        table=table,
        region=one.get("region"),
        endpoint_url=one.get("endpoint_url"),
        s3_bucket=one.get("s3_bucket"),
        s3_prefix=one.get("s3_prefix", ""),
    )


def make_clients(target: DynamoDBTarget, *, pool: int = 10) -> tuple[Any, Any | None]:
    """``(dynamodb, s3 or None)`` boto3 clients for ``target`` (blocking: reads AWS config)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=pool,
        connect_timeout=5,
        read_timeout=30,
    )
    session = boto3.session.Session()
    options = {"region_name": target.region, "endpoint_url": target.endpoint_url, "config": config}
    try:
        dynamodb = session.client("dynamodb", **options)
        s3 = session.client("s3", **options) if target.s3_bucket else None
    except NoRegionError:
        raise ConfigError(
            "the DynamoDB checkpointer needs a region: add ?region=<region> to the URL "
            "or set AWS_DEFAULT_REGION"
        ) from None
    return dynamodb, s3


@contextlib.contextmanager
def setup_errors(target: DynamoDBTarget, table: str) -> Iterator[None]:
    """Unreachable endpoints, missing credentials and refused permissions while setting up
    ``table`` become a :class:`ConfigError` that says what to fix (no stack trace)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = target.endpoint_url or f"region {target.region or '(from AWS_DEFAULT_REGION)'}"
    try:
        yield
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials for DynamoDB: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/task role"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ConfigError(
            f"DynamoDB refused setting up table {table!r} at {where}: "
            f"{error.get('Code')}: {error.get('Message')}; the credentials need "
            "dynamodb:DescribeTable, CreateTable, DescribeTimeToLive and UpdateTimeToLive "
            "(or create the table with `graphyard db init` as someone who has them)"
        ) from None
    except BotoCoreError as exc:
        raise ConfigError(
            f"cannot reach DynamoDB at {where}: {exc}; check endpoint_url and region in "
            "the checkpointer URL"
        ) from None


def create_table(
    client: Any,
    table_name: str,
    *,
    s3_client: Any | None = None,
    s3_bucket: str | None = None,
    wait: bool = True,
    ttl: bool = True,
) -> bool:
    """Create the checkpoint table (``pk``/``sk`` strings, on-demand billing) with TTL on the
    ``ttl`` attribute, and the S3 bucket if one is named. Returns whether the table was new.

    Safe to run again, and from two processes at once: an existing table only gets TTL
    turned on if it was off. ``ttl=False`` leaves TTL alone (the ledger's table: its items
    never expire).

    >>> import boto3  # doctest: +SKIP
    >>> create_table(boto3.client("dynamodb"), "graphyard-checkpoints")  # doctest: +SKIP
    True
    """
    created = False
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        try:
            client.create_table(
                TableName=table_name,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            created = True
        except client.exceptions.ResourceInUseException:
            pass  # another process is creating it: wait for it like our own
        if wait:
            client.get_waiter("table_exists").wait(
                TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
    status = (
        client.describe_time_to_live(TableName=table_name)
        .get("TimeToLiveDescription", {})
        .get("TimeToLiveStatus")
        if ttl
        else None
    )
    if ttl and status not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
    if s3_client is not None and s3_bucket is not None:
        try:
            s3_client.head_bucket(Bucket=s3_bucket)
        except Exception:
            region = s3_client.meta.region_name
            extra = (
                {}
                if region in (None, "us-east-1")
                else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            s3_client.create_bucket(Bucket=s3_bucket, **extra)
    return created


@dataclass(slots=True)
class _ThreadStats:
    root_count: int = 0
    root_latest: str = ""
    latest: str = ""


class DynamoDBThreadStore:
    """graphyard's ``ThreadStore`` for a DynamoDB saver (see module docstring)."""

    def __init__(self, saver: BaseDynamoDBSaver) -> None:
        self.saver = saver

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        run = getattr(self.saver, "_run", None)
        if run is not None:
            return await run(fn, *args)
        return await asyncio.to_thread(fn, *args)

    # -- sync halves, on a worker thread ---------------------------------------------------

    def _mains(self, **query: Any) -> list[dict[str, Any]]:
        """Checkpoint items (keys only) that have not expired."""
        saver = self.saver
        names = {"#pk": "pk", "#sk": "sk", "#k": "k", "#t": "ttl"}
        values = {":c": {"S": KIND_CHECKPOINT}, **query.pop("values", {})}
        kwargs: dict[str, Any] = {
            "TableName": saver.table_name,
            "ProjectionExpression": "#pk, #sk, #t",
            "FilterExpression": "#k = :c",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            **query,
        }
        operation = saver.client.query if "KeyConditionExpression" in kwargs else saver.client.scan
        now = saver._now()
        items = all_items(operation, **kwargs)
        return [i for i in items if "ttl" not in i or int(i["ttl"]["N"]) >= now]

    def _stats(self, items: Sequence[dict[str, Any]]) -> dict[str, _ThreadStats]:
        stats: dict[str, _ThreadStats] = {}
        for item in items:
            ns, cid = split_sk(item["sk"]["S"])
            s = stats.setdefault(item["pk"]["S"], _ThreadStats())
            s.latest = max(s.latest, cid)
            if ns == "":
                s.root_count += 1
                s.root_latest = max(s.root_latest, cid)
        return stats

    def _thread_stats(self, thread_id: str) -> _ThreadStats | None:
        items = self._mains(
            KeyConditionExpression="#pk = :t", values={":t": {"S": thread_id}}, ConsistentRead=True
        )
        return self._stats(items).get(thread_id)

    def _list(self, limit: int, offset: int) -> list[ThreadSummary]:
        from graphyard.persistence._savers import ThreadSummary

        stats = self._stats(self._mains())
        rows = sorted(
            ((t, s) for t, s in stats.items() if s.root_count),
            key=lambda r: r[1].root_latest,
            reverse=True,
        )
        return [
            ThreadSummary(t, s.root_count, s.root_latest) for t, s in rows[offset : offset + limit]
        ]

    def _idle(self, before_id: str) -> list[ThreadSummary]:
        from graphyard.persistence._savers import ThreadSummary

        stats = self._stats(self._mains())
        rows = sorted(
            ((t, s) for t, s in stats.items() if s.latest < before_id), key=lambda r: r[1].latest
        )
        return [ThreadSummary(t, s.root_count, s.root_latest) for t, s in rows]

    def _delete(self, thread_ids: Sequence[str], idle_before: str | None) -> list[str]:
        deleted = []
        for thread_id in thread_ids:
            stats = self._thread_stats(thread_id)
            if stats is None:
                continue
            if idle_before is not None and stats.latest >= idle_before:
                continue  # active again since it was found idle
            self.saver._delete_thread(thread_id)
            deleted.append(thread_id)
        return deleted

    def _before(self, thread_id: str, keep_id: str) -> list[dict[str, Any]]:
        """Every root-namespace item of checkpoints older than ``keep_id``."""
        floor, _ = ns_bounds("")
        items: list[dict[str, Any]] = []
        for page, _ in self.saver._query(
            KeyConditionExpression="pk = :t AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":t": {"S": thread_id},
                ":lo": {"S": floor},
                ":hi": {"S": checkpoint_sk("", keep_id)},
            },
            ConsistentRead=True,
        ):
            items += [i for i in page if split_sk(i["sk"]["S"])[1] < keep_id]
        return items

    def _count_before(self, thread_id: str, keep_id: str) -> int:
        floor, _ = ns_bounds("")
        items = self._mains(
            KeyConditionExpression="#pk = :t AND #sk BETWEEN :lo AND :hi",
            values={
                ":t": {"S": thread_id},
                ":lo": {"S": floor},
                ":hi": {"S": checkpoint_sk("", keep_id)},
            },
            ConsistentRead=True,
        )
        return sum(1 for i in items if split_sk(i["sk"]["S"])[1] < keep_id)

    def _drop_before(self, thread_id: str, keep_id: str) -> int:
        saver = self.saver
        now = saver._now()
        items = self._before(thread_id, keep_id)
        dropped = sum(
            1
            for i in items
            if i["k"]["S"] == KIND_CHECKPOINT and ("ttl" not in i or int(i["ttl"]["N"]) >= now)
        )
        mains = sorted(
            (i for i in items if i["k"]["S"] == KIND_CHECKPOINT), key=lambda i: i["sk"]["S"]
        )
        # Oldest checkpoints first: an interrupted drop leaves a contiguous, newer history.
        saver._delete_keys(mains + [i for i in items if i["k"]["S"] != KIND_CHECKPOINT])
        saver._delete_s3_keys([i["s3"]["S"] for i in items if "s3" in i])
        with contextlib.suppress(saver.client.exceptions.ConditionalCheckFailedException):
            saver.client.update_item(
                TableName=saver.table_name,
                Key={"pk": {"S": thread_id}, "sk": {"S": checkpoint_sk("", keep_id)}},
                UpdateExpression="REMOVE p",
                ConditionExpression="attribute_exists(sk)",
            )
        saver._forget_thread(thread_id)
        return dropped

    def _size(self) -> int:
        table = self.saver.client.describe_table(TableName=self.saver.table_name)["Table"]
        return int(table.get("TableSizeBytes", 0))

    # -- the ThreadStore protocol ------------------------------------------------------------

    async def list_threads(self, *, limit: int, offset: int) -> list[ThreadSummary]:
        return await self._run(self._list, limit, offset)

    async def idle_threads(self, before_id: str) -> list[ThreadSummary]:
        return await self._run(self._idle, before_id)

    async def existing(self, thread_ids: Sequence[str]) -> list[str]:
        found = []
        for thread_id in thread_ids:
            if await self._run(self._thread_stats, thread_id) is not None:
                found.append(thread_id)
        return found

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: str | None = None
    ) -> list[str]:
        return await self._run(self._delete, list(thread_ids), idle_before)

    async def count_before(self, thread_id: str, keep_id: str) -> int:
        return await self._run(self._count_before, thread_id, keep_id)

    async def drop_before(self, thread_id: str, keep_id: str) -> int:
        return await self._run(self._drop_before, thread_id, keep_id)

    async def compact(self) -> Compaction | None:
        """DynamoDB gives deleted items' space back by itself."""
        return None

    async def size_bytes(self) -> int:
        """The table's size as DynamoDB reports it (AWS refreshes it about every six hours)."""
        return await self._run(self._size)
