"""Fixtures for the browser tests (see browser_support.py): a server per module, Chromium
per module, and a fresh desktop or phone-sized page per test that fails the test on any
uncaught page error or Content-Security-Policy violation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import (
    API_KEY,
    CHROMIUM,
    CHROMIUM_ARGS,
    PRICES,
    TOKEN_DELAY,
    PageErrors,
    WebServer,
    open_page,
    unavailable,
)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One server per module, auth on (one key, user ``alice``), priced scripted tiers."""
    server = WebServer(
        tmp_path_factory.mktemp("web-server"),
        delay=TOKEN_DELAY,
        env={
            "GRAPHYARD_API_KEYS": json.dumps({API_KEY: "alice"}),
            "GRAPHYARD_PRICES": json.dumps(PRICES),
            "GRAPHYARD_ROUTER": "rules",
        },
    )
    server.start()
    yield server
    server.kill()
    print(server.log())


@pytest.fixture(scope="module")
def open_web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A server with auth off (loopback only), as ``graphyard serve`` starts by default."""
    server = WebServer(
        tmp_path_factory.mktemp("open-web-server"),
        delay=TOKEN_DELAY,
        env={"GRAPHYARD_PRICES": json.dumps(PRICES), "GRAPHYARD_ROUTER": "rules"},
    )
    server.start()
    yield server
    server.kill()
    print(server.log())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched by Playwright (never its own download)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found; install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing; run `scripts/test` (installs .[dev])")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert not errors, f"the page reported errors: {errors}"


@pytest.fixture
def page(browser: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A desktop-sized page."""
    page = open_page(browser, page_errors, viewport={"width": 1280, "height": 860})
    yield page
    page.context.close()


@pytest.fixture
def phone(browser: Any, page_errors: PageErrors) -> Iterator[Any]:
    """A phone-sized page (390 x 844 CSS pixels, touch, mobile viewport)."""
    page = open_page(
        browser,
        page_errors,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    yield page
    page.context.close()
