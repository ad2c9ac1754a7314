"""Structured logs: one JSON object per line, carrying the ids of the run being executed.

:func:`bind_run` puts a run's ``run_id``, ``thread_id`` and ``user_id`` in context
variables; every record logged in that context (the run's task, the graph's node tasks and
the threads they start, which copy the context) gets them as fields, whichever library
logged it. :func:`configure_logging` installs the formatter on the root logger, for
``graphyard serve`` (uvicorn's own loggers propagate to it).

This module must never put message content (prompts, answers, tool arguments) into a log
record: producers decide that, and graphyard's own producers do so only when
``GRAPHYARD_LOG_CONTENT`` asks for it (see ``graphyard.observability._instrument``).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from graphyard.config import LogFormat

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "bind_run",
    "configure_logging",
    "current_ids",
    "resolve_format",
    "run_context",
]

_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "graphyard_run_id", default=None
)
_THREAD_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "graphyard_thread_id", default=None
)
_USER_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "graphyard_user_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "run_id", "thread_id", "user_id", "color_message"}
)


def bind_run(run_id: str, thread_id: str, user_id: str | None) -> None:
    """Tag every record logged from now on in this context (a run's task) with the ids.

    >>> import contextvars
    >>> ctx = contextvars.copy_context()
    >>> ctx.run(bind_run, "r1", "t1", "alice"); ctx.run(current_ids)
    {'run_id': 'r1', 'thread_id': 't1', 'user_id': 'alice'}
    """
    _RUN_ID.set(run_id)
    _THREAD_ID.set(thread_id)
    _USER_ID.set(user_id)


@contextmanager
def run_context(run_id: str, thread_id: str, user_id: str | None) -> Iterator[None]:
    """:func:`bind_run` for a block, restoring the previous ids after it."""
    tokens = (_RUN_ID.set(run_id), _THREAD_ID.set(thread_id), _USER_ID.set(user_id))
    try:
        yield
    finally:
        _USER_ID.reset(tokens[2])
        _THREAD_ID.reset(tokens[1])
        _RUN_ID.reset(tokens[0])


def current_ids() -> dict[str, str]:
    """The ids bound in this context (none outside a run)."""
    ids = {"run_id": _RUN_ID.get(), "thread_id": _THREAD_ID.get(), "user_id": _USER_ID.get()}
    return {k: v for k, v in ids.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, the run's
    ids when logged during a run, fields given with ``extra=``, and ``exc`` (the
    traceback) when there is one.

    >>> record = logging.LogRecord("graphyard", logging.INFO, "", 0, "hi %s", ("you",), None)
    >>> json.loads(JsonFormatter().format(record))["message"]
    'hi you'
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(current_ids())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``, then ``run=... thread=... user=...`` during a run."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = current_ids()
        if not ids:
            return text
        tail = " ".join(f"{k.removesuffix('_id')}={v}" for k, v in ids.items())
        first, newline, rest = text.partition("\n")
        return f"{first} [{tail}]{newline}{rest}"


def resolve_format(fmt: LogFormat, stream: TextIO | None = None) -> Literal["json", "text"]:
    """``auto`` becomes ``text`` on a terminal and ``json`` otherwise (a log collector).

    >>> import io
    >>> resolve_format("auto", io.StringIO()), resolve_format("text")
    ('json', 'text')
    """
    if fmt != "auto":
        return fmt
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(
    fmt: LogFormat = "auto", level: str | int = "INFO", *, stream: TextIO | None = None
) -> Literal["json", "text"]:
    """Send every log record (graphyard's, uvicorn's, libraries') to ``stream`` (stderr)
    in ``fmt``; returns the format chosen.

    >>> import io, logging
    >>> out = io.StringIO()
    >>> configure_logging("json", stream=out)
    'json'
    >>> logging.getLogger("demo").info("ready"); '"message": "ready"' in out.getvalue()
    True
    >>> _ = configure_logging("text")  # back to the doctest's normal output
    """
    chosen = resolve_format(fmt, stream)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)  # uvicorn's handlers would bypass the format
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    return chosen
