"""The reference agent's demo data: a small SQLite shop and a help-center knowledge base.

Both ship inside the package (``data/shop.sql``, ``data/kb/*.md``), so the agent works on a
fresh machine with no setup. The shop database is created from the seed on first use.
These functions are synchronous; tools run them in a worker thread, never on the event loop.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["Article", "DemoShop", "KnowledgeBase", "normalize_order_id"]

_DATA = files("graphyard.agent") / "data"
ORDER_ID = re.compile(r"\b#?([Aa]\d{4})\b")


def normalize_order_id(text: str) -> str | None:
    """The first order id in ``text``, upper-cased: ``"order #a1003?"`` -> ``"A1003"``."""
    match = ORDER_ID.search(text)
    return match.group(1).upper() if match else None


class DemoShop:
    """Orders and tickets of the fictional Northwind Outfitters, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seeded = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        if not self._seeded:
            with self._lock:
                if not self._seeded:
                    seed = (_DATA / "shop.sql").read_text(encoding="utf-8")
                    conn.executescript(f"BEGIN;\n{seed}\nCOMMIT;")  # one transaction: 75x faster
                    self._seeded = True
        return conn

    def order(self, order_id: str) -> dict[str, Any] | None:
        """An order with its items, or ``None``."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id.upper(),)).fetchone()
            if row is None:
                return None
            items = conn.execute(
                "SELECT sku, name, quantity, unit_price_cents FROM order_items WHERE order_id = ?",
                (row["id"],),
            ).fetchall()
        order = dict(row)
        order["items"] = [dict(item) for item in items]
        return order

    def create_ticket(
        self,
        *,
        subject: str,
        body: str,
        priority: str = "normal",
        order_id: str | None = None,
        customer_email: str | None = None,
    ) -> dict[str, Any]:
        """Insert a ticket and return it."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO tickets (subject, body, priority, order_id, customer_email)"
                " VALUES (?, ?, ?, ?, ?)",
                (subject, body, priority, order_id, customer_email),
            )
            row = conn.execute("SELECT * FROM tickets WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return dict(row)

    def tickets(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM tickets ORDER BY id")]


@dataclass(frozen=True, slots=True)
class Article:
    slug: str
    title: str
    text: str


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _stem(word: str) -> str:
    """Plural and -ed/-ing endings off, so "refunds" finds "refund" (enough for a help center)."""
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + repl
    return word


def _terms(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


class KnowledgeBase:
    """Help-center articles searched with BM25 (k1=1.5, b=0.75)."""

    def __init__(self, articles: list[Article] | None = None) -> None:
        self._given = articles

    @cached_property
    def articles(self) -> list[Article]:
        if self._given is not None:
            return self._given
        out = []
        for entry in sorted((_DATA / "kb").iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".md"):
                text = entry.read_text(encoding="utf-8")
                title = text.splitlines()[0].lstrip("# ").strip()
                out.append(Article(entry.name.removesuffix(".md"), title, text))
        return out

    @cached_property
    def _index(self) -> tuple[list[Counter[str]], dict[str, int], float]:
        docs = [Counter(_terms(" ".join([a.title] * 4 + [a.text]))) for a in self.articles]
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        avg = sum(sum(d.values()) for d in docs) / max(len(docs), 1)
        return docs, dict(df), avg

    def search(self, query: str, k: int = 3) -> list[tuple[Article, float]]:
        """The ``k`` best articles for ``query`` with their scores, best first."""
        docs, df, avg = self._index
        n = len(docs)
        scores = []
        for article, doc in zip(self.articles, docs, strict=True):
            length = sum(doc.values())
            score = 0.0
            for term in set(_terms(query)):
                tf = doc.get(term, 0)
                if tf:
                    idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                    score += idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * length / avg))
            if score > 0:
                scores.append((article, score))
        scores.sort(key=lambda pair: -pair[1])
        return scores[:k]
