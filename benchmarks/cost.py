"""Dollars per 1,000 requests with tiered routing, replayed from real labeled outcomes.

The workload is RouteLLM's released outcomes (``../shared/data/routellm``): for each prompt,
whether the weak model (Mixtral-8x7B) and the strong model (GPT-4-1106) answered correctly,
and on GSM8K their full answers. It is replayed through graphyard's three tiers:

- cheap and mid tier: the weak model's outcome, priced as Claude Haiku 4.5;
- strong tier: the strong model's outcome, priced as Claude Sonnet 4.5;

at current prices from ``genai-prices``, with input tokens estimated from each prompt and
output tokens from each model's own answer (GSM8K; RouteLLM's MMLU answers were one token).
The data has two models' outcomes, so cheap and mid replay the same weak outcome: only the
strong share changes quality and most of the bill.

Rows, each with the quality kept (PGR: share of the strong model's quality gain over the
weak one that routing keeps) and the saving against sending everything to the strong tier:

- all-strong, and random routing at graphyard's strong share;
- graphyard at the default targets (cheap 70%, mid 20%, strong 10%);
- graphyard at the smallest strong share whose PGR reaches ``--goal-pgr`` (0.95);
- the oracle at that goal, the bound no router can beat on this data.

graphyard's scores are cross-fitted (each prompt scored by a model trained on the other
folds) and every threshold is chosen on the other folds' scores, so nothing is evaluated on
what it trained on. The goal the issue sets (PGR >= 0.95 at >= 60% cheaper than all-strong)
is printed as met or not met, whatever the figures say.

Run::

    .venv/bin/python benchmarks/cost.py                # GSM8K and MMLU
    .venv/bin/python benchmarks/cost.py --only gsm8k
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from graphyard.routing._data import load_labeled
from graphyard.routing._eval import request_costs
from graphyard.routing._train import TrainConfig, cross_fit, fold_ids

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
WEAK = "anthropic:claude-haiku-4-5"
STRONG = "anthropic:claude-sonnet-4-5"


def held_out_routing(raw: np.ndarray, fold: np.ndarray, share: float) -> np.ndarray:
    """Route to strong what scores above a threshold taken from the *other* folds."""
    routed = np.zeros(len(raw), dtype=bool)
    for k in np.unique(fold):
        held = fold == k
        routed[held] = raw[held] >= np.quantile(raw[~held], 1.0 - share)
    return routed


def replay(name: str, goal: float) -> dict[str, object]:
    data = load_labeled(DATA / name)
    weak = np.array(data.weak)
    strong = np.array(data.strong)
    gain = strong - weak
    total_gain = gain.sum()
    weak_cost, strong_cost = request_costs(data, WEAK, STRONG)
    config = TrainConfig()
    raw = cross_fit(data, config)
    fold = fold_ids(np, len(data), config.folds, config.seed)

    def row(label: str, routed: np.ndarray) -> tuple[str, float, float, float]:
        dollars = float(np.where(routed, strong_cost, weak_cost).mean() * 1000)
        return label, float(routed.mean()), float(gain[routed].sum() / total_gain), dollars

    rows = [row("all-strong", np.ones(len(data), dtype=bool))]
    default = held_out_routing(raw, fold, 0.1)
    share = float(default.mean())
    # random routing at the same share: expected PGR = share, expected cost linear in share
    rand_dollars = float(((1 - share) * weak_cost + share * strong_cost).mean() * 1000)
    rows.append(("random at graphyard's share", share, share, rand_dollars))
    rows.append(row("graphyard, targets cheap 70% / mid 20% / strong 10%", default))
    at_goal = None
    for target in np.arange(0.05, 1.0001, 0.01):
        routed = held_out_routing(raw, fold, float(min(target, 1.0)))
        if gain[routed].sum() / total_gain >= goal:
            at_goal = row(f"graphyard, smallest strong share with PGR >= {goal}", routed)
            break
    if at_goal:
        rows.append(at_goal)
    order = np.argsort(-gain, kind="stable")
    needed = int(np.searchsorted(np.cumsum(gain[order]) / total_gain, goal) + 1)
    oracle = np.zeros(len(data), dtype=bool)
    oracle[order[:needed]] = True
    rows.append(row(f"oracle at PGR >= {goal}", oracle))
    return {
        "name": name,
        "prompts": len(data),
        "dropped": data.dropped,
        "rows": rows,
        "tokens": data.output_tokens_from,
        "at_goal": at_goal,
    }


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
    print(f"prices: weak tiers as {WEAK}, strong tier as {STRONG} (genai-prices)")
    for name in [args.only] if args.only else ["gsm8k", "mmlu"]:
        result = replay(name, args.goal_pgr)
        rows = result["rows"]
        all_strong = rows[0][3]
        print(
            f"\n{name}: {result['prompts']} prompts ({result['dropped']} contaminated dropped); "
            f"output tokens from {result['tokens']}"
        )
        print(
            f"{'routing':56s} {'strong share':>12s} {'PGR':>7s} {'$ / 1k req':>11s} {'vs all-strong':>14s}"
        )
        for label, share, pgr, dollars in rows:
            print(
                f"{label:56s} {share:12.1%} {pgr:7.3f} {dollars:11.3f} "
                f"{dollars / all_strong:7.2f}x ({1 - dollars / all_strong:.0%} cheaper)"
            )
        hit = result["at_goal"]
        met = hit is not None and 1 - hit[3] / all_strong >= args.goal_saving
        saving = "n/a" if hit is None else f"{1 - hit[3] / all_strong:.0%}"
        print(
            f"goal (PGR >= {args.goal_pgr} at >= {args.goal_saving:.0%} cheaper than all-strong): "
            f"{'MET' if met else 'NOT MET'} (graphyard's saving at that PGR: {saving})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
