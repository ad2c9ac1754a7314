"""The chat page when the server says no: a refused or failed run shows the server's reason
and gives the typed message back, and a server without a cost ledger (its route answers
404) still shows each answer's cost from the thread's state, with no error.

The failures are real HTTP answers to the page's real requests, put in place with
Playwright's request routing; everything else is the real server of ``web_server.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from browser_support import WebServer, screenshot
from test_chat_page import current_thread, dollars, last_answer, login, send, wait_until_idle
from web_server import answer_to

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails, in CI) and says why
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.server]

RUN_STREAM = re.compile(r"/threads/[^/]+/runs/stream$")
LEDGER = re.compile(r"/threads/[^/]+/cost$")


def test_a_refused_run_shows_the_servers_reason_and_gives_the_message_back(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    refusal = {"error": "rate_limited", "message": "Too many runs: try again in 10 seconds."}
    page.route(
        RUN_STREAM,
        lambda route: route.fulfill(
            status=429, content_type="application/json", body=json.dumps(refusal)
        ),
    )
    send(page, "Where is order A1003?")

    alert = page.get_by_role("alert")
    expect(alert).to_have_text("The run failed: Too many runs: try again in 10 seconds.")
    expect(page.locator("#run-node")).to_have_text("Error")
    expect(page.get_by_label("Message", exact=True)).to_have_value("Where is order A1003?")
    expect(page.locator("#messages .msg")).to_have_count(0)
    wait_until_idle(page)
    screenshot(page, "desktop-run-refused")

    page.unroute(RUN_STREAM)  # the server takes runs again: the same text goes through
    page.get_by_label("Message", exact=True).press("Enter")
    expect(last_answer(page)).to_have_text(answer_to("Where is order A1003?"))
    wait_until_idle(page)
    expect(alert).to_be_hidden()


def test_a_server_error_without_a_json_body_still_says_what_happened(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    page.route(
        RUN_STREAM,
        lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>Bad</h1>"),
    )
    send(page, "hello behind a broken proxy")

    expect(page.get_by_role("alert")).to_have_text("The run failed: HTTP 502")
    expect(page.get_by_label("Message", exact=True)).to_have_value("hello behind a broken proxy")
    assert page.locator("#error h1").count() == 0, "the error body must not become markup"


def test_without_a_cost_ledger_the_page_shows_the_cost_from_the_state_and_no_error(
    page: Any, web_server: WebServer
) -> None:
    ledger_asked: list[str] = []

    def no_ledger(route: Any) -> None:
        ledger_asked.append(route.request.url)
        route.fulfill(
            status=404,
            content_type="application/json",
            body=json.dumps({"error": "not_found", "message": "Not Found"}),
        )

    page.route(LEDGER, no_ledger)
    login(page, web_server)
    question = "How long do refunds take?"
    send(page, question)
    expect(last_answer(page)).to_have_text(answer_to(question))
    wait_until_idle(page)

    with web_server.api() as api:
        cost = api.get(f"/threads/{current_thread(page)}/state").json()["values"]["cost_usd"]
    assert cost > 0
    expect(page.locator("#cost-thread")).to_have_text(re.compile(r"\$"))
    assert dollars(page.locator("#cost-thread").text_content()) == pytest.approx(cost, abs=1e-6)
    assert dollars(page.locator("#cost-answer").text_content()) == pytest.approx(cost, abs=1e-6)
    expect(page.locator("#cost-source")).to_have_text("From the thread's state.")
    expect(page.get_by_role("alert")).to_be_hidden()

    page.reload()
    expect(last_answer(page)).to_have_text(answer_to(question))
    meta = page.locator("#messages .msg-ai .meta").last
    assert dollars(meta.text_content()) == pytest.approx(cost, abs=1e-6)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert ledger_asked, "the page never asked for the ledger: the 404 path was not exercised"
