"""The web chat page at ``/``: one HTML file, plain ES modules and CSS, no build step.

The files live in ``graphyard/server/static/`` inside the package (the wheel ships them),
and the page talks only to this server's own SDK-compatible API (threads, runs, state,
history, and the ``/cost`` and ``/replay`` extensions when they are mounted), sending the
API key the user typed as ``x-api-key``.

This module serves files and nothing else. It must never template anything into the HTML
(model text reaches the page only as JSON, and the page inserts it as text), and it must
never let the page load anything from another origin: every HTML answer carries a
Content-Security-Policy without inline scripts or remote hosts, so a missed escape cannot
run code and the page works with no network.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "mount_web"]

STATIC_DIR = Path(__file__).with_name("static")
"""The page's files."""

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Assets(StaticFiles):
    """Static files that revalidate (the page changes with the installed version)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the chat page at ``/`` and its modules under ``/static/``.

    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> mount_web(app)
    >>> sorted(r.path for r in app.routes if r.path in ("/", "/static"))
    ['/', '/static']
    """

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The chat page (public: it holds no data; every API call it makes needs the key)."""
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS
        )

    # check_dir=False: no filesystem call while the app is built (it may be built on a
    # running event loop); the directory ships inside the package
    app.mount("/static", _Assets(directory=STATIC_DIR, check_dir=False), name="static")
