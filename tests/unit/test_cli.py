"""The graphyard command line, through typer's CliRunner."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphyard import open_runtime
from graphyard.cli import app
from graphyard.config import Settings
from graphyard.testing import ScriptedChatModel

runner = CliRunner()


@pytest.fixture
def populated(settings: Settings) -> Settings:
    """Two threads in the settings' SQLite file, written through the real runtime."""
    model = ScriptedChatModel(responses=["Happy to help."])

    async def fill() -> None:
        async with open_runtime(
            settings, models=dict.fromkeys(("cheap", "mid", "strong"), model)
        ) as rt:
            for thread in ("alpha", "beta"):
                await rt.graph.ainvoke(
                    {"messages": [("user", f"hello from {thread}")]},
                    {"configurable": {"thread_id": thread}},
                )

    asyncio.run(fill())
    return settings


def _env(settings: Settings) -> dict[str, str]:
    return {
        "GRAPHYARD_CHECKPOINTER": settings.checkpointer,
        "GRAPHYARD_SHOP_DB": str(settings.shop_db),
    }


def test_threads_list_json_shows_every_thread_most_recent_first(populated: Settings) -> None:
    result = runner.invoke(app, ["threads", "list", "--json"], env=_env(populated))

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["thread_id"] for r in rows] == ["beta", "alpha"]
    assert all(r["checkpoints"] > 3 for r in rows)


def test_threads_show_prints_messages_and_cost(populated: Settings) -> None:
    result = runner.invoke(app, ["threads", "show", "alpha"], env=_env(populated))

    assert result.exit_code == 0, result.output
    assert "hello from alpha" in result.output
    assert "Happy to help." in result.output
    assert "tier cheap" in result.output


def test_threads_show_json_is_machine_readable(populated: Settings) -> None:
    result = runner.invoke(app, ["threads", "show", "beta", "--json"], env=_env(populated))

    assert result.exit_code == 0, result.output
    values = json.loads(result.output)["values"]
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]


def test_threads_show_unknown_thread_fails_with_a_clear_message(populated: Settings) -> None:
    result = runner.invoke(app, ["threads", "show", "nope"], env=_env(populated))

    assert result.exit_code == 1
    assert "not found" in result.output


def test_config_file_option_is_read(populated: Settings, tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text(
        f'checkpointer = "{populated.checkpointer}"\nshop_db = "{populated.shop_db}"\n'
    )

    result = runner.invoke(app, ["threads", "list", "--json", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 2


def test_help_shows_examples() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "mypkg.agent:graph" in result.output


def test_unknown_checkpointer_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "graphyard", "threads", "list"],
        env={"GRAPHYARD_CHECKPOINTER": "mongodb://x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "unsupported checkpointer" in proc.stderr
    assert "Traceback" not in proc.stderr
