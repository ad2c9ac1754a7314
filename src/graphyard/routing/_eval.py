"""Evaluating a router on labeled outcomes, with RouteLLM's definitions (numpy).

For a router that sends the prompts it scores highest to the strong model:

- PGR(x), the performance gap recovered at strong-call share x:
  ``(quality(x) - quality(weak only)) / (quality(strong only) - quality(weak only))``;
- APGR: the area under PGR(x) for x from 0 to 100% (random routing: 0.5; an oracle can
  pass 1 because the weak model is sometimes right where the strong one is wrong);
- CPT(p): the smallest strong-call share at which PGR reaches p.

The curve is taken at every distinct score (RouteLLM samples ten quantile bins; the full
curve is the same quantity measured more finely), prompts with equal scores are routed
together, so a router that gives every prompt the same score draws the random diagonal.
Confidence intervals come from a bootstrap over prompts.

Honesty rules built in: the router under test is either cross-fitted (each prompt scored
by a model trained on the other folds) or a model trained elsewhere; baselines are
measured on the same prompts; the thresholds of the "deployed" rows are chosen on other
folds (or, for a model trained elsewhere, from its own calibration) and their realised
strong share is reported next to the target; dollars come from each model's real answer
lengths in the data at current prices (``genai-prices``).

This module must never train on the prompts it scores in the same fold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from graphyard.config import ModelPrice
from graphyard.routing._data import LabeledSet, approx_tokens
from graphyard.routing._learned import RouterModel, thresholds_for
from graphyard.routing._train import TrainConfig, _numpy, cross_fit, fold_ids

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_STRONG_PRICE",
    "DEFAULT_WEAK_PRICE",
    "EvalReport",
    "apgr",
    "cpt",
    "evaluate",
    "pgr_curve",
    "request_costs",
]

DEFAULT_WEAK_PRICE = "anthropic:claude-haiku-4-5"
DEFAULT_STRONG_PRICE = "anthropic:claude-sonnet-4-5"


def pgr_curve(
    scores: Sequence[float] | np.ndarray,
    gain: Sequence[float] | np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(share, pgr)``: the PGR curve of routing the highest scores to the strong model.

    ``gain`` is each prompt's strong minus weak outcome. Points sit at the boundaries of
    groups of equal scores, so ties are routed together.

    >>> share, pgr = pgr_curve([0.9, 0.1, 0.5, 0.2], [1, 0, 1, 0])
    >>> share.tolist(), pgr.tolist()
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0])
    """
    np = _numpy()
    s = np.asarray(scores, dtype=float)
    g = np.asarray(gain, dtype=float)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(-s, kind="stable")
    return _curve_sorted(np, s[order], g[order], w[order])


def _curve_sorted(np: Any, s: np.ndarray, g: np.ndarray, w: np.ndarray) -> tuple[Any, Any]:
    last = np.r_[s[1:] != s[:-1], True]
    cum_g = np.cumsum(g * w)[last]
    cum_w = np.cumsum(w)[last]
    total_g = cum_g[-1] if len(cum_g) else 0.0
    total_w = cum_w[-1] if len(cum_w) else 1.0
    share = np.r_[0.0, cum_w / total_w]
    pgr = np.r_[0.0, cum_g / total_g] if total_g else np.r_[0.0, cum_w / total_w]
    return share, pgr


def apgr(share: np.ndarray, pgr: np.ndarray) -> float:
    """Area under the PGR curve (trapezoids).

    >>> import numpy as np
    >>> apgr(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    0.5
    """
    return float(((pgr[1:] + pgr[:-1]) * (share[1:] - share[:-1])).sum() / 2)


def cpt(share: np.ndarray, pgr: np.ndarray, target: float) -> float:
    """Smallest strong-call share where the curve reaches ``target`` PGR (interpolated).

    >>> import numpy as np
    >>> cpt(np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 1.0]), 0.5)
    0.25
    """
    np = _numpy()
    hit = np.nonzero(pgr >= target - 1e-12)[0]
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return 0.0
    s0, s1, p0, p1 = share[i - 1], share[i], pgr[i - 1], pgr[i]
    return float(s0 + (target - p0) * (s1 - s0) / (p1 - p0))


def request_costs(
    data: LabeledSet,
    weak_model: str = DEFAULT_WEAK_PRICE,
    strong_model: str = DEFAULT_STRONG_PRICE,
    prices: Mapping[str, ModelPrice] = {},
) -> tuple[np.ndarray, np.ndarray]:
    """Dollars of each prompt if the weak / strong model answers it, from the data's tokens.

    Input tokens are estimated from the prompt; output tokens are the model's own answer's
    (see ``_data.py``). Prices come from genai-prices unless ``prices`` overrides them.
    """
    from graphyard.models import call_cost

    np = _numpy()
    weak, strong = [], []
    for prompt, w_out, s_out in zip(
        data.prompts, data.weak_output_tokens, data.strong_output_tokens, strict=True
    ):
        tokens = approx_tokens(prompt)
        weak.append(call_cost(weak_model, _usage(tokens, w_out), prices))
        strong.append(call_cost(strong_model, _usage(tokens, s_out), prices))
    return np.array(weak), np.array(strong)


def _usage(inp: int, out: int) -> Any:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure with its 95% bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class MethodResult:
    name: str
    apgr: Estimate
    cpt50: Estimate
    cpt80: Estimate
    dollars_per_1k_at_pgr80: float
    """Dollars per 1,000 requests at the share where PGR reaches 80%."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """Thresholds chosen on held-out data for a target strong share, applied to new prompts."""

    target_strong: float
    realized_strong: float
    pgr: float
    dollars_per_1k: float


@dataclass(slots=True)
class EvalReport:
    data: str
    prompts: int
    dropped_contaminated: int
    weak_quality: float
    strong_quality: float
    mode: str
    """``cross-fitted, k folds`` or ``trained elsewhere: <model>``."""
    methods: list[MethodResult] = field(default_factory=list)
    deployed: list[Deployed] = field(default_factory=list)
    all_weak_per_1k: float = 0.0
    all_strong_per_1k: float = 0.0
    prices: dict[str, str] = field(default_factory=dict)
    output_tokens_from: str = "none"
    bootstrap: int = 0

    def method(self, name: str) -> MethodResult:
        return next(m for m in self.methods if m.name == name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _category_prior(np: Any, data: LabeledSet, gain: np.ndarray, fold: np.ndarray) -> Any:
    """Cross-fitted mean gain of each prompt's category (unseen categories: overall mean)."""
    cats = np.array(data.category)
    out = np.zeros(len(gain))
    for k in np.unique(fold):
        train = fold != k
        overall = float(gain[train].mean())
        means = {c: float(gain[train & (cats == c)].mean()) for c in np.unique(cats[train])}
        out[fold == k] = [means.get(c, overall) for c in cats[fold == k]]
    return out


def _stats(np: Any, s: Any, g: Any, dcost: Any, base_cost: float, w: Any) -> tuple[float, ...]:
    share, pgr = _curve_sorted(np, s, g, w)
    last = np.r_[s[1:] != s[:-1], True]
    cost = np.r_[0.0, np.cumsum(dcost * w)[last]] / w.sum() + base_cost
    c80 = cpt(share, pgr, 0.8)
    dollars = float(np.interp(c80, share, cost)) * 1000 if c80 == c80 else float("nan")
    return apgr(share, pgr), cpt(share, pgr, 0.5), c80, dollars


def evaluate(
    data: LabeledSet,
    *,
    model: RouterModel | None = None,
    model_name: str = "model",
    config: TrainConfig | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    strong_shares: Sequence[float] = (0.1, 0.2, 0.3, 0.5),
    weak_price: str = DEFAULT_WEAK_PRICE,
    strong_price: str = DEFAULT_STRONG_PRICE,
    prices: Mapping[str, ModelPrice] = {},
    oof: np.ndarray | None = None,
) -> EvalReport:
    """Evaluate graphyard's router beside the baselines on ``data``.

    Without ``model`` the training recipe is cross-fitted on ``data`` (``config.folds``
    folds); with one, that model scores every prompt as is (trained elsewhere).
    """
    np = _numpy()
    config = config or TrainConfig()
    gain = np.array(data.strong, dtype=float) - np.array(data.weak, dtype=float)
    n = len(gain)
    fold = fold_ids(np, n, config.folds, config.seed)
    if model is None:
        raw = cross_fit(data, config) if oof is None else np.asarray(oof)
        mode = f"cross-fitted, {config.folds} folds"
    else:
        raw = np.array([model.score(p) for p in data.prompts])
        mode = f"trained elsewhere: {model_name}"
    methods: dict[str, Any] = {
        "random": np.zeros(n),
        "prompt length": np.array([len(p) for p in data.prompts], dtype=float),
    }
    if data.has_categories:
        methods["category prior"] = _category_prior(np, data, gain, fold)
    methods["graphyard"] = raw
    methods["oracle"] = gain

    weak_cost, strong_cost = request_costs(data, weak_price, strong_price, prices)
    dcost = strong_cost - weak_cost
    base = float(weak_cost.mean())
    report = EvalReport(
        data=data.name,
        prompts=n,
        dropped_contaminated=data.dropped,
        weak_quality=float(np.mean(data.weak)),
        strong_quality=float(np.mean(data.strong)),
        mode=mode,
        all_weak_per_1k=base * 1000,
        all_strong_per_1k=float(strong_cost.mean()) * 1000,
        prices={"weak": weak_price, "strong": strong_price},
        output_tokens_from=data.output_tokens_from,
        bootstrap=bootstrap,
    )
    for name, scores in methods.items():
        order = np.argsort(-scores, kind="stable")
        s, g, dc = scores[order], gain[order], dcost[order]
        point = _stats(np, s, g, dc, base, np.ones(n))
        rng = np.random.default_rng(seed)  # the same resamples for every method: paired
        boots = np.array(
            [
                _stats(np, s, g, dc, base, np.bincount(rng.integers(0, n, n), minlength=n)[order])[
                    :3
                ]
                for _ in range(bootstrap)
            ]
        )

        def interval(i: int, value: float, boots: Any = boots) -> Estimate:
            if not len(boots):
                return Estimate(value, value, value)
            col = boots[:, i][~np.isnan(boots[:, i])]
            low, high = np.percentile(col, [2.5, 97.5]) if len(col) else (value, value)
            return Estimate(value, float(low), float(high))

        report.methods.append(
            MethodResult(
                name, interval(0, point[0]), interval(1, point[1]), interval(2, point[2]), point[3]
            )
        )

    for target in strong_shares:
        if model is None:
            routed = np.zeros(n, dtype=bool)
            for k in range(config.folds):
                held = fold == k
                threshold = np.quantile(raw[~held], 1.0 - target)
                routed[held] = raw[held] >= threshold
        else:
            _, t_strong = thresholds_for(model.quantiles, {"cheap": 1 - target, "strong": target})
            routed = raw >= t_strong
        total = gain.sum()
        report.deployed.append(
            Deployed(
                target_strong=float(target),
                realized_strong=float(routed.mean()),
                pgr=float(gain[routed].sum() / total) if total else 0.0,
                dollars_per_1k=float(np.where(routed, strong_cost, weak_cost).mean() * 1000),
            )
        )
    return report
