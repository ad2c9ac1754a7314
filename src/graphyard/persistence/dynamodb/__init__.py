"""A LangGraph checkpoint saver on one DynamoDB table: graphyard's own, on ``BaseCheckpointSaver``.

Why not a saver from PyPI (measured with ``benchmarks/storage_growth_dynamodb.py``; see also
../shared/NOTES.md): ``langgraph-checkpoint-aws`` 1.2.6 rebuilds a DeltaChannel history with
one ``get_tuple`` per ancestor (13 requests per invoke at turn 1, 603 at turn 50), never reads
consistently, and without S3 fails outright once a checkpoint passes 400 KB;
``langgraph-dynamodb-checkpoint`` loses pending writes past 1 MB; the others fail the
conformance suite or cannot delete a thread. This one:

- one table, ``pk`` = thread id, sort keys that keep a checkpoint's writes next to it
  (layout in :mod:`._codec`), strongly consistent reads;
- a thread's latest checkpoint *and* its DeltaChannel history in one ``Query``, so an
  invoke of a one-node chat graph costs 6 requests at turn 1 and at turn 200;
- a checkpoint is one ``PutItem``, and so are a task's writes (one item: atomic without a
  transaction); payloads over 350 KB go to S3 (``s3_bucket``) or chunk items, written
  before the item that points to them, so nothing is ever half-written;
- ``ttl_seconds`` puts a ``ttl`` attribute on every item (DynamoDB's TTL deletes expired
  items; reads ignore them at once) while keeping an active thread's state alive;
- ``delete_thread``, ``copy_thread`` and a DeltaChannel-safe ``prune``; not
  ``delete_for_runs``, which would need a scan of the whole table.

:class:`DynamoDBSaver` is the synchronous saver (its ``a*`` methods refuse, as the official
``SqliteSaver``'s do); :class:`~graphyard.persistence.dynamodb.aio.AsyncDynamoDBSaver` serves
async graphs and the server.

Example (``moto_server`` or AWS; credentials from the usual AWS chain)::

    >>> from graphyard.persistence.dynamodb import DynamoDBSaver
    >>> url = "dynamodb://checkpoints?region=us-east-1&endpoint_url=http://127.0.0.1:5000"
    >>> with DynamoDBSaver.from_conn_string(url) as saver:  # doctest: +SKIP
    ...     saver.setup()  # creates the table with TTL on, if missing
    ...     graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    SerializerProtocol,
)

from graphyard.persistence.dynamodb._admin import (
    DynamoDBTarget,
    DynamoDBThreadStore,
    create_table,
    make_clients,
    parse_url,
)
from graphyard.persistence.dynamodb._codec import item_size
from graphyard.persistence.dynamodb.base import BaseDynamoDBSaver

__all__ = [
    "BaseDynamoDBSaver",
    "DynamoDBSaver",
    "DynamoDBTarget",
    "DynamoDBThreadStore",
    "create_table",
    "item_size",
    "make_clients",
    "parse_url",
]

_AIO_ERROR = (
    "DynamoDBSaver is synchronous; for async graphs (ainvoke, astream, the server) use "
    "graphyard.persistence.dynamodb.aio.AsyncDynamoDBSaver"
)


class DynamoDBSaver(BaseDynamoDBSaver):
    """Synchronous DynamoDB checkpoint saver (see the module docstring)."""

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str,
        *,
        ttl_seconds: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> Iterator[DynamoDBSaver]:
        """A saver for ``dynamodb://table?region=...&endpoint_url=...&s3_bucket=...``.

        >>> with DynamoDBSaver.from_conn_string("dynamodb://t?region=us-east-1") as s:  # doctest: +SKIP
        ...     s.setup()
        """
        target = parse_url(url)
        client, s3 = make_clients(target)
        try:
            yield cls(
                client,
                target.table,
                ttl_seconds=ttl_seconds,
                s3_client=s3,
                s3_bucket=target.s3_bucket,
                s3_prefix=target.s3_prefix,
                serde=serde,
            )
        finally:
            client.close()
            if s3 is not None:
                s3.close()

    def setup(self) -> None:
        """Create the table (TTL on) and the S3 bucket if they are missing; idempotent."""
        create_table(
            self.client, self.table_name, s3_client=self.s3_client, s3_bucket=self.s3_bucket
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest: one consistent ``Query``."""
        return self._get_tuple(config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, read a page at a time (``config=None`` scans the table)."""
        return self._list(config, filter=filter, before=before, limit=limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint with all its channel values: one ``PutItem``."""
        return self._put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Save a task's writes atomically: one item, one ``PutItem``."""
        self._put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every item (and S3 object) of the thread."""
        self._delete_thread(thread_id)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and history record to another thread."""
        self._copy_thread(source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest`` (DeltaChannel-safe: the kept checkpoint reads back the same) or
        ``delete``."""
        self._prune(thread_ids, strategy=strategy)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Seed and writes per channel from one ``Query`` (or none, right after
        ``get_tuple``)."""
        return self._delta_history(config, channels)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise NotImplementedError(_AIO_ERROR)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        raise NotImplementedError(_AIO_ERROR)
        yield  # pragma: no cover

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise NotImplementedError(_AIO_ERROR)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        raise NotImplementedError(_AIO_ERROR)
