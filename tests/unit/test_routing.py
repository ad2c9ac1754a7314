"""The learned router: metrics, thresholds, the shipped artifact, and router selection.

Some tests read RouteLLM's labels from ../shared/data (CI has that folder beside the clone);
they fail loudly if it is missing rather than skip.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphyard.agent import build_graph
from graphyard.config import Settings
from graphyard.errors import ConfigError
from graphyard.models import ScriptedChatModel
from graphyard.routing import (
    LearnedRouter,
    LLMRouter,
    RouterModel,
    RuleRouter,
    build_router,
    default_router_path,
)
from graphyard.routing._data import LabeledSet, load_labeled
from graphyard.routing._eval import apgr, cpt, evaluate, pgr_curve
from graphyard.routing._learned import calibrated, thresholds_for, tier_for
from graphyard.routing._train import TrainConfig, cross_fit
from graphyard.testing import scripted_tiers

ROUTELLM = Path(__file__).resolve().parents[3] / "shared" / "data" / "routellm"


@pytest.fixture(scope="module")
def gsm8k() -> LabeledSet:
    assert (ROUTELLM / "gsm8k").is_dir(), f"RouteLLM labels missing at {ROUTELLM}"
    return load_labeled(ROUTELLM / "gsm8k")


# --- metrics against hand-computed examples ---------------------------------------------------


def test_pgr_curve_apgr_and_cpt_match_a_hand_computed_example() -> None:
    # strong helps on the prompts scored 0.9 and 0.5; routing by score recovers it by 50%
    share, pgr = pgr_curve([0.9, 0.1, 0.5, 0.2], [1, 0, 1, 0])

    assert share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pgr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    # trapezoids: .25*(0+.5)/2 + .25*(.5+1)/2 + .25 + .25
    assert apgr(share, pgr) == pytest.approx(0.75)
    assert cpt(share, pgr, 0.5) == pytest.approx(0.25)
    assert cpt(share, pgr, 0.8) == pytest.approx(0.4)  # .25 + (.8-.5)/(1-.5) * .25


def test_a_router_that_scores_everything_the_same_draws_the_random_diagonal() -> None:
    share, pgr = pgr_curve([0.3] * 10, [1, 0, 1, 1, 0, 0, 1, -1, 1, 0])

    assert apgr(share, pgr) == pytest.approx(0.5)
    assert cpt(share, pgr, 0.8) == pytest.approx(0.8)


def test_an_oracle_passes_a_pgr_of_one_when_the_weak_model_is_sometimes_right_alone() -> None:
    gain = [1, 1, -1]  # the third prompt: weak right, strong wrong
    share, pgr = pgr_curve(gain, gain)

    assert pgr.tolist() == [0.0, 2.0, 1.0]
    assert apgr(share, pgr) == pytest.approx(2 / 3 + 0.5)


def test_bootstrap_intervals_bracket_the_estimate_and_baselines_sit_beside_the_router(
    gsm8k: LabeledSet,
) -> None:
    report = evaluate(gsm8k, bootstrap=200)

    names = [m.name for m in report.methods]
    assert names == ["random", "prompt length", "graphyard", "oracle"]  # no categories in GSM8K
    for m in report.methods:
        assert m.apgr.low <= m.apgr.value <= m.apgr.high
    assert report.method("random").apgr.value == pytest.approx(0.5)
    graphyard, length = report.method("graphyard"), report.method("prompt length")
    assert graphyard.apgr.high - graphyard.apgr.low > 0.01, "a real interval, not a point"
    assert length.apgr.value < graphyard.apgr.value < report.method("oracle").apgr.value
    assert report.dropped_contaminated == 12
    assert report.output_tokens_from == "responses"
    assert 0 < report.all_weak_per_1k < report.all_strong_per_1k


# --- thresholds --------------------------------------------------------------------------------


def test_thresholds_split_a_score_table_into_the_target_shares() -> None:
    table = [i / 1000 for i in range(1001)]
    mid, strong = thresholds_for(table, {"cheap": 0.7, "mid": 0.2, "strong": 0.1})

    assert (mid, strong) == (pytest.approx(0.7), pytest.approx(0.9))
    assert tier_for(0.95, (mid, strong)) == "strong"
    assert tier_for(0.75, (mid, strong)) == "mid"
    assert tier_for(0.5, (mid, strong)) == "cheap"
    assert thresholds_for(table, {"cheap": 1.0})[1] == math.inf, "strong share 0: never strong"


def test_thresholds_chosen_on_held_out_folds_hit_the_target_share_on_new_prompts(
    gsm8k: LabeledSet,
) -> None:
    report = evaluate(gsm8k, bootstrap=0, strong_shares=(0.1, 0.3, 0.5))

    for row in report.deployed:
        assert row.realized_strong == pytest.approx(row.target_strong, abs=0.04)
        assert 0 < row.pgr < 1


def test_calibrating_on_one_half_of_the_traffic_gives_the_target_shares_on_the_other(
    gsm8k: LabeledSet,
) -> None:
    prompts = gsm8k.prompts
    model = calibrated(LearnedRouter().model, prompts[0::2])
    router = LearnedRouter(model, targets={"cheap": 0.7, "mid": 0.2, "strong": 0.1})

    tiers = [router.route(p) for p in prompts[1::2]]

    shares = {t: tiers.count(t) / len(tiers) for t in ("cheap", "mid", "strong")}
    assert shares == {
        "cheap": pytest.approx(0.7, abs=0.05),
        "mid": pytest.approx(0.2, abs=0.05),
        "strong": pytest.approx(0.1, abs=0.05),
    }


# --- the shipped artifact ----------------------------------------------------------------------


def test_the_bundled_router_ships_small_with_the_command_that_made_it() -> None:
    path = default_router_path()
    model = RouterModel.load(path)

    assert path.stat().st_size < 5_000_000
    assert model.meta["command"].startswith("graphyard router train")
    assert "routellm/mmlu" in model.meta["command"] and "routellm/gsm8k" in model.meta["command"]
    assert model.meta["prompts"] == 14037 + 1307  # contaminated prompts dropped
    assert len(model.quantiles) == 1001 and model.quantiles == sorted(model.quantiles)


def test_the_bundled_router_scores_in_process_without_numpy_or_a_model_call() -> None:
    code = (
        "import sys, json\n"
        "from graphyard.routing import LearnedRouter\n"
        "r = LearnedRouter()\n"
        "out = [(r.score(p), r.route(p)) for p in ('Where is my order?', 'Solve x^2 = 2')]\n"
        "print(json.dumps({'out': out, 'numpy': 'numpy' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    result = json.loads(done.stdout)
    assert result["numpy"] is False
    for score, tier in result["out"]:
        assert 0.0 <= score <= 1.0 and tier in ("cheap", "mid", "strong")


def test_the_bundled_router_ranks_math_word_problems_better_than_chance(
    gsm8k: LabeledSet,
) -> None:
    router = LearnedRouter()
    gain = np.array(gsm8k.strong) - np.array(gsm8k.weak)

    share, pgr = pgr_curve([router.score(p) for p in gsm8k.prompts], gain)

    assert apgr(share, pgr) > 0.6  # it trained on these prompts: a smoke check, not a figure


def test_a_saved_router_loads_back_with_the_same_scores(tmp_path: Path) -> None:
    model = LearnedRouter().model
    path = tmp_path / "copy.json"  # plain JSON when the name has no .gz
    model.save(path)

    again = RouterModel.load(path)

    text = "A train leaves at 3pm going 60 mph; when does it arrive 150 miles away?"
    assert again.score(text) == pytest.approx(model.score(text), abs=1e-6)


def _topical(seed: int) -> LabeledSet:
    """Half the prompts from a topic the weak model often fails, half from one it rarely
    fails; the topic shows only in diffuse vocabulary and the outcomes are noisy."""
    rng = random.Random(seed)
    filler = [f"word{i}" for i in range(60)]
    prompts, weak, category = [], [], []
    for i in range(400):
        hard = i % 2 == 0
        pool = [f"{'alg' if hard else 'his'}{j}" for j in range(40)]
        prompts.append(" ".join(rng.sample(pool, 3) + rng.sample(filler, 3)))
        weak.append(float(rng.random() > (0.4 if hard else 0.1)))
        category.append("algebra" if hard else "history")
    return LabeledSet("toy", prompts=prompts, weak=weak, strong=[1.0] * 400, category=category)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_with_categories_teaches_the_text_which_topic_needs_the_strong_model(
    seed: int,
) -> None:
    data = _topical(seed)
    hard = np.array([c == "algebra" for c in data.category], dtype=float)

    plain = cross_fit(data, TrainConfig(min_df=1, alpha=30, prior_weight=0.0))
    with_prior = cross_fit(data, TrainConfig(min_df=1, alpha=30, prior_weight=0.5))

    # held-out scores follow the topic more closely once the category prior is distilled in
    assert np.corrcoef(with_prior, hard)[0, 1] > np.corrcoef(plain, hard)[0, 1]


def test_without_categories_the_category_prior_changes_nothing() -> None:
    data = _topical(0)
    data.category = [""] * len(data)

    plain = cross_fit(data, TrainConfig(min_df=1, prior_weight=0.0))
    with_prior = cross_fit(data, TrainConfig(min_df=1, prior_weight=0.5))

    assert np.array_equal(plain, with_prior)


def test_a_file_that_is_not_a_router_is_a_config_error_that_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')

    with pytest.raises(ConfigError, match="graphyard router train"):
        RouterModel.load(bogus)
    with pytest.raises(ConfigError, match="cannot read"):
        RouterModel.load(tmp_path / "missing.json.gz")


# --- router selection from settings ------------------------------------------------------------


def test_the_learned_router_is_the_default_with_the_configured_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPHYARD_ROUTER_TARGETS", "cheap:0.5,mid:0.3,strong:0.2")

    router = build_router(Settings())

    assert isinstance(router, LearnedRouter)
    assert router.targets == {"cheap": 0.5, "mid": 0.3, "strong": 0.2}


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("cheap:0.5,strong:0.4", "add up to 0.9"),
        ("cheap:1,premium:0", "unknown tier 'premium'"),
        ("cheap=1", "not tier:share"),
        ("cheap:lots", "not a number"),
    ],
)
def test_bad_router_targets_are_config_errors_with_an_example(
    monkeypatch: pytest.MonkeyPatch, targets: str, message: str
) -> None:
    monkeypatch.setenv("GRAPHYARD_ROUTER_TARGETS", targets)

    with pytest.raises(ConfigError, match=message) as info:
        Settings()
    assert "cheap:0.7,mid:0.2,strong:0.1" in str(info.value)


def test_settings_select_the_rules_or_llm_router() -> None:
    cheap = ScriptedChatModel(responses=["SIMPLE"])
    tiers = scripted_tiers(cheap)

    assert isinstance(build_router(Settings(router="rules")), RuleRouter)
    llm = build_router(Settings(router="llm"), tiers)
    assert isinstance(llm, LLMRouter) and llm.model is tiers["cheap"].chat_model
    with pytest.raises(ConfigError, match="cheap tier"):
        build_router(Settings(router="llm"))


def test_a_configured_router_file_is_the_one_used(tmp_path: Path) -> None:
    path = tmp_path / "mine.json.gz"
    model = LearnedRouter().model
    RouterModel(**{**{f: getattr(model, f) for f in model.__slots__}, "bias": 50.0}).save(path)

    router = build_router(Settings(router_model=path, router_targets="cheap:0.9,strong:0.1"))

    assert router.score("anything at all") > 0.99  # the huge bias: it is this file's model


# --- in the reference agent ---------------------------------------------------------------------


def _per_tier() -> dict[str, ScriptedChatModel]:
    return {t: ScriptedChatModel(responses=[f"{t} answer"]) for t in ("cheap", "mid", "strong")}


async def _ask(settings: Settings, models: dict[str, ScriptedChatModel], text: str) -> dict:
    graph = build_graph(scripted_tiers(models), settings).compile(checkpointer=InMemorySaver())
    return await graph.ainvoke({"messages": [("user", text)]}, {"configurable": {"thread_id": "t"}})


@pytest.mark.parametrize("tier", ["cheap", "mid", "strong"])
async def test_the_agent_routes_with_the_learned_router_by_default(
    settings: Settings, tier: str
) -> None:
    settings = settings.model_copy(update={"router": "learned", "router_targets": {tier: 1.0}})
    models = _per_tier()

    state = await _ask(settings, models, "What is 15% of 80 apples?")

    assert state["tier"] == tier
    assert state["messages"][-1].content == f"{tier} answer"


async def test_the_agent_can_ask_the_cheap_model_to_label_the_request(settings: Settings) -> None:
    settings = settings.model_copy(update={"router": "llm"})
    models = _per_tier()
    models["cheap"] = ScriptedChatModel(responses=["COMPLEX"])

    state = await _ask(settings, models, "Design a fault-tolerant payment system")

    assert state["tier"] == "strong"
    assert state["messages"][-1].content == "strong answer"
    assert len(models["cheap"].calls) == 1, "one labelling call on the cheap model"


def test_the_seed_recipe_falls_back_when_the_model_gives_no_label() -> None:
    router = LLMRouter(ScriptedChatModel(responses=["I am not sure what you mean."]))

    assert router.route("hmm") == "mid"
    assert LLMRouter.parse("answer: Simple") == "SIMPLE"


def test_the_routing_package_exports_are_pinned() -> None:
    import graphyard.routing

    assert sorted(graphyard.routing.__all__) == [
        "LLMRouter",
        "LearnedRouter",
        "Router",
        "RouterModel",
        "RuleRouter",
        "aroute",
        "build_router",
        "default_router_path",
    ]


async def test_the_learned_router_loads_its_model_off_the_event_loop(no_blocking: None) -> None:
    from graphyard.routing import aroute
    from graphyard.routing._learned import _load_cached

    _load_cached.cache_clear()  # force a real read of the bundled file
    router = LearnedRouter(targets={"cheap": 0.0, "mid": 1.0, "strong": 0.0})

    assert await aroute(router, "Where is my order A1003?") == "mid"
