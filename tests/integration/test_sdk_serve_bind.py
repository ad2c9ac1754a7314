"""``graphyard serve`` refuses to expose threads without auth: a non-loopback bind needs API
keys (or a custom authenticator), or ``--insecure`` said out loud.

The real command runs in a subprocess; its tiers point at an OpenAI-compatible URL nothing
listens on, so the server starts without a model (none is called here).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.server

NO_MODEL = {
    f"GRAPHYARD_{tier}__{key}": value
    for tier in ("CHEAP", "MID", "STRONG")
    for key, value in (("MODEL", "openai:none"), ("BASE_URL", "http://127.0.0.1:9/v1"))
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def environ(directory: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRAPHYARD_") and k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    }
    return {
        **env,
        **NO_MODEL,
        "GRAPHYARD_CHECKPOINTER": f"sqlite:///{directory / 'graphyard.db'}",
        "GRAPHYARD_SHOP_DB": str(directory / "shop.db"),
        "COLUMNS": "200",  # rich wraps messages at the terminal width
        **extra,
    }


def graphyard(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphyard", "serve", *args]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def wait_ok(self, timeout: float = 60.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{self.port}/ok", timeout=2)
            time.sleep(0.1)
        raise AssertionError(f"no answer on /ok within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Three servers, started together (each takes seconds to import)."""
    configs = {
        "insecure": (["--host", "0.0.0.0", "--insecure"], {}),
        "keys": (["--host", "0.0.0.0"], {"GRAPHYARD_API_KEYS": json.dumps({"sk-1": "alice"})}),
        "loopback": ([], {}),
    }
    servers: dict[str, Served] = {}
    for name, (args, extra) in configs.items():
        directory = tmp_path_factory.mktemp(name)
        port = free_port()
        log = directory / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                graphyard(*args, "--port", str(port), "--log-level", "warning"),
                cwd=directory,
                env=environ(directory, **extra),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        servers[name] = Served(process, port, log)
    try:
        yield servers
    finally:
        for server in servers.values():
            print(server.stop())


def test_serving_on_all_interfaces_without_keys_exits_2_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        graphyard("--host", "0.0.0.0", "--port", str(free_port())),
        cwd=tmp_path,
        env=environ(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert "refusing to serve on 0.0.0.0 without authentication" in message
    for fix in ("GRAPHYARD_API_KEYS", "127.0.0.1", "--insecure"):
        assert fix in message
    assert "Traceback" not in done.stderr


def test_serving_on_all_interfaces_with_insecure_starts_and_warns(
    served: dict[str, Served],
) -> None:
    server = served["insecure"]
    assert server.wait_ok().json() == {"ok": True}
    threads = httpx.post(f"http://127.0.0.1:{server.port}/threads/search", json={}, timeout=30)
    assert threads.status_code == 200  # no auth at all: that is what --insecure means
    assert "WITHOUT authentication" in " ".join(server.log.read_text().split())


def test_serving_on_all_interfaces_with_api_keys_needs_no_insecure(
    served: dict[str, Served],
) -> None:
    server = served["keys"]
    assert server.wait_ok().status_code == 200
    url = f"http://127.0.0.1:{server.port}/threads/search"
    assert httpx.post(url, json={}, timeout=30).status_code == 401
    assert httpx.post(url, json={}, headers={"x-api-key": "sk-1"}, timeout=30).status_code == 200
    assert "WITHOUT authentication" not in server.log.read_text()


def test_serving_without_keys_binds_loopback_and_says_so(served: dict[str, Served]) -> None:
    server = served["loopback"]
    assert server.wait_ok().status_code == 200
    assert "serving on loopback only" in " ".join(server.log.read_text().split())

    outside = this_machines_address()
    assert served["insecure"].wait_ok().status_code == 200
    with socket.create_connection((outside, served["insecure"].port), timeout=2):
        pass  # the 0.0.0.0 server is reachable on the machine's own address...
    with socket.socket() as sock:  # ...the loopback one is not
        sock.settimeout(2)
        assert sock.connect_ex((outside, server.port)) != 0


def this_machines_address() -> str:
    """The address of the interface that would route outwards (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            pytest.skip("this machine has no network interface but loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no network interface but loopback")
    return address
