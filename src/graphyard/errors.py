"""graphyard's exceptions, in two roots so callers catch at the level they need.

::

    GraphyardError
    ├── ConfigError            a mistake of whoever configures graphyard; the message says the fix
    └── RunError               a failure while a run executes
        ├── BudgetExceeded     a run would spend more than its budget allows
        ├── ThreadBusy         the thread already has an active run
        ├── ThreadNotFound     no such thread (or not yours: the two are indistinguishable)
        └── ModelUnavailable   a model could not be reached or started

HTTP status codes are mapped from these in one place (``graphyard.server._errors``).
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "GraphyardError",
    "ModelUnavailable",
    "RunError",
    "ThreadBusy",
    "ThreadNotFound",
]


class GraphyardError(Exception):
    """Base of every exception graphyard raises on purpose."""


class ConfigError(GraphyardError):
    """graphyard is configured wrongly; the message says how to fix it."""


class RunError(GraphyardError):
    """A run failed while executing."""


class BudgetExceeded(RunError):
    """A run would spend more than its budget allows."""


class ThreadBusy(RunError):
    """The thread already has an active run."""


class ThreadNotFound(RunError):
    """The thread does not exist, or belongs to someone else."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} not found")
        self.thread_id = thread_id


class ModelUnavailable(RunError):
    """A model could not be reached or started."""
