"""The checkpointers graphyard opens from a URL, on real SQLite files and a real PostgreSQL.

Conformance comes from ``langgraph-checkpoint-conformance`` (the base suite, async API),
run against the savers exactly as :func:`graphyard.persistence.open_saver` opens them.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from checkpointer_support import config, run_turns, scripted_models, settings_for, transcript
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from graphyard import open_runtime
from graphyard.config import Settings
from graphyard.errors import ConfigError
from graphyard.persistence import list_threads, open_saver, saver_backend
from graphyard.testing import ScriptedChatModel
from postgres_fixtures import with_database

BASE = {c.value for c in BASE_CAPABILITIES}


def _assert_base_suite_passed(report: CapabilityReport) -> None:
    failures = {k: r.failures for k, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    ran = sum(report.results[c].tests_passed for c in BASE)
    assert ran >= 58, f"only {ran} base conformance tests ran"


async def test_sqlite_checkpointer_passes_the_conformance_base_suite(tmp_path: Path) -> None:
    @checkpointer_test(name="graphyard-sqlite")
    async def factory() -> AsyncIterator[object]:
        async with open_saver(f"sqlite:///{tmp_path / uuid.uuid4().hex}.db") as saver:
            yield saver

    _assert_base_suite_passed(await validate(factory, capabilities=BASE))


@pytest.mark.postgres
async def test_postgres_checkpointer_passes_the_conformance_base_suite(
    postgres_server: str,
) -> None:
    made: list[str] = []

    @checkpointer_test(name="graphyard-postgres")
    async def factory() -> AsyncIterator[object]:
        name = f"conf_{uuid.uuid4().hex[:12]}"  # every capability suite starts empty
        async with await psycopg.AsyncConnection.connect(postgres_server, autocommit=True) as c:
            await c.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        async with open_saver(with_database(postgres_server, name)) as saver:
            yield saver

    try:
        _assert_base_suite_passed(await validate(factory, capabilities=BASE))
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_server, autocommit=True) as c:
            for name in made:
                await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_one_megabyte_message_round_trips_through_the_reference_graph(
    checkpointer_url: str, tmp_path: Path
) -> None:
    big = "".join(random.Random(7).choices(string.ascii_letters + " ", k=1_000_000))
    model = ScriptedChatModel(responses=[big[::-1]])
    settings = settings_for(checkpointer_url, tmp_path)
    models = dict.fromkeys(("cheap", "mid", "strong"), model)
    async with open_runtime(settings, models=models) as runtime:
        await runtime.graph.ainvoke(
            {"messages": [HumanMessage(big, id="big")]}, config("t"), durability="sync"
        )

    async with open_runtime(settings, models=models) as reopened:  # read back from storage
        messages = (await reopened.graph.aget_state(config("t"))).values["messages"]

    assert messages[0].content == big
    assert messages[-1].type == "ai"
    assert messages[-1].content == big[::-1]


async def test_the_reference_agent_keeps_a_conversation_across_reopening(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "t1", 2)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        await run_turns(runtime.graph, "t1", 1, first=3)
        state = await runtime.graph.aget_state(config("t1"))

    assert transcript(state.values["messages"]) == [
        ("human", "turn 1"),
        ("ai", "Answer 1."),
        ("human", "turn 2"),
        ("ai", "Answer 2."),
        ("human", "turn 3"),
        ("ai", "Answer 3."),
    ]


async def test_list_threads_shows_each_thread_once_most_recent_first(
    checkpointer_url: str, tmp_path: Path
) -> None:
    settings = settings_for(checkpointer_url, tmp_path)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        for thread in ("old", "middle", "new"):
            await run_turns(runtime.graph, thread, 2)
        rows = await list_threads(runtime.saver, limit=2)
        rest = await list_threads(runtime.saver, limit=2, offset=2)
        checkpoints = len([c async for c in runtime.saver.alist(config("new"))])

    assert [r.thread_id for r in rows + rest] == ["new", "middle", "old"]
    assert rows[0].checkpoints == checkpoints


@pytest.mark.postgres
async def test_postgres_checkpointer_runs_on_a_pool_sized_by_settings(postgres_url: str) -> None:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    settings = Settings(checkpointer=postgres_url, postgres={"min_size": 2, "max_size": 5})
    async with open_saver(postgres_url, settings=settings) as saver:
        pool = saver.conn
        assert isinstance(pool, AsyncConnectionPool)
        assert (pool.min_size, pool.max_size) == (2, 5)
        assert pool.kwargs == {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        assert saver_backend(postgres_url) == "postgres"


@pytest.mark.postgres
async def test_concurrent_runs_use_several_pooled_connections_and_lose_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = settings_for(postgres_url, tmp_path, postgres={"min_size": 1, "max_size": 4})
    async with open_runtime(settings, models=scripted_models()) as runtime:
        pool = runtime.saver.conn
        await asyncio.gather(*(run_turns(runtime.graph, f"c{i}", 3) for i in range(12)))
        stats = pool.get_stats()  # type: ignore[union-attr]
        states = [await runtime.graph.aget_state(config(f"c{i}")) for i in range(12)]

    assert stats["pool_size"] > 1, stats
    for state in states:
        assert [m.content for m in state.values["messages"]][-1] == "Answer 3."
        assert len(state.values["messages"]) == 6


@pytest.mark.postgres
async def test_two_processes_setting_up_one_fresh_database_at_once_both_succeed(
    postgres_url: str,
) -> None:
    async def open_once() -> str:
        async with open_saver(postgres_url) as saver:
            return type(saver).__name__

    assert await asyncio.gather(*(open_once() for _ in range(4))) == ["AsyncPostgresSaver"] * 4


async def test_an_unreachable_postgres_is_a_config_error_without_the_password() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:9/agents"
    with pytest.raises(ConfigError) as caught:
        async with open_saver(url, settings=Settings(postgres={"timeout": 2})):
            pass
    assert "hunter2" not in str(caught.value)
    assert "app:***@127.0.0.1:9" in str(caught.value)


@pytest.mark.parametrize("url", ["mysql://localhost/db", "file.db", "redis://x"])
async def test_an_unknown_checkpointer_scheme_names_the_supported_ones(url: str) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        async with open_saver(url):
            pass


@pytest.mark.parametrize("level", ["OFF", "NORMAL", "FULL", "EXTRA"])
async def test_sqlite_synchronous_setting_reaches_the_saver_connection(
    level: str, tmp_path: Path
) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'g.db'}", tmp_path, sqlite_synchronous=level)
    async with open_runtime(settings, models=scripted_models()) as runtime:
        cursor = await runtime.saver.conn.execute("PRAGMA synchronous")  # type: ignore[attr-defined]
        (value,) = await cursor.fetchone()
        cursor = await runtime.saver.conn.execute("PRAGMA journal_mode")  # type: ignore[attr-defined]
        (journal,) = await cursor.fetchone()

    assert value == ["OFF", "NORMAL", "FULL", "EXTRA"].index(level)
    assert journal == "wal"


async def test_sqlite_is_fully_synchronous_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    async with open_saver(url, settings=Settings()) as saver:
        default = await (await saver.conn.execute("PRAGMA synchronous")).fetchone()  # type: ignore[attr-defined]
    monkeypatch.setenv("GRAPHYARD_SQLITE_SYNCHRONOUS", "NORMAL")
    async with open_saver(url, settings=Settings()) as saver:
        configured = await (await saver.conn.execute("PRAGMA synchronous")).fetchone()  # type: ignore[attr-defined]

    assert (default[0], configured[0]) == (2, 1)


@pytest.mark.parametrize("durability", ["sync", "exit"])
async def test_the_durability_setting_reaches_the_servers_runs(
    durability: str, tmp_path: Path
) -> None:
    """``exit`` saves one checkpoint per run where ``sync`` saves one per step."""
    import httpx

    from graphyard.server import create_app

    url = f"sqlite:///{tmp_path / 'g.db'}"
    app = create_app(settings_for(url, tmp_path, durability=durability), models=scripted_models())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            response = await client.post("/chat/t1", json={"content": "turn 1"})
            assert response.status_code == 200, response.text
            frames = [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: {")
            ]
            assert "".join(f.get("token", "") for f in frames) == "Answer 1."
        saver = app.state.services.runtime.saver
        sources = [c.metadata.get("source") async for c in saver.alist(config("t1"))]

    steps = [s for s in sources if s in ("input", "loop")]
    if durability == "exit":
        assert steps == ["loop"], sources  # the run's end state, saved once
    else:
        assert steps[-1] == "input" and steps.count("loop") >= 4, sources  # every step
