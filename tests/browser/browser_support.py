"""What the browser tests share: Debian's Chromium driven by Playwright against a real
uvicorn server (``web_server.py``) on scripted models.

Chromium comes from apt (``apt-get install -y chromium``; ``.ci/run`` installs it);
Playwright's own browser download is never used. Without Chromium (or the ``playwright``
package) the tests skip locally and FAIL when ``CI`` is set, so a broken CI setup cannot
pass silently. Screenshots go to ``$GRAPHYARD_ARTIFACTS/browser/`` or, by default,
``test-artifacts/browser/`` (gitignored) in the repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import httpx
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "integration") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "integration"))

from scripted_server import ServerProcess  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "sk-browser-alice"
PRICES = {
    "scripted:cheap": {"input": 1.0, "output": 5.0},
    "scripted:mid": {"input": 3.0, "output": 15.0},
    "scripted:strong": {"input": 15.0, "output": 75.0},
}
"""Dollars per million tokens for the scripted tiers, so every answer costs something."""
TOKEN_DELAY = 0.1
"""Seconds between streamed tokens: an answer takes about 3 s, long enough to watch."""

# Read at import: the autouse fixture clears GRAPHYARD_* variables before each test.
_ARTIFACTS_ROOT = os.environ.get("GRAPHYARD_ARTIFACTS")
SCREENSHOTS = (
    Path(_ARTIFACTS_ROOT) if _ARTIFACTS_ROOT else HERE.parents[1] / "test-artifacts"
) / "browser"
_IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    if _IN_CI:
        pytest.fail(f"the browser tests need Chromium in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


class WebServer(ServerProcess):
    """A :class:`ServerProcess` serving ``web_server:app_factory`` (tool-calling models)."""

    factory: ClassVar[str] = "web_server:app_factory"

    def environ(self) -> dict[str, str]:
        env = super().environ()
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env["PYTHONPATH"]])
        return env

    def api(self) -> httpx.Client:
        """A client authenticated as the page's user, to check what the page shows."""
        client = self.client()
        client.headers["x-api-key"] = API_KEY
        return client


class PageErrors(list[str]):
    """Uncaught exceptions and Content-Security-Policy violations seen by a page."""


def open_page(browser: Any, errors: PageErrors, **context_options: Any) -> Any:
    """A new page in a fresh context (empty localStorage), recording page errors."""
    context = browser.new_context(**context_options)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: (
            errors.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    return page


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot under the artifacts directory and say where it went."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path
