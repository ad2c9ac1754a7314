"""Shared fixtures. Every test runs in its own directory with a clean environment, so a
developer's graphyard.toml or API keys never leak into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphyard.config import Settings

_LEAKY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")

# `postgres_server` / `postgres_url` for tests marked `postgres` (tests/postgres_fixtures.py).
# `moto_server` / `dynamodb_url` for tests marked `dynamodb` (tests/dynamodb_fixtures.py).
pytest_plugins = ["postgres_fixtures", "dynamodb_fixtures"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        # OTEL_*: a developer's tracing setup would turn tracing on in every test server
        if name.startswith(("GRAPHYARD_", "OTEL_")) or name in _LEAKY:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with the checkpoint database and the demo shop in the test's directory."""
    return Settings(
        checkpointer=f"sqlite:///{tmp_path / 'graphyard.db'}",
        shop_db=tmp_path / "shop.db",
        # graph tests pin tiers by the rule router's keywords; the learned router (the
        # product default) has its own tests in tests/unit/test_routing*.py
        router="rules",
    )


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """Fail the test if anything blocks the event loop (sqlite3, file I/O, sleep...)."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["graphyard", "langgraph", "langchain_core"]) as bb:
        yield bb
