"""The Lambda stack's own table and role, exercised by a real server on ``moto_server``.

The table is created from the SAM template's ``Properties`` (not by graphyard's
``create_table``), and every DynamoDB call the server makes while it starts, answers a chat
turn, reports the thread's cost and deletes the thread is recorded: each must be an action the
template's role allows, on a table the template creates. (The template once declared the keys
``PK``/``SK`` while the saver writes ``pk``/``sk``: every checkpoint write on a deployed stack
failed, and the role lacked ``dynamodb:DescribeTimeToLive``, which the server's start-up
calls.)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import httpx
import pytest
from cfnlint.decode import decode_str
from deploy_support import DEPLOY

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

pytestmark = [pytest.mark.deploy, pytest.mark.dynamodb]


def sam_template() -> dict[str, Any]:
    template, errors = decode_str((DEPLOY / "template.yaml").read_text())
    assert not errors, errors
    return template  # type: ignore[no-any-return]


def create_stack_tables(endpoint: str, stack_table: str) -> dict[str, str]:
    """Every ``AWS::DynamoDB::Table`` of the template, as the stack would create it; returns
    each resource's logical name -> its table name."""
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    names: dict[str, str] = {}
    for logical, resource in sam_template()["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        name = props["TableName"]
        name = (
            stack_table
            if name == {"Ref": "TableName"}
            else name["Fn::Sub"].replace("${TableName}", stack_table)
        )
        client.create_table(
            TableName=name,
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            BillingMode=props["BillingMode"],
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        names[logical] = name
    return names


def allowed(template: dict[str, Any], tables: dict[str, str]) -> tuple[set[str], set[str]]:
    """The DynamoDB actions the function's role allows, and the tables it allows them on."""
    statements = template["Resources"]["Graphyard"]["Properties"]["Policies"][0]["Statement"]
    actions: set[str] = set()
    on: set[str] = set()
    for statement in statements:
        dynamodb = [a for a in statement["Action"] if a.startswith("dynamodb:")]
        if not dynamodb:
            continue
        actions.update(dynamodb)
        for resource in statement["Resource"]:
            logical = (resource.get("Fn::GetAtt") or [None])[0]
            if logical in tables:
                on.add(tables[logical])
    return actions, on


async def test_a_served_turn_on_the_stacks_table_uses_only_what_its_role_allows(
    dynamodb_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = create_stack_tables(dynamodb_endpoint, "graphyard-stack")
    actions, on_tables = allowed(sam_template(), tables)
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()
    original = botocore.client.BaseClient._make_api_call

    def recording(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            tables = [params["TableName"]] if "TableName" in params else params["RequestItems"]
            with lock:
                calls.extend((operation, table) for table in tables)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    monkeypatch.chdir(tmp_path)  # the server's side file for DynamoDB lands here
    settings = Settings(
        checkpointer=(
            f"dynamodb://graphyard-stack?region=us-east-1&endpoint_url={dynamodb_endpoint}"
        ),
        shop_db=tmp_path / "shop.db",
        router="rules",
        **{t: TierConfig(model=f"scripted:{t}") for t in TIERS},
    )
    model = ScriptedChatModel(responses=["Your order A1001 ships Friday."] * 5)
    app = create_app(settings, models=dict.fromkeys(TIERS, model))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as client,
    ):
        turn = await client.post("/chat/t-1", json={"content": "where is order A1001?"})
        assert turn.status_code == 200, turn.text
        state = await client.get("/threads/t-1/state")
        assert state.status_code == 200, state.text
        messages = state.json()["values"]["messages"]
        assert messages[-1]["content"] == "Your order A1001 ships Friday."
        # the turn was recorded: it replays from the stack's recordings table, no model call
        calls_before = len(model.calls)
        replayed = await client.post("/threads/t-1/replay", json={})
        assert replayed.status_code == 200, replayed.text
        assert '"model_calls_served":1' in replayed.text.replace(" ", ""), replayed.text
        assert len(model.calls) == calls_before
        cost = await client.get("/threads/t-1/cost")
        assert cost.status_code == 200, cost.text
        assert cost.json()["totals"]["calls"] >= 1  # the ledger, in the stack's ledger table
        deleted = await client.delete("/threads/t-1")
        assert deleted.status_code in (200, 204), deleted.text

    used = {f"dynamodb:{operation}" for operation, _ in calls}
    assert used, "the server made no DynamoDB call"
    refused = sorted({c for c in calls if f"dynamodb:{c[0]}" not in actions})
    assert used <= actions, f"calls the stack's role refuses: {refused}"
    touched = {table for _, table in calls}
    assert ("BatchWriteItem", "graphyard-stack-ledger") in calls  # the turn's call, recorded
    assert ("PutItem", "graphyard-stack-threads") in calls  # the thread's run lease
    assert ("PutItem", "graphyard-stack-recordings") in calls  # the turn's recorded calls
    assert touched <= on_tables, f"tables outside the role: {sorted(touched - on_tables)}"
