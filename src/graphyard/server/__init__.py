"""The HTTP server: FastAPI app, SSE streaming, error mapping."""

from graphyard.server._app import create_app

__all__ = ["create_app"]
