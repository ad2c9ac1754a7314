"""The chat page at ``/`` in a real browser (Debian's Chromium) against a real server.

Every test enters the API key the way a user does, talks to the reference agent on
scripted models through the page, and checks what a user sees against what the server's
API says. Screenshots land in ``test-artifacts/browser/`` (or ``$GRAPHYARD_ARTIFACTS``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import API_KEY, WebServer, screenshot
from web_server import MARKUP, answer_to

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or fails, in CI) and says why
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.server]

WATCH_STREAM = """() => {
  window.__seen = [];
  const log = document.getElementById("messages");
  new MutationObserver(() => {
    const text = log.querySelector(".msg-ai.streaming .text");
    if (text) window.__seen.push({
      text: text.textContent,
      busy: log.getAttribute("aria-busy"),
      node: document.getElementById("run-node").textContent,
    });
  }).observe(log, { subtree: true, childList: true, characterData: true });
}"""

JOINED = """document.addEventListener("DOMContentLoaded", () => {
  window.__joined = false;
  new MutationObserver(() => {
    if (document.querySelector("#messages .msg-ai.streaming")) window.__joined = true;
  }).observe(document.getElementById("messages"), { subtree: true, childList: true });
});"""


def login(page: Any, server: WebServer) -> None:
    """Open the page and enter the API key in the prompt it shows."""
    page.goto(server.url + "/")
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key", exact=True).fill(API_KEY)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()


def send(page: Any, text: str) -> None:
    """Type a message and press Enter, as a user does."""
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def last_answer(page: Any) -> Any:
    return page.locator("#messages .msg-ai .text").last


def current_thread(page: Any) -> str:
    thread_id: str = page.evaluate("decodeURIComponent(location.hash.replace('#thread=', ''))")
    assert thread_id, "the page did not put the thread in its address"
    return thread_id


def dollars(text: str) -> float:
    match = re.search(r"\$([0-9.]+)", text)
    assert match, f"no dollar amount in {text!r}"
    return float(match.group(1))


def wait_until_idle(page: Any) -> None:
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def test_the_page_asks_for_the_api_key_and_asks_again_when_the_key_is_wrong(
    page: Any, web_server: WebServer
) -> None:
    page.goto(web_server.url + "/")
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("needs an API key")
    dialog.get_by_label("API key", exact=True).fill("sk-not-a-key")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_visible()  # the server answered 401: the prompt is back
    expect(dialog).to_contain_text("refused")
    screenshot(page, "api-key-refused")

    dialog.get_by_label("API key", exact=True).fill(API_KEY)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("alert")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('graphyard.apiKey')") == API_KEY


def test_with_auth_off_the_page_never_asks_for_a_key(page: Any, open_web_server: WebServer) -> None:
    page.goto(open_web_server.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    send(page, "hello without a key")
    expect(last_answer(page)).to_have_text(answer_to("hello without a key"))
    expect(page.get_by_role("dialog", name="API key")).to_be_hidden()
    assert page.evaluate("localStorage.getItem('graphyard.apiKey')") is None


def test_an_answer_streams_in_token_by_token_with_the_node_tier_and_cost_shown(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    page.evaluate(WATCH_STREAM)
    box = page.get_by_label("Message", exact=True)
    box.fill("Where is my parcel?")
    box.press("Shift+Enter")  # a new line, not a send
    box.type("It is the blue tent.")
    assert box.input_value() == "Where is my parcel?\nIt is the blue tent."
    question = box.input_value()
    box.press("Enter")

    # a few words in, and still streaming
    expect(page.locator("#messages .msg-ai.streaming .text")).to_have_text(
        re.compile(r"^(\S+\s+){3}")
    )
    screenshot(page, "desktop-streaming")  # the answer so far, with the blinking cursor
    final = answer_to(question)
    expect(last_answer(page)).to_have_text(final)
    wait_until_idle(page)

    seen = page.evaluate("window.__seen")
    partial = [s["text"] for s in seen if s["busy"] == "true" and 0 < len(s["text"]) < len(final)]
    assert len(set(partial)) >= 5, f"the answer did not grow in steps: {seen}"
    assert all(final.startswith(text) for text in partial), partial
    assert any("Running planner" in s["node"] for s in seen), {s["node"] for s in seen}
    expect(page.locator("#messages .msg-human .text").last).to_have_text(question)

    with web_server.api() as api:
        values = api.get(f"/threads/{current_thread(page)}/state").json()["values"]
    tier, cost = values["tier"], values["cost_usd"]
    assert tier in ("cheap", "mid", "strong") and cost > 0, values
    expect(page.locator("#tier-current")).to_have_text(tier)
    expect(page.locator("#run-tier")).to_have_text(f"tier {tier}")
    expect(page.locator("#cost-thread")).to_have_text(re.compile(r"\$"))
    assert dollars(page.locator("#cost-thread").text_content()) == pytest.approx(cost, abs=1e-6)
    assert dollars(page.locator("#cost-answer").text_content()) == pytest.approx(cost, abs=1e-6)
    meta = page.locator("#messages .msg-ai .meta").last
    expect(meta).to_contain_text(f"tier {tier}")
    assert dollars(meta.text_content()) == pytest.approx(cost, abs=1e-6)
    screenshot(page, "desktop-answer-with-tier-and-cost")


def test_a_ticket_waits_for_approval_and_approving_it_opens_the_ticket(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "Please open a ticket: my tent arrived torn")
    approvals = page.get_by_role("region", name="Waiting for your approval")
    expect(approvals).to_be_visible()
    expect(approvals).to_contain_text("create_ticket")
    expect(approvals).to_contain_text("my tent arrived torn")
    expect(approvals.get_by_role("button", name="Approve")).to_be_focused()
    expect(page.locator("#run-node")).to_have_text("Waiting for approval")
    thread_id = current_thread(page)
    with web_server.api() as api:
        pending = api.get(f"/threads/{thread_id}/state").json()["interrupts"]
    assert [p["value"]["tool"] for p in pending] == ["create_ticket"]
    expect(page.locator(f'#thread-list [data-thread-id="{thread_id}"]')).to_contain_text(
        "waiting for approval"
    )
    screenshot(page, "desktop-approval-pending")

    approvals.get_by_role("button", name="Approve").click()
    expect(last_answer(page)).to_have_text(re.compile(r"^All done\. Ticket #\d+ opened"))
    expect(approvals).to_be_hidden()
    wait_until_idle(page)
    with web_server.api() as api:
        state = api.get(f"/threads/{thread_id}/state").json()
    assert state["interrupts"] == [] and state["next"] == []
    tool_results = [m for m in state["values"]["messages"] if m["type"] == "tool"]
    assert re.match(r"Ticket #\d+ opened \(priority high\)", tool_results[-1]["content"])
    expect(page.locator("#messages .msg-tool").last).to_contain_text("Ticket #")
    screenshot(page, "desktop-approval-approved")


def test_rejecting_a_ticket_opens_nothing_and_the_answer_gives_the_reason(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "I want a ticket for a late delivery")
    approvals = page.get_by_role("region", name="Waiting for your approval")
    expect(approvals).to_be_visible()
    approvals.get_by_label("Reason (optional, sent when rejecting)").fill("not needed yet")
    approvals.get_by_role("button", name="Reject").click()
    expect(last_answer(page)).to_have_text(
        "All done. The support team declined to open this ticket: not needed yet"
    )
    expect(approvals).to_be_hidden()


def test_after_a_reload_the_thread_is_still_there_and_found_by_search(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    question = "Do you ship kayaks to Reykjavik?"
    send(page, question)
    expect(last_answer(page)).to_have_text(answer_to(question))
    wait_until_idle(page)
    thread_id = current_thread(page)
    cost_line = page.locator("#messages .msg-ai .meta").last.text_content()

    page.reload()  # the address names the thread: it reopens, and the key was kept
    expect(page.get_by_role("dialog", name="API key")).to_be_hidden()
    expect(last_answer(page)).to_have_text(answer_to(question))
    expect(page.locator("#messages .msg-ai .meta").last).to_have_text(cost_line)

    page.get_by_role("button", name="New thread").click()
    expect(page.locator("#messages .msg")).to_have_count(0)
    page.get_by_label("Search threads").fill("reykjavik")
    found = page.locator("#thread-list .thread")
    expect(found).to_have_count(1)
    expect(found).to_contain_text(question)
    found.click()
    expect(last_answer(page)).to_have_text(answer_to(question))
    expect(page.locator("#messages .msg-human .text")).to_have_text([question])
    assert current_thread(page) == thread_id
    expect(found).to_have_attribute("aria-current", "page")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    screenshot(page, "desktop-thread-found-after-reload")


def test_reloading_in_the_middle_of_an_answer_follows_the_run_to_its_end(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    question = "Tell me about tent pegs"
    send(page, question)
    expect(page.locator("#messages .msg-ai.streaming .text")).to_have_text(
        re.compile(r"^(\S+\s+){2}")
    )
    page.add_init_script(JOINED)
    page.reload()
    # the thread reopens, the page joins the run's stream (from its first event) and
    # shows the whole answer once, with its cost
    expect(last_answer(page)).to_have_text(answer_to(question))
    wait_until_idle(page)
    assert page.evaluate("window.__joined") is True, "the reloaded page never streamed"
    expect(page.locator("#messages .msg-ai")).to_have_count(1)
    expect(page.locator("#run-node")).to_have_text("Ready")
    assert dollars(page.locator("#messages .msg-ai .meta").last.text_content()) > 0


def test_stop_ends_the_run_and_the_thread_takes_the_next_message(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "A long question to interrupt")
    expect(page.locator("#messages .msg-ai.streaming .text")).to_have_text(
        re.compile(r"^(\S+\s+){2}")
    )
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#run-node")).to_have_text("Stopped")
    wait_until_idle(page)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    with web_server.api() as api:
        runs = api.get(f"/threads/{current_thread(page)}/runs").json()
    assert [r["status"] for r in runs] == ["interrupted"]

    send(page, "Another question")
    expect(last_answer(page)).to_have_text(answer_to("Another question"))


def test_model_output_is_shown_as_text_and_never_becomes_markup(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "show me some markup")
    expect(last_answer(page)).to_have_text(MARKUP)
    wait_until_idle(page)
    assert page.locator("#messages img, #messages script, #messages b").count() == 0
    assert page.evaluate("document.body.dataset.pwned") is None


def test_forking_from_an_earlier_checkpoint_continues_the_thread_from_there(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "first question about returns")
    expect(last_answer(page)).to_have_text(answer_to("first question about returns"))
    wait_until_idle(page)
    send(page, "second question about refunds")
    expect(last_answer(page)).to_have_text(answer_to("second question about refunds"))
    wait_until_idle(page)
    thread_id = current_thread(page)

    # the checkpoint that ended the first turn: two messages, nothing left to run
    turn_end = (
        page.locator("#history-list li").filter(has_text="2 messages").filter(has_text="next: end")
    )
    expect(turn_end).to_have_count(1)
    turn_end.get_by_role("button", name=re.compile(r"^Fork from step \d+$")).click()
    expect(page.locator("#messages .msg")).to_have_count(2)
    expect(page.locator("#run-node")).to_contain_text("Forked from step")

    send(page, "a different second question")
    expect(last_answer(page)).to_have_text(answer_to("a different second question"))
    wait_until_idle(page)
    with web_server.api() as api:
        messages = api.get(f"/threads/{thread_id}/state").json()["values"]["messages"]
    assert [m["content"] for m in messages if m["type"] == "human"] == [
        "first question about returns",
        "a different second question",
    ]


def test_replay_is_offered_when_the_server_has_it_and_replays_without_model_calls(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    send(page, "one question for the history")
    expect(last_answer(page)).to_have_text(answer_to("one question for the history"))
    wait_until_idle(page)
    with web_server.api() as api:
        paths = api.get("/openapi.json").json()["paths"]
    history = page.locator("#history-list li")
    expect(history.first).to_be_visible()
    replays = page.locator("#history-list").get_by_role("button", name=re.compile("^Replay"))
    forks = page.locator("#history-list").get_by_role("button", name=re.compile("^Fork"))
    expect(forks).to_have_count(history.count())
    if "/threads/{thread_id}/replay" not in paths:
        expect(replays).to_have_count(0)
        return
    expect(replays).to_have_count(history.count())
    # replay the turn from its input: recorded outputs only, never a live model call; the
    # page shows what the replay reports (served calls, a divergence if any, the diff)
    turn_start = history.filter(has_text="next: __start__").first
    turn_start.get_by_role("button", name=re.compile(r"^Replay from step -?\d+$")).click()
    result = page.get_by_role("region", name="Last replay")
    expect(result).to_be_visible()
    expect(result).to_contain_text(
        re.compile(r"\d+ model calls? served from the recording, 0 live")
    )
    expect(result).to_contain_text(re.compile(r"The final state (is the same as|differs from)"))
    wait_until_idle(page)
    screenshot(page, "desktop-replay-result")


def test_on_a_phone_the_page_is_one_column_and_a_whole_turn_works(
    phone: Any, web_server: WebServer
) -> None:
    page = phone
    login(page, web_server)
    expect(page.get_by_role("navigation", name="Threads")).to_be_hidden()
    question = "Can I return shoes bought online?"
    send(page, question)
    expect(last_answer(page)).to_have_text(answer_to(question))
    wait_until_idle(page)
    expect(page.locator("#run-tier")).to_have_text(re.compile(r"^tier (cheap|mid|strong)$"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = page.get_by_label("Message", exact=True).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "phone-chat")

    toggle = page.get_by_role("button", name="Threads")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Threads")
    expect(nav).to_be_visible()
    expect(nav.locator(".thread", has_text=question)).to_be_visible()
    screenshot(page, "phone-threads")
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()

    page.get_by_role("button", name="Details").click()
    details = page.get_by_role("complementary", name="Thread details")
    expect(details).to_be_visible()
    expect(details.locator("#cost-thread")).to_have_text(re.compile(r"^\$0\.\d+$"))
    screenshot(page, "phone-details")


def test_every_control_has_a_label_and_the_conversation_is_a_live_region(
    page: Any, web_server: WebServer
) -> None:
    login(page, web_server)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, textarea, select, button")]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                            && !el.textContent.trim())
            .map((el) => el.id || el.outerHTML)"""
    )
    assert unlabelled == []
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("status")).to_be_visible()
    # keyboard only: the skip link is the first stop and leads to the message box
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.type("hello from the keyboard")
    page.keyboard.press("Enter")
    expect(last_answer(page)).to_have_text(answer_to("hello from the keyboard"))
