"""Dollars per 1,000 requests with learned routing, replayed from real labeled outcomes.

The workload is RouteLLM's released outcomes (``../shared/data/routellm``): for each prompt,
whether the weak model (Mixtral-8x7B) and the strong model (GPT-4-1106) answered correctly,
and on GSM8K their full answers. Input tokens are estimated from each prompt, output tokens
come from each model's own answer (GSM8K; RouteLLM's MMLU answers were one token), priced
at current prices from ``genai-prices``.

The data holds two models' outcomes, so a replay can only be honest about two price points.
It is priced two ways, each with the bound no router can beat:

1. graphyard's paid tiers: the weak outcome priced as the mid tier (Claude Haiku 4.5), the
   strong outcome as the strong tier (Claude Sonnet 4.5). graphyard's cheap tier is the
   bundled local SmolLM2-135M at $0, but the data has no outcome for it; replaying
   Mixtral-8x7B's answers at $0 would claim a 47B model's quality for free, so it is not
   done. Requests the router sends to cheap or mid are both priced as mid here.
2. the data's own models: Mixtral-8x7B (Mistral's price) and GPT-4-1106 (OpenAI's price),
   the models that actually produced the outcomes.

Quality kept is PGR, the share of the strong model's quality gain over the weak one that
routing keeps (``(quality - weak) / (strong - weak)``), as the issue defines the goal. The
accuracy of the routed answers relative to all-strong is printed beside it for reference;
the goal is judged on PGR only.

graphyard's scores are cross-fitted (each prompt scored by a model trained on the other
folds) and every threshold, including the one aiming at PGR 0.95, is chosen on the other
folds' scores and outcomes, then applied to the held-out fold: nothing is evaluated on what
it trained on or was tuned on. Random routing is shown at the same strong share as each
graphyard row, and at the same cost beside the cost-capped row (the router sends long,
dearer prompts to the strong model more often than random does, so equal share is not
equal cost). The goal (PGR >= 0.95 at >= 60% cheaper than all-strong) is printed as met
or not met, with the largest strong share that could meet it and the oracle's share; the
converse rows show the PGR graphyard keeps when its threshold is chosen (on the other
folds) to spend 60% less than all-strong.

Run::

    .venv/bin/python benchmarks/cost.py                # GSM8K and MMLU
    .venv/bin/python benchmarks/cost.py --only gsm8k
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from graphyard.routing._data import LabeledSet, load_labeled
from graphyard.routing._eval import request_costs
from graphyard.routing._train import TrainConfig, cross_fit, fold_ids

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
PRICINGS = (
    ("graphyard's paid tiers", "anthropic:claude-haiku-4-5", "anthropic:claude-sonnet-4-5"),
    ("the data's own models", "mistral:open-mixtral-8x7b", "openai:gpt-4-1106-preview"),
)
Row = tuple[str, float, float, float, float]
"""label, strong share, PGR, accuracy vs all-strong, dollars per 1k requests"""


def share_threshold(raw: np.ndarray, fold: np.ndarray, share: float) -> np.ndarray:
    """Route to strong what scores above the other folds' ``1 - share`` quantile."""
    routed = np.zeros(len(raw), dtype=bool)
    for k in np.unique(fold):
        held = fold == k
        routed[held] = raw[held] >= np.quantile(raw[~held], 1.0 - share)
    return routed


def pgr_threshold(raw: np.ndarray, gain: np.ndarray, fold: np.ndarray, goal: float) -> np.ndarray:
    """Route to strong what scores above the threshold at which the *other* folds' PGR first
    reaches ``goal``; the held-out fold's outcomes are never looked at."""
    routed = np.zeros(len(raw), dtype=bool)
    for k in np.unique(fold):
        held = fold == k
        order = np.argsort(-raw[~held], kind="stable")
        s, g = raw[~held][order], gain[~held][order]
        pgr = np.cumsum(g) / g.sum()
        i = int(np.argmax(pgr >= goal)) if (pgr >= goal).any() else len(s) - 1
        routed[held] = raw[held] >= s[i]
    return routed


def budget_threshold(
    raw: np.ndarray, weak_cost: np.ndarray, strong_cost: np.ndarray, fold: np.ndarray, budget: float
) -> np.ndarray:
    """Route to strong what scores above the threshold at which the *other* folds' average
    cost per request would pass ``budget``."""
    routed = np.zeros(len(raw), dtype=bool)
    for k in np.unique(fold):
        held = fold == k
        order = np.argsort(-raw[~held], kind="stable")
        s = raw[~held][order]
        extra = np.cumsum((strong_cost - weak_cost)[~held][order])
        mean_cost = (weak_cost[~held].sum() + extra) / len(s)
        fits = np.nonzero(mean_cost <= budget)[0]
        routed[held] = raw[held] >= (s[fits[-1]] if len(fits) else np.inf)
    return routed


def replay(
    data: LabeledSet,
    raw: np.ndarray,
    fold: np.ndarray,
    weak_model: str,
    strong_model: str,
    goal: float,
    saving: float,
) -> tuple[list[Row], Row, Row]:
    weak = np.array(data.weak)
    strong = np.array(data.strong)
    gain = strong - weak
    weak_cost, strong_cost = request_costs(data, weak_model, strong_model)

    def row(label: str, routed: np.ndarray) -> Row:
        dollars = float(np.where(routed, strong_cost, weak_cost).mean() * 1000)
        quality = float(np.where(routed, strong, weak).mean())
        share = float(routed.mean())
        return (
            label,
            share,
            float(gain[routed].sum() / gain.sum()),
            quality / strong.mean(),
            dollars,
        )

    def random_at(share: float, label: str = "the same share") -> Row:
        # expected figures of sending a random `share` of requests to the strong model
        dollars = float(((1 - share) * weak_cost + share * strong_cost).mean() * 1000)
        quality = float(((1 - share) * weak + share * strong).mean())
        return f"random at {label} ({share:.1%})", share, share, quality / strong.mean(), dollars

    def random_costing(dollars: float) -> Row:
        # the random share that spends the same: the fair baseline for a cost-capped row
        w, st = weak_cost.mean() * 1000, strong_cost.mean() * 1000
        return random_at(float(np.clip((dollars - w) / (st - w), 0, 1)), "the same cost")

    default = row("graphyard, default targets (strong 10%)", share_threshold(raw, fold, 0.1))
    at_goal = row(
        f"graphyard, threshold for PGR >= {goal} (held out)", pgr_threshold(raw, gain, fold, goal)
    )
    order = np.argsort(-gain, kind="stable")
    needed = int(np.searchsorted(np.cumsum(gain[order]) / gain.sum(), goal) + 1)
    oracle = np.zeros(len(data), dtype=bool)
    oracle[order[:needed]] = True
    rows = [
        row("all-strong", np.ones(len(data), dtype=bool)),
        row("all-weak", np.zeros(len(data), dtype=bool)),
        default,
        random_at(default[1]),
        at_goal,
        random_at(at_goal[1]),
    ]
    # the converse: the quality kept at the largest strong share that is `saving` cheaper
    budget = (1 - saving) * float(strong_cost.mean())
    cheap_enough = row(
        f"graphyard at {saving:.0%} cheaper (held out)",
        budget_threshold(raw, weak_cost, strong_cost, fold, budget),
    )
    rows += [cheap_enough, random_costing(cheap_enough[4])]
    rows.append(row(f"oracle at PGR >= {goal}", oracle))
    return rows, at_goal, rows[-1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["gsm8k", "mmlu"])
    parser.add_argument("--goal-pgr", type=float, default=0.95)
    parser.add_argument("--goal-saving", type=float, default=0.60)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"RouteLLM labels not found at {DATA}", file=sys.stderr)
        return 2
    config = TrainConfig()
    for name in [args.only] if args.only else ["gsm8k", "mmlu"]:
        data = load_labeled(DATA / name)
        raw = cross_fit(data, config)
        fold = fold_ids(np, len(data), config.folds, config.seed)
        print(
            f"\n{name}: {len(data)} prompts ({data.dropped} contaminated dropped); output tokens "
            f"from {data.output_tokens_from}; graphyard cross-fitted, {config.folds} folds"
        )
        for title, weak_model, strong_model in PRICINGS:
            rows, at_goal, oracle = replay(
                data, raw, fold, weak_model, strong_model, args.goal_pgr, args.goal_saving
            )
            all_strong, all_weak = rows[0][4], rows[1][4]
            print(f"\n  priced as {title}: weak = {weak_model}, strong = {strong_model}")
            print(
                f"  {'routing':50s} {'strong share':>12s} {'PGR':>6s} {'acc vs strong':>13s} "
                f"{'$ / 1k req':>10s} {'vs all-strong':>14s}"
            )
            for label, share, pgr, acc, dollars in rows:
                print(
                    f"  {label:50s} {share:12.1%} {pgr:6.3f} {acc:13.1%} {dollars:10.3f} "
                    f"{1 - dollars / all_strong:8.0%} cheaper"
                )
            saving = 1 - at_goal[4] / all_strong
            met = at_goal[2] >= args.goal_pgr and saving >= args.goal_saving
            # largest strong share whose average cost is still goal_saving below all-strong
            room = ((1 - args.goal_saving) * all_strong - all_weak) / (all_strong - all_weak)
            print(
                f"  goal (PGR >= {args.goal_pgr} at >= {args.goal_saving:.0%} cheaper): "
                f"{'MET' if met else 'NOT MET'}: graphyard PGR {at_goal[2]:.3f} at "
                f"{at_goal[1]:.1%} strong, {saving:.0%} cheaper. At these prices the goal allows "
                f"at most ~{max(room, 0):.1%} strong calls; the oracle needs {oracle[1]:.1%} "
                f"({1 - oracle[4] / all_strong:.0%} cheaper)."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
