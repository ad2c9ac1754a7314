"""A real ``moto_server`` for tests and benchmarks: DynamoDB and S3 over HTTP on loopback.

moto answers DynamoDB's and S3's HTTP APIs like AWS does (queries, conditional writes,
transactions, the 400 KB item limit), so the saver is tested through boto3 and a socket,
exactly as it runs in production. moto stores a table's TTL setting but never expires
items: tests check the ``ttl`` values written and move the saver's clock instead.

Needs the ``dev`` extra (``moto[dynamodb,s3]``, ``flask``, ``flask-cors``). Never import this
module from graphyard's runtime code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["FAKE_CREDENTIALS", "MotoServer"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What boto3 needs to sign requests to moto (which accepts any credentials)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``moto_server`` in a subprocess on a free loopback port.

    >>> with MotoServer() as moto:  # doctest: +SKIP
    ...     url = f"dynamodb://checkpoints?region=us-east-1&endpoint_url={moto.endpoint}"
    ...     moto.reset()  # wipe every table and bucket
    """

    def __init__(self, *, log: Path | None = None, timeout: float = 60.0) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which(
            "moto_server"
        )
        if exe is None:
            raise RuntimeError(
                "moto_server is not installed: pip install 'moto[dynamodb,s3]' flask flask-cors "
                "(or the dev extra: pip install -e '.[dev]')"
            )
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **FAKE_CREDENTIALS},
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy of the descriptor
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                self.reset()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} in {self.timeout:.0f} s")

    def reset(self) -> None:
        """Delete every table, item and bucket (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with opener.open(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
