"""The context budget: ``plan_window`` / ``apply_window`` keep their documented invariants.

Every test counts the prompt the model would receive (system message included) with the
same counter the plan used, so "fits" means what a provider would check.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately as count

from graphyard.context import WindowPlan, apply_window, plan_window

SYSTEM = SystemMessage("You are the support assistant of Northwind Outfitters. Be brief.")


# --- helpers -------------------------------------------------------------------------------


def tool_exchange(n_calls: int, *, tag: str, result_chars: int = 40) -> list[BaseMessage]:
    """An AI message calling ``n_calls`` tools followed by one result per call."""
    calls = [
        ToolCall(name="order_status", args={"order_id": f"A{1000 + i}"}, id=f"{tag}-{i}")
        for i in range(n_calls)
    ]
    results: list[BaseMessage] = [
        ToolMessage("r" * result_chars, tool_call_id=call["id"], name="order_status")
        for call in calls
    ]
    return [AIMessage("", tool_calls=calls), *results]


def prompt_of(messages: Sequence[BaseMessage], plan: WindowPlan, system: BaseMessage | None):
    view = apply_window(messages, plan)
    return ([system] if system is not None else []) + view


def assert_tool_pairs_whole(view: Sequence[BaseMessage]) -> None:
    """Every tool call in the view has its result in the view, and every result its call."""
    called = {c["id"] for m in view if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in view if isinstance(m, ToolMessage)}
    assert called == answered, (
        f"split tool pairs: calls {called - answered}, results {answered - called}"
    )


# --- fixed examples --------------------------------------------------------------------------


def test_the_system_message_counts_against_the_budget() -> None:
    history = [HumanMessage("h" * 200), AIMessage("a" * 200), HumanMessage("where is A1020?")]
    whole = count(history)

    without_system = plan_window(history, whole)
    with_system = plan_window(history, whole, system=SYSTEM)

    assert without_system["start"] == 0
    assert with_system["start"] == 2, "the system message must push the first turn out"
    assert with_system["tokens"] == count([SYSTEM, history[2]])
    assert count(prompt_of(history, with_system, SYSTEM)) <= whole


def test_the_window_starts_on_a_human_message_even_when_an_ai_reply_would_fit() -> None:
    history = [
        HumanMessage("q" * 400),
        AIMessage("short answer"),
        HumanMessage("and what about A1020?"),
        AIMessage("It shipped with UPS."),
    ]
    # room for the last three messages, not for the long first question
    budget = count(history[1:]) + 1

    plan = plan_window(history, budget)
    view = apply_window(history, plan)

    assert isinstance(view[0], HumanMessage)
    assert view == history[2:]
    assert plan["dropped"] == 2
    assert plan["tokens"] == count(view)


def test_an_ai_message_with_several_tool_calls_keeps_all_its_results() -> None:
    exchange = tool_exchange(3, tag="x", result_chars=200)
    history = [HumanMessage("old question"), AIMessage("old answer"), HumanMessage("where?")]
    history += exchange
    # room for the human message and two of the three results, but not for the whole group
    budget = count([history[2], exchange[0], *exchange[2:]]) + 1

    plan = plan_window(history, budget)
    view = apply_window(history, plan)

    assert count(view) <= budget
    assert_tool_pairs_whole(view)
    assert not any(isinstance(m, ToolMessage) for m in view), "a partial group was kept"
    assert view == [history[2]]


def test_an_oversized_turn_drops_older_tool_exchanges_but_keeps_question_and_latest_results() -> (
    None
):
    question = HumanMessage("Where are my orders A1001, A1002 and A1003?")
    first = tool_exchange(1, tag="first", result_chars=800)
    second = tool_exchange(1, tag="second", result_chars=800)
    latest = tool_exchange(2, tag="latest", result_chars=100)
    history = [HumanMessage("hi"), AIMessage("hello!"), question, *first, *second, *latest]
    budget = count([SYSTEM, question, *latest, *second]) - 1  # `second` cannot come along

    plan = plan_window(history, budget, system=SYSTEM)
    prompt = prompt_of(history, plan, SYSTEM)

    assert prompt[1:] == [question, *latest]
    assert plan["skip"] == (3, 7)  # both older exchanges of this turn
    assert plan["truncate"] is None
    assert plan["dropped"] == len(history) - 1 - len(latest)
    assert count(prompt) <= budget
    assert plan["tokens"] == count(prompt)


def test_a_human_message_too_big_for_the_budget_is_cut_in_the_middle_and_then_fits() -> None:
    text = "START " + "lorem ipsum dolor " * 500 + " END"
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage(text)]
    budget = 200

    plan = plan_window(history, budget, system=SYSTEM)
    prompt = prompt_of(history, plan, SYSTEM)

    assert plan["truncate"] is not None and 0 < plan["truncate"] < len(text)
    assert len(prompt) == 2 and isinstance(prompt[1], HumanMessage)
    cut = str(prompt[1].content)
    assert cut.startswith("START") and cut.endswith("END") and "[...]" in cut
    assert count(prompt) <= budget
    # cutting is as gentle as it can be: a little more text would not have fit
    assert count([SYSTEM, HumanMessage("x" * (len(cut) + 8))]) > budget


def test_a_huge_human_message_with_tool_results_after_it_still_fits() -> None:
    question = HumanMessage("please read this: " + "z" * 5000)
    history = [question, *tool_exchange(2, tag="t", result_chars=300)]

    plan = plan_window(history, 300, system=SYSTEM)
    prompt = prompt_of(history, plan, SYSTEM)

    assert isinstance(prompt[1], HumanMessage)
    assert count(prompt) <= 300
    assert_tool_pairs_whole(prompt)


def test_planning_and_applying_never_modify_the_stored_messages() -> None:
    history = [
        HumanMessage("first", id="h1"),
        AIMessage("first answer", id="a1"),
        HumanMessage("y" * 4000, id="h-big"),
        *tool_exchange(2, tag="t", result_chars=500),
    ]
    before = copy.deepcopy(history)
    plans = [plan_window(history, budget, system=SYSTEM) for budget in (60, 120, 400, 5000)]

    views = [apply_window(history, plan) for plan in plans]
    for view in views:
        view.append(HumanMessage("appended to the prompt only"))

    assert {p["truncate"] is None for p in plans} == {True, False}, "both paths must run"
    assert {p["skip"] is None for p in plans} == {True, False}, "both paths must run"
    assert history == before


def test_apply_window_never_modifies_the_stored_messages_it_cuts() -> None:
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage("w" * 3000)]
    before = copy.deepcopy(history)

    plan = plan_window(history, 100, system=SYSTEM)
    view = apply_window(history, plan)

    assert plan["truncate"] is not None
    assert view[0].content != history[2].content
    assert history == before


def test_a_plan_made_for_another_history_is_refused() -> None:
    history = [HumanMessage("hi"), AIMessage("hello")]
    plan = plan_window(history, 1000)

    with pytest.raises(ValueError, match="plan again"):
        apply_window([*history, HumanMessage("more")], plan)


def test_a_five_thousand_message_thread_plans_within_the_budget() -> None:
    rng = random.Random(5000)
    history = conversation(rng, target=5000)
    assert len(history) >= 5000
    budget = 6000

    plan = plan_window(history, budget, system=SYSTEM)
    prompt = prompt_of(history, plan, SYSTEM)

    assert count(prompt) <= budget
    assert plan["tokens"] == count(prompt)
    assert isinstance(prompt[1], HumanMessage)
    assert plan["total"] == len(history)
    assert plan["dropped"] == len(history) - (len(prompt) - 1)
    assert_tool_pairs_whole(prompt[1:])


# --- properties over random conversations ------------------------------------------------------


def conversation(rng: random.Random, *, target: int) -> list[BaseMessage]:
    """A random support conversation: human messages, plain answers, tool groups of 1-4 calls."""
    messages: list[BaseMessage] = []
    group = 0
    while len(messages) < target:
        kind = rng.choices(["human", "ai", "tools"], weights=[4, 3, 3])[0]
        if kind == "human":
            messages.append(HumanMessage("h" * rng.choice([1, 20, 80, 300, 1500, 6000])))
        elif kind == "ai":
            messages.append(AIMessage("a" * rng.randint(0, 600)))
        else:
            group += 1
            messages += tool_exchange(
                rng.randint(1, 4), tag=f"g{group}", result_chars=rng.randint(0, 900)
            )
    return messages


@pytest.mark.parametrize("seed", range(300))
def test_every_plan_fits_starts_on_the_latest_human_turn_and_keeps_tool_pairs(seed: int) -> None:
    rng = random.Random(seed)
    history = conversation(rng, target=rng.randint(1, 40))
    system = rng.choice([None, SYSTEM])
    fixed = count([system]) if system is not None else 0
    budget = fixed + rng.randint(12, 3000)  # always room for a cut human message
    before = copy.deepcopy(history)

    plan = plan_window(history, budget, system=system)
    view = apply_window(history, plan)
    prompt = ([system] if system is not None else []) + view

    assert history == before
    assert count(prompt) <= budget, plan
    assert plan["dropped"] == len(history) - len(view)
    if plan["truncate"] is None:
        assert plan["tokens"] == count(prompt)
    assert_tool_pairs_whole(view)

    humans = [i for i, m in enumerate(history) if isinstance(m, HumanMessage)]
    if not humans:
        return
    # starts on a human turn, and the current question is always there
    assert isinstance(view[0], HumanMessage)
    assert plan["start"] == humans[-1] or plan["start"] in humans
    assert plan["start"] <= humans[-1]
    if plan["skip"] is None and plan["truncate"] is None:
        # the largest window: starting one human turn earlier would not fit
        earlier = [i for i in humans if i < plan["start"]]
        if earlier:
            assert count(([system] if system else []) + history[earlier[-1] :]) > budget
