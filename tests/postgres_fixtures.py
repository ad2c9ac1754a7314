"""PostgreSQL for the tests marked ``postgres`` (registered as a plugin in ``conftest.py``).

The server is ``GRAPHYARD_TEST_POSTGRES_URL`` when set (``.ci/run`` starts one), otherwise a
throwaway cluster this session starts with ``scripts/postgres`` and removes at the end. Each
test gets its own empty database. With ``CI`` set, a missing or broken Postgres FAILS the
tests instead of skipping them, so a broken setup can never pass silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "postgres"
ENV = "GRAPHYARD_TEST_POSTGRES_URL"
# Read at import: the autouse fixture clears GRAPHYARD_* variables before each test.
_GIVEN_URL = os.environ.get(ENV)
_IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _IN_CI:
        pytest.fail(f"PostgreSQL is required in CI and is unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server's maintenance database."""
    import psycopg

    if _GIVEN_URL:
        try:
            psycopg.connect(_GIVEN_URL, connect_timeout=10).close()
        except psycopg.Error as exc:
            _unavailable(f"{ENV}={_GIVEN_URL} does not answer: {exc}")
        yield _GIVEN_URL
        return
    if not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        _unavailable(f"no server binaries (apt-get install -y postgresql) and {ENV} unset")
    data = tempfile.mkdtemp(prefix="graphyard-test-pg-")
    started = subprocess.run(
        [str(SCRIPT), "start", data, str(_free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if started.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        _unavailable(f"scripts/postgres start failed: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(SCRIPT), "stop", data], capture_output=True, timeout=60, check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    if request.node.get_closest_marker("postgres") is None:
        pytest.fail("a test that uses Postgres must be marked @pytest.mark.postgres")
    with fresh_database(postgres_server) as url:
        yield url


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """The URL of a new, empty database on ``server``, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def checkpointer_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The checkpointer URL of each backend graphyard runs the same tests on."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("dynamodb", marks=pytest.mark.dynamodb),
    ]
)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The checkpointer URL of each backend graphyard keeps its own records beside (the cost
    ledger, recordings): SQLite, Postgres and DynamoDB (``<table>-ledger``, ...)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints.db'}"
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("dynamodb_url"))
