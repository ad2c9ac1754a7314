"""A tier configured with a proxy reaches its model server only through that proxy; the
other tiers go direct. Real processes on 127.0.0.1: pproxy as the SOCKS5 proxy (standing in
for tailscaled's), two Ollama stand-ins (the private box behind the proxy, and one the
other tiers reach directly) and `graphyard serve`."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from deploy_support import Spawn, clean_environ, free_port, start_standin

pytestmark = [pytest.mark.server, pytest.mark.deploy]


def requests_to(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def connects_to(proxy_log: Path, port: int) -> int:
    """CONNECTs pproxy logged to 127.0.0.1:port (its -v lines: 'socks5 client -> host:port')."""
    return len(re.findall(rf"-> 127\.0\.0\.1:{port}\b", proxy_log.read_text()))


def chat(url: str, thread: str, tier: str) -> list[Any]:
    frames: list[Any] = []
    body = {"content": "hello there", "tier": tier}
    with httpx.stream("POST", f"{url}/chat/{thread}", json=body, timeout=60) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                frames.append(data if data == "[DONE]" else json.loads(data))
    return frames


def tokens(frames: list[Any]) -> str:
    return "".join(f["token"] for f in frames if isinstance(f, dict) and "token" in f)


def serve(spawn: Spawn, tmp_path: Path, env: dict[str, str]) -> tuple[str, Popen[bytes]]:
    port = free_port()
    environ = clean_environ() | {
        "GRAPHYARD_CHECKPOINTER": f"sqlite:///{tmp_path / 'graphyard.db'}",
        "GRAPHYARD_SHOP_DB": str(tmp_path / "shop.db"),
        "GRAPHYARD_MAX_REVISIONS": "0",
        **env,
    }
    argv = [
        sys.executable,
        "-m",
        "graphyard",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = spawn("graphyard", argv, env=environ, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "graphyard.log").read_text()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError((tmp_path / "graphyard.log").read_text())


def test_the_proxied_ollama_tier_reaches_its_server_only_through_the_socks5_proxy(
    spawn: Spawn, tmp_path: Path, socks_proxy: tuple[int, Path, Popen[bytes]]
) -> None:
    proxy_port, proxy_log, proxy = socks_proxy
    private_port, private = start_standin(spawn, tmp_path, "private-ollama")
    public_port, public = start_standin(spawn, tmp_path, "public-ollama")
    url, _ = serve(
        spawn,
        tmp_path,
        {
            "GRAPHYARD_CHEAP__MODEL": "ollama:qwen3:8b",
            "GRAPHYARD_CHEAP__BASE_URL": f"http://127.0.0.1:{private_port}",
            "GRAPHYARD_CHEAP__PROXY": f"socks5://127.0.0.1:{proxy_port}",
            "GRAPHYARD_MID__MODEL": "ollama:qwen3:8b",
            "GRAPHYARD_MID__BASE_URL": f"http://127.0.0.1:{public_port}",
            "GRAPHYARD_STRONG__MODEL": "openai:qwen3:8b",
            "GRAPHYARD_STRONG__BASE_URL": f"http://127.0.0.1:{public_port}/v1",
        },
    )

    cheap = chat(url, "t-cheap", "cheap")

    assert tokens(cheap) == "Hello! How can I help?"
    assert [r["path"] for r in requests_to(private)] == ["/api/chat"]
    assert connects_to(proxy_log, private_port) == 1  # the one request went through the proxy

    mid, strong = chat(url, "t-mid", "mid"), chat(url, "t-strong", "strong")

    assert tokens(mid) == tokens(strong) == "Hello! How can I help?"
    assert [r["path"] for r in requests_to(public)] == ["/api/chat", "/v1/chat/completions"]
    assert connects_to(proxy_log, public_port) == 0  # the direct tiers never touched the proxy
    assert len(requests_to(private)) == 1

    # Without the proxy the private box is unreachable for the cheap tier: no direct fallback.
    proxy.send_signal(signal.SIGKILL)
    proxy.wait(10)
    failed = chat(url, "t-cheap-2", "cheap")

    assert tokens(failed) == ""
    assert any(isinstance(f, dict) and "error" in f for f in failed), failed
    assert len(requests_to(private)) == 1
    assert tokens(chat(url, "t-mid-2", "mid")) == "Hello! How can I help?"  # others unaffected
