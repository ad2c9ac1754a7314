"""Training the learned router (numpy; ``pip install 'graphyard[router]'``).

The recipe, chosen by measurement on RouteLLM's MMLU and GSM8K labels (see
``benchmarks/`` and the README's routing section):

- target: the strong model's quality gain over the weak one on each prompt
  (``strong - weak``), not "the weak model failed": ranking by expected gain is what the
  PGR curve rewards, and on MMLU a per-subject prior of the gain reaches APGR 0.68 where a
  prior of the weak model's failure rate reaches 0.59;
- model: ridge regression on TF-IDF word uni/bigrams plus standardised shape features,
  solved by conjugate gradients on a sparse matrix built with ``np.bincount`` (no scipy);
- category prior distilled into the text (when the data has a ``category``, e.g. MMLU's
  subjects): a second ridge on the same features whose target is each prompt's category
  mean gain, added with weight 0.5. Both are linear in the same features, so they sum into
  one weight per feature: the served model never needs the category, and the artifact and
  latency do not grow. MMLU 0.684 -> 0.689 cross-fitted (the prior is a clean target
  that teaches the text which subjects need the strong model); GSM8K has no categories
  and is unchanged;
- probability: Platt scaling of out-of-fold scores against ``gain > 0``;
- thresholds: a table of out-of-fold score quantiles, so any traffic split maps to two
  thresholds chosen on data the model did not train on.

Things measured and not kept (cross-fitted APGR on MMLU): character n-grams (0.666 vs
0.678), a TF-IDF kNN (0.665), 4-class logistic regression (0.687, 10x slower to train),
segment-tagged words (0.680), gradient-boosted stacking of several of these (0.692, and a
second model to ship), and pooling MMLU with GSM8K with each set weighted equally (MMLU
0.661, GSM8K 0.623, against 0.684 / 0.629 unweighted). Measured on MMLU with the same
folds and not kept either: tokens for the question's structure (length buckets, numeric
answer options, NOT/EXCEPT, "all/none of the above", statement pairs: 0.683), ridge
penalty 3 or 30 (0.679, 0.670), unigrams only (0.668), separate models for "strong needed"
and "weak alone right" (0.684), 10 folds instead of 5 (0.690), averaging with a character 3-5-gram model (0.689). Adding the *known* category
prior to the text score reaches 0.704, but needs the category at serving time, which a
request does not carry. A sentence encoder does not close the gap either
(``benchmarks/router_ceiling.py``): the mean gain of the 100 nearest training prompts by
all-MiniLM-L6-v2 embeddings scores 0.678 alone and 0.699 stacked with this model, 0.706 with
the known subject as well (weights tuned on the test itself), against a goal of 0.72; on
GSM8K it adds 0.006. It would also cost torch and ~11 ms per request.

This module must never be imported on the serving path; scoring lives in ``_learned.py``.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphyard.errors import ConfigError
from graphyard.routing._data import LabeledSet
from graphyard.routing._features import dense_features, grams
from graphyard.routing._learned import RouterModel, quantile_table

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "TrainConfig",
    "cross_fit",
    "featurize",
    "fit_platt",
    "fold_ids",
    "quantile_table",
    "train_router",
]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ConfigError(
            "training and evaluating a router needs numpy: pip install 'graphyard[router]'"
        ) from exc
    return numpy


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters of the recipe (defaults measured on RouteLLM's labels)."""

    alpha: float = 10.0
    """Ridge penalty; larger trusts the text less."""
    min_df: int = 2
    """An n-gram must appear in this many training prompts to become a feature."""
    folds: int = 5
    """Folds for the out-of-fold scores behind the probability map and the thresholds."""
    seed: int = 0
    """Seed of the fold assignment."""
    iterations: int = 200
    """Conjugate-gradient iterations at most."""
    prior_weight: float = 0.5
    """Weight of the category prior distilled into the text (used when the data has
    categories; 0 turns it off)."""
    prior_alpha: float = 1.0
    """Ridge penalty of the distilled category prior."""


class _Sparse:
    """Rows of (column, value) pairs with the two products ridge regression needs."""

    def __init__(self, np: Any, indptr: Any, cols: Any, vals: Any, n_cols: int) -> None:
        self.np = np
        self.n = len(indptr) - 1
        self.d = n_cols
        self.cols = cols
        self.vals = vals
        self.rows = np.repeat(np.arange(self.n), np.diff(indptr))

    def dot(self, w: np.ndarray) -> np.ndarray:
        return self.np.bincount(self.rows, weights=self.vals * w[self.cols], minlength=self.n)

    def tdot(self, g: np.ndarray) -> np.ndarray:
        return self.np.bincount(self.cols, weights=self.vals * g[self.rows], minlength=self.d)


@dataclass(slots=True)
class _Fitted:
    vocab: list[str]
    idf: np.ndarray
    weight: np.ndarray
    dense_mean: np.ndarray
    dense_scale: np.ndarray
    dense_weight: np.ndarray
    bias: float

    def raw(self, np: Any, docs: Sequence[list[str]], dense: np.ndarray) -> np.ndarray:
        """Scores of prompts given their grams and unscaled dense features."""
        index = {g: i for i, g in enumerate(self.vocab)}
        x = _tfidf(np, docs, index, self.idf)
        scaled = (dense - self.dense_mean) / self.dense_scale
        return x.dot(self.weight) + scaled @ self.dense_weight + self.bias


def featurize(np: Any, texts: Sequence[str]) -> tuple[list[list[str]], np.ndarray]:
    """Every prompt's grams and dense features, computed once for all folds."""
    return [grams(t) for t in texts], np.array([dense_features(t) for t in texts], dtype=float)


def _tfidf(np: Any, docs: Sequence[list[str]], index: dict[str, int], idf: np.ndarray) -> _Sparse:
    indptr = [0]
    cols: list[int] = []
    counts: list[int] = []
    for doc in docs:
        c: dict[int, int] = {}
        for g in doc:
            j = index.get(g)
            if j is not None:
                c[j] = c.get(j, 0) + 1
        cols += c.keys()
        counts += c.values()
        indptr.append(len(cols))
    col = np.array(cols, dtype=np.int64)
    val = (1.0 + np.log(np.array(counts, dtype=float))) * idf[col]
    ptr = np.array(indptr)
    rows = np.repeat(np.arange(len(docs)), np.diff(ptr))
    norms = np.sqrt(np.bincount(rows, weights=val * val, minlength=len(docs)))
    val = val / np.where(norms > 0, norms, 1.0)[rows]
    return _Sparse(np, ptr, col, val, len(idf))


def _solve(
    np: Any,
    x: _Sparse,
    dense: np.ndarray,
    y: np.ndarray,
    sw: np.ndarray,
    alpha: float,
    iterations: int,
) -> np.ndarray:
    """Ridge weights for the centred target ``y``: ``(A'WA + alpha I) w = A'Wy`` by conjugate
    gradients, ``A = [tf-idf | dense]``."""
    d = x.d

    def gram(w: np.ndarray) -> np.ndarray:
        pred = sw * (x.dot(w[:d]) + dense @ w[d:])
        return np.concatenate([x.tdot(pred), dense.T @ pred]) + alpha * w

    rhs = np.concatenate([x.tdot(sw * y), dense.T @ (sw * y)])
    w = np.zeros(d + dense.shape[1])
    r = rhs.copy()
    p = r.copy()
    rs = float(r @ r)
    tol = 1e-10 * max(rs, 1e-30)
    for _ in range(iterations):
        if rs <= tol:
            break
        ap = gram(p)
        step = rs / float(p @ ap)
        w += step * p
        r -= step * ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
    return w


def category_means(np: Any, category: Sequence[str], gain: np.ndarray) -> np.ndarray:
    """Each row's category's mean gain over the given rows (the category-prior target).

    >>> import numpy as np
    >>> category_means(np, ["a", "a", "b"], np.array([1.0, 0.0, -1.0])).tolist()
    [0.5, 0.5, -1.0]
    """
    cats = np.asarray(category)
    out = np.zeros(len(gain))
    for c in np.unique(cats):
        rows = cats == c
        out[rows] = gain[rows].mean()
    return out


def _fit(
    np: Any,
    docs: Sequence[list[str]],
    dense: np.ndarray,
    gain: np.ndarray,
    config: TrainConfig,
    weights: np.ndarray | None = None,
    category: Sequence[str] | None = None,
) -> _Fitted:
    df: dict[str, int] = {}
    for doc in docs:
        for g in set(doc):
            df[g] = df.get(g, 0) + 1
    vocab = sorted(g for g, n in df.items() if n >= config.min_df)
    index = {g: i for i, g in enumerate(vocab)}
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in vocab])
    x = _tfidf(np, docs, index, idf)
    mean = dense.mean(axis=0)
    scale = dense.std(axis=0)
    scale[scale < 1e-9] = 1.0  # constant in training (up to float noise): no information
    dense = (dense - mean) / scale

    # Ridge regression with an unpenalised intercept: centre the target and solve.
    sw = np.ones(n) if weights is None else weights
    bias = float(np.average(gain, weights=sw))
    w = _solve(np, x, dense, gain - bias, sw, config.alpha, config.iterations)
    if category is not None and config.prior_weight and len(set(category)) > 1:
        # The category prior distilled into the text: a second ridge on the same features
        # whose target is each prompt's category mean gain (a clean, low-noise target),
        # added with weight prior_weight. Both are linear in the same features, so the
        # served model stays one weight per feature and never needs the category.
        prior = category_means(np, category, gain)
        prior_bias = float(np.average(prior, weights=sw))
        w_prior = _solve(
            np, x, dense, prior - prior_bias, sw, config.prior_alpha, config.iterations
        )
        w = w + config.prior_weight * w_prior
        bias += config.prior_weight * prior_bias
    d = x.d
    # the intercept absorbs the mean prediction of the unpenalised-centre approximation
    bias -= float(np.average(x.dot(w[:d]) + dense @ w[d:], weights=sw))
    return _Fitted(vocab, idf, w[:d], mean, scale, w[d:], bias)


def _gain(np: Any, data: LabeledSet) -> np.ndarray:
    return np.array(data.strong, dtype=float) - np.array(data.weak, dtype=float)


def _categories(data: LabeledSet, rows: Iterable[int]) -> list[str] | None:
    """The category of each row (rows of pooled sets without one: their source's name), or
    None when the data has no categories."""
    if not data.has_categories:
        return None
    source = data.source or [""] * len(data)
    return [data.category[i] or f"<{source[i]}>" for i in rows]


def fold_ids(np: Any, n: int, folds: int, seed: int) -> np.ndarray:
    """A fold number per row: a seeded shuffle of ``0..folds-1`` repeated."""
    return np.random.default_rng(seed).permutation(n) % folds


def cross_fit(
    data: LabeledSet,
    config: TrainConfig = TrainConfig(),
    *,
    features: tuple[list[list[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Out-of-fold raw scores: each prompt scored by a model that never saw it.

    >>> from graphyard.routing._data import LabeledSet
    >>> rows = LabeledSet("toy", prompts=[f"question {i} " + "hard " * (i % 2) for i in range(20)],
    ...     weak=[float(i % 2 == 0) for i in range(20)], strong=[1.0] * 20, category=[""] * 20)
    >>> scores = cross_fit(rows, TrainConfig(min_df=1))
    >>> bool(scores[1::2].mean() > scores[0::2].mean())
    True
    """
    np = _numpy()
    n = len(data)
    if n < 2 * config.folds:
        raise ConfigError(f"{n} labeled prompts are too few for {config.folds} folds; label more")
    gain = _gain(np, data)
    docs, dense = featurize(np, data.prompts) if features is None else features
    fold = fold_ids(np, n, config.folds, config.seed)
    out = np.zeros(n)
    for k in range(config.folds):
        train = np.nonzero(fold != k)[0]
        test = np.nonzero(fold == k)[0]
        model = _fit(
            np,
            [docs[i] for i in train],
            dense[train],
            gain[train],
            config,
            category=_categories(data, train),
        )
        out[test] = model.raw(np, [docs[i] for i in test], dense[test])
    return out


def fit_platt(raw: np.ndarray, label: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """``(a, b)`` of ``P(label | raw) = sigmoid(a * raw + b)``, by Newton's method.

    >>> import numpy as np
    >>> a, b = fit_platt(np.array([-2.0, -1, 0, 1, 2, 3]), np.array([0, 0, 1, 0, 1, 1]))
    >>> a > 0
    True
    """
    np = _numpy()
    x = np.asarray(raw, dtype=float)
    positive = np.asarray(label, dtype=bool)
    # Platt's own targets, (n+ + 1)/(n+ + 2) and 1/(n- + 2): separable data keeps a finite slope
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    y = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        g = np.array([((p - y) * x).sum(), (p - y).sum()])
        s = p * (1 - p) + 1e-9
        h = np.array([[(s * x * x).sum(), (s * x).sum()], [(s * x).sum(), s.sum()]])
        h += 1e-6 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a, b


def train_router(
    data: LabeledSet,
    config: TrainConfig = TrainConfig(),
    *,
    command: Sequence[str] | None = None,
    oof: np.ndarray | None = None,
) -> RouterModel:
    """Train on all of ``data``; map scores and thresholds from out-of-fold predictions.

    ``oof`` reuses scores from :func:`cross_fit` with the same config.
    """
    np = _numpy()
    gain = _gain(np, data)
    docs, dense = featurize(np, data.prompts)
    raw_oof = cross_fit(data, config, features=(docs, dense)) if oof is None else np.asarray(oof)
    a, b = fit_platt(raw_oof, gain > 0)
    prob_oof = 1.0 / (1.0 + np.exp(-(a * raw_oof + b)))
    fitted = _fit(np, docs, dense, gain, config, category=_categories(data, range(len(data))))
    meta = {
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(command if command is not None else sys.argv),
        "data": data.name,
        "prompts": len(data),
        "dropped_contaminated": data.dropped,
        "target": "strong - weak (quality gain); probability = P(gain > 0)",
        "config": {k: getattr(config, k) for k in config.__slots__},
        "features": len(fitted.vocab),
        "weak_mean": float(np.mean(data.weak)),
        "strong_mean": float(np.mean(data.strong)),
    }
    return RouterModel(
        # every feature stays, even near-zero weights: its idf counts in a prompt's L2 norm
        features={
            g: (float(i), float(w))
            for g, i, w in zip(fitted.vocab, fitted.idf, fitted.weight, strict=True)
        },
        dense_mean=[float(x) for x in fitted.dense_mean],
        dense_scale=[float(x) for x in fitted.dense_scale],
        dense_weight=[float(x) for x in fitted.dense_weight],
        bias=float(fitted.bias),
        platt=(a, b),
        quantiles=quantile_table(prob_oof),
        meta=meta,
    )
