"""deploy/lambda/entrypoint.sh, run for real with stand-in `tailscaled` and `tailscale`
executables on PATH (shell scripts written here that record their arguments): it starts
the server on $PORT, points only the Ollama tier at Tailscale's proxy, reads secrets from
SSM (moto's server over HTTP), and ends with one clear line and a non-zero exit code on
each failure."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_support import DEPLOY, clean_environ, free_port

pytestmark = [pytest.mark.deploy, pytest.mark.server]

ENTRYPOINT = DEPLOY / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent

TAILSCALED = """#!/usr/bin/env bash
# stand-in tailscaled: records its arguments and pid, listens on --socket like the real one
printf '%s\\n' "$@" > "$STANDIN_DIR/tailscaled.args"
echo $$ > "$STANDIN_DIR/tailscaled.pid"
[ -z "${STANDIN_TAILSCALED_FAILS:-}" ] || { echo "wgengine: $STANDIN_TAILSCALED_FAILS" >&2; exit 1; }
for arg in "$@"; do case "$arg" in --socket=*) socket="${arg#--socket=}" ;; esac; done
exec /usr/bin/env python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); time.sleep(600)' "$socket"
"""

TAILSCALE = """#!/usr/bin/env bash
# stand-in tailscale CLI: records its arguments; `up` fails when told to
printf '%s\\n' "$@" > "$STANDIN_DIR/tailscale.args"
if [ -n "${STANDIN_UP_FAILS:-}" ]; then
  echo "backend error: $STANDIN_UP_FAILS" >&2
  exit 1
fi
echo "Success."
"""


class Container:
    """entrypoint.sh as the container's PID 1 would run it."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.dir = tmp_path
        self.port = free_port()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("tailscaled", TAILSCALED), ("tailscale", TAILSCALE)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.env = clean_environ() | {
            "PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin",
            "PORT": str(self.port),
            "TS_DIR": str(tmp_path / "ts"),
            "STANDIN_DIR": str(tmp_path),
            "TS_AUTHKEY": "tskey-auth-test",
            "TS_HOSTNAME": "graphyard-test",
            "GRAPHYARD_API_KEYS": '{"sk-test": "tester"}',
            "GRAPHYARD_CHECKPOINTER": f"sqlite:///{tmp_path / 'graphyard.db'}",
            "GRAPHYARD_SHOP_DB": str(tmp_path / "shop.db"),
            "GRAPHYARD_CHEAP__MODEL": "ollama:qwen3:8b",
            "GRAPHYARD_CHEAP__BASE_URL": "http://gpu-box:11434",
            "GRAPHYARD_MID__MODEL": "anthropic:claude-haiku-4-5",
            "GRAPHYARD_STRONG__MODEL": "anthropic:claude-sonnet-4-5",
            "ANTHROPIC_API_KEY": "sk-ant-test",  # never used: no request reaches a model
            **env,
        }
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Container:
        self.process = subprocess.Popen(
            ["bash", str(ENTRYPOINT)],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return self

    def run(self) -> subprocess.CompletedProcess[str]:
        """Run to the end (a failing start); the output is what CloudWatch would show."""
        self.start()
        assert self.process is not None
        out, err = self.process.communicate(timeout=60)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_for(self, path: str, timeout: float = 60) -> httpx.Response:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited {self.process.returncode}: {self.process.stderr.read()}"
                )  # type: ignore[union-attr]
            try:
                response = self.get(path)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{path} did not answer 200 within {timeout} s")

    def args(self, name: str) -> list[str]:
        return (self.dir / f"{name}.args").read_text().splitlines()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        pid_file = self.dir / "tailscaled.pid"
        if pid_file.exists():  # the stand-in daemon outlives the entrypoint, like the real one
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for c in made:
        c.stop()


def make(container: list[Container], tmp_path: Path, **env: str) -> Container:
    c = Container(tmp_path, env)
    container.append(c)
    return c


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines, result
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_the_server_comes_up_on_port_with_only_the_ollama_tier_behind_the_tailscale_proxy(
    container: list[Container], tmp_path: Path
) -> None:
    c = make(container, tmp_path).start()

    assert c.wait_for("/ok").json() == {"ok": True}
    assert c.wait_for("/ready").status_code == 200  # the whole runtime opened, not just /ok

    daemon = c.args("tailscaled")
    assert "--tun=userspace-networking" in daemon
    assert f"--state={tmp_path / 'ts' / 'tailscaled.state'}" in daemon
    assert f"--socket={tmp_path / 'ts' / 'tailscaled.sock'}" in daemon
    assert "--socks5-server=localhost:1055" in daemon
    assert "--outbound-http-proxy-listen=localhost:1056" in daemon
    up = c.args("tailscale")
    assert up[:2] == [f"--socket={tmp_path / 'ts' / 'tailscaled.sock'}", "up"]
    assert {"--authkey=tskey-auth-test", "--hostname=graphyard-test", "--timeout=20s"} <= set(up)

    # exec: the server is the entrypoint's own process, with the proxy set for one tier only.
    assert c.process is not None
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{c.process.pid}/environ").read_text().split("\0")
        if "=" in item
    )
    assert Path(f"/proc/{c.process.pid}/cmdline").read_text().split("\0")[-3:-1] == [
        "--port",
        str(c.port),
    ]
    assert environ["GRAPHYARD_CHEAP__PROXY"] == "socks5://localhost:1055"
    assert "GRAPHYARD_MID__PROXY" not in environ and "GRAPHYARD_STRONG__PROXY" not in environ
    assert not {"ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"} & set(environ)


def test_a_failing_tailscale_up_ends_the_container_with_one_clear_line_and_no_server(
    container: list[Container], tmp_path: Path
) -> None:
    c = make(container, tmp_path, STANDIN_UP_FAILS="invalid key: unable to validate API key")

    result = c.run()

    assert result.returncode == 5
    line = error_line(result)
    assert line.startswith("entrypoint: error: tailscale up failed (timeout 20s)")
    assert "invalid key" in line
    with pytest.raises(httpx.TransportError):
        c.get("/ok")


def test_a_tailscaled_that_dies_at_start_ends_the_container(
    container: list[Container], tmp_path: Path
) -> None:
    result = make(container, tmp_path, STANDIN_TAILSCALED_FAILS="no permission").run()

    assert result.returncode == 4
    assert error_line(result).startswith("entrypoint: error: tailscaled exited at start")
    assert "no permission" in error_line(result)


def test_an_ollama_tier_without_an_auth_key_is_a_configuration_error(
    container: list[Container], tmp_path: Path
) -> None:
    result = make(container, tmp_path, TS_AUTHKEY="").run()

    assert result.returncode == 2
    assert "TS_AUTHKEY is empty" in error_line(result)
    assert not (tmp_path / "tailscaled.args").exists()  # nothing was started


def test_without_api_keys_a_public_function_url_is_refused(
    container: list[Container], tmp_path: Path
) -> None:
    result = make(container, tmp_path, GRAPHYARD_API_KEYS="").run()

    assert result.returncode == 2
    assert "no GRAPHYARD_API_KEYS" in error_line(result)


def test_without_an_ollama_tier_tailscale_is_not_started(
    container: list[Container], tmp_path: Path
) -> None:
    c = make(
        container,
        tmp_path,
        GRAPHYARD_CHEAP__MODEL="anthropic:claude-haiku-4-5",
        GRAPHYARD_CHEAP__BASE_URL="",
        TS_AUTHKEY="",
    ).start()

    assert c.wait_for("/ok").json() == {"ok": True}
    assert not (tmp_path / "tailscaled.args").exists()


def test_secrets_are_read_from_ssm_parameter_store_when_the_container_starts(
    container: list[Container], tmp_path: Path
) -> None:
    moto_server = pytest.importorskip("moto.server", reason="moto serves SSM for this test")
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {
            "AWS_ENDPOINT_URL_SSM": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        ssm = boto3.client(
            "ssm",
            endpoint_url=aws["AWS_ENDPOINT_URL_SSM"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ssm.put_parameter(
            Name="/graphyard/tailscale-authkey", Value="tskey-from-ssm", Type="SecureString"
        )
        ssm.put_parameter(
            Name="/graphyard/api-keys", Value='{"sk-ssm": "ops"}', Type="SecureString"
        )
        secrets = "TS_AUTHKEY=/graphyard/tailscale-authkey GRAPHYARD_API_KEYS=/graphyard/api-keys"

        missing = make(
            container,
            tmp_path / "missing",
            **aws,
            TS_AUTHKEY="",
            GRAPHYARD_API_KEYS="",
            SSM_SECRETS=secrets + " ANTHROPIC_API_KEY=/graphyard/nope",
        )
        result = missing.run()
        assert result.returncode == 3
        assert "/graphyard/nope" in result.stderr
        assert error_line(result).startswith("entrypoint: error: could not read SSM_SECRETS")

        c = make(
            container, tmp_path, **aws, TS_AUTHKEY="", GRAPHYARD_API_KEYS="", SSM_SECRETS=secrets
        ).start()
        c.wait_for("/ok")
        assert "--authkey=tskey-from-ssm" in c.args("tailscale")
        # the API keys from SSM are in force: a request without one is refused
        c.wait_for("/ready")
        assert c.get("/threads/t1/state").status_code == 401
        with_key = httpx.get(
            f"http://127.0.0.1:{c.port}/threads/t1/state",
            headers={"x-api-key": "sk-ssm"},
            timeout=5,
        )
        assert with_key.status_code == 404  # past auth: the thread just doesn't exist
    finally:
        server.stop()
