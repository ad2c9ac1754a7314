"""graphyard: a production runtime for LangGraph agents.

Persistent state, SSE streaming, a context budget before every model call, tiered models
with a bundled offline default, and the cost of every call, in one package.
"""

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
