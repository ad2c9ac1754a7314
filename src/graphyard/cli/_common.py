"""Shared pieces of the CLI: the typer apps, consoles and options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from graphyard.config import Settings

app = typer.Typer(
    name="graphyard",
    help="A production runtime for LangGraph agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
threads_app = typer.Typer(help="Inspect stored conversations.", no_args_is_help=True)
app.add_typer(threads_app, name="threads")

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A graphyard.toml to read instead of ./graphyard.toml."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def load_settings(config: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment and config file, with CLI options on top."""
    return Settings.load(config, **{k: v for k, v in overrides.items() if v is not None})
