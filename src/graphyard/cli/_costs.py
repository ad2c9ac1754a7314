"""``graphyard costs``: the cost ledger as a table, grouped by day, tier, model, user or thread.

Reads the ledger in the checkpointer's database (``GRAPHYARD_CHECKPOINTER``); never writes a
record (opening the ledger creates its empty table in a database that has none yet).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.table import Table

from graphyard.cli._common import ConfigOption, JsonOption, app, console, load_settings
from graphyard.config import parse_duration
from graphyard.errors import ConfigError
from graphyard.ledger import CostTotals, GroupBy

__all__ = ["costs", "parse_since"]

_GROUPS: tuple[str, ...] = get_args(GroupBy)


def parse_since(text: str, *, now: float | None = None) -> float:
    """Unix time from ``7d`` / ``12h`` (that long ago) or a date ``2026-11-01`` (UTC midnight).

    >>> parse_since("1d", now=172800.0), parse_since("1970-01-02")
    (86400.0, 86400.0)
    """
    now = time.time() if now is None else now
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()
    try:
        return now - parse_duration(text).total_seconds()
    except ConfigError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (7d, 12h) nor a date (2026-11-01)"
        ) from None


def _by(value: str) -> str:
    if value not in _GROUPS:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(_GROUPS)}")
    return value


@app.command("costs")
def costs(
    by: Annotated[
        str,
        typer.Option(
            "--by", callback=_by, help=f"Group calls by: {', '.join(_GROUPS)} (days in UTC)."
        ),
    ] = "day",
    since: Annotated[
        str | None,
        typer.Option(help="Only calls since then: a duration (7d, 12h) or a date (2026-11-01)."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's calls.")] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Tokens and dollars of every model call, from the ledger.

    Example: graphyard costs --by model --since 7d
    """
    from graphyard.ledger import open_ledger
    from graphyard.persistence import saver_backend, sqlite_path

    settings = load_settings(config)
    start = parse_since(since) if since else None
    backend = saver_backend(settings.checkpointer)
    if backend == "sqlite" and not Path(sqlite_path(settings.checkpointer)).is_file():
        raise ConfigError(
            f"no database at {sqlite_path(settings.checkpointer)}; point "
            "GRAPHYARD_CHECKPOINTER (or --config) at the server's checkpoint database"
        )

    async def run() -> list[tuple[str, CostTotals]]:
        async with open_ledger(settings.checkpointer, postgres=settings.postgres) as ledger:
            return await ledger.summary(by, since=start, user_id=user)  # type: ignore[arg-type]

    rows = asyncio.run(run())
    total = CostTotals()
    for _, t in rows:
        total.merge(t)
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "by": by,
                    "since": start,
                    "rows": [{by: key, **t.as_json()} for key, t in rows],
                    "total": total.as_json(),
                }
            )
        )
        return
    table = Table(by, "calls", "input", "output", "cache rd", "cache wr", "dollars")
    for column in table.columns[1:]:
        column.justify = "right"
    table.columns[0].min_width = min(max((len(k) for k, _ in rows), default=5), 40)
    for key, t in [*rows, ("total", total)]:
        table.add_row(
            key,
            f"{t.calls:,}",
            f"{t.input_tokens:,}",
            f"{t.output_tokens:,}",
            f"{t.cache_read_tokens:,}",
            f"{t.cache_write_tokens:,}",
            f"${t.cost_usd:,.6f}",
            end_section=key is rows[-1][0] if rows else False,
        )
    console.print(table)
