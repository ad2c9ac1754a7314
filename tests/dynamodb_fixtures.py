"""DynamoDB (and S3) for the tests marked ``dynamodb`` (registered as a plugin in conftest.py).

One ``moto_server`` subprocess per session on a free loopback port, spoken to over HTTP by
boto3 exactly as AWS would be; every test starts from an empty server (``POST
/moto-api/reset``). With ``CI`` set, a missing moto FAILS the tests instead of skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running ``moto_server`` (:class:`graphyard.persistence.dynamodb.testing.MotoServer`)."""
    try:
        from graphyard.persistence.dynamodb.testing import MotoServer

        server = MotoServer(log=tmp_path_factory.mktemp("moto") / "moto_server.log").start()
    except (ImportError, RuntimeError) as exc:
        if _IN_CI:
            pytest.fail(f"moto_server is required in CI and is unavailable: {exc}", pytrace=False)
        pytest.skip(f"moto_server unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dynamodb_endpoint(
    moto_server: object, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The endpoint of an emptied moto_server, with fake AWS credentials in the environment."""
    from graphyard.persistence.dynamodb.testing import FAKE_CREDENTIALS, MotoServer

    assert isinstance(moto_server, MotoServer)
    if request.node.get_closest_marker("dynamodb") is None:
        pytest.fail("a test that uses DynamoDB must be marked @pytest.mark.dynamodb")
    moto_server.reset()
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return moto_server.endpoint


@pytest.fixture
def dynamodb_url(dynamodb_endpoint: str) -> str:
    """A ``dynamodb://`` checkpointer URL on the emptied moto_server."""
    return f"dynamodb://checkpoints?region=us-east-1&endpoint_url={dynamodb_endpoint}"
