"""Plain JSON from graph state: messages, interrupts, dataclasses, pydantic models.

:func:`dumps` is on every streamed token's path, so it is orjson with a ``default`` for what
orjson does not know (pydantic models such as messages, mappings, sets, named tuples as
arrays),
falling back to the standard library for what orjson refuses (integers over 64 bits, lone
surrogates): the same text as before, without walking each value twice
(``benchmarks/server_load.py`` showed ``jsonable`` + ``json.dumps`` at ~10% of the server's
CPU under 200 streaming clients).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel

__all__ = ["dumps", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible data (messages become their LangChain dict form)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    return repr(value)


_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """What orjson cannot serialize itself, as :func:`jsonable` would have it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return jsonable(value)


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (NaN and infinities become ``null``).

    >>> from langchain_core.messages import AIMessageChunk
    >>> dumps([AIMessageChunk(content="hi", id="m1"), {"langgraph_step": 1}])[:44]
    '[{"content":"hi","additional_kwargs":{},"res'
    >>> dumps({"big": 2**70, 1: (1, 2)})
    '{"big":1180591620717411303424,"1":[1,2]}'
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. an int over 64 bits, a lone surrogate
        return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)
