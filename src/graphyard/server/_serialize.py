"""Plain JSON from graph state: messages, interrupts, dataclasses, pydantic models."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

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


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``."""
    return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)
