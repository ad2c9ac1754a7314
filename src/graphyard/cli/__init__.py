"""The ``graphyard`` command line: ``graphyard <noun> <verb>``.

Examples::

    graphyard serve                          # the reference agent, SQLite, bundled model
    graphyard serve --graph mypkg.agent:graph --port 9000
    graphyard chat --thread t1               # talk to a running server
    graphyard threads list --json

Each command group lives in its own module and registers itself on ``app`` when imported.
"""

from __future__ import annotations

import sys

from graphyard.cli import (  # noqa: F401  (register commands)
    _cache,  # cache stats/clear
    _costs,  # costs
    _db,  # db init; threads prune/delete
    _deploy,  # deploy lambda render
    _router,  # router train/eval/score/calibrate
    _serve,
    _threads,
)
from graphyard.cli._common import app, err
from graphyard.errors import ConfigError, GraphyardError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: graphyard's errors print as one line, exit code 2 for configuration."""
    try:
        app()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
    except GraphyardError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
