"""``graphyard costs``: the ledger as a table or JSON, through typer's CliRunner, on SQLite,
Postgres and DynamoDB ledgers written by the real ledger."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphyard.cli import app
from graphyard.cli._costs import parse_since
from graphyard.ledger import CallRecord, open_ledger

runner = CliRunner()
NOW = time.time()
DAY = 86400.0


def call(call_id: str, user: str, thread: str, tier: str, cost: float, ago: float) -> CallRecord:
    return CallRecord(
        call_id, f"run-{thread}", thread, user, tier, f"scripted:{tier}", "planner",
        1000, 100, 10, 0, cost, 0.3, NOW - ago,
    )  # fmt: skip


@pytest.fixture
def database(backend_url: str) -> str:
    async def fill() -> None:
        async with open_ledger(backend_url) as ledger:
            ledger.record(call("a", "alice", "t1", "mid", 0.25, 60))
            ledger.record(call("b", "alice", "t1", "strong", 1.50, 120))
            ledger.record(call("c", "bob", "t2", "mid", 0.50, 3 * DAY))

    asyncio.run(fill())
    return backend_url


def costs(url: str, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["costs", *args, "--json"], env={"GRAPHYARD_CHECKPOINTER": url})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_costs_by_tier_sums_every_call_largest_first(database: str) -> None:
    out = costs(database, "--by", "tier")
    assert [(r["tier"], r["calls"], r["cost_usd"]) for r in out["rows"]] == [  # type: ignore[index]
        ("strong", 1, 1.5),
        ("mid", 2, 0.75),
    ]
    assert out["total"] == {
        "calls": 3,
        "input_tokens": 3000,
        "output_tokens": 300,
        "cache_read_tokens": 30,
        "cache_write_tokens": 0,
        "cost_usd": 2.25,
    }


def test_costs_since_and_user_filter_the_calls(database: str) -> None:
    assert [r["user"] for r in costs(database, "--by", "user", "--since", "1d")["rows"]] == [  # type: ignore[index]
        "alice"
    ]
    by_thread = costs(database, "--by", "thread", "--user", "bob")
    assert [(r["thread"], r["cost_usd"]) for r in by_thread["rows"]] == [("t2", 0.5)]  # type: ignore[index]
    by_day = costs(database, "--by", "day")["rows"]
    assert len(by_day) == 2  # type: ignore[arg-type]
    assert by_day[0]["day"] == time.strftime("%Y-%m-%d", time.gmtime(NOW - 60))  # type: ignore[index]


def test_costs_prints_a_table_with_a_total_row(database: str) -> None:
    result = runner.invoke(
        app, ["costs", "--by", "model"], env={"GRAPHYARD_CHECKPOINTER": database, "COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("scripted:strong" in line and "$1.500000" in line for line in lines)
    assert any("total" in line and "$2.250000" in line and "3,000" in line for line in lines)


def test_costs_refuses_an_unknown_grouping_or_date_with_exit_code_2(database: str) -> None:
    env = {"GRAPHYARD_CHECKPOINTER": database}
    bad_by = runner.invoke(app, ["costs", "--by", "week"], env=env)
    bad_since = runner.invoke(app, ["costs", "--since", "last tuesday"], env=env)
    assert bad_by.exit_code == bad_since.exit_code == 2
    assert "day, tier, model, user, thread, run" in flat(bad_by.output)
    assert "neither a duration" in flat(bad_since.output)


def flat(text: str) -> str:
    """Text of a rich error box, its borders and line breaks removed."""
    return " ".join(text.replace("│", " ").split())


def test_costs_on_a_missing_sqlite_file_says_where_it_looked(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["costs"], env={"GRAPHYARD_CHECKPOINTER": f"sqlite:///{tmp_path / 'nope.db'}"}
    )
    assert result.exit_code != 0
    assert "no database at" in str(result.exception)
    assert not (tmp_path / "nope.db").exists()  # looking never creates it


def test_since_reads_durations_and_utc_dates() -> None:
    assert parse_since("2d", now=10 * DAY) == 8 * DAY
    assert parse_since("1970-01-03") == 2 * DAY


def test_costs_on_an_unreachable_postgres_says_where_without_the_password() -> None:
    url = "postgresql://app:s3cret@127.0.0.1:1/agents"  # nothing listens on port 1
    result = runner.invoke(
        app, ["costs"], env={"GRAPHYARD_CHECKPOINTER": url, "GRAPHYARD_POSTGRES__TIMEOUT": "1"}
    )
    assert type(result.exception).__name__ == "ConfigError"  # main() prints it, exit code 2
    assert "postgresql://app:***@127.0.0.1:1/agents" in str(result.exception)
    assert "s3cret" not in str(result.exception) + result.output


def test_costs_on_an_unreachable_dynamodb_says_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    url = "dynamodb://threads?region=us-east-1&endpoint_url=http://127.0.0.1:1"
    result = runner.invoke(app, ["costs"], env={"GRAPHYARD_CHECKPOINTER": url})
    assert type(result.exception).__name__ == "ConfigError"  # not a botocore stack trace
    assert "cannot reach DynamoDB at http://127.0.0.1:1" in str(result.exception)
