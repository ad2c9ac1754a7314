"""Request limits: body size (413 before anything runs) and a per-user rate (429).

The rate limiter is per process (a token bucket per user); behind several processes each
enforces its own share. It must never sleep or block: over the limit is an answer, not a wait.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit", "RateLimiter"]


class _TooLarge(HTTPException):
    """Raised while reading an over-long body; an HTTPException so FastAPI answers 413
    instead of wrapping it as a body parse error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 JSON, by header or by counting."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"error": "payload_too_large", "message": f"request body over {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass
class RateLimiter:
    """Token buckets of ``per_minute`` requests per user; ``None`` allows everything.

    >>> limiter = RateLimiter(2)
    >>> [limiter.check("u") for _ in range(3)][:2], limiter.check("u") > 0
    ([0.0, 0.0], True)
    """

    per_minute: int | None
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def check(self, user: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        if self.per_minute is None:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        tokens, last = self._buckets.get(user, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[user] = (tokens - 1.0, now)
            return 0.0
        self._buckets[user] = (tokens, now)
        return math.ceil((1.0 - tokens) / rate * 10) / 10
