"""Caching, side by side: the reference agent with and without graphyard's answer/KB caches.

The workload is support traffic derived from the knowledge base's 14 topics (seeded, so
every run is the same):

- 60% help-center questions: a topic drawn Zipf-like (s=1.1; refunds, returns and
  shipping dominate, as in most support queues). Half of them (``--typed-share``) use one
  of three phrasings per topic (weights 0.6/0.25/0.15: the wording a FAQ widget suggests,
  and two common variants), with case and punctuation varied as people type; the other
  half are typed in the customer's own words (the question plus a detail of their own,
  e.g. a trip they plan), which an exact-match cache can never hit;
- 25% order questions: one of 40 users asks about one of *their own* orders
  ("Where is order A1017?"); these are personal: cached for that user only;
- 15% one-off questions (a product and colour combination): almost never repeated.

Each request is a fresh thread (a new chat from a help widget), answered by the ``mid``
tier as a tool-calling model: the first call picks a tool (``search_help_articles`` or
``order_status``), the second answers from its result, like a real agent. As a real model does, the
scripted one searches with a short query (the best article's title), not the customer's
words, so free-typed questions on one topic share knowledge-base searches. The model is
``ScriptedChatModel`` (it streams and reports token usage from the real prompt sizes) priced
as ``anthropic:claude-haiku-4-5`` by genai-prices ($1 / $5 per 1M tokens). Storage is real:
the official async SQLite checkpointer, and the cache in its sibling ``.cache.db`` file.

Printed: the share of requests that repeat an earlier one (same normalized text, and same
user for personal ones: the best any exact-match cache can do), the hit rates, model
calls, dollars, and time to first answer token (TTFT) on a hit vs a miss. TTFT is taken
twice: with the scripted model instant (graphyard's own overhead), and with a simulated
hosted-model latency (``--ttft`` seconds before a call's first chunk, ``--token-delay``
between chunks), on ``--latency-sample`` new questions then the same questions again.

Run::

    .venv/bin/python benchmarks/cache.py                 # 300 requests
    .venv/bin/python benchmarks/cache.py --requests 1000 --ttft 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk

from graphyard.agent import DemoShop, KnowledgeBase, build_graph
from graphyard.caching import GraphCache, normalize_question, open_cache, question_scope
from graphyard.config import TIERS, Settings
from graphyard.models import Tier
from graphyard.persistence import open_saver
from graphyard.testing import ScriptedChatModel

MODEL = "anthropic:claude-haiku-4-5"

TOPICS: list[tuple[str, ...]] = [  # most asked first (Zipf rank)
    ("What is your refund policy?", "How long do refunds take?", "when do refunds arrive"),
    ("How do I return an item?", "What is your return policy?", "can I return something I bought"),
    ("How long does shipping take?", "When will an order arrive?", "shipping times"),
    ("How do I track an order?", "Where can I see tracking for an order?", "tracking number help"),
    ("Can I cancel an order?", "How do I cancel an order?", "cancel an order before it ships"),
    ("Do you ship internationally?", "Do you ship to Canada?", "international shipping cost"),
    ("How do exchanges work?", "Can I exchange a size?", "exchange for another colour"),
    ("What does the warranty cover?", "Is there a warranty on tents?", "warranty claim"),
    ("My item arrived damaged, what do I do?", "The product is broken on arrival", "damaged item"),
    ("How do I reset the password?", "I forgot the password", "password reset email"),
    ("Which payment methods do you accept?", "Can I pay with PayPal?", "payment options"),
    (
        "How do I change the delivery address?",
        "Can I change the shipping address?",
        "address change",
    ),
    ("How do I find the right size?", "Do your boots run small?", "size guide"),
    ("How can I contact support?", "What are your support hours?", "support phone number"),
]
PRODUCTS = ["Alpine 2 tent", "Stormshell jacket", "Trail Runner shoes", "Summit pack", "Ridge boots",
            "Camp stove", "Down sleeping bag", "Trekking poles", "Rain pants", "Fleece hoodie"]  # fmt: skip
COLOURS = ["red", "blue", "green", "black", "orange", "grey", "olive", "navy", "sand", "teal"]
ORDERS = [f"A{1001 + i}" for i in range(30)]


@dataclass
class Request:
    user: str
    text: str
    kind: str  # help | order | one-off


PLACES = ["Banff", "Patagonia", "the Alps", "Iceland", "Yosemite", "the Lake District", "Norway",
          "Scotland", "Colorado", "the Dolomites", "Japan", "New Zealand", "Peru", "Nepal", "Utah"]  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip


def workload(n: int, seed: int = 7, typed_share: float = 0.5) -> list[Request]:
    """The seeded request mix described in the module docstring."""
    rng = random.Random(seed)
    users = [f"user{i:02d}" for i in range(40)]
    owned = {u: rng.sample(ORDERS, rng.choice([1, 2])) for u in users}
    topic_weights = [1 / (rank + 1) ** 1.1 for rank in range(len(TOPICS))]
    out: list[Request] = []
    for _ in range(n):
        user = rng.choice(users)
        roll = rng.random()
        if roll < 0.60:
            topic = rng.choices(TOPICS, topic_weights)[0]
            text = rng.choices(topic, [0.6, 0.25, 0.15])[0]
            if rng.random() < typed_share:
                text = f"Hi, we are going to {rng.choice(PLACES)} in {rng.choice(MONTHS)}. {text}"
            else:
                variants = [
                    text,
                    text.lower(),
                    text.rstrip("?"),
                    text.upper() if len(text) < 20 else text,
                ]
                text = rng.choice(variants)
            out.append(Request(user, text, "help"))
        elif roll < 0.85:
            out.append(Request(user, f"Where is order {rng.choice(owned[user])}?", "order"))
        else:
            product, colour = rng.choice(PRODUCTS), rng.choice(COLOURS)
            out.append(Request(user, f"Do you have the {product} in {colour}?", "one-off"))
    return out


def repeat_share(requests: Sequence[Request]) -> float:
    """Requests equal to an earlier one for the same audience: an exact-match cache's ceiling."""
    seen: set[tuple[str, str]] = set()
    repeats = 0
    for r in requests:
        scope = question_scope(r.text)
        key = (normalize_question(r.text), r.user if scope == "user" else "")
        repeats += key in seen
        seen.add(key)
    return repeats / len(requests)


class HostedLikeModel(ScriptedChatModel):
    """The scripted model plus a fixed wait before a call's first chunk (a provider's TTFT)."""

    first_token_delay: float = 0.0

    async def _astream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:  # fmt: skip
        if self.first_token_delay:
            await asyncio.sleep(self.first_token_delay)
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


def agent_model(
    kb: KnowledgeBase, *, ttft: float = 0.0, token_delay: float = 0.0
) -> HostedLikeModel:
    """A tool-calling support model: pick a tool, then answer from what it returned."""

    def respond(messages: list[BaseMessage]) -> str | AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            facts = " ".join(str(last.content).replace("#", "").split()[:45])
            return (
                f"Thanks for asking! Here is what I found: {facts}. Anything else I can help with?"
            )
        text = str(last.content)
        call_id = f"call_{uuid.uuid4().hex[:10]}"
        if order := next((o for o in ORDERS if o in text.upper()), None):
            call = {
                "name": "order_status",
                "args": {"order_id": order},
                "id": call_id,
                "type": "tool_call",
            }
            return AIMessage("", tool_calls=[call])  # type: ignore[list-item]
        if found := kb.search(text, k=1):
            call = {
                "name": "search_help_articles",
                "args": {"query": found[0][0].title.lower()},  # a short query, as models write
                "id": call_id,
                "type": "tool_call",
            }
            return AIMessage("", tool_calls=[call])  # type: ignore[list-item]
        return "I could not find that in our help center; I will pass your question to the team."

    return HostedLikeModel(responses=[respond], delay=token_delay, first_token_delay=ttft)


def tiers_of(model: ScriptedChatModel) -> dict[Any, Tier]:
    return {
        t: Tier(
            name=t,
            model_id=MODEL,
            chat_model=model,
            context_window=200_000,
            max_tokens=1024,
            supports_tools=True,
        )
        for t in TIERS
    }


@dataclass
class Outcome:
    ttft: list[tuple[bool, float]] = field(default_factory=list)  # (hit, seconds)
    dollars: float = 0.0
    seconds: float = 0.0


async def ask(graph: Any, r: Request) -> tuple[bool, float, float]:
    """``(hit, seconds to the first answer token, dollars)`` of one request."""
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "user_id": r.user, "tier": "mid"}}
    start = time.perf_counter()
    first: float | None = None
    hit = False
    async for mode, chunk in graph.astream(
        {"messages": [HumanMessage(r.text, id=str(uuid.uuid4()))]},
        config,
        stream_mode=["messages", "custom"],
    ):
        if mode == "custom" and chunk.get("type") == "cache_hit":
            hit = True
        elif (
            mode == "messages"
            and first is None
            and isinstance(chunk[0], AIMessageChunk)
            and chunk[0].content
        ):
            first = time.perf_counter() - start
    state = (await graph.aget_state(config)).values
    return (
        hit,
        first if first is not None else time.perf_counter() - start,
        float(state.get("cost_usd") or 0.0),
    )


@asynccontextmanager
async def agent(
    directory: Path, model: ScriptedChatModel, *, cached: bool
) -> AsyncIterator[tuple[Any, GraphCache | None]]:
    db = directory / f"{'cached' if cached else 'plain'}-{uuid.uuid4().hex[:6]}.db"
    settings = Settings(
        checkpointer=f"sqlite:///{db}", shop_db=directory / "shop.db", router="rules"
    )
    settings = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": cached})}
    )
    async with (
        open_saver(settings.checkpointer, settings=settings) as saver,
        open_cache(settings) as cache,
    ):
        kb = KnowledgeBase()
        graph = build_graph(tiers_of(model), settings, cache=cache, kb=kb).compile(
            checkpointer=saver, cache=cache
        )
        yield graph, cache


async def run(
    requests: Sequence[Request], directory: Path, *, cached: bool, kb: KnowledgeBase
) -> tuple[Outcome, int, GraphCache | None, dict[str, Any]]:
    model = agent_model(kb)
    outcome = Outcome()
    stats: dict[str, Any] = {}
    async with agent(directory, model, cached=cached) as (graph, cache):
        start = time.perf_counter()
        for r in requests:
            hit, ttft, dollars = await ask(graph, r)
            outcome.ttft.append((hit, ttft))
            outcome.dollars += dollars
        outcome.seconds = time.perf_counter() - start
        if cache is not None:
            stats = {c.name: c for c in await cache.astats()}
    return outcome, len(model.calls), cache, stats


async def latency(
    directory: Path, sample: int, ttft: float, token_delay: float, kb: KnowledgeBase
) -> tuple[list[float], list[float]]:
    model = agent_model(kb, ttft=ttft, token_delay=token_delay)
    questions = [Request("user00", topic[0], "help") for topic in TOPICS[:sample]]
    async with agent(directory, model, cached=True) as (graph, _):
        misses = [await ask(graph, r) for r in questions]
        hits = [await ask(graph, r) for r in questions]
    assert not any(h for h, _, _ in misses) and all(h for h, _, _ in hits), (
        "expected misses then hits"
    )
    return [t for _, t, _ in misses], [t for _, t, _ in hits]


def p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main(n: int, sample: int, ttft: float, token_delay: float, typed_share: float) -> None:
    requests = workload(n, typed_share=typed_share)
    kinds = {k: sum(r.kind == k for r in requests) / n for k in ("help", "order", "one-off")}
    with tempfile.TemporaryDirectory(prefix="graphyard-bench-cache-") as tmp:
        directory = Path(tmp)
        await asyncio.to_thread(lambda: DemoShop(directory / "shop.db").tickets())  # seed once
        kb = KnowledgeBase()
        plain, plain_calls, _, _ = await run(requests, directory, cached=False, kb=kb)
        cached, cached_calls, _, stats = await run(requests, directory, cached=True, kb=kb)
        slow_miss, slow_hit = await latency(directory, sample, ttft, token_delay, kb)

    answers, kb_task = stats.get("answers"), stats.get("task:kb_search")
    hit_ttft = [t for h, t in cached.ttft if h]
    miss_ttft = [t for h, t in cached.ttft if not h]
    print(f"workload: {n} requests, {kinds['help']:.0%} help questions / {kinds['order']:.0%} order "
          f"questions / {kinds['one-off']:.0%} one-off; {repeat_share(requests):.1%} repeat an earlier "
          f"request (same text, same user for personal ones)")  # fmt: skip
    print(
        f"model: scripted, priced as {MODEL} (genai-prices); SQLite checkpointer + sibling cache file\n"
    )
    rows = [
        ("answer-cache hit rate", "-", f"{answers.hit_rate:.1%}" if answers else "-", ""),
        ("  hits / misses / not cacheable", "-",
         f"{answers.hits} / {answers.misses} / {n - answers.hits - answers.misses}" if answers else "-", ""),
        ("KB-search task hit rate (answer misses only)", "-", f"{kb_task.hit_rate:.1%}" if kb_task else "-", ""),
        ("model calls", f"{plain_calls}", f"{cached_calls}", f"{cached_calls / plain_calls:.2f}x"),
        ("dollars", f"${plain.dollars:.4f}", f"${cached.dollars:.4f}", f"{cached.dollars / plain.dollars:.2f}x"),
        ("dollars saved (cache stats)", "-", f"${answers.saved_usd:.4f}" if answers else "-", ""),
        ("wall time, all requests", f"{plain.seconds:.1f} s", f"{cached.seconds:.1f} s",
         f"{cached.seconds / plain.seconds:.2f}x"),
        ("TTFT p50, instant model: no cache vs cache miss", f"{p50([t for _, t in plain.ttft]) * 1000:.1f} ms",
         f"{p50(miss_ttft) * 1000:.1f} ms", f"{p50(miss_ttft) / p50([t for _, t in plain.ttft]):.2f}x"),
        ("TTFT p50, instant model: miss vs hit", f"{p50(miss_ttft) * 1000:.1f} ms", f"{p50(hit_ttft) * 1000:.1f} ms",
         f"{p50(hit_ttft) / p50(miss_ttft):.2f}x"),
        (f"TTFT p50, hosted-like ({ttft:.2f} s + {token_delay * 1000:.0f} ms/token): miss vs hit",
         f"{p50(slow_miss) * 1000:.0f} ms", f"{p50(slow_hit) * 1000:.0f} ms", f"{p50(slow_hit) / p50(slow_miss):.3f}x"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'no cache':>14}  {'with cache':>18}  {'ratio':>8}")
    for name, a, b, ratio in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>18}  {ratio:>8}")
    print(f"\n(TTFT 'miss vs hit' rows: the 'no cache' column is the miss, 'with cache' the hit; hosted-like sample: "
          f"{len(slow_miss)} questions asked twice)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--latency-sample", type=int, default=10, help="questions (<= 14) for the TTFT sample"
    )
    parser.add_argument(
        "--ttft", type=float, default=0.4, help="simulated provider time to first chunk, s"
    )
    parser.add_argument(
        "--token-delay", type=float, default=0.01, help="simulated seconds between chunks"
    )
    parser.add_argument(
        "--typed-share", type=float, default=0.5, help="help questions in own words"
    )
    args = parser.parse_args()
    sample = min(args.latency_sample, len(TOPICS))
    asyncio.run(main(args.requests, sample, args.ttft, args.token_delay, args.typed_share))
