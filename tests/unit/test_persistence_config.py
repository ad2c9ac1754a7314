"""Persistence settings and helpers that need no database: durations, checkpoint-ID times,
Postgres pool settings, URL redaction and scheme dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from langgraph.checkpoint.base.id import uuid6

from graphyard.config import Settings, parse_duration
from graphyard.errors import ConfigError
from graphyard.persistence import saver_backend
from graphyard.persistence._postgres import redact
from graphyard.persistence._stores import checkpoint_id_at, checkpoint_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1.5h", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_read_as_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "7 days", "d7", "-1d", "soon", ""])
def test_an_unreadable_duration_is_a_config_error_showing_the_forms(text: str) -> None:
    with pytest.raises(ConfigError, match="'30d'"):
        parse_duration(text)


def test_thread_ttl_is_off_by_default_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().thread_ttl is None
    monkeypatch.setenv("GRAPHYARD_THREAD_TTL", "30d")
    assert Settings().thread_ttl == "30d"
    monkeypatch.setenv("GRAPHYARD_THREAD_TTL", "a month")
    with pytest.raises(ConfigError, match="not understood"):
        Settings()


def test_one_postgres_pool_field_from_the_environment_keeps_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPHYARD_POSTGRES__MAX_SIZE", "25")

    pool = Settings().postgres

    assert (pool.min_size, pool.max_size, pool.timeout) == (1, 25, 30.0)


def test_a_pool_smaller_than_its_minimum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GRAPHYARD_POSTGRES__MAX_SIZE"):
        Settings(postgres={"min_size": 5, "max_size": 2})


def test_checkpoint_ids_compare_like_the_times_they_were_saved() -> None:
    before = checkpoint_id_at(datetime.now(UTC) - timedelta(seconds=1))
    saved = str(uuid6(clock_seq=3))  # how LangGraph makes checkpoint IDs
    after = checkpoint_id_at(datetime.now(UTC) + timedelta(seconds=1))

    assert before < saved < after
    assert abs(checkpoint_time(saved) - datetime.now(UTC)) < timedelta(seconds=5)


def test_checkpoint_times_round_trip_through_ids() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert checkpoint_time(checkpoint_id_at(when)) == when


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/agents", "postgresql://app:***@db:5432/agents"),
        ("postgresql://app@db/agents", "postgresql://app@db/agents"),
    ],
)
def test_postgres_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:///g.db", "sqlite"),
        ("postgresql://h/db", "postgres"),
        ("postgres://h/db", "postgres"),
        ("POSTGRESQL://h/db", "postgres"),
    ],
)
def test_checkpointer_urls_pick_their_backend_by_scheme(url: str, backend: str) -> None:
    assert saver_backend(url) == backend
