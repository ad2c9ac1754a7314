"""``graphyard deploy lambda render``: the AWS Lambda deployment files from the configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graphyard.cli._common import ConfigOption, app, console, load_settings

deploy_app = typer.Typer(
    help="Deployment files rendered from your configuration.", no_args_is_help=True
)
lambda_app = typer.Typer(
    help="AWS Lambda: container image, Web Adapter streaming, DynamoDB, Tailscale.",
    no_args_is_help=True,
)
deploy_app.add_typer(lambda_app, name="lambda")
app.add_typer(deploy_app, name="deploy")


@lambda_app.command("render")
def render(
    out: Annotated[Path, typer.Option(help="Directory to write, inside the build context.")] = Path(
        "deploy/lambda"
    ),
    context: Annotated[
        Path,
        typer.Option(help="Docker build context: the directory with graphyard's pyproject.toml."),
    ] = Path("."),
    table: Annotated[
        str | None,
        typer.Option(
            help="DynamoDB table [default: from a dynamodb:// checkpointer, else graphyard]."
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="AWS region [default: from a dynamodb:// checkpointer, else us-east-1]."),
    ] = None,
    memory: Annotated[int | None, typer.Option(help="Function memory, MB [default: 2048].")] = None,
    timeout: Annotated[
        int | None, typer.Option(help="Seconds one request may run [default: 300].")
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option(help="The function's name on the tailnet [default: graphyard-lambda]."),
    ] = None,
    with_local_model: Annotated[
        bool,
        typer.Option(
            "--with-local-model", help="Put xllamacpp and the SmolLM2 weights in the image."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files you have edited.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write Dockerfile, entrypoint.sh, template.yaml (AWS SAM) and serverless.yml.

    Tier models, their Ollama URL on the tailnet, the table and region come from the
    configuration; secrets do not (the container reads them from SSM when it starts).

    Example: graphyard deploy lambda render --config deploy/lambda/graphyard.toml --out deploy/lambda
    """
    from graphyard.deploy import lambda_options, write_lambda

    settings = load_settings(config)
    options = lambda_options(
        settings,
        out_dir=out,
        context=context,
        table=table,
        region=region,
        memory=memory,
        timeout=timeout,
        hostname=hostname,
        with_local_model=with_local_model or None,
    )
    for path in write_lambda(settings, options, force=force):
        console.print(f"wrote {path}")
    console.print(
        "next: build, push and deploy as in docs/deploy-lambda.md "
        f"(docker buildx build --platform linux/arm64 --provenance=false "
        f"-f {out}/Dockerfile -t graphyard-lambda --load {context})"
    )
