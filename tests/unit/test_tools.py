"""The reference agent's demo shop, help-center search and approval decisions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from graphyard.agent import DemoShop, KnowledgeBase, make_tools
from graphyard.agent._shop import normalize_order_id
from graphyard.agent._tools import parse_decision
from graphyard.config import Settings


@pytest.fixture(scope="session")
def seeded_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeding a fresh file costs ~1.5 s (one fsync per seed row), so seed once and copy."""
    path = tmp_path_factory.mktemp("seeded") / "shop.db"
    DemoShop(path).tickets()
    return path


@pytest.fixture
def shop(seeded_shop: Path, settings: Settings) -> DemoShop:
    shutil.copyfile(seeded_shop, settings.shop_db)
    return DemoShop(settings.shop_db)


@pytest.fixture
def tools(shop: DemoShop) -> dict[str, Any]:
    return {t.name: t for t in make_tools(shop, KnowledgeBase())}


# --- orders ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where is #a1020?", "A1020"),
        ("order A1003 please", "A1003"),
        ("A1020", "A1020"),
        ("my order number is 1020", None),
        ("tracking A10200", None),
    ],
)
def test_order_ids_are_found_in_free_text_and_upper_cased(text: str, expected: str | None) -> None:
    assert normalize_order_id(text) == expected


def test_the_shop_is_seeded_on_first_use_and_finds_an_order_case_insensitively(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fresh-shop.db"
    shop = DemoShop(path)
    assert not path.exists(), "creating the shop object must not touch the disk"

    order = shop.order("a1020")

    assert order is not None
    assert order["id"] == "A1020"
    assert order["status"] == "shipped"
    assert order["carrier"] == "UPS"
    assert [item["name"] for item in order["items"]] == ["Basecamp 4-Person Tent"]
    assert path.is_file()
    assert shop.tickets() == []


def test_order_status_accepts_a_hash_and_lower_case_id(tools: dict[str, Any]) -> None:
    answer = tools["order_status"].invoke({"order_id": " #a1020"})

    assert answer.startswith("Order A1020 is shipped.")
    assert "UPS" in answer and "1Z9NW0010020" in answer
    assert "Basecamp 4-Person Tent" in answer


def test_an_unknown_order_says_so_and_shows_what_ids_look_like(
    shop: DemoShop, tools: dict[str, Any]
) -> None:
    assert shop.order("A9999") is None

    answer = tools["order_status"].invoke({"order_id": "A9999"})

    assert "No order with id 'A9999' exists" in answer
    assert "A1003" in answer


def test_tickets_are_stored_with_their_fields_and_numbered(shop: DemoShop) -> None:
    first = shop.create_ticket(subject="Tent pole snapped", body="On day two.", priority="high")
    second = shop.create_ticket(subject="Invoice", body="Need a copy", order_id="A1020")

    assert [t["id"] for t in shop.tickets()] == [first["id"], second["id"]]
    assert second["id"] == first["id"] + 1
    assert (first["subject"], first["priority"], first["status"]) == (
        "Tent pole snapped",
        "high",
        "open",
    )
    assert second["priority"] == "normal" and second["order_id"] == "A1020"


def test_two_shops_on_the_same_file_share_tickets(shop: DemoShop, settings: Settings) -> None:
    shop.create_ticket(subject="s", body="b")

    assert [t["subject"] for t in DemoShop(settings.shop_db).tickets()] == ["s"]


# --- help center -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "slug"),
    [
        ("what is your refund policy?", "refund-policy"),
        ("my tent is broken", "warranty"),
        ("How do I reset my password?", "account-password"),
    ],
)
def test_the_best_help_article_answers_the_question(question: str, slug: str) -> None:
    hits = KnowledgeBase().search(question)

    assert hits, question
    assert hits[0][0].slug == slug
    assert [score for _, score in hits] == sorted((s for _, s in hits), reverse=True)


def test_a_question_about_nothing_in_the_help_center_finds_nothing(tools: dict[str, Any]) -> None:
    assert KnowledgeBase().search("xyzzy plugh") == []
    assert tools["search_help_articles"].invoke({"query": "xyzzy plugh"}) == (
        "No help article matches that question."
    )


def test_help_search_returns_the_best_article_and_names_a_related_one(
    tools: dict[str, Any],
) -> None:
    answer = tools["search_help_articles"].invoke({"query": "what is your refund policy?"})

    best = next(a for a in KnowledgeBase().articles if a.slug == "refund-policy")
    assert answer.startswith(best.text.strip())
    assert "(Related article: " in answer


# --- approval decisions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, ("approve", {}, None)),
        ("approve", ("approve", {}, None)),
        (False, ("reject", {}, None)),
        ("reject", ("reject", {}, None)),
        ({"action": "approve"}, ("approve", {}, None)),
        ({"approved": True}, ("approve", {}, None)),
        ({"approved": False}, ("reject", {}, None)),
        ({"action": "reject", "reason": "duplicate"}, ("reject", {}, "duplicate")),
        (
            {"action": "edit", "args": {"priority": "high"}},
            ("edit", {"priority": "high"}, None),
        ),
    ],
)
def test_approval_decisions_are_normalized(value: Any, expected: tuple[Any, ...]) -> None:
    assert parse_decision(value) == expected


@pytest.mark.parametrize(
    "value", ["yes", "APPROVE", 1, 0, None, [], {"action": "delete"}, {"action": "maybe"}]
)
def test_anything_else_is_refused_with_an_example_of_a_valid_decision(value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"approval must be approve/reject/edit.*'action': 'approve'"
    ):
        parse_decision(value)


def test_edited_arguments_are_a_copy_of_what_the_human_sent() -> None:
    sent = {"action": "edit", "args": {"priority": "low"}}

    _, edits, _ = parse_decision(sent)
    edits["priority"] = "urgent"

    assert sent["args"] == {"priority": "low"}
