"""graphyard's context windows vs no trimming and the common last-N recipe, side by side.

Deterministic synthetic support conversations (20-200 turns, generated here from a seed):
each turn is a customer message, sometimes an order lookup (tool call + result), and an
answer. Six facts are planted at known turns (order id, e-mail, account number, phone,
a stated preference, a tracking number that only a tool result gave), each in one of
several phrasings, and the conversation ends with one question about each of them.

Strategies, all at the same token budget (the seed's formula: 80% of the window minus the
completion budget; a 7,280-token window and 1,024 completion tokens give 4,800, the trimmed
size in shared/NOTES.md's Sonnet example):

- ``none``: the whole history every call;
- ``last-N``: ``langchain_core.messages.trim_messages(strategy="last", start_on="human")``,
  the common recipe (what the seed's trim step did);
- ``graphyard``: :class:`graphyard.context.ContextWindow` (chunked window, pinned facts;
  summary off, as by default).

Printed: input tokens per conversation (and at the call where the history first reaches
12k tokens), the share of planted facts visible to the model when it is asked about them,
and the input cost per call at Claude Sonnet 4.5 prices (from genai-prices, through
``graphyard.models.call_cost``) with Anthropic prompt caching on and off. Caching is
simulated the way Anthropic documents it: a breakpoint caches the prefix up to it (at least
1,024 tokens for Sonnet); a later request reads the longest cached prefix that ends at one
of its breakpoints or up to 20 blocks before one (0.1x), writes the rest up to its last
breakpoint (1.25x), and pays the remainder at the base price; calls are assumed to come
within the 5-minute cache lifetime. Breakpoints: graphyard's own (system text + last
message); for ``none`` and ``last-N`` the last message and the system text, as
``AnthropicPromptCachingMiddleware`` places them. Token counts are LangChain's approximate
counter (no network); tool schemas are left out for every strategy alike.

Run::

    .venv/bin/python benchmarks/context.py
    .venv/bin/python benchmarks/context.py --seeds 3 --turns 20 50 100 200
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    trim_messages,
)
from langchain_core.messages.utils import count_tokens_approximately as count

from graphyard.context import ContextWindow, build_prompt
from graphyard.models import call_cost

WINDOW, COMPLETION = 7_280, 1_024
BUDGET = int(WINDOW * 0.8) - COMPLETION  # 4,800
SONNET = "anthropic:claude-sonnet-4-5"
MIN_CACHEABLE = 1_024
LOOKBACK = 20
SYSTEM = SystemMessage(
    "You are the support assistant of Northwind Outfitters, an outdoor-gear shop. Answer "
    "customers briefly and politely. Look orders up with the order_status tool before you "
    "answer about them; never invent tracking numbers, dates or prices. Offer a ticket to a "
    "human when you cannot help. Refunds take 5-7 business days after the return arrives; "
    "returns are free within 30 days; international shipping takes 7-14 days. " * 2
)

FIRST = ["Dana Reyes", "Kim Osei", "Lee Park", "Sam Novak", "Ava Lind", "Omar Haddad"]
TOPICS = [
    "Can I return boots that I wore once on a short walk?",
    "How long does a refund take once you get the parcel back?",
    "Do you ship tents to Canada, and how long does it take?",
    "Is the Alpine 2 tent waterproof enough for heavy rain?",
    "What sizes does the trail jacket come in, and does it run small?",
    "My promo code did not apply at checkout, can you check why?",
    "Can I change the delivery address after the order shipped?",
    "The zipper on my backpack broke after two weeks, is that covered?",
    "Do you price-match other outdoor shops?",
    "How do I reset the password on my account?",
]
ANSWERS = [
    "Yes, you can return items within 30 days as long as they are in good condition. ",
    "Refunds are issued 5-7 business days after the return reaches our warehouse. ",
    "We ship there; delivery usually takes 7-14 days and duties may apply on arrival. ",
    "That is covered by the one-year warranty; I can start a repair or replacement. ",
    "I can look into that for you; it may take a moment to check with the team. ",
]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS"]


@dataclass
class Fact:
    kind: str
    value: str
    statement: str
    question: str
    turn: int
    by_tool: bool = False


def _facts(rng: random.Random, turns: int) -> list[Fact]:
    order = f"A{rng.randint(1000, 9999)}"
    name = rng.choice(FIRST)
    email = f"{name.split()[0].lower()}.{rng.randint(10, 99)}@example.org"
    account = f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(100, 999)}"
    phone = f"+1 415 555 {rng.randint(1000, 9999)}"
    tracking = "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRTUVWXY") for _ in range(16))
    preference = rng.choice(
        [
            ("Please always ship to my office, not my home.", "ship to my office"),
            ("I prefer email over phone calls.", "prefer email"),
            ("Please don't call me before noon.", "call me before noon"),
            ("My size is medium in everything.", "size is medium"),
        ]
    )
    facts = [
        Fact(
            "order id",
            order,
            rng.choice(
                [
                    f"My order number is {order}.",
                    f"It's about order #{order}.",
                    f"Order {order} has not arrived yet.",
                ]
            ),
            "Which order were we talking about at the start?",
            0,
        ),
        Fact(
            "email",
            email,
            rng.choice(
                [
                    f"You can reach me at {email}.",
                    f"My email is {email} if you need it.",
                    f"Send the return label to {email} please.",
                ]
            ),
            "What email address did I give you?",
            0,
        ),
        Fact(
            "account number",
            account,
            rng.choice(
                [
                    f"My account number is {account}.",
                    f"The account is {account} in case you need it.",
                    f"Account no. {account}, under the name {name}.",
                ]
            ),
            "Can you repeat my account number?",
            0,
        ),
        Fact(
            "phone",
            phone,
            rng.choice([f"Call me on {phone} if anything changes.", f"My phone is {phone}."]),
            "What phone number do you have for me?",
            0,
        ),
        Fact(
            "preference",
            preference[1],
            preference[0],
            "How did I ask to be contacted or served?",
            0,
        ),
        Fact(
            "tracking number",
            tracking,
            f"order_status:{order}:{rng.choice(CARRIERS)}:{tracking}",
            "What was the tracking number of my order again?",
            0,
            by_tool=True,
        ),
    ]
    # planted across the first 70% of the conversation, at turns fixed by the seed
    slots = sorted(rng.sample(range(1, max(int(turns * 0.7), len(facts) + 1)), len(facts)))
    for fact, turn in zip(facts, slots, strict=True):
        fact.turn = turn
    return facts


def _lookup(order: str, carrier: str, tracking: str | None, n: int) -> list[BaseMessage]:
    call = ToolCall(name="order_status", args={"order_id": order}, id=f"call_{n}")
    status = (
        f"Order {order}: shipped {n % 27 + 1} Nov via {carrier}, tracking {tracking}, "
        "2 items (trail jacket, Alpine 2 tent), arriving in 3-5 business days."
        if tracking
        else f"Order {order}: processing, 1 item (merino socks), expected to ship within 2 days."
    )
    return [
        AIMessage("", tool_calls=[call], id=f"ai-call-{n}"),
        ToolMessage(status, tool_call_id=call["id"], name="order_status", id=f"tool-{n}"),
    ]


def conversation(turns: int, seed: int) -> tuple[list[list[BaseMessage]], list[Fact]]:
    """The conversation as turns (each a list of messages up to the model call), and its facts."""
    rng = random.Random(f"{turns}-{seed}")
    facts = _facts(rng, turns)
    by_turn = {f.turn: f for f in facts}
    out: list[list[BaseMessage]] = []
    for turn in range(turns):
        fact = by_turn.get(turn)
        topic = rng.choice(TOPICS)
        msgs: list[BaseMessage] = []
        if fact and fact.by_tool:
            _, order, carrier, tracking = fact.statement.split(":")
            msgs.append(HumanMessage(f"Where is my parcel? {topic}", id=f"h{turn}"))
            msgs += _lookup(order, carrier, tracking, turn)
        else:
            text = f"{fact.statement} {topic}" if fact else topic
            if rng.random() < 0.4:
                text += " " + rng.choice(TOPICS)
            msgs.append(HumanMessage(text, id=f"h{turn}"))
            if rng.random() < 0.3:
                other = f"A{rng.randint(1000, 9999)}"
                msgs += _lookup(other, rng.choice(CARRIERS), None, turn)
        out.append(msgs)
    for i, fact in enumerate(facts):
        out.append([HumanMessage(fact.question, id=f"q{i}")])
    return out, facts


def answer(rng: random.Random, turn: int) -> AIMessage:
    return AIMessage("".join(rng.choice(ANSWERS) for _ in range(rng.randint(1, 4))), id=f"a{turn}")


# --- strategies ---------------------------------------------------------------------------------

Strategy = Callable[[list[BaseMessage], dict], list[BaseMessage]]


def none(history: list[BaseMessage], state: dict) -> list[BaseMessage]:
    return [SYSTEM, *history]


def last_n(history: list[BaseMessage], state: dict) -> list[BaseMessage]:
    return trim_messages(
        [SYSTEM, *history],
        max_tokens=BUDGET,
        token_counter=count,
        strategy="last",
        start_on="human",
        include_system=True,
        allow_partial=False,
    )


def graphyard(window: ContextWindow) -> Strategy:
    def plan(history: list[BaseMessage], state: dict) -> list[BaseMessage]:
        # kept between calls in the packed form the reference agent stores in its checkpoints
        planned = window.plan(history, state.get("ctx"), system=SYSTEM)
        state["ctx"] = window.pack(history, planned)
        return build_prompt(history, state["ctx"], SYSTEM)

    return plan


# --- Anthropic prompt caching, simulated ------------------------------------------------------------


def _blocks(prompt: Sequence[BaseMessage]) -> tuple[list[tuple[str, int]], list[int]]:
    """(hash of the prefix ending at each block, tokens of that block), and breakpoint indices."""
    blocks: list[tuple[str, int]] = []
    marks: list[int] = []
    digest = hashlib.sha256()
    for message in prompt:
        content = message.content
        parts = [content] if isinstance(content, str) else content
        for i, part in enumerate(parts):
            text = part if isinstance(part, str) else str(part.get("text", ""))
            digest.update(f"{message.type}|{text}|{getattr(message, 'tool_calls', '')}".encode())
            tokens = -(-len(text) // 4) + (3 if i == len(parts) - 1 else 0)
            if isinstance(message, AIMessage) and message.tool_calls:
                tokens += len(repr(message.tool_calls)) // 4
            blocks.append((digest.copy().hexdigest(), tokens))
            if isinstance(part, dict) and "cache_control" in part:
                marks.append(len(blocks) - 1)
    return blocks, marks


def _middleware_marks(prompt: list[BaseMessage]) -> list[BaseMessage]:
    """Breakpoints where AnthropicPromptCachingMiddleware puts them: system text, last message."""
    mark = {"type": "ephemeral"}
    system, *rest = prompt
    out: list[BaseMessage] = [
        SystemMessage([{"type": "text", "text": str(system.content), "cache_control": mark}])
    ]
    last = rest[-1]
    out += rest[:-1]
    out.append(
        last.model_copy(
            update={"content": [{"type": "text", "text": str(last.content), "cache_control": mark}]}
        )
    )
    return out


@dataclass
class Cache:
    entries: set[str] = field(default_factory=set)

    def charge(self, prompt: Sequence[BaseMessage]) -> tuple[int, int, int]:
        """(input tokens, cache read, cache write) of one request; updates the cache."""
        blocks, marks = _blocks(prompt)
        prefix = [0]
        for _, tokens in blocks:
            prefix.append(prefix[-1] + tokens)
        total = prefix[-1]
        read_end = 0
        for mark in marks:
            for i in range(mark, max(mark - LOOKBACK, -1), -1):
                if blocks[i][0] in self.entries:
                    read_end = max(read_end, i + 1)
                    break
        write_end = read_end
        for mark in marks:
            if prefix[mark + 1] >= MIN_CACHEABLE:
                self.entries.add(blocks[mark][0])
                write_end = max(write_end, mark + 1)
        read = prefix[read_end]
        write = prefix[write_end] - read
        return total, read, write


def cost(total: int, read: int, write: int) -> float:
    usage = {
        "input_tokens": total,
        "output_tokens": 0,
        "total_tokens": total,
        "input_token_details": {"cache_read": read, "cache_creation": write},
    }
    return call_cost(SONNET, usage)  # type: ignore[arg-type]


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    tokens: int = 0
    calls: int = 0
    at_12k: list[int] = field(default_factory=list)
    full_at_12k: list[int] = field(default_factory=list)
    facts: int = 0
    seen: int = 0
    cost_cached: float = 0.0
    cost_plain: float = 0.0
    history: int = 0


def run(turns: int, seed: int, name: str, strategy: Strategy, cached: Callable) -> Result:
    rng = random.Random(f"answers-{turns}-{seed}")
    plan, facts = conversation(turns, seed)
    history: list[BaseMessage] = []
    state: dict = {}
    cache = Cache()
    result = Result()
    reached = False
    for i, msgs in enumerate(plan):
        history += msgs
        prompt = strategy(history, state)
        tokens = count(prompt)
        result.tokens += tokens
        result.calls += 1
        full = count([SYSTEM, *history])
        result.history = full
        if full >= 12_000 and not reached:
            reached = True
            result.at_12k.append(tokens)
            result.full_at_12k.append(full)
        total, read, write = cache.charge(cached(prompt))
        result.cost_cached += cost(total, read, write)
        result.cost_plain += cost(tokens, 0, 0)
        if i >= turns:  # a closing question about fact i - turns
            fact = facts[i - turns]
            result.facts += 1
            text = " ".join(str(m.content) for m in prompt)
            result.seen += fact.value.lower() in text.lower()
        history.append(answer(rng, i))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--turns", type=int, nargs="+", default=[20, 50, 100, 150, 200])
    args = parser.parse_args()

    window = lambda: ContextWindow(window=WINDOW, max_tokens=COMPLETION, cache_breakpoints=True)  # noqa: E731
    strategies: dict[str, tuple[Callable[[], Strategy], Callable]] = {
        "none": (lambda: none, _middleware_marks),
        "last-N": (lambda: last_n, _middleware_marks),
        "graphyard": (lambda: graphyard(window()), lambda p: p),
    }
    totals: dict[str, Result] = {name: Result() for name in strategies}
    print(
        f"budget {BUDGET} tokens (window {WINDOW} x 0.8 - {COMPLETION}); {args.seeds} seeds per length\n"
    )
    print("input tokens per conversation (mean over seeds) and planted facts visible when asked")
    print(
        f"{'turns':>5} {'history':>8} | {'none':>8} {'last-N':>8} {'graphyard':>9} {'ratio':>6} | "
        f"{'facts none':>10} {'last-N':>7} {'graphyard':>9}"
    )
    for turns in args.turns:
        per: dict[str, list[Result]] = {name: [] for name in strategies}
        for seed in range(args.seeds):
            for name, (make, cached) in strategies.items():
                r = run(turns, seed, name, make(), cached)
                per[name].append(r)
                t = totals[name]
                t.tokens += r.tokens
                t.calls += r.calls
                t.at_12k += r.at_12k
                t.full_at_12k += r.full_at_12k
                t.facts += r.facts
                t.seen += r.seen
                t.cost_cached += r.cost_cached
                t.cost_plain += r.cost_plain
        mean = {n: statistics.mean(r.tokens for r in rs) for n, rs in per.items()}
        seen = {n: sum(r.seen for r in rs) / sum(r.facts for r in rs) for n, rs in per.items()}
        history = statistics.mean(r.history for r in per["none"])
        print(
            f"{turns:>5} {history:>8,.0f} | {mean['none']:>8,.0f} {mean['last-N']:>8,.0f} "
            f"{mean['graphyard']:>9,.0f} {mean['graphyard'] / mean['none']:>6.2f} | "
            f"{seen['none']:>10.0%} {seen['last-N']:>7.0%} {seen['graphyard']:>9.0%}"
        )

    print("\nthe call where the history first reaches 12k tokens (conversations that get there)")
    n12 = len(totals["none"].at_12k)
    if not n12:
        print("  none reached 12k tokens: add longer conversations (--turns 150 200)")
        return
    full = statistics.mean(totals["none"].at_12k)
    for name in strategies:
        tokens = statistics.mean(totals[name].at_12k)
        print(
            f"  {name:<10} {tokens:>8,.0f} input tokens  ({1 - tokens / full:>5.1%} fewer than none; n={n12})"
        )

    print("\nall conversations: input tokens and planted facts visible")
    for name, t in totals.items():
        print(
            f"  {name:<10} {t.tokens:>11,} tokens  {1 - t.tokens / totals['none'].tokens:>6.1%} fewer"
            f"  facts visible {t.seen}/{t.facts} = {t.seen / t.facts:.1%}"
        )

    print(
        "\ninput cost per turn (one model call each) at claude-sonnet-4-5 prices (genai-prices), caching off vs on"
    )
    print(f"  {'strategy':<10} {'no cache':>10} {'cache':>10} {'cache/no':>9}")
    for name, t in totals.items():
        plain, cached = t.cost_plain / t.calls * 100, t.cost_cached / t.calls * 100
        print(f"  {name:<10} {plain:>8.3f} c {cached:>8.3f} c {cached / plain:>9.2f}")
    g = totals["graphyard"]
    print(
        f"\ngraphyard with caching vs graphyard without: "
        f"{g.cost_cached / g.calls * 100:.3f} c vs {g.cost_plain / g.calls * 100:.3f} c per turn "
        f"({g.cost_cached / g.cost_plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
