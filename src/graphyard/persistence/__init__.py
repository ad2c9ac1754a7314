"""Persistence: checkpointers for thread state, opened from one URL."""

from graphyard.persistence._savers import ThreadSummary, list_threads, open_saver, sqlite_path

__all__ = ["ThreadSummary", "list_threads", "open_saver", "sqlite_path"]
