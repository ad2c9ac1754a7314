"""The runtime: settings, models, checkpointer and the compiled graph, opened together.

The server, the CLI and tests all start graphyard through :func:`open_runtime`, so a graph
runs the same way everywhere.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from graphyard.caching import GraphCache, open_cache
from graphyard.config import Settings, TierName
from graphyard.errors import ConfigError
from graphyard.models import BundledChatModel, LocalModelServer, Tier, resolve_tiers
from graphyard.persistence import open_saver

__all__ = ["GraphSource", "Runtime", "load_graph", "open_runtime"]

log = logging.getLogger(__name__)

GraphSource = str | StateGraph | Pregel | Callable[["Runtime"], "StateGraph | Pregel"]
"""A graph to serve: ``"module:attribute"``, a graph (compiled or not), or a factory that
receives the :class:`Runtime` (for its tiers and settings) and returns one."""

REFERENCE_GRAPH = "graphyard.agent:reference_graph"


@dataclass(slots=True)
class Runtime:
    """Everything a running graphyard needs, built once at startup."""

    settings: Settings
    local: LocalModelServer
    tiers: dict[TierName, Tier]
    saver: BaseCheckpointSaver[str]
    graph: Pregel
    graph_id: str
    cache: GraphCache | None = None
    """Node/answer cache beside the checkpointer (``graphyard.caching``); ``None`` when off."""


def load_graph(spec: str) -> Any:
    """Import ``"package.module:attribute"``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"graph {spec!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for graph {spec!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from exc


def _compile(obj: Any, runtime: Runtime, spec: str) -> Pregel:
    if isinstance(obj, StateGraph):
        return obj.compile(checkpointer=runtime.saver, cache=runtime.cache)
    if isinstance(obj, Pregel):
        keep = obj.cache is not None or runtime.cache is None  # a graph's own cache wins
        return obj.copy(
            update={"checkpointer": runtime.saver, **({} if keep else {"cache": runtime.cache})}
        )
    if callable(obj) and not isinstance(obj, type):
        params = inspect.signature(obj).parameters
        return _compile(obj(runtime) if params else obj(), runtime, spec)
    raise ConfigError(
        f"{spec} is a {type(obj).__name__}; expected a StateGraph, a compiled graph, "
        "or a function returning one"
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings | None = None,
    *,
    graph: GraphSource | None = None,
    models: Mapping[TierName, BaseChatModel] | None = None,
) -> AsyncIterator[Runtime]:
    """Open the checkpointer, resolve the tiers and compile the graph; clean up on exit.

    ``models`` replaces some tiers' chat models (tests pass scripted models).
    """
    settings = settings or Settings()
    local = LocalModelServer(settings.local)
    tiers = resolve_tiers(settings, local, models=models)
    if any(isinstance(t.chat_model, BundledChatModel) for t in tiers.values()):
        local.check()  # fail at startup, with the install command, not on the first request
    source: GraphSource = graph if graph is not None else (settings.graph or REFERENCE_GRAPH)
    spec = source if isinstance(source, str) else getattr(source, "__name__", type(source).__name__)
    obj = load_graph(source) if isinstance(source, str) else source
    try:
        async with (
            open_saver(settings.checkpointer, settings=settings) as saver,
            open_cache(settings, saver=saver) as cache,
        ):
            runtime = Runtime(
                settings, local, tiers, saver, graph=None, graph_id=_graph_id(spec), cache=cache
            )  # type: ignore[arg-type]
            runtime.graph = _compile(obj, runtime, spec)
            yield runtime
    finally:
        local.stop()


def _graph_id(spec: str) -> str:
    if spec == REFERENCE_GRAPH:
        return "support"
    return spec.rpartition(":")[2] or spec
