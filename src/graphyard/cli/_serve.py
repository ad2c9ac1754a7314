"""``graphyard serve`` and ``graphyard chat``."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from graphyard.cli._common import ConfigOption, app, console, err, load_settings
from graphyard.config import Settings
from graphyard.errors import ConfigError, GraphyardError


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

    from graphyard.server._gate import StartupGate

    settings = load_settings(config, graph=graph, host=host, port=port, checkpointer=checkpointer)
    from graphyard.observability import configure_logging

    # JSON lines with run/thread/user ids unless stderr is a terminal (GRAPHYARD_LOG_FORMAT)
    configure_logging(settings.log_format, log_level)
    check_bind(settings.host, auth=bool(settings.api_keys or settings.auth), insecure=insecure)
    if settings.graph:
        sys.path.insert(0, str(Path.cwd()))  # so `--graph mypkg.agent:graph` finds local code

    def build() -> Any:
        """Runs in a worker thread while the gate already answers /ok: the heavy imports."""
        from graphyard.server import create_app

        preload_providers(settings)
        return create_app(settings, freeze_startup_heap=True)

    # The gate answers /ok at once and serves everything else once build() and the app's
    # lifespan are done; a failure there stops the server (exit code below).
    server: uvicorn.Server | None = None

    def stop(_exc: BaseException) -> None:
        if server is not None:
            server.should_exit = True

    gate = StartupGate(build, on_failure=stop, listening=lambda: bool(server and server.started))
    server = uvicorn.Server(
        uvicorn.Config(
            gate,
            host=settings.host,
            port=settings.port,
            log_level=log_level.lower(),
            log_config=None,  # uvicorn's lines go through the format configured above
            timeout_graceful_shutdown=15,
            lifespan="on",
        )
    )
    server.run()
    if gate.error is not None:
        if isinstance(gate.error, GraphyardError):
            raise gate.error
        err.print(f"[red]the server failed to start:[/red] {gate.error}")
        raise typer.Exit(1)
    if not server.started:
        raise typer.Exit(3)  # e.g. the port is taken; uvicorn logged why


def preload_providers(settings: Settings) -> None:
    """Import the chat model packages the configured tiers use (off the event loop).

    ``open_runtime`` would import them anyway, but on the event loop, where a slow import
    holds up every other request (``/ok`` included).
    """
    import importlib

    packages = {"anthropic": "langchain_anthropic", "openai": "langchain_openai"}
    packages |= {"ollama": "langchain_ollama", "local": "langchain_openai"}
    for tier in (settings.cheap, settings.mid, settings.strong):
        package = packages.get(tier.model.partition(":")[0])
        if package is not None:
            with contextlib.suppress(ImportError):  # open_runtime says what to install
                importlib.import_module(package)
    with contextlib.suppress(ImportError):  # open_runtime explains a graph that won't import
        importlib.import_module(
            settings.graph.partition(":")[0] if settings.graph else "graphyard.agent"
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
