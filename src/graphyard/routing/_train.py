"""Training the learned router (numpy; ``pip install 'graphyard[router]'``).

The recipe, chosen by measurement on RouteLLM's MMLU and GSM8K labels (see
``benchmarks/`` and the README's routing section):

- target: the strong model's quality gain over the weak one on each prompt
  (``strong - weak``), not "the weak model failed": ranking by expected gain is what the
  PGR curve rewards, and on MMLU a per-subject prior of the gain reaches APGR 0.68 where a
  prior of the weak model's failure rate reaches 0.59;
- model: ridge regression on TF-IDF word uni/bigrams plus standardised shape features,
  solved by conjugate gradients on a sparse matrix built with ``np.bincount`` (no scipy);
- probability: Platt scaling of out-of-fold scores against ``gain > 0``;
- thresholds: a table of out-of-fold score quantiles, so any traffic split maps to two
  thresholds chosen on data the model did not train on.

Things measured and not kept (cross-fitted APGR on MMLU): character n-grams (0.666 vs
0.678), a TF-IDF kNN (0.665), 4-class logistic regression (0.687, 10x slower to train),
segment-tagged words (0.680), gradient-boosted stacking of several of these (0.692, and a
second model to ship), and pooling MMLU with GSM8K with each set weighted equally (MMLU
0.661, GSM8K 0.623, against 0.684 / 0.629 unweighted).

This module must never be imported on the serving path; scoring lives in ``_learned.py``.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence
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


def _fit(
    np: Any,
    docs: Sequence[list[str]],
    dense: np.ndarray,
    gain: np.ndarray,
    config: TrainConfig,
    weights: np.ndarray | None = None,
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

    # Ridge regression with an unpenalised intercept: centre the target, solve
    # (A'A + alpha I) w = A'y by conjugate gradients, A = [tf-idf | dense].
    sw = np.ones(n) if weights is None else weights
    bias = float(np.average(gain, weights=sw))
    y = gain - bias
    d = x.d

    def gram(w: np.ndarray) -> np.ndarray:
        pred = sw * (x.dot(w[:d]) + dense @ w[d:])
        return np.concatenate([x.tdot(pred), dense.T @ pred]) + config.alpha * w

    rhs = np.concatenate([x.tdot(sw * y), dense.T @ (sw * y)])
    w = np.zeros(d + dense.shape[1])
    r = rhs.copy()
    p = r.copy()
    rs = float(r @ r)
    tol = 1e-10 * max(rs, 1e-30)
    for _ in range(config.iterations):
        if rs <= tol:
            break
        ap = gram(p)
        step = rs / float(p @ ap)
        w += step * p
        r -= step * ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
    # the intercept absorbs the mean prediction of the unpenalised-centre approximation
    bias -= float(np.average(x.dot(w[:d]) + dense @ w[d:], weights=sw))
    return _Fitted(vocab, idf, w[:d], mean, scale, w[d:], bias)


def _gain(np: Any, data: LabeledSet) -> np.ndarray:
    return np.array(data.strong, dtype=float) - np.array(data.weak, dtype=float)


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
        model = _fit(np, [docs[i] for i in train], dense[train], gain[train], config)
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
    fitted = _fit(np, docs, dense, gain, config)
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
