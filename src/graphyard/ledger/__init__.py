"""The cost ledger and budgets: every model call's tokens and dollars, stored beside the
checkpoints, and dollar limits per run, per thread and per user per day.

::

    async with open_ledger("sqlite:///graphyard.db") as ledger:
        handler = LedgerHandler(ledger, run_id=..., thread_id=..., user_id=...,
                                budgets=Budgets(run_usd=0.50))
        await graph.ainvoke(inputs, {"callbacks": [handler], ...})
        print((await ledger.thread_cost(thread_id)).totals.cost_usd)

The server attaches a handler to every run (``RunManager.handlers``), flushes the ledger
before a run is marked finished, answers ``GET /threads/{id}/cost`` from it, and
``graphyard costs`` prints it as a table. Ledger rows are kept when a thread is deleted,
pruned or swept by the TTL: they are the record of money spent (and what the per-user
daily budget counts); :meth:`Ledger.delete_threads` and :meth:`Ledger.delete_before`
erase them on purpose.
"""

from graphyard.ledger._budgets import BudgetName, Budgets, OverBudget
from graphyard.ledger._handler import LedgerHandler, RunIdentity, handler_factory
from graphyard.ledger._records import CallRecord, CallStatus, CostTotals, GroupBy, ThreadCost
from graphyard.ledger._store import (
    COLUMNS,
    SCHEMA,
    Ledger,
    connect_ledger,
    open_ledger,
    utc_day_start,
)

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "BudgetName",
    "Budgets",
    "CallRecord",
    "CallStatus",
    "CostTotals",
    "GroupBy",
    "Ledger",
    "LedgerHandler",
    "OverBudget",
    "RunIdentity",
    "ThreadCost",
    "connect_ledger",
    "handler_factory",
    "open_ledger",
    "utc_day_start",
]
