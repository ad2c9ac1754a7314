"""``graphyard serve`` and ``graphyard chat``."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from graphyard.cli._common import ConfigOption, app, console, err, load_settings
from graphyard.errors import ConfigError


@app.command()
def serve(
    graph: Annotated[
        str | None,
        typer.Option(help="Graph to serve as module:attribute (default: the support agent)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [default: 8123].")] = None,
    checkpointer: Annotated[
        str | None, typer.Option(help="Checkpointer URL [default: sqlite:///graphyard.db].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback bind without API keys.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Serve a graph over HTTP with SSE streaming.

    Example: graphyard serve --graph mypkg.agent:graph --port 9000
    """
    import uvicorn

    from graphyard.server import create_app

    settings = load_settings(config, graph=graph, host=host, port=port, checkpointer=checkpointer)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    check_bind(settings.host, auth=bool(settings.api_keys or settings.auth), insecure=insecure)
    if settings.graph:
        sys.path.insert(0, str(Path.cwd()))  # so `--graph mypkg.agent:graph` finds local code
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=15,
    )


def check_bind(host: str, *, auth: bool, insecure: bool) -> None:
    """Without auth, only loopback: anyone who can reach the port could read every thread."""
    import ipaddress

    if auth:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        err.print("[yellow]no API keys configured: serving on loopback only[/yellow]")
        return
    if not insecure:
        raise ConfigError(
            f"refusing to serve on {host} without authentication: set GRAPHYARD_API_KEYS "
            "(or GRAPHYARD_AUTH), bind 127.0.0.1, or pass --insecure"
        )
    err.print(f"[red]serving on {host} WITHOUT authentication (--insecure)[/red]")


@app.command()
def chat(
    thread: Annotated[
        str | None, typer.Option(help="Thread to continue (default: a new one).")
    ] = None,
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
