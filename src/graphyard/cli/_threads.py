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
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Show the state at this checkpoint.")
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a thread's messages, tier and cost (now, or at a checkpoint).

    Example: graphyard threads show t1 --checkpoint 1f0e6a4d-0c3c-6000-8000-000000000000
    """
    from graphyard._runtime import open_runtime
    from graphyard.server._serialize import jsonable

    settings = load_settings(config)
    configurable = {"thread_id": thread_id}
    if checkpoint:
        configurable.update(checkpoint_id=checkpoint, checkpoint_ns="")

    async def run() -> Any:
        async with open_runtime(settings) as runtime:
            return await runtime.graph.aget_state({"configurable": configurable})

    snapshot = asyncio.run(run())
    if snapshot.created_at is None:
        where = f" at checkpoint {checkpoint!r}" if checkpoint else ""
        err.print(f"[red]thread {thread_id!r} not found{where}[/red]")
        raise typer.Exit(1)
    values = snapshot.values
    if json_output:
        typer.echo(
            json.dumps(
                jsonable(
                    {
                        "values": values,
                        "next": snapshot.next,
                        "created_at": snapshot.created_at,
                        "checkpoint_id": snapshot.config["configurable"].get("checkpoint_id"),
                        "interrupts": snapshot.interrupts,
                    }
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


# --- history, replay and approvals ---------------------------------------------------------


@threads_app.command("history")
def threads_history(
    thread_id: Annotated[str, typer.Argument(help="The thread.")],
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List a thread's checkpoints: step, the node(s) run from each, tier, cost and time.

    Example: graphyard threads history t1
    """
    from graphyard._runtime import open_runtime
    from graphyard.replay import thread_history

    settings = load_settings(config)

    async def run() -> list[Any]:
        async with open_runtime(settings) as runtime:
            return await thread_history(runtime.graph, thread_id)

    rows = asyncio.run(run())
    if not rows:
        err.print(f"[red]thread {thread_id!r} not found[/red]")
        raise typer.Exit(1)
    if json_output:
        typer.echo(json.dumps([r.as_json() for r in rows]))
        return
    table = Table("checkpoint", "step", "node", "tier", "calls", "cost", "time", "note")
    for r in rows:
        note = r.error or ("waiting for approval" if r.interrupted else "")
        if r.replay_of:
            note = f"replay of {r.replay_of[:13]}… {note}".strip()
        table.add_row(
            r.checkpoint_id,
            str(r.step),
            ", ".join(r.nodes),
            ", ".join(r.tiers),
            f"{r.model_calls}+{r.tool_calls}" if r.model_calls or r.tool_calls else "",
            f"${r.cost_usd:.6f}" if r.model_calls else "",
            (r.created_at or "")[11:19],
            note,
        )
    console.print(table)
    console.print(
        "[dim]calls = model calls + tool calls made by the tasks run from each checkpoint[/dim]"
    )


@threads_app.command("replay")
def threads_replay(
    thread_id: Annotated[str, typer.Argument(help="The thread.")],
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="Replay from this checkpoint [default: the last turn's start]."
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help="After a divergence, call the real models instead of stopping."
        ),
    ] = False,
    fork: Annotated[
        bool, typer.Option("--fork", help="Write the replay to a new thread, not a new branch.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Re-run a thread locally with the recorded model outputs (no model call), then diff.

    Stops at the first request the recording does not have (the code or prompt changed)
    and shows the step, node and diff; exit code 1 if the replay failed or diverged.

    Example: graphyard threads replay t1 --checkpoint 1f0e6a4d-0c3c-6000-8000-000000000000 --fork
    """
    import uuid

    from graphyard._runtime import open_runtime
    from graphyard.replay import RecordingHandler, recording_store, replay_events
    from graphyard.server._serialize import jsonable

    settings = load_settings(config)
    target = f"{thread_id}-replay-{uuid.uuid4().hex[:8]}" if fork else thread_id
    result: Any = None

    async def run() -> None:
        nonlocal result
        async with open_runtime(settings) as runtime:
            store = recording_store(runtime.saver)
            callbacks = [RecordingHandler(store, target)] if store is not None else []
            async for event, data in replay_events(
                runtime.graph,
                thread_id,
                checkpoint_id=checkpoint,
                live=live,
                fork=target if fork else False,
                config={"callbacks": callbacks},
            ):
                if event == "replay/result":
                    result = data
                elif json_output:
                    continue
                elif event == "replay":
                    err.print(
                        f"[dim]replaying {thread_id} from {data['checkpoint_id']} "
                        f"({data['mode']}) onto {data['thread_id']}[/dim]"
                    )
                elif event == "updates" and isinstance(data, dict):
                    for node in data:
                        err.print(f"[dim]  ran {node}[/dim]")
                elif event == "replay/divergence":
                    err.print(
                        f"[yellow]divergence at step {data['step']}, node {data['node']}: "
                        f"{data['reason']}[/yellow]"
                    )
                    for line in data["diff"]:
                        console.print("    " + line, markup=False, highlight=False)

    asyncio.run(run())
    assert result is not None
    if json_output:
        typer.echo(json.dumps(jsonable(result.as_json())))
    else:
        console.print(
            f"{result.mode} replay onto thread {result.thread_id}: "
            f"{result.model_calls_served} model call(s) served from the recording, "
            f"{result.model_calls_live} made live, {result.tool_calls} tool call(s) run"
        )
        if result.error:
            same = " (the same error as the original run)" if result.reproduced else ""
            console.print(f"[red]failed: {result.error}{same}[/red]", highlight=False)
        elif result.next:
            console.print(f"paused before {', '.join(result.next)}")
        console.print("[bold]diff against the original run:[/bold]" if result.diff else "no change")
        for change in result.diff:
            console.print(f"  {change['key']} ({change['change']})")
            for line in change["diff"]:
                console.print("    " + line, markup=False, highlight=False)
    if result.error or (result.divergence and not live):
        raise typer.Exit(1)


ServerUrl = Annotated[
    str, typer.Option("--url", envvar="GRAPHYARD_URL", help="The server holding the thread.")
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="GRAPHYARD_API_KEY", help="Your API key.")
]


def _answer(url: str, api_key: str | None, thread_id: str, resume: Any, json_output: bool) -> None:
    """Resume the thread's pending approval on the server with ``Command(resume=...)``."""
    import httpx

    headers = {"x-api-key": api_key} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(300.0)) as http:
            state = http.get(f"/threads/{thread_id}/state")
            if state.status_code == 404:
                err.print(f"[red]thread {thread_id!r} not found[/red]")
                raise typer.Exit(1)
            if state.status_code != 200:  # e.g. 401 for a wrong key: one line, no traceback
                err.print(f"[red]{state.status_code}: {state.text}[/red]", highlight=False)
                raise typer.Exit(1)
            pending = state.json().get("interrupts") or []
            if not pending:
                err.print(f"[red]thread {thread_id!r} has no pending approval[/red]")
                raise typer.Exit(1)
            assistant = http.get("/info").json()["assistant_id"]
            done = http.post(
                f"/threads/{thread_id}/runs/wait",
                json={"assistant_id": assistant, "command": {"resume": resume}},
            )
    except httpx.ConnectError:
        err.print(f"[red]no server at {url}; start one with: graphyard serve[/red]")
        raise typer.Exit(1) from None
    if done.status_code != 200:
        err.print(f"[red]{done.status_code}: {done.text}[/red]")
        raise typer.Exit(1)
    values = done.json()
    if json_output:
        typer.echo(json.dumps(values))
        return
    if "__error__" in values:
        err.print(f"[red]the run failed: {values['__error__']['message']}[/red]")
        raise typer.Exit(1)
    messages = values.get("messages") or []
    if messages:
        console.print(str(messages[-1].get("content", "")), markup=False, highlight=False)
    if values.get("__interrupt__"):
        console.print("[yellow]another approval is pending[/yellow]")


@threads_app.command("approve")
def threads_approve(
    thread_id: Annotated[str, typer.Argument(help="The thread waiting for approval.")],
    edit: Annotated[
        str | None,
        typer.Option(
            "--edit",
            help='Approve with these arguments changed (JSON), e.g. \'{"priority": "high"}\'.',
        ),
    ] = None,
    url: ServerUrl = "http://127.0.0.1:8123",
    api_key: ApiKey = None,
    json_output: JsonOption = False,
) -> None:
    """Approve the thread's pending high-impact tool call (optionally with edited arguments).

    Example: graphyard threads approve t1 --edit '{"priority": "urgent"}'
    """
    resume: dict[str, Any] = {"action": "approve"}
    if edit is not None:
        try:
            args = json.loads(edit)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--edit must be a JSON object: {exc}") from None
        if not isinstance(args, dict):
            raise typer.BadParameter("--edit must be a JSON object of arguments")
        resume = {"action": "edit", "args": args}
    _answer(url, api_key, thread_id, resume, json_output)


@threads_app.command("reject")
def threads_reject(
    thread_id: Annotated[str, typer.Argument(help="The thread waiting for approval.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the agent.")] = None,
    url: ServerUrl = "http://127.0.0.1:8123",
    api_key: ApiKey = None,
    json_output: JsonOption = False,
) -> None:
    """Reject the thread's pending high-impact tool call; the agent is told why.

    Example: graphyard threads reject t1 --reason "refunds need a manager"
    """
    resume: dict[str, Any] = {"action": "reject"}
    if reason:
        resume["reason"] = reason
    _answer(url, api_key, thread_id, resume, json_output)
