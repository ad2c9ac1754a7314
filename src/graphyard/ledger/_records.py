"""The ledger's value objects: one model call, token and dollar totals, a thread's cost report.

Plain data, no I/O. Everything else in :mod:`graphyard.ledger` reads and writes these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CallRecord", "CallStatus", "CostTotals", "GroupBy", "ThreadCost"]

CallStatus = Literal["ok", "aborted"]
"""``ok``: the call finished and its tokens are the provider's ``usage_metadata``.
``aborted``: the call failed or was stopped mid-stream (a budget, a cancel); its tokens are
estimated (prompt by ``count_tokens_approximately``, output from the text streamed so far)."""

GroupBy = Literal["day", "tier", "model", "user", "thread", "run"]
"""How ``graphyard costs`` and :meth:`Ledger.summary` group calls (days in UTC)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One model call, as the ledger stores it (one row of ``graphyard_ledger``)."""

    call_id: str
    """LangChain's run id of the model call; unique, so storing a record twice is harmless."""
    run_id: str
    thread_id: str
    user_id: str
    tier: str
    """``cheap`` / ``mid`` / ``strong`` from the call's metadata, ``unknown`` for user graphs."""
    model: str
    """Provider string, e.g. ``anthropic:claude-haiku-4-5``."""
    node: str | None
    """The graph node that made the call."""
    input_tokens: int
    """Prompt tokens, cached ones included (LangChain's convention)."""
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    """Dollars, from :func:`graphyard.models.call_cost`."""
    latency_s: float
    """Seconds from the call's start to its end."""
    started_at: float
    """Unix time the call started."""
    status: CallStatus = "ok"


@dataclass(slots=True)
class CostTotals:
    """Calls, tokens and dollars added up.

    >>> t = CostTotals()
    >>> t.add(CallRecord("c1", "r1", "t1", "u", "mid", "scripted:mid", None, 10, 5, 0, 0, 0.25, 0.1, 0.0))
    >>> t.calls, t.input_tokens, t.output_tokens, t.cost_usd
    (1, 10, 5, 0.25)
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, record: CallRecord) -> None:
        self.calls += 1
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.cache_read_tokens += record.cache_read_tokens
        self.cache_write_tokens += record.cache_write_tokens
        self.cost_usd += record.cost_usd

    def merge(self, other: CostTotals) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cost_usd += other.cost_usd

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_usd"] = round(self.cost_usd, 10)
        return out


@dataclass(slots=True)
class ThreadCost:
    """What ``GET /threads/{id}/cost`` answers: totals, and the same broken down by run,
    tier and model (each in the order first seen)."""

    thread_id: str
    totals: CostTotals = field(default_factory=CostTotals)
    by_run: dict[str, CostTotals] = field(default_factory=dict)
    by_tier: dict[str, CostTotals] = field(default_factory=dict)
    by_model: dict[str, CostTotals] = field(default_factory=dict)

    @classmethod
    def of(cls, thread_id: str, records: Iterable[CallRecord]) -> ThreadCost:
        report = cls(thread_id)
        for r in sorted(records, key=lambda r: r.started_at):
            report.totals.add(r)
            report.by_run.setdefault(r.run_id, CostTotals()).add(r)
            report.by_tier.setdefault(r.tier, CostTotals()).add(r)
            report.by_model.setdefault(r.model, CostTotals()).add(r)
        return report

    def as_json(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "totals": self.totals.as_json(),
            "by_run": {k: v.as_json() for k, v in self.by_run.items()},
            "by_tier": {k: v.as_json() for k, v in self.by_tier.items()},
            "by_model": {k: v.as_json() for k, v in self.by_model.items()},
        }
