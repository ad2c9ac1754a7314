"""The chat page's files as served, without a browser: what they load, what they may do.

These run everywhere (no Chromium needed): the page must load nothing from another host,
forbid inline scripts through its Content-Security-Policy, and never turn text into markup.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from graphyard.server._web import STATIC_DIR, mount_web


def _client() -> TestClient:
    app = FastAPI()
    mount_web(app)
    return TestClient(app)


def test_the_page_is_served_at_the_root_with_a_policy_that_forbids_inline_and_remote_code() -> None:
    with _client() as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe" not in policy and "http" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_every_file_the_page_loads_is_served_from_this_server() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    scripts = {p.name: p.read_text() for p in STATIC_DIR.glob("*.js")}
    urls = re.findall(r'(?:src|href)="([^"#]+)"', html)
    imports = [
        f"/static/{name.removeprefix('./')}"
        for text in scripts.values()
        for name in re.findall(r'from "([^"]+)"', text)
    ]
    assert "/static/app.js" in urls and "/static/api.js" in imports
    with _client() as client:
        for url in [u for u in urls if not u.startswith("data:")] + imports:
            assert url.startswith("/static/"), f"{url} is not served by graphyard"
            response = client.get(url)
            assert response.status_code == 200, url
            if url.endswith(".js"):
                assert "javascript" in response.headers["content-type"], url
        assert client.get("/static/missing.js").status_code == 404
    remote = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.I)
    for name, text in {"index.html": html, **scripts}.items():
        assert not remote.search(text), f"{name} refers to another host"


def test_no_script_of_the_page_writes_markup_from_strings() -> None:
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(")
    for path in STATIC_DIR.glob("*.js"):
        found = forbidden.findall(path.read_text())
        assert not found, f"{path.name} uses {found}"
