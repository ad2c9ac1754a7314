"""Caching repeated work: LangGraph node results and answers to repeated questions, safely.

- :func:`open_cache` opens a :class:`GraphCache` (a LangGraph ``BaseCache``) beside the
  checkpointer; the runtime compiles every graph with it, so any node with a
  ``CachePolicy`` is cached there, with hit/miss counters per node.
- :func:`cached_kb_search` turns the reference agent's knowledge-base search into a
  LangGraph task with a ``CachePolicy`` (shared by all users: it reads no user data).
- :class:`AnswerCache` stores the final answer to a self-contained question and serves it
  again, streamed token by token, with no model call; answers built on a user's data are
  kept for that user only.

Keys hold everything that changes a result (:mod:`graphyard.caching._keys`). The CLI is
``graphyard cache stats|clear``.
"""

from graphyard.caching._agent import agent_caches
from graphyard.caching._answers import (
    ANSWERS_NAMESPACE,
    CACHE_EVENT,
    CACHE_HIT_METADATA_KEY,
    AnswerCache,
    CachedAnswer,
    ReplayChatModel,
)
from graphyard.caching._backends import (
    CacheCounts,
    MemoryCacheBackend,
    NamespaceEntries,
    PostgresCache,
    SqliteCacheBackend,
)
from graphyard.caching._dynamodb import DynamoDBCache
from graphyard.caching._kb import cached_kb_search, kb_version
from graphyard.caching._keys import (
    cache_key,
    normalize_question,
    owner_of,
    question_scope,
    tool_versions,
)
from graphyard.caching._store import GraphCache, cache_location, open_cache

__all__ = [
    "ANSWERS_NAMESPACE",
    "CACHE_EVENT",
    "CACHE_HIT_METADATA_KEY",
    "AnswerCache",
    "CacheCounts",
    "CachedAnswer",
    "DynamoDBCache",
    "GraphCache",
    "MemoryCacheBackend",
    "NamespaceEntries",
    "PostgresCache",
    "ReplayChatModel",
    "SqliteCacheBackend",
    "agent_caches",
    "cache_key",
    "cache_location",
    "cached_kb_search",
    "kb_version",
    "normalize_question",
    "open_cache",
    "owner_of",
    "question_scope",
    "tool_versions",
]
