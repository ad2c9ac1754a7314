"""``graphyard cache stats|clear`` on a real SQLite cache file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphyard.caching import CacheCounts, open_cache
from graphyard.cli import app
from graphyard.config import Settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    url = f"sqlite:///{tmp_path / 'graphyard.db'}"
    monkeypatch.setenv("GRAPHYARD_CHECKPOINTER", url)
    return Settings(checkpointer=url)


def fill(settings: Settings) -> None:
    async def run() -> None:
        async with open_cache(settings) as cache:
            assert cache is not None
            await cache.aset(
                {
                    (("graphyard", "answers"), "a"): ({"text": "x"}, None),
                    (("graphyard", "answers"), "b"): ({"text": "y"}, 1),
                    (("__pregel_ns_writes", "m.kb_search"), "c"): ([["x", 1]], None),
                }
            )
            await cache.acount([CacheCounts("answers", hits=3, misses=1, saved_usd=0.012)])

    asyncio.run(run())


def test_stats_show_hits_misses_entries_and_dollars_saved_per_cache(env: Settings) -> None:
    fill(env)
    result = CliRunner().invoke(app, ["cache", "stats", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["backend"] == "sqlite" and report["location"].endswith("graphyard.cache.db")
    rows = {r["cache"]: r for r in report["caches"]}
    assert rows["answers"]["hits"] == 3 and rows["answers"]["hit_rate"] == 0.75
    assert rows["answers"]["entries"] == 2 and rows["answers"]["saved_usd"] == 0.012
    assert rows["task:kb_search"]["entries"] == 1 and rows["task:kb_search"]["stores"] == 1
    table = CliRunner().invoke(app, ["cache", "stats"])
    assert table.exit_code == 0 and "answers" in table.output and "75.0%" in table.output


def test_clear_deletes_one_cache_or_everything_and_never_the_checkpoints(
    env: Settings, tmp_path: Path
) -> None:
    fill(env)
    (tmp_path / "graphyard.db").write_bytes(b"")  # stands for the checkpoint file
    one = CliRunner().invoke(app, ["cache", "clear", "--cache", "task:kb_search"])
    assert one.exit_code == 0 and "removed 1" in one.output
    unknown = CliRunner().invoke(app, ["cache", "clear", "--cache", "nope"])
    assert unknown.exit_code == 2
    everything = CliRunner().invoke(app, ["cache", "clear", "--reset-stats"])
    assert everything.exit_code == 0 and "removed 2" in everything.output
    report = json.loads(CliRunner().invoke(app, ["cache", "stats", "--json"]).output)
    assert report["caches"] == []
    assert (tmp_path / "graphyard.db").exists()


def test_clear_expired_keeps_live_entries(env: Settings) -> None:
    fill(env)
    import time

    time.sleep(1.1)  # entry "b" had a one-second TTL
    result = CliRunner().invoke(app, ["cache", "clear", "--expired"])
    assert result.exit_code == 0 and "removed 1" in result.output
    rows = {
        r["cache"]: r
        for r in json.loads(CliRunner().invoke(app, ["cache", "stats", "--json"]).output)["caches"]
    }
    assert rows["answers"]["entries"] == 1


def test_stats_say_when_caching_is_off(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHYARD_CACHE__ENABLED", "false")
    result = CliRunner().invoke(app, ["cache", "stats", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["backend"] == "none"
