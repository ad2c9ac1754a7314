"""Runs every docstring example in ``src/graphyard`` as a test (the package's examples are
part of its documentation, so they must keep working).

Only package modules are collected as doctests: pytest's ``--doctest-modules`` would also
import each ``tests/**/conftest.py`` as a module named ``conftest``, and those clash.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

PACKAGE = Path(__file__).parent / "src" / "graphyard"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if (
        file_path.suffix == ".py"
        and file_path.name != "__main__.py"  # importing it runs the CLI
        and file_path.is_relative_to(PACKAGE)
    ):
        return DoctestModule.from_parent(parent, path=file_path)
    return None
