"""Budgets in dollars: per run, per thread and per user per UTC day, and the error for each.

A typed value object (like pydantic-ai's ``UsageLimits``) built from :class:`Settings`; the
checks themselves run in :class:`graphyard.ledger.LedgerHandler`. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from graphyard.config import Settings
from graphyard.errors import BudgetExceeded

__all__ = ["BudgetName", "Budgets", "OverBudget"]

BudgetName = Literal["run", "thread", "user_day"]
"""Which budget: one run's spend, one thread's spend (all its runs), or one user's spend
since the last UTC midnight (all their threads)."""

_LABEL: dict[str, tuple[str, str, str]] = {
    "run": ("per-run", "this run", "GRAPHYARD_BUDGET_RUN_USD"),
    "thread": ("per-thread", "this thread", "GRAPHYARD_BUDGET_THREAD_USD"),
    "user_day": ("per-user daily", "this user today (UTC)", "GRAPHYARD_BUDGET_USER_DAY_USD"),
}


@dataclass(frozen=True, slots=True)
class Budgets:
    """Dollar limits; ``None`` is unlimited.

    >>> Budgets(run_usd=0.5).limits()
    [('run', 0.5)]
    >>> bool(Budgets())
    False
    """

    run_usd: float | None = None
    """Most one run may spend on model calls."""
    thread_usd: float | None = None
    """Most one thread may spend, over all its runs."""
    user_day_usd: float | None = None
    """Most one user may spend per UTC day, over all their threads."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Budgets:
        return cls(
            run_usd=settings.budget_run_usd,
            thread_usd=settings.budget_thread_usd,
            user_day_usd=settings.budget_user_day_usd,
        )

    def limits(self) -> list[tuple[BudgetName, float]]:
        """The budgets that are set, as ``(name, dollars)``."""
        out: list[tuple[BudgetName, float]] = []
        for name, value in (
            ("run", self.run_usd),
            ("thread", self.thread_usd),
            ("user_day", self.user_day_usd),
        ):
            if value is not None:
                out.append((name, float(value)))  # type: ignore[arg-type]
        return out

    def __bool__(self) -> bool:
        return bool(self.limits())


class OverBudget(BudgetExceeded):
    """A model call would take spending past a budget; the run stops before or during it.

    >>> str(OverBudget("thread", 0.05, 0.0512))
    'the per-thread budget of $0.0500 is exhausted: this thread has spent $0.0512; raise GRAPHYARD_BUDGET_THREAD_USD to continue'

    A call refused before it starts says what its prompt alone would have cost:

    >>> str(OverBudget("run", 0.01, 0.0, next_call_usd=0.02))
    "the per-run budget of $0.0100 is exhausted: this run has spent $0.0000 and the next call's prompt alone would cost $0.0200; raise GRAPHYARD_BUDGET_RUN_USD to continue"
    """

    def __init__(
        self,
        budget: BudgetName,
        limit_usd: float,
        spent_usd: float,
        *,
        next_call_usd: float | None = None,
    ) -> None:
        label, scope, setting = _LABEL[budget]
        upcoming = (
            f" and the next call's prompt alone would cost ${next_call_usd:.4f}"
            if next_call_usd
            else ""
        )
        super().__init__(
            f"the {label} budget of ${limit_usd:.4f} is exhausted: {scope} has spent "
            f"${spent_usd:.4f}{upcoming}; raise {setting} to continue"
        )
        self.budget: BudgetName = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd

    def details(self) -> dict[str, Any]:
        """JSON for the SSE ``error`` event, beside ``error`` and ``message``."""
        return {
            "budget": self.budget,
            "limit_usd": self.limit_usd,
            "spent_usd": round(self.spent_usd, 10),
        }
