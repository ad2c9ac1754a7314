"""``graphyard db init``, ``graphyard threads prune`` and ``graphyard threads delete``.

Storage upkeep from the command line. These commands change stored threads; each prints what
it did (``--json`` for scripts), and ``--dry-run`` shows it first. None of them calls a model.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from graphyard.cli._common import (
    ConfigOption,
    JsonOption,
    app,
    console,
    err,
    load_settings,
    threads_app,
)
from graphyard.config import Settings, parse_duration
from graphyard.errors import ConfigError

if TYPE_CHECKING:  # importing persistence loads langgraph: keep `graphyard serve` startup fast
    from graphyard.persistence import RetentionReport

db_app = typer.Typer(help="The checkpoint database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _shown(url: str) -> str:
    from graphyard.persistence._postgres import redact

    return redact(url)


@db_app.command("init")
def db_init(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Create the checkpoint tables (or bring them up to date) for GRAPHYARD_CHECKPOINTER.

    Safe to run again; the server also does this when it starts.

    Example: GRAPHYARD_CHECKPOINTER=postgresql://app@db/agents graphyard db init
    """
    from graphyard.persistence import open_saver, saver_backend

    settings = load_settings(config)

    async def run() -> str:
        async with open_saver(settings.checkpointer, settings=settings) as saver:
            return type(saver).__name__

    saver_name = asyncio.run(run())
    result = {
        "checkpointer": _shown(settings.checkpointer),
        "backend": saver_backend(settings.checkpointer),
        "saver": saver_name,
        "ready": True,
    }
    if json_output:
        typer.echo(json.dumps(result))
    else:
        console.print(f"checkpoint storage ready: {result['checkpointer']} ({saver_name})")


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


@threads_app.command("prune")
def threads_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Only threads idle longer than this: 90m, 12h, 7d, 2w.",
        ),
    ] = None,
    keep_latest: Annotated[
        bool,
        typer.Option(
            "--keep-latest",
            help="Keep each thread, cut down to its latest checkpoint, instead of deleting it.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Delete idle threads, or keep only each thread's latest checkpoint.

    Threads idle longer than --older-than (every thread without it) are deleted; with
    --keep-latest they keep their latest checkpoint instead, messages and values still
    readable. SQLite is VACUUMed afterwards, so the file shrinks.

    Example: graphyard threads prune --older-than 30d --dry-run
    """
    age = _duration(older_than)
    if age is None and not keep_latest:
        raise typer.BadParameter(
            "give --older-than (e.g. 7d) to delete idle threads, or --keep-latest to compact "
            "every thread; to delete named threads use `graphyard threads delete`",
            param_hint="--older-than",
        )
    settings = load_settings(config)
    report = asyncio.run(_prune(settings, age, keep_latest=keep_latest, dry_run=dry_run))
    _print_report(report, json_output)


async def _prune(
    settings: Settings, age: timedelta | None, *, keep_latest: bool, dry_run: bool
) -> RetentionReport:
    from graphyard.persistence import open_saver, prune_threads

    if not keep_latest:
        async with open_saver(settings.checkpointer, settings=settings) as saver:
            return await prune_threads(saver, older_than=age, dry_run=dry_run)
    # Keeping a DeltaChannel thread readable needs the graph's channels (their reducers).
    from graphyard._runtime import open_runtime

    async with open_runtime(settings) as runtime:
        return await prune_threads(
            runtime.saver,
            older_than=age,
            keep_latest=True,
            channels=runtime.graph.channels,
            dry_run=dry_run,
        )


@threads_app.command("delete")
def threads_delete(
    thread_ids: Annotated[list[str], typer.Argument(help="The threads to delete.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Delete threads: every checkpoint, write and blob of each, nothing else.

    Exits 1 if some thread did not exist.

    Example: graphyard threads delete t1 t2
    """
    from graphyard.persistence import delete_threads, open_saver

    settings = load_settings(config)

    async def run() -> RetentionReport:
        async with open_saver(settings.checkpointer, settings=settings) as saver:
            return await delete_threads(saver, thread_ids, dry_run=dry_run)

    report = asyncio.run(run())
    missing = sorted(set(thread_ids) - set(report.threads))
    _print_report(report, json_output, missing=missing)
    if missing:
        raise typer.Exit(1)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _print_report(
    report: RetentionReport, json_output: bool, *, missing: list[str] | None = None
) -> None:
    data: dict[str, Any] = report.as_json()
    if missing is not None:
        data["not_found"] = missing
    if json_output:
        typer.echo(json.dumps(data))
        return
    verb = "would " if report.dry_run else ""
    if report.threads:
        table = Table("thread", "delta channels snapshotted")
        for thread_id in report.threads:
            table.add_row(thread_id, ", ".join(report.snapshots.get(thread_id, [])))
        console.print(table)
    if report.strategy == "keep_latest":
        console.print(
            f"{verb}keep the latest checkpoint of {len(report.threads)} thread(s), "
            f"{verb}delete {report.checkpoints_deleted} older checkpoint(s)"
        )
    else:
        console.print(f"{verb}delete {len(report.threads)} thread(s)")
    if report.bytes_before is not None and report.bytes_after is not None:
        console.print(
            f"storage {_size(report.bytes_before)} -> {_size(report.bytes_after)} after compaction"
        )
    for thread_id in missing or []:
        err.print(f"[yellow]thread {thread_id!r} not found[/yellow]")
