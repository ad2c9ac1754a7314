"""The ``graphyard`` command line: ``serve``, ``chat``, ``threads list|show``.

Examples::

    graphyard serve                          # the reference agent, SQLite, bundled model
    graphyard serve --graph mypkg.agent:graph --port 9000
    graphyard chat --thread t1               # talk to a running server
    graphyard threads list --json
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from graphyard.config import Settings
from graphyard.errors import ConfigError, GraphyardError

__all__ = ["app", "main"]

app = typer.Typer(
    name="graphyard",
    help="A production runtime for LangGraph agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
threads_app = typer.Typer(help="Inspect stored conversations.", no_args_is_help=True)
app.add_typer(threads_app, name="threads")

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="A graphyard.toml to read instead of ./graphyard.toml.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return Settings.load(config, **{k: v for k, v in overrides.items() if v is not None})


@app.command()
def serve(
    graph: Annotated[
        str | None, typer.Option(help="Graph to serve as module:attribute (default: the support agent).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [default: 8123].")] = None,
    checkpointer: Annotated[
        str | None, typer.Option(help="Checkpointer URL [default: sqlite:///graphyard.db].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    config: ConfigOption = None,
) -> None:
    """Serve a graph over HTTP with SSE streaming.

    Example: graphyard serve --graph mypkg.agent:graph --port 9000
    """
    import uvicorn

    from graphyard.server import create_app

    settings = _settings(config, graph=graph, host=host, port=port, checkpointer=checkpointer)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if settings.graph:
        sys.path.insert(0, str(Path.cwd()))  # so `--graph mypkg.agent:graph` finds local code
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=15,
    )


@app.command()
def chat(
    thread: Annotated[str | None, typer.Option(help="Thread to continue (default: a new one).")] = None,
    url: Annotated[str, typer.Option(help="Server URL.")] = "http://127.0.0.1:8123",
    tier: Annotated[str | None, typer.Option(help="Force a tier: cheap, mid or strong.")] = None,
) -> None:
    """Chat with a running server in the terminal; shows tokens, node, tier and cost.

    Example: graphyard chat --thread t1
    """
    thread_id = thread or f"cli-{uuid.uuid4().hex[:8]}"
    err.print(f"[dim]thread {thread_id} on {url}; empty line or Ctrl-D to quit[/dim]")
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not text:
            break
        body: dict[str, Any] = {"content": text}
        while body:
            if tier:
                body["tier"] = tier
            body = _chat_turn(url, thread_id, body)


def _chat_turn(url: str, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stream one turn; return the next request body (an approval) or ``{}``."""
    import httpx

    next_body: dict[str, Any] = {}
    try:
        with httpx.stream("POST", f"{url}/chat/{thread_id}", json=body, timeout=None) as response:
            if response.status_code != 200:
                response.read()
                err.print(f"[red]{response.status_code}: {response.text}[/red]")
                return {}
            console.print("[bold green]agent>[/bold green] ", end="")
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "token" in event:
                    console.print(event["token"], end="", markup=False, highlight=False)
                elif "node" in event:
                    err.print(f"[dim]<{event['node']}>[/dim]", end=" ")
                elif "verdict" in event:
                    err.print(f"\n[yellow]critic: {event['verdict']}; revising[/yellow]")
                elif "interrupt" in event:
                    next_body = _ask_approval(event["interrupt"])
                elif "error" in event:
                    err.print(f"\n[red]error: {event['error']['message']}[/red]")
                elif "cost_usd" in event:
                    usage = event.get("usage") or {}
                    err.print(
                        f"\n[dim]tier {event['tier']} · {usage.get('input_tokens', 0)} in / "
                        f"{usage.get('output_tokens', 0)} out tokens · ${event['cost_usd']:.6f} "
                        f"(thread ${event['thread_cost_usd']:.6f})[/dim]"
                    )
    except httpx.ConnectError:
        err.print(f"[red]no server at {url}; start one with: graphyard serve[/red]")
        raise typer.Exit(1) from None
    return next_body


def _ask_approval(interrupts: list[dict[str, Any]]) -> dict[str, Any]:
    value = interrupts[0].get("value", {})
    err.print(f"\n[bold yellow]approval needed:[/bold yellow] {value.get('question', '')}")
    err.print_json(json.dumps(value.get("args", value)))
    answer = console.input("approve? [y/N] ").strip().lower()
    if answer in ("y", "yes"):
        return {"resume": {"action": "approve"}}
    return {"resume": {"action": "reject", "reason": "declined in the terminal"}}


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

    settings = _settings(config)

    async def run() -> list[Any]:
        async with open_saver(settings.checkpointer, synchronous=settings.sqlite_synchronous) as saver:
            return await list_threads(saver, limit=limit)

    rows = asyncio.run(run())
    if json_output:
        typer.echo(json.dumps([{"thread_id": r.thread_id, "checkpoints": r.checkpoints, "latest_checkpoint_id": r.latest_checkpoint_id} for r in rows]))
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

    settings = _settings(config)

    async def run() -> Any:
        async with open_runtime(settings) as runtime:
            return await runtime.graph.aget_state({"configurable": {"thread_id": thread_id}})

    snapshot = asyncio.run(run())
    if snapshot.created_at is None:
        err.print(f"[red]thread {thread_id!r} not found[/red]")
        raise typer.Exit(1)
    values = snapshot.values
    if json_output:
        typer.echo(json.dumps(jsonable({"values": values, "next": snapshot.next, "created_at": snapshot.created_at})))
        return
    for message in values.get("messages", []):
        text = str(message.content) or (f"[calls {', '.join(c['name'] for c in message.tool_calls)}]" if getattr(message, "tool_calls", None) else "")
        console.print(f"[bold]{message.type:>6}[/bold] ", end="")
        console.print(text, markup=False, highlight=False)
    usage = values.get("usage") or {}
    console.print(
        f"[dim]tier {values.get('tier')} · {usage.get('input_tokens', 0)} in / "
        f"{usage.get('output_tokens', 0)} out tokens · ${values.get('cost_usd', 0.0):.6f}"
        + (f" · waiting at {', '.join(snapshot.next)}" if snapshot.next else "")
        + "[/dim]"
    )


def main() -> None:
    """Entry point: graphyard's errors print as one line, exit code 2 for configuration."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
    except GraphyardError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
