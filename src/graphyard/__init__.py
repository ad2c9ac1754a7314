"""graphyard: a production runtime for LangGraph agents.

Persistent state, SSE streaming, a context budget before every model call, tiered models
with a bundled offline default, and the cost of every call, in one package.

The names below are imported on first access (PEP 562), so ``import graphyard.config`` or
``graphyard serve`` answering ``/ok`` does not pay for LangGraph and LangChain up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphyard._runtime import GraphSource, Runtime, open_runtime
    from graphyard.config import Settings, TierConfig
    from graphyard.errors import (
        BudgetExceeded,
        ConfigError,
        GraphyardError,
        ModelUnavailable,
        RunError,
        ThreadBusy,
        ThreadNotFound,
    )
    from graphyard.state import AgentState

__version__ = "0.1.0"

__all__ = [
    "AgentState",
    "BudgetExceeded",
    "ConfigError",
    "GraphSource",
    "GraphyardError",
    "ModelUnavailable",
    "RunError",
    "Runtime",
    "Settings",
    "ThreadBusy",
    "ThreadNotFound",
    "TierConfig",
    "__version__",
    "open_runtime",
]

_HOMES = {
    "GraphSource": "graphyard._runtime",
    "Runtime": "graphyard._runtime",
    "open_runtime": "graphyard._runtime",
    "Settings": "graphyard.config",
    "TierConfig": "graphyard.config",
    "AgentState": "graphyard.state",
    "BudgetExceeded": "graphyard.errors",
    "ConfigError": "graphyard.errors",
    "GraphyardError": "graphyard.errors",
    "ModelUnavailable": "graphyard.errors",
    "RunError": "graphyard.errors",
    "ThreadBusy": "graphyard.errors",
    "ThreadNotFound": "graphyard.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graphyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
