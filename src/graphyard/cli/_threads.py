"""``graphyard threads ...``: inspect stored conversations."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from graphyard.cli._common import ConfigOption, JsonOption, console, err, load_settings, threads_app


@threads_app.command("list")
def threads_list(
    limit: Annotated[int, typer.Option(min=1, help="How many threads.")] = 50,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List threads, most recently active first.

    Example: graphyard threads list --json
    """
    from graphyard.persistence import list_threads, open_saver

    settings = load_settings(config)

    async def run() -> list[Any]:
        async with open_saver(settings.checkpointer, settings=settings) as saver:
            return await list_threads(saver, limit=limit)

    rows = asyncio.run(run())
    if json_output:
        typer.echo(
            json.dumps(
                [
                    {
                        "thread_id": r.thread_id,
                        "checkpoints": r.checkpoints,
                        "latest_checkpoint_id": r.latest_checkpoint_id,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table("thread", "checkpoints", "latest checkpoint")
    for r in rows:
        table.add_row(r.thread_id, str(r.checkpoints), r.latest_checkpoint_id)
    console.print(table)


@threads_app.command("show")
def threads_show(
    thread_id: Annotated[str, typer.Argument(help="The thread.")],
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a thread's messages, tier and cost.

    Example: graphyard threads show t1
    """
    from graphyard._runtime import open_runtime
    from graphyard.server._serialize import jsonable

    settings = load_settings(config)

    async def run() -> Any:
        async with open_runtime(settings) as runtime:
            return await runtime.graph.aget_state({"configurable": {"thread_id": thread_id}})

    snapshot = asyncio.run(run())
    if snapshot.created_at is None:
        err.print(f"[red]thread {thread_id!r} not found[/red]")
        raise typer.Exit(1)
    values = snapshot.values
    if json_output:
        typer.echo(
            json.dumps(
                jsonable(
                    {"values": values, "next": snapshot.next, "created_at": snapshot.created_at}
                )
            )
        )
        return
    for message in values.get("messages", []):
        text = str(message.content) or (
            f"[calls {', '.join(c['name'] for c in message.tool_calls)}]"
            if getattr(message, "tool_calls", None)
            else ""
        )
        console.print(f"[bold]{message.type:>6}[/bold] ", end="")
        console.print(text, markup=False, highlight=False)
    usage = values.get("usage") or {}
    console.print(
        f"[dim]tier {values.get('tier')} · {usage.get('input_tokens', 0)} in / "
        f"{usage.get('output_tokens', 0)} out tokens · ${values.get('cost_usd', 0.0):.6f}"
        + (f" · waiting at {', '.join(snapshot.next)}" if snapshot.next else "")
        + "[/dim]"
    )
