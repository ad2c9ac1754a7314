"""Many concurrent SSE clients: graphyard vs ``langgraph dev``, side by side, in one run.

Both servers serve the same graph (``benchmarks/load_graph.py``: one node whose model
streams ``--tokens`` tokens, one every ``--token-delay`` seconds). For each client count,
every client at once does what an Agent Chat UI does for a new conversation, over raw
httpx with the SSE parsed by hand:

1. ``POST /threads``;
2. ``POST /threads/{id}/runs/stream`` with ``stream_mode=["messages-tuple"]``, read to the end.

Measured per server and client count:

- TTFE: time from sending the stream request to the first complete SSE frame (``metadata``);
- TTFT: time from sending the stream request to the first ``messages`` frame with text;
- tokens/s: text frames received by all clients / wall time from the first request to the
  last stream's end;
- RSS: the server's resident memory (its whole process tree, sampled every 50 ms from
  ``/proc``): peak during the phase;
- server CPU: user + system CPU seconds of the server's process tree during the phase, per
  run (``/proc``): what a run costs the server, the figure that does not move with the
  scheduling noise that moves wall times on a shared machine;
- errors: a non-200 answer, a stream that ended early, fewer tokens than expected, an
  ``error`` frame, or a client past ``--client-timeout``.

Phases alternate between the servers (graphyard first in odd rounds, the peer first in even
ones) so background load on a shared machine hits both alike. After the measured phases, one
stream per server goes through the official ``langgraph_sdk`` client as a spot check.

The peer is ``langgraph dev`` from ``langgraph-cli[inmem]``, in its own virtualenv (never in
graphyard's), run offline: ``--no-browser --no-reload``, analytics and version checks off,
tracing off, ``--n-jobs-per-worker 50`` by default (its real default runs one run at a time).
Without it the script says how to install it and measures graphyard alone.

Run::

    .venv/bin/python benchmarks/server_load.py                       # 50 and 200 clients
    .venv/bin/python benchmarks/server_load.py --clients 50 --rounds 2
    .venv/bin/python benchmarks/server_load.py --graphyard-env GRAPHYARD_SQLITE_SYNCHRONOUS=NORMAL
    .venv/bin/python benchmarks/server_load.py --peer /path/to/venv/bin/langgraph
    .venv/bin/python benchmarks/server_load.py --checkpointer postgresql://127.0.0.1/bench

Only loopback addresses are used; every loop is bounded in count and time; both servers are
stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
GRAPH_FILE = REPO / "benchmarks" / "load_graph.py"
ASSISTANT = "agent"
DEFAULT_PEER = "/tmp/peer-venv/bin/langgraph"
PEER_INSTALL = (
    'python3 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install "langgraph-cli[inmem]"'
)
GOAL_TTFE_P95_S = 0.250
GOAL_AT_CLIENTS = 200
START_TIMEOUT = 90.0
WARMUP_RUNS = 3
_LEAKY_PREFIXES = ("GRAPHYARD_", "LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "LOAD_")
_LEAKY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")

console = Console()
if not console.is_terminal:
    console = Console(width=max(console.width, 150))


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return {**env, **extra}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    out, todo = [], [pid]
    while todo and len(out) < 256:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{current}/task/{task}/children").read_text()
                    todo.extend(int(c) for c in text.split())
    return out


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (MB)."""
    return sum(_status_kb(p, "VmRSS") for p in _tree(pid)) / 1024


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children so far."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process tree's RSS every ``every`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_mb(self.pid))


@dataclass
class Server:
    """A server subprocess on a loopback port, with its log in ``workdir``."""

    name: str
    command: list[str]
    env: dict[str, str]
    workdir: Path
    ready_path: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop the server ourselves
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                response = httpx.get(self.url + self.ready_path, timeout=2.0, trust_env=False)
                if response.status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not start in {START_TIMEOUT:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def graphyard_server(
    workdir: Path,
    graph_env: dict[str, str],
    extra: dict[str, str],
    *,
    name: str = "graphyard",
    src: Path | None = None,
    checkpointer: str | None = None,
) -> Server:
    """graphyard serving the load graph; ``src`` serves another checkout's package instead."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    # this checkout's package, even when the virtualenv has another one installed
    path = [str(src or REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")]
    env = _clean_env(
        {
            **graph_env,
            "PYTHONPATH": os.pathsep.join(filter(None, path)),
            "GRAPHYARD_LOCAL__THREADS": "1",
            **extra,
        }
    )
    command = [
        sys.executable,
        "-m",
        "graphyard",
        "serve",
        "--graph",
        f"benchmarks.load_graph:{ASSISTANT}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--checkpointer",
        checkpointer or f"sqlite:///{workdir / 'graphyard.db'}",
        "--log-level",
        "warning",  # no access log, like the peer (which runs uvicorn with access_log=False)
    ]
    return Server(name, command, env, workdir, "/ready", port)


def peer_server(workdir: Path, graph_env: dict[str, str], langgraph: str, jobs: int) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config = {"dependencies": ["."], "graphs": {ASSISTANT: f"{GRAPH_FILE}:{ASSISTANT}"}}
    (workdir / "langgraph.json").write_text(json.dumps(config, indent=2))
    env = _clean_env(
        {
            **graph_env,
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "LANGSMITH_TRACING": "false",
            "LANGSMITH_TRACING_V2": "false",
            "LANGCHAIN_TRACING_V2": "false",
        }
    )
    command = [
        langgraph,
        "dev",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
        "--n-jobs-per-worker",
        str(jobs),
        "--config",
        str(workdir / "langgraph.json"),
        "--server-log-level",
        "WARNING",
    ]
    return Server("langgraph dev", command, env, workdir, "/ok", port)


# --------------------------------------------------------------------------- clients


@dataclass
class ClientResult:
    create_s: float | None = None
    ttfe_s: float | None = None
    ttft_s: float | None = None
    tokens: int = 0
    events: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    ended_at: float = 0.0


async def one_client(
    client: httpx.AsyncClient, base: str, expected_tokens: int, go: asyncio.Event
) -> ClientResult:
    result = ClientResult()
    await go.wait()
    try:
        t0 = time.perf_counter()
        created = await client.post(f"{base}/threads", json={})
        result.create_s = time.perf_counter() - t0
        if created.status_code != 200:
            result.error = f"POST /threads {created.status_code}"
            return result
        thread_id = created.json()["thread_id"]
        body = {
            "assistant_id": ASSISTANT,
            "input": {"messages": [{"role": "user", "content": "hello there"}]},
            "stream_mode": ["messages-tuple"],
        }
        t1 = time.perf_counter()
        async with client.stream(
            "POST", f"{base}/threads/{thread_id}/runs/stream", json=body
        ) as response:
            if response.status_code != 200:
                await response.aread()
                result.error = f"stream {response.status_code}"
                return result
            event: str | None = None
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue  # a heartbeat comment is not an event
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and (event or data):
                    now = time.perf_counter()
                    if result.ttfe_s is None:
                        result.ttfe_s = now - t1
                    name = event or "message"
                    result.events[name] = result.events.get(name, 0) + 1
                    if name == "messages" and data:
                        payload = json.loads("\n".join(data))
                        if payload and isinstance(payload[0], dict) and payload[0].get("content"):
                            result.tokens += 1
                            if result.ttft_s is None:
                                result.ttft_s = now - t1
                    elif name == "error":
                        result.error = "error frame: " + "\n".join(data)[:200]
                    event, data = None, []
        if result.error is None and result.tokens != expected_tokens:
            result.error = f"{result.tokens} tokens of {expected_tokens}"
    except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        result.ended_at = time.perf_counter()
    return result


@dataclass
class Phase:
    server: str
    clients: int
    results: list[ClientResult]
    wall_s: float
    rss_peak_mb: float
    rss_after_mb: float
    cpu_s: float = 0.0

    @property
    def cpu_ms_per_run(self) -> float | None:
        return self.cpu_s * 1000 / len(self.ok) if self.ok else None

    @property
    def ok(self) -> list[ClientResult]:
        return [r for r in self.results if r.error is None]

    @property
    def errors(self) -> int:
        return len(self.results) - len(self.ok)

    def pct(self, attr: str, q: float) -> float | None:
        values = sorted(getattr(r, attr) for r in self.ok if getattr(r, attr) is not None)
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]

    @property
    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.results) / self.wall_s if self.wall_s else 0.0


async def run_phase(
    server: Server, clients: int, tokens: int, client_timeout: float
) -> tuple[list[ClientResult], float]:
    # One client (one connection) per simulated user, as browsers are: a single shared
    # httpx pool with hundreds of concurrent requests spends quadratic time assigning them to
    # connections, which showed as seconds of latency that no server caused.
    timeout = httpx.Timeout(client_timeout, connect=30.0)
    pool = [
        httpx.AsyncClient(timeout=timeout, trust_env=False, verify=False) for _ in range(clients)
    ]
    try:
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(
                asyncio.wait_for(one_client(client, server.url, tokens, go), client_timeout)
            )
            for client in pool
        ]
        await asyncio.sleep(0.05)  # every task waits at the start line
        start = time.perf_counter()
        go.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.gather(*(client.aclose() for client in pool), return_exceptions=True)
    results = [
        r if isinstance(r, ClientResult) else ClientResult(error=f"{type(r).__name__}: {r}")
        for r in done
    ]
    end = max((r.ended_at for r in results if r.ended_at), default=time.perf_counter())
    return results, end - start


def _run(coro: Any) -> Any:
    """Run the clients on uvloop when installed (less client CPU), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure(server: Server, clients: int, tokens: int, client_timeout: float) -> Phase:
    assert server.proc is not None
    cpu_before = cpu_s(server.proc.pid)
    with RssSampler(server.proc.pid) as sampler:
        results, wall = _run(run_phase(server, clients, tokens, client_timeout))
    cpu = cpu_s(server.proc.pid) - cpu_before
    return Phase(server.name, clients, results, wall, sampler.peak, rss_mb(server.proc.pid), cpu)


def warm_up(server: Server, tokens: int, client_timeout: float) -> None:
    for _ in range(WARMUP_RUNS):
        results, _ = _run(run_phase(server, 1, tokens, client_timeout))
        if results[0].error:
            raise RuntimeError(f"{server.name} fails a single stream: {results[0].error}")
    _run(run_phase(server, 10, tokens, client_timeout))


async def sdk_spot_check(url: str) -> tuple[dict[str, int], int]:
    """One stream through the official SDK client: events by name and text tokens."""
    from langgraph_sdk import get_client

    client = get_client(url=url)
    thread = await client.threads.create()
    counts: dict[str, int] = {}
    tokens = 0
    async for part in client.runs.stream(
        thread["thread_id"],
        ASSISTANT,
        input={"messages": [{"role": "user", "content": "hello there"}]},
        stream_mode="messages-tuple",
    ):
        counts[part.event] = counts.get(part.event, 0) + 1
        if part.event == "messages" and part.data and part.data[0].get("content"):
            tokens += 1
    return counts, tokens


# --------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


_RATIO_COLUMNS = (
    "clients",
    "TTFE p50",
    "TTFE p95",
    "TTFT p95",
    "tokens/s",
    "CPU/run",
    "RSS peak",
)

BASELINE = "graphyard@base"
"""The name of the ``--baseline-src`` server in the tables."""


def stored_per_run(db: Path) -> None:
    """What graphyard's SQLite file holds per run: the stream events (deleted
    ``GRAPHYARD_RUN_EVENTS_TTL`` after a run ends) beside the checkpoints."""
    if not db.exists():
        return  # another checkpointer
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (runs,) = conn.execute("SELECT COUNT(*) FROM graphyard_runs").fetchone()
        (events,) = conn.execute("SELECT SUM(LENGTH(data)) FROM graphyard_run_events").fetchone()
        (state,) = conn.execute(
            "SELECT (SELECT SUM(LENGTH(checkpoint) + LENGTH(metadata)) FROM checkpoints)"
            " + (SELECT SUM(LENGTH(value)) FROM writes)"
        ).fetchone()
    if runs:
        console.print(
            f"graphyard stored per run ({runs} runs): stream events {(events or 0) / runs / 1024:.1f}"
            f" KB (kept GRAPHYARD_RUN_EVENTS_TTL after a run ends), checkpoints and writes"
            f" {(state or 0) / runs / 1024:.1f} KB"
        )


def report(phases: list[Phase], counts: list[int], peer_ran: bool) -> None:
    table = Table(title="concurrent SSE clients: POST /threads + runs/stream (messages-tuple)")
    for col in (
        "server",
        "clients",
        "ok",
        "errors",
        "TTFE p50 ms",
        "TTFE p95 ms",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "create p95 ms",
        "wall s",
        "tokens/s",
        "CPU ms/run",
        "RSS peak MB",
        "RSS after MB",
    ):
        table.add_column(
            col, justify="left" if col == "server" else "right", no_wrap=col == "server"
        )
    for p in sorted(phases, key=lambda p: (p.clients, p.server != "graphyard", p.server)):
        table.add_row(
            p.server,
            str(p.clients),
            str(len(p.ok)),
            str(p.errors),
            _ms(p.pct("ttfe_s", 0.50)),
            _ms(p.pct("ttfe_s", 0.95)),
            _ms(p.pct("ttft_s", 0.50)),
            _ms(p.pct("ttft_s", 0.95)),
            _ms(p.pct("create_s", 0.95)),
            f"{p.wall_s:.2f}",
            f"{p.tokens_per_s:.0f}",
            _ms(p.cpu_ms_per_run and p.cpu_ms_per_run / 1000),
            f"{p.rss_peak_mb:.0f}",
            f"{p.rss_after_mb:.0f}",
        )
    console.print(table)

    def best(server: str, n: int) -> Phase | None:
        """The round with the lowest TTFE p95 (rounds > 1): the least disturbed by others."""
        mine = [p for p in phases if p.server == server and p.clients == n]
        return min(mine, key=lambda p: p.pct("ttfe_s", 0.95) or math.inf, default=None)

    def cpu(server: str, n: int) -> float | None:
        """Median server CPU per run over the rounds."""
        mine = sorted(
            c for p in phases if p.server == server and p.clients == n and (c := p.cpu_ms_per_run)
        )
        return mine[len(mine) // 2] if mine else None

    goals: list[tuple[str, bool | None]] = []
    if any(p.server == BASELINE for p in phases):
        versus = Table(title=f"graphyard / {BASELINE} (lower is better but for tokens/s)")
        for col in _RATIO_COLUMNS:
            versus.add_column(col, justify="right")
        for n in counts:
            ours, base = best("graphyard", n), best(BASELINE, n)
            if ours is not None and base is not None:
                versus.add_row(
                    str(n),
                    _ratio(ours.pct("ttfe_s", 0.5), base.pct("ttfe_s", 0.5)),
                    _ratio(ours.pct("ttfe_s", 0.95), base.pct("ttfe_s", 0.95)),
                    _ratio(ours.pct("ttft_s", 0.95), base.pct("ttft_s", 0.95)),
                    _ratio(ours.tokens_per_s, base.tokens_per_s),
                    _ratio(cpu("graphyard", n), cpu(BASELINE, n)),
                    _ratio(ours.rss_peak_mb, base.rss_peak_mb),
                )
        console.print(versus)
    if peer_ran:
        ratios = Table(title="graphyard / langgraph dev (lower is better but for tokens/s)")
        for col in _RATIO_COLUMNS:
            ratios.add_column(col, justify="right")
        for n in counts:
            ours, peer = best("graphyard", n), best("langgraph dev", n)
            if ours is None or peer is None:
                continue
            ratios.add_row(
                str(n),
                _ratio(ours.pct("ttfe_s", 0.5), peer.pct("ttfe_s", 0.5)),
                _ratio(ours.pct("ttfe_s", 0.95), peer.pct("ttfe_s", 0.95)),
                _ratio(ours.pct("ttft_s", 0.95), peer.pct("ttft_s", 0.95)),
                _ratio(ours.tokens_per_s, peer.tokens_per_s),
                _ratio(cpu("graphyard", n), cpu("langgraph dev", n)),
                _ratio(ours.rss_peak_mb, peer.rss_peak_mb),
            )
            goals.append(
                (
                    f"tokens/s at {n} clients >= the peer's "
                    f"({ours.tokens_per_s:.0f} vs {peer.tokens_per_s:.0f})",
                    ours.tokens_per_s >= peer.tokens_per_s and ours.errors == 0,
                )
            )
        console.print(ratios)
    goal_phase = best("graphyard", GOAL_AT_CLIENTS)
    if goal_phase is not None:
        p95 = goal_phase.pct("ttfe_s", 0.95)
        goals.insert(
            0,
            (
                f"p95 TTFE < {GOAL_TTFE_P95_S * 1000:.0f} ms at {GOAL_AT_CLIENTS} clients "
                f"({_ms(p95)} ms, {goal_phase.errors} errors)",
                p95 is not None and p95 < GOAL_TTFE_P95_S and goal_phase.errors == 0,
            ),
        )
    for text, met in goals:
        console.print(f"goal: {text}: " + ("[green]MET[/green]" if met else "[red]NOT MET[/red]"))


# --------------------------------------------------------------------------- main


def _parse_env(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--graphyard-env takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="50,200", help="client counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="measured phases per count/server")
    parser.add_argument("--tokens", type=int, default=20, help="tokens each run streams")
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds per token")
    parser.add_argument("--client-timeout", type=float, default=120.0, help="seconds per client")
    parser.add_argument("--peer", default=DEFAULT_PEER, help="path of the `langgraph` command")
    parser.add_argument("--no-peer", action="store_true", help="measure graphyard only")
    parser.add_argument("--peer-jobs", type=int, default=50, help="--n-jobs-per-worker of the peer")
    parser.add_argument(
        "--graphyard-env", action="append", default=[], help="KEY=VALUE for graphyard's server"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also serve the graphyard package in this directory (another checkout's src/, "
        "e.g. from `git worktree add /tmp/base HEAD~1`) and compare, phases interleaved",
    )
    parser.add_argument(
        "--checkpointer",
        help="graphyard's checkpointer URL, e.g. a postgresql:// database (default: a new"
        " SQLite file); its thread and run records go there too",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if not counts or min(counts) < 1 or max(counts) > 1000 or not 1 <= args.rounds <= 10:
        raise SystemExit("--clients must be 1..1000 each and --rounds 1..10")
    graph_env = {"LOAD_TOKENS": str(args.tokens), "LOAD_TOKEN_DELAY": str(args.token_delay)}

    peer_ok = not args.no_peer and Path(args.peer).is_file() and os.access(args.peer, os.X_OK)
    if not args.no_peer and not peer_ok:
        console.print(
            f"[yellow]peer `langgraph dev` not found at {args.peer}: measuring graphyard alone. "
            f"Install it outside graphyard's venv with:\n  {escape(PEER_INSTALL)}\nand pass "
            "--peer /tmp/peer-venv/bin/langgraph[/yellow]"
        )
    workdir = Path(tempfile.mkdtemp(prefix="graphyard-load-"))
    servers = [
        graphyard_server(
            workdir / "graphyard",
            graph_env,
            _parse_env(args.graphyard_env),
            checkpointer=args.checkpointer,
        )
    ]
    if args.baseline_src:
        if not (args.baseline_src / "graphyard" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-src {args.baseline_src} has no graphyard package")
        servers.append(
            graphyard_server(
                workdir / "baseline",
                graph_env,
                _parse_env(args.graphyard_env),
                name=BASELINE,
                src=args.baseline_src.resolve(),
            )
        )
    if peer_ok:
        servers.append(peer_server(workdir / "peer", graph_env, args.peer, args.peer_jobs))
    console.print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; graph streams "
        f"{args.tokens} tokens at {args.token_delay * 1000:.0f} ms; clients {counts}, "
        f"{args.rounds} round(s); peer jobs per worker {args.peer_jobs}; work dir {workdir}"
    )
    phases: list[Phase] = []
    with running(servers):
        for server in servers:
            t = time.perf_counter()
            server.start()
            warm_up(server, args.tokens, args.client_timeout)
            console.print(
                f"{server.name} ready and warmed up in {time.perf_counter() - t:.1f} s "
                f"(pid {server.proc.pid if server.proc else '?'}, RSS {rss_mb(server.proc.pid) if server.proc else 0:.0f} MB)"
            )
        for round_ in range(args.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for n in counts:
                for server in order:
                    phase = measure(server, n, args.tokens, args.client_timeout)
                    phases.append(phase)
                    first_error = next((r.error for r in phase.results if r.error), None)
                    console.print(
                        f"  round {round_ + 1}: {server.name:>13} {n:>4} clients: "
                        f"{len(phase.ok)} ok, {phase.errors} errors, {phase.wall_s:.2f} s, "
                        f"TTFE p95 {_ms(phase.pct('ttfe_s', 0.95))} ms"
                        + (f" (first error: {first_error})" if first_error else "")
                    )
                    time.sleep(1.0)  # let the server finish writing what the runs left
        for server in servers:
            try:
                events, tokens = asyncio.run(sdk_spot_check(server.url))
                status = "ok" if tokens == args.tokens else f"EXPECTED {args.tokens} tokens"
                console.print(
                    f"langgraph_sdk spot check, {server.name}: events {events}, "
                    f"{tokens} text tokens: {status}"
                )
            except Exception as exc:
                console.print(f"langgraph_sdk spot check, {server.name}: FAILED {exc!r}")
    report(phases, counts, peer_ok)
    stored_per_run(workdir / "graphyard" / "graphyard.db")
    if args.keep:
        console.print(f"logs kept in {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    all_errors = sum(p.errors for p in phases)
    if all_errors:
        console.print(f"[red]{all_errors} client(s) failed; see the rows above[/red]")


if __name__ == "__main__":
    main()
