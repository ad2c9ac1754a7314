"""Retention on real SQLite and Postgres: delete, prune idle threads, keep-latest that keeps a
DeltaChannel thread readable, VACUUM that shrinks the file, and the server's TTL sweep."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from blockbuster import BlockBuster
from checkpointer_support import config, run_turns, scripted_models, settings_for, transcript
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from graphyard import open_runtime
from graphyard.cli import app as cli
from graphyard.config import TIERS, Settings
from graphyard.errors import ConfigError
from graphyard.persistence import (
    delete_threads,
    list_threads,
    prune_threads,
    sweep_idle_threads,
    thread_store,
)
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

LATER = datetime.now(UTC) + timedelta(days=30)


async def _rows(saver: Any, thread_id: str) -> dict[str, int]:
    """Rows a thread owns in each of the backend's tables."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if isinstance(saver, AsyncSqliteSaver):
        out = {}
        for table in ("checkpoints", "writes"):
            cursor = await saver.conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (thread_id,)
            )
            out[table] = (await cursor.fetchone())[0]
        return out
    out = {}
    async with saver._cursor() as cur:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            await cur.execute(
                f"SELECT COUNT(*) AS n FROM {table} WHERE thread_id = %s", (thread_id,)
            )
            out[table] = (await cur.fetchone())["n"]
    return out


async def test_naive_keep_latest_would_empty_a_delta_channel_thread(
    checkpointer_url: str, tmp_path: Path
) -> None:
    """Why keep-latest must snapshot: dropping the ancestors alone loses every message."""
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "t1", 3)
        latest = await runtime.saver.aget_tuple(config("t1"))
        assert latest is not None
        assert "messages" not in latest.checkpoint["channel_values"]  # a delta, not a value
        store = thread_store(runtime.saver)
        await store.drop_before("t1", latest.config["configurable"]["checkpoint_id"])
        state = await runtime.graph.aget_state(config("t1"))

    assert state.values.get("messages", []) == []


@pytest.mark.postgres
async def test_the_official_postgres_prune_refuses_delta_channel_threads(
    postgres_url: str, tmp_path: Path
) -> None:
    async with open_runtime(settings_for(postgres_url, tmp_path), models=scripted_models()) as rt:
        await run_turns(rt.graph, "t1", 2)
        with pytest.raises(NotImplementedError, match="DeltaChannel"):
            await rt.saver.aprune(["t1"], strategy="keep_latest")  # type: ignore[attr-defined]


async def test_keep_latest_leaves_one_checkpoint_and_the_whole_conversation(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        graph = runtime.graph
        await run_turns(graph, "t1", 4)
        await run_turns(graph, "other", 2)
        before = await graph.aget_state(config("t1"))
        other_before = await graph.aget_state(config("other"))

        report = await prune_threads(runtime.saver, keep_latest=True, channels=graph.channels)

        after = await graph.aget_state(config("t1"))
        checkpoints = [c async for c in runtime.saver.alist(config("t1"))]
        assert sorted(report.threads) == ["other", "t1"]
        assert report.snapshots["t1"] == ["messages"]
        assert len(checkpoints) == 1
        assert checkpoints[0].parent_config is None
        assert after.values == before.values  # messages, cost, usage, tier: all of it
        assert (await graph.aget_state(config("other"))).values == other_before.values

        # The thread goes on: the model sees the whole history, and a new answer follows.
        model = next(iter(runtime.tiers.values())).chat_model
        await run_turns(graph, "t1", 1, first=5)
        final = await graph.aget_state(config("t1"))

    assert [m.content for m in model.calls[-1] if m.type == "human"] == [  # type: ignore[attr-defined]
        f"turn {n}" for n in range(1, 6)
    ]
    assert transcript(final.values["messages"])[-2:] == [("human", "turn 5"), ("ai", "Answer 5.")]
    assert len(final.values["messages"]) == 10


async def test_keep_latest_without_the_graph_refuses_a_delta_thread_and_deletes_nothing(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "t1", 2)
        count = len([c async for c in runtime.saver.alist(config("t1"))])
        with pytest.raises(ConfigError, match="DeltaChannel"):
            await prune_threads(runtime.saver, keep_latest=True)
        assert len([c async for c in runtime.saver.alist(config("t1"))]) == count
        assert len((await runtime.graph.aget_state(config("t1"))).values["messages"]) == 4


async def test_delete_removes_every_row_of_that_thread_and_nothing_else(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "doomed", 3)
        await run_turns(runtime.graph, "kept", 3)
        kept_rows = await _rows(runtime.saver, "kept")
        kept_state = await runtime.graph.aget_state(config("kept"))

        report = await delete_threads(runtime.saver, ["doomed", "never-existed"])

        assert report.threads == ["doomed"]
        assert set((await _rows(runtime.saver, "doomed")).values()) == {0}
        assert await _rows(runtime.saver, "kept") == kept_rows
        assert (await runtime.graph.aget_state(config("kept"))).values == kept_state.values
        assert (await runtime.graph.aget_state(config("doomed"))).values == {}


async def test_prune_older_than_deletes_only_threads_idle_that_long(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "a", 1)
        await run_turns(runtime.graph, "b", 1)
        saver = runtime.saver

        recent = await prune_threads(saver, older_than=timedelta(days=7))
        dry = await prune_threads(saver, older_than=timedelta(days=7), now=LATER, dry_run=True)
        after_dry = [t.thread_id for t in await list_threads(saver)]
        real = await prune_threads(saver, older_than=timedelta(days=7), now=LATER)
        left = await list_threads(saver)

    assert recent.threads == []
    assert sorted(dry.threads) == ["a", "b"] and dry.checkpoints_deleted > 0
    assert sorted(after_dry) == ["a", "b"]
    assert sorted(real.threads) == ["a", "b"]
    assert left == []


async def test_a_pruned_sqlite_file_shrinks_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    settings = settings_for(f"sqlite:///{db}", tmp_path)
    model = ScriptedChatModel(responses=["x" * 50_000])
    async with open_runtime(settings, models=dict.fromkeys(TIERS, model)) as runtime:
        for n in range(8):
            await runtime.graph.ainvoke(
                {"messages": [HumanMessage("y" * 50_000, id=f"h{n}")]}, config(f"t{n}")
            )
        await runtime.saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
        before = await asyncio.to_thread(_disk_size, db)

        report = await prune_threads(runtime.saver, older_than=timedelta(days=1), now=LATER)

        after = await asyncio.to_thread(_disk_size, db)
    assert len(report.threads) == 8
    assert report.bytes_after is not None and report.bytes_before is not None
    assert report.bytes_after < report.bytes_before
    assert after < before / 4, (before, after)
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _disk_size(db: Path) -> int:
    """The database file and its WAL, as they are on disk."""
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_a_ttl_sweep_deletes_idle_threads_and_vacuums_only_when_worth_it(
    tmp_path: Path,
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'g.db'}", tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        for thread in ("a", "b", "c"):
            await run_turns(runtime.graph, thread, 2)
        assert (await sweep_idle_threads(runtime.saver, timedelta(days=1))).threads == []
        swept = await sweep_idle_threads(runtime.saver, timedelta(days=1), now=LATER)

    assert sorted(swept.threads) == ["a", "b", "c"]
    assert swept.bytes_after is not None  # all rows freed: well past the VACUUM threshold


async def test_the_server_sweeps_idle_threads_in_the_background_without_blocking(
    tmp_path: Path, no_blocking: BlockBuster
) -> None:
    no_blocking.deactivate()  # settings and startup read files; the sweep itself must not
    settings = settings_for(
        f"sqlite:///{tmp_path / 'g.db'}",
        tmp_path,
        thread_ttl="0.3s",
        thread_ttl_check_every="0.2s",
    )
    app = create_app(settings, models=scripted_models())
    async with app.router.lifespan_context(app):
        runtime = app.state.services.runtime
        no_blocking.activate()
        await run_turns(runtime.graph, "idle", 1)
        assert (await runtime.graph.aget_state(config("idle"))).values != {}
        for _ in range(50):
            if (await runtime.graph.aget_state(config("idle"))).values == {}:
                break
            await _sleep(0.1)
        gone = (await runtime.graph.aget_state(config("idle"))).values == {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            state = await client.get("/threads/idle/state")
    assert gone
    assert state.status_code == 404


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# --- the command line ----------------------------------------------------------------------

runner = CliRunner()


def _cli(settings: Settings, *args: str) -> Any:
    # Default tiers: keep-latest loads the configured graph (it checks the bundled model's
    # weights are installed, as `threads show` does) but never calls a model.
    env = {
        "GRAPHYARD_CHECKPOINTER": settings.checkpointer,
        "GRAPHYARD_SHOP_DB": str(settings.shop_db),
    }
    return runner.invoke(cli, list(args), env=env)


@pytest.fixture
def two_threads(checkpointer_url: str, tmp_path: Path) -> Settings:
    import asyncio

    settings = settings_for(checkpointer_url, tmp_path)

    async def fill() -> None:
        async with open_runtime(settings, models=scripted_models()) as runtime:
            await run_turns(runtime.graph, "alpha", 3)
            await run_turns(runtime.graph, "beta", 2)

    asyncio.run(fill())
    return settings


def _state(settings: Settings, thread_id: str) -> dict[str, Any]:
    import asyncio

    async def read() -> dict[str, Any]:
        async with open_runtime(settings, models=scripted_models()) as runtime:
            return (await runtime.graph.aget_state(config(thread_id))).values

    return asyncio.run(read())


def test_db_init_creates_the_checkpoint_schema(checkpointer_url: str, tmp_path: Path) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    first = _cli(settings, "db", "init", "--json")
    again = _cli(settings, "db", "init", "--json")

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    data = json.loads(first.output)
    assert data["ready"] is True
    assert data["backend"] == ("sqlite" if checkpointer_url.startswith("sqlite") else "postgres")


def test_threads_delete_cli_deletes_named_threads_and_reports_missing_ones(
    two_threads: Settings,
) -> None:
    result = _cli(two_threads, "threads", "delete", "alpha", "ghost", "--json")

    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["threads"] == ["alpha"]
    assert data["not_found"] == ["ghost"]
    assert _state(two_threads, "alpha") == {}
    assert len(_state(two_threads, "beta")["messages"]) == 4


def test_threads_prune_keep_latest_cli_keeps_conversations_readable(
    two_threads: Settings,
) -> None:
    before = _state(two_threads, "alpha")
    dry = _cli(two_threads, "threads", "prune", "--keep-latest", "--dry-run", "--json")
    result = _cli(two_threads, "threads", "prune", "--keep-latest", "--json")
    listed = _cli(two_threads, "threads", "list", "--json")

    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["dry_run"] is True
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(data["threads"]) == ["alpha", "beta"]
    assert data["snapshots"] == {"alpha": ["messages"], "beta": ["messages"]}
    assert data["checkpoints_deleted"] == json.loads(dry.output)["checkpoints_deleted"] > 0
    assert [r["checkpoints"] for r in json.loads(listed.output)] == [1, 1]
    assert _state(two_threads, "alpha") == before


def test_threads_prune_older_than_cli_deletes_idle_threads(two_threads: Settings) -> None:
    kept = _cli(two_threads, "threads", "prune", "--older-than", "7d", "--json")
    gone = _cli(two_threads, "threads", "prune", "--older-than", "0s")

    assert json.loads(kept.output)["threads"] == []
    assert gone.exit_code == 0, gone.output
    assert "delete 2 thread(s)" in gone.output
    assert _state(two_threads, "alpha") == {} and _state(two_threads, "beta") == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["threads", "prune"], "--older-than"),
        (["threads", "prune", "--older-than", "soon"], "not understood"),
    ],
)
def test_threads_prune_cli_usage_errors_exit_2_with_the_fix(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = _cli(settings_for(f"sqlite:///{tmp_path / 'g.db'}", tmp_path), *args)

    assert result.exit_code == 2
    assert message in result.output
