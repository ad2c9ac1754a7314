"""graphyard's learned router vs the seed recipe (ask the cheap model), side by side.

1. Latency per request: ``LearnedRouter.route`` (pure Python, model loaded once) vs
   ``LLMRouter.route`` on the bundled SmolLM2-135M through graphyard's own
   ``LocalModelServer`` / ``BundledChatModel`` (one thread, 8-token label budget), on the same
   prompts, interleaved; p50, p95 and the ratio. Model loading and server start-up are
   reported apart.
2. Routing quality on a sample of RouteLLM's MMLU and GSM8K prompts: the seed recipe's
   labels (COMPLEX -> strong) vs graphyard's cross-fitted scores (each prompt scored by a
   model trained on the other folds). Both at the seed recipe's own strong share (COMPLEX)
   and at the share it sends above the cheap tier (not SIMPLE), as if that share went to the
   strong model: PGR, the share of the strong model's quality gain kept; and APGR over the
   whole curve (the seed's three labels give a coarse curve). The sample is small (the 135M model is slow), so the
   quality figures are indicative; the full-set figures come from ``graphyard router eval``.

Run::

    .venv/bin/python benchmarks/router.py             # 40 sampled prompts for the LLM
    .venv/bin/python benchmarks/router.py --n 100
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from graphyard.config import LocalModelConfig
from graphyard.models import BundledChatModel, LocalModelServer
from graphyard.routing import LearnedRouter, LLMRouter
from graphyard.routing._data import LabeledSet, load_labeled
from graphyard.routing._eval import apgr, pgr_curve
from graphyard.routing._train import cross_fit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def pgr_at(scores: np.ndarray, gain: np.ndarray, k: int) -> float:
    """PGR when the k highest-scoring prompts go to the strong model (ties split by order)."""
    order = np.argsort(-scores, kind="stable")
    return float(gain[order[:k]].sum() / gain.sum()) if gain.sum() else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=40, help="prompts for the seed recipe (half per set)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"RouteLLM labels not found at {DATA}", file=sys.stderr)
        return 2
    sets: dict[str, LabeledSet] = {name: load_labeled(DATA / name) for name in ("mmlu", "gsm8k")}
    print(
        "cross-fitting graphyard's router on each set (scores never from a model that saw the prompt)..."
    )
    oof = {name: cross_fit(data) for name, data in sets.items()}

    rng = random.Random(args.seed)
    sample: list[tuple[str, int]] = []
    for name, data in sets.items():
        sample += [(name, i) for i in rng.sample(range(len(data)), args.n // 2)]
    prompts = [sets[name].prompts[i] for name, i in sample]

    started = time.perf_counter()
    learned = LearnedRouter()
    learned.model  # noqa: B018
    load_s = time.perf_counter() - started
    server = LocalModelServer(LocalModelConfig(threads=1))
    started = time.perf_counter()
    server.start()
    start_s = time.perf_counter() - started
    seed = LLMRouter(BundledChatModel(server=server, max_tokens=8, temperature=0.0), max_tokens=8)
    try:
        seed.route("warm up")
        ours_t: list[float] = []
        seed_t: list[float] = []
        labels = []
        for i, prompt in enumerate(prompts):
            for side in (0, 1) if i % 2 == 0 else (1, 0):  # alternate who goes first
                t0 = time.perf_counter()
                if side == 0:
                    learned.route(prompt)
                    ours_t.append(time.perf_counter() - t0)
                else:
                    labels.append(seed.classify(prompt))
                    seed_t.append(time.perf_counter() - t0)
        # the learned router on every prompt of both sets, for steadier percentiles
        everything = [p for data in sets.values() for p in data.prompts]
        all_t = []
        for prompt in everything:
            t0 = time.perf_counter()
            learned.route(prompt)
            all_t.append(time.perf_counter() - t0)
    finally:
        server.stop()

    ms = 1000.0
    print(
        f"\nlatency per request (learned model load {load_s:.2f} s once; bundled model server start {start_s:.2f} s once)"
    )
    print(f"{'router':48s} {'n':>6s} {'p50 ms':>9s} {'p95 ms':>9s}")
    print(
        f"{'graphyard learned router, all MMLU+GSM8K prompts':48s} {len(all_t):6d} {pct(all_t, 50) * ms:9.3f} {pct(all_t, 95) * ms:9.3f}"
    )
    print(
        f"{'graphyard learned router, sampled prompts':48s} {len(ours_t):6d} {pct(ours_t, 50) * ms:9.3f} {pct(ours_t, 95) * ms:9.3f}"
    )
    print(
        f"{'seed recipe on SmolLM2-135M, sampled prompts':48s} {len(seed_t):6d} {pct(seed_t, 50) * ms:9.1f} {pct(seed_t, 95) * ms:9.1f}"
    )
    print(
        f"ratio (seed / graphyard, same prompts): p50 {statistics.median(seed_t) / statistics.median(ours_t):,.0f}x, "
        f"p95 {pct(seed_t, 95) / pct(ours_t, 95):,.0f}x"
    )

    counts = {label: labels.count(label) for label in ("SIMPLE", "MODERATE", "COMPLEX", None)}
    print(
        f"\nseed recipe labels on {len(labels)} prompts: SIMPLE {counts['SIMPLE']}, MODERATE {counts['MODERATE']}, "
        f"COMPLEX {counts['COMPLEX']}, no label {counts[None]} (routed to mid)"
    )
    print(
        f"{'set':6s} {'n':>4s} {'COMPLEX share':>13s} {'seed PGR':>9s} {'ours PGR':>9s}"
        f" {'not-SIMPLE share':>16s} {'seed PGR':>9s} {'ours PGR':>9s} {'seed APGR':>10s} {'ours APGR':>10s}"
    )
    for name in ("mmlu", "gsm8k", "both"):
        idx = [j for j, (s, _) in enumerate(sample) if name in (s, "both")]
        gain = np.array(
            [
                sets[sample[j][0]].strong[sample[j][1]] - sets[sample[j][0]].weak[sample[j][1]]
                for j in idx
            ]
        )
        seed_scores = np.array(
            [{"SIMPLE": 0.0, "MODERATE": 0.5, "COMPLEX": 1.0, None: 0.5}[labels[j]] for j in idx]
        )
        ours = np.array([oof[sample[j][0]][sample[j][1]] for j in idx])
        k = int((seed_scores == 1.0).sum())
        # the seed's ties at a label split in data order: that is how it routes
        seed_pgr = pgr_at(seed_scores, gain, k)
        ours_pgr = pgr_at(ours, gain, k)
        # and at the share the seed sends above the cheap tier, as if it all went to strong
        k2 = int((seed_scores > 0.0).sum())
        seed_pgr2 = pgr_at(seed_scores, gain, k2)
        ours_pgr2 = pgr_at(ours, gain, k2)
        seed_apgr = apgr(*pgr_curve(seed_scores, gain))
        ours_apgr = apgr(*pgr_curve(ours, gain))
        print(
            f"{name:6s} {len(idx):4d} {k / len(idx):13.1%} {seed_pgr:9.3f} {ours_pgr:9.3f}"
            f" {k2 / len(idx):16.1%} {seed_pgr2:9.3f} {ours_pgr2:9.3f} {seed_apgr:10.3f} {ours_apgr:10.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
