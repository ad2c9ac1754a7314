"""The one place where exceptions become HTTP responses.

Every error answers JSON ``{"error": <code>, "message": <text>, ...}``; a stack trace never
reaches a client (it goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphyard.errors import (
    BudgetExceeded,
    ConfigError,
    GraphyardError,
    ModelUnavailable,
    ThreadBusy,
    ThreadNotFound,
)
from graphyard.server._serialize import jsonable

__all__ = ["ApiError", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status, raised by route handlers."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


_STATUS: tuple[tuple[type[GraphyardError], int, str], ...] = (
    (ThreadNotFound, 404, "not_found"),
    (ThreadBusy, 409, "thread_busy"),
    (BudgetExceeded, 402, "budget_exceeded"),
    (ModelUnavailable, 503, "model_unavailable"),
    (ConfigError, 500, "config_error"),
)


def status_for(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error code for an exception."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        return error_response(
            422, "invalid_request", "the request is not valid", detail=jsonable(detail)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(GraphyardError)
    async def _graphyard(request: Request, exc: GraphyardError) -> JSONResponse:
        status, code = status_for(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(status, code, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error; see the server log")
