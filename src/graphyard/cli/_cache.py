"""``graphyard cache ...``: counters, entries and clearing of the node and answer caches.

Reads and clears only the cache (``graphyard.caching``); it never touches checkpoints.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from graphyard.cli._common import ConfigOption, JsonOption, app, console, err, load_settings

cache_app = typer.Typer(
    help="Node and answer caches: hit rates, dollars saved, clearing.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")


def _name(namespace: str) -> str:
    from graphyard.caching._store import _counter_name

    return _counter_name(tuple(namespace.split(",")))


@cache_app.command("stats")
def cache_stats(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Hits, misses, hit rate, stored entries and dollars saved, per cache.

    Example: graphyard cache stats --json
    """
    from graphyard.caching import cache_location, open_cache

    settings = load_settings(config)

    async def run() -> dict[str, Any]:
        async with open_cache(settings) as cache:
            if cache is None:
                return {"backend": "none", "location": "", "caches": []}
            counts = {c.name: c for c in await cache.astats()}
            entries: dict[str, list[int]] = {}
            for e in await cache.aentries():
                mine = entries.setdefault(_name(e.namespace), [0, 0, 0])
                mine[0] += e.live
                mine[1] += e.expired
                mine[2] += e.bytes
            rows = []
            for name in sorted(set(counts) | set(entries)):
                c = counts.get(name)
                live, expired, size = entries.get(name, [0, 0, 0])
                rows.append(
                    {
                        "cache": name,
                        "hits": c.hits if c else 0,
                        "misses": c.misses if c else 0,
                        "hit_rate": round(c.hit_rate, 4) if c else 0.0,
                        "stores": c.stores if c else 0,
                        "saved_usd": round(c.saved_usd, 6) if c else 0.0,
                        "entries": live,
                        "expired": expired,
                        "bytes": size,
                    }
                )
            return {"backend": cache.kind, "location": cache_location(settings), "caches": rows}

    report = asyncio.run(run())
    if json_output:
        typer.echo(json.dumps(report))
        return
    if report["backend"] == "none":
        err.print("caching is off (GRAPHYARD_CACHE__ENABLED=false)")
        return
    console.print(f"[dim]{report['backend']} cache at {report['location']}[/dim]")
    table = Table("cache", "hits", "misses", "hit rate", "stores", "entries", "expired", "saved")
    for r in report["caches"]:
        table.add_row(
            r["cache"], str(r["hits"]), str(r["misses"]), f"{r['hit_rate']:.1%}", str(r["stores"]),
            str(r["entries"]), str(r["expired"]), f"${r['saved_usd']:.6f}",
        )  # fmt: skip
    console.print(table)


@cache_app.command("clear")
def cache_clear(
    name: Annotated[
        str | None, typer.Option("--cache", help="Only this cache, e.g. answers or task:kb_search.")
    ] = None,
    expired: Annotated[
        bool, typer.Option("--expired", help="Only delete expired entries.")
    ] = False,
    reset_stats: Annotated[
        bool, typer.Option("--reset-stats", help="Also zero the hit/miss/saved counters.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Delete cached entries (all, one cache's, or the expired ones).

    Example: graphyard cache clear --cache answers
    """
    from graphyard.caching import open_cache

    settings = load_settings(config)

    async def run() -> int:
        async with open_cache(settings) as cache:
            if cache is None:
                return 0
            before = sum(e.live + e.expired for e in await cache.aentries())
            if expired:
                removed = await cache.apurge_expired()
            elif name is None:
                await cache.aclear()
                removed = before
            else:
                spaces = [e for e in await cache.aentries() if _name(e.namespace) == name]
                if not spaces:
                    err.print(f"[red]no cache named {name!r}; see graphyard cache stats[/red]")
                    raise typer.Exit(2)
                await cache.aclear([tuple(e.namespace.split(",")) for e in spaces])
                removed = sum(e.live + e.expired for e in spaces)
            if reset_stats:
                await cache.areset_stats()
            return removed

    removed = asyncio.run(run())
    console.print(f"removed {removed} cache entries")
