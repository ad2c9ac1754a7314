"""The HTTP server: FastAPI app, SSE streaming, error mapping.

``create_app`` is imported on first access, so the start-up gate
(:mod:`graphyard.server._gate`) can answer ``/ok`` before FastAPI, LangGraph and LangChain
are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphyard.server._app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from graphyard.server._app import create_app

        return create_app
    raise AttributeError(f"module 'graphyard.server' has no attribute {name!r}")
