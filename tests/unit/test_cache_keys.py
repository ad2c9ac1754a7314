"""Cache keys and scopes: what makes two requests share an entry, and who may share it."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool

from graphyard.caching import cache_key, normalize_question, owner_of, question_scope, tool_versions


def test_questions_that_differ_only_in_case_spacing_and_punctuation_share_a_key() -> None:
    assert normalize_question("What is your  REFUND policy??") == normalize_question(
        " what is your refund policy"
    )
    assert normalize_question("refund policy") != normalize_question("return policy")


@pytest.mark.parametrize(
    "change",
    [
        {"model": "anthropic:claude-sonnet-4-5"},
        {"tier": "strong"},
        {"prompt": "v2"},
        {"tools": {"t": "2"}},
    ],
)
def test_every_input_that_changes_an_answer_changes_the_key(change: dict[str, object]) -> None:
    base = {
        "q": "refund policy",
        "model": "anthropic:claude-haiku-4-5",
        "tier": "mid",
        "prompt": "v1",
        "tools": {"t": "1"},
    }
    assert cache_key(base) == cache_key(dict(base))
    assert cache_key(base) != cache_key({**base, **change})


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("What is your refund policy?", "shared"),
        ("How do I reset my password?", "shared"),
        ("Do you ship internationally?", "shared"),
        ("Where is order A1003?", "user"),
        ("where is my package", "user"),
        ("Can I return my order from last week?", "user"),
        ("I want to speak to a human", None),
        ("Please open a ticket, my tent is broken", None),
        ("my email is jo@example.com, what is the refund policy", None),
        ("x" * 600, None),
        ("", None),
        ("hello", None),
        ("thanks a lot", None),
        ("shipping times", "shared"),
    ],
)
def test_question_scope_never_shares_personal_or_side_effect_questions(
    text: str, scope: str | None
) -> None:
    assert question_scope(text) == scope


def test_a_question_that_refers_back_to_the_conversation_is_only_cached_on_a_first_turn() -> None:
    assert question_scope("Is that also true for shoes?", has_history=False) == "shared"
    assert question_scope("Is that also true for shoes?", has_history=True) is None


def test_personal_entries_belong_to_the_authenticated_user_or_else_to_the_thread() -> None:
    assert owner_of({"user_id": "alice", "thread_id": "t"}) == "user:alice"
    assert owner_of({"user_id": "anonymous", "thread_id": "t"}) == "thread:t"
    assert owner_of({}) is None


def test_editing_a_tools_code_changes_its_version() -> None:
    @tool
    def lookup(x: str) -> str:
        """Look something up."""
        return x

    @tool("lookup")
    def lookup_v2(x: str) -> str:
        """Look something up."""
        return x.upper()

    assert tool_versions([lookup]) == tool_versions([lookup])
    assert tool_versions([lookup])["lookup"] != tool_versions([lookup_v2])["lookup"]


def test_the_caching_packages_public_api_is_pinned() -> None:
    import graphyard.caching

    assert sorted(graphyard.caching.__all__) == [
        "ANSWERS_NAMESPACE",
        "AnswerCache",
        "CACHE_EVENT",
        "CACHE_HIT_METADATA_KEY",
        "CacheCounts",
        "CachedAnswer",
        "DynamoDBCache",
        "GraphCache",
        "MemoryCacheBackend",
        "NamespaceEntries",
        "PostgresCache",
        "ReplayChatModel",
        "SqliteCacheBackend",
        "agent_caches",
        "cache_key",
        "cache_location",
        "cached_kb_search",
        "kb_version",
        "normalize_question",
        "open_cache",
        "owner_of",
        "question_scope",
        "tool_versions",
    ]
    for name in graphyard.caching.__all__:
        assert hasattr(graphyard.caching, name)
