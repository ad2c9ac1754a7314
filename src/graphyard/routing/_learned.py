"""The learned router: P(strong model needed | request) from the request text alone.

A linear model over the features of ``_features.py`` (TF-IDF word n-grams plus a dozen
shape measurements) regressed on the *quality gain* of the strong model over the weak one
(``strong_outcome - weak_outcome``), then mapped to a probability (Platt scaling, fitted on
held-out folds) that the strong model is needed: right where the weak one is wrong.

Tiers come from two thresholds on that probability, chosen for a target share of traffic
per tier (``cheap:0.7,mid:0.2,strong:0.1``) from a table of held-out score quantiles stored
with the model, so a new target needs no data; ``graphyard router calibrate`` rebuilds the
table from your own traffic.

The artifact is one gzipped JSON file. The default one ships in ``routing/data/`` and is
loaded on first use (about 0.2 s), never at import. Scoring is pure Python: no numpy, no
network, no model call; well under a millisecond for a typical request.

This module must never read training data, import numpy, or load the artifact at import.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import functools
import gzip
import json
import math
import sys
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from graphyard.config import DEFAULT_ROUTER_TARGETS, TierName
from graphyard.errors import ConfigError
from graphyard.routing._features import DENSE_FEATURES, dense_features, grams

__all__ = [
    "DEFAULT_ROUTER_FILE",
    "FORMAT",
    "LearnedRouter",
    "RouterModel",
    "calibrated",
    "default_router_path",
    "quantile_table",
    "thresholds_for",
    "tier_for",
]

FORMAT = "graphyard-router/1"
DEFAULT_ROUTER_FILE = "default_router.json.gz"
QUANTILES = 1000
"""Resolution of the stored score distribution (0.1% of traffic)."""


def default_router_path() -> Path:
    """The router artifact that ships inside the package."""
    return Path(str(resources.files("graphyard.routing") / "data" / DEFAULT_ROUTER_FILE))


@dataclass(slots=True)
class RouterModel:
    """A trained router: weights, the probability map, and held-out score quantiles."""

    features: dict[str, tuple[float, float]]
    """Sparse feature -> (idf, weight); stored as float32."""
    dense_mean: list[float]
    dense_scale: list[float]
    dense_weight: list[float]
    bias: float
    platt: tuple[float, float]
    """``p = 1 / (1 + exp(-(a * raw + b)))``."""
    quantiles: list[float]
    """``QUANTILES + 1`` held-out probabilities: the i-th is the i/QUANTILES quantile."""
    meta: dict[str, Any] = field(default_factory=dict)
    """How it was trained: command, data, counts, cross-fitted figures."""

    def raw(self, text: str) -> float:
        """The linear score (expected quality gain of the strong model, unscaled)."""
        counts: dict[str, int] = {}
        for g in grams(text):
            if g in self.features:
                counts[g] = counts.get(g, 0) + 1
        dot = 0.0
        norm = 0.0
        features = self.features
        for g, tf in counts.items():
            idf, weight = features[g]
            value = (1.0 + math.log(tf)) * idf
            norm += value * value
            dot += value * weight
        total = dot / math.sqrt(norm) if norm else 0.0
        for x, mean, scale, weight in zip(
            dense_features(text), self.dense_mean, self.dense_scale, self.dense_weight, strict=True
        ):
            total += (x - mean) / scale * weight
        return total + self.bias

    def score(self, text: str) -> float:
        """P(strong model needed | text), in [0, 1]."""
        a, b = self.platt
        z = a * self.raw(text) + b
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0

    def share_above(self, threshold: float) -> float:
        """Share of the calibration traffic scoring at or above ``threshold``."""
        return 1.0 - bisect.bisect_left(self.quantiles, threshold) / len(self.quantiles)

    def to_json(self) -> dict[str, Any]:
        vocab = sorted(self.features)
        return {
            "format": FORMAT,
            "meta": self.meta,
            # one string and two packed float32 arrays: loads ~10x faster than JSON lists
            "vocab": "\n".join(vocab),
            "idf": _pack(self.features[g][0] for g in vocab),
            "weight": _pack(self.features[g][1] for g in vocab),
            "dense": {
                "names": list(DENSE_FEATURES),
                "mean": [_round(x) for x in self.dense_mean],
                "scale": [_round(x) for x in self.dense_scale],
                "weight": [_round(x) for x in self.dense_weight],
            },
            "bias": self.bias,
            "platt": list(self.platt),
            "quantiles": [_round(x) for x in self.quantiles],
        }

    def save(self, path: Path) -> None:
        """Write the model as gzipped JSON (plain JSON if ``path`` does not end in ``.gz``)."""
        data = json.dumps(self.to_json(), separators=(",", ":")).encode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)

    @classmethod
    def load(cls, path: Path) -> RouterModel:
        """Read a model written by :meth:`save` (``graphyard router train``)."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the router model {path}: {exc.strerror}; "
                "train one with `graphyard router train --data FILE.csv --out PATH`"
            ) from exc
        try:
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            data = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a graphyard router model ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f"{path} is not a {FORMAT} model; train one with `graphyard router train`"
            )
        dense = data["dense"]
        if list(dense["names"]) != list(DENSE_FEATURES):
            raise ConfigError(
                f"{path} was trained with other dense features ({dense['names']}); "
                "retrain it with this graphyard version"
            )
        vocab = data["vocab"].split("\n") if data["vocab"] else []
        return cls(
            features=dict(
                zip(
                    vocab,
                    zip(_unpack(data["idf"]), _unpack(data["weight"]), strict=True),
                    strict=True,
                )
            ),
            dense_mean=[float(x) for x in dense["mean"]],
            dense_scale=[float(x) for x in dense["scale"]],
            dense_weight=[float(x) for x in dense["weight"]],
            bias=float(data["bias"]),
            platt=(float(data["platt"][0]), float(data["platt"][1])),
            quantiles=[float(x) for x in data["quantiles"]],
            meta=dict(data.get("meta") or {}),
        )


def quantile_table(scores: Sequence[float]) -> list[float]:
    """``QUANTILES + 1`` evenly spaced quantiles of ``scores`` (pure Python, sorted).

    >>> quantile_table([0.0, 1.0])[::250]
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    ordered = sorted(float(s) for s in scores)
    if not ordered:
        raise ConfigError("no prompts to calibrate the router's thresholds on")
    last = len(ordered) - 1
    table = []
    for i in range(QUANTILES + 1):
        pos = i / QUANTILES * last
        j = int(pos)
        nxt = ordered[min(j + 1, last)]
        table.append(ordered[j] + (nxt - ordered[j]) * (pos - j))
    return table


def calibrated(model: RouterModel, prompts: Sequence[str]) -> RouterModel:
    """A copy of ``model`` whose thresholds follow the score distribution of ``prompts``
    (your traffic) instead of its training data's.

    >>> router = LearnedRouter()
    >>> fitted = calibrated(router.model, ["Where is my order?", "Prove that P != NP"] * 5)
    >>> fitted.share_above(max(fitted.quantiles)) <= 0.5
    True
    """
    table = quantile_table([model.score(p) for p in prompts])
    meta = {**model.meta, "calibrated_on_prompts": len(prompts)}
    return replace(model, quantiles=table, meta=meta)


def _pack(values: Iterable[float]) -> str:
    packed = array("f", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _unpack(text: str) -> list[float]:
    packed = array("f")
    packed.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tolist()


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _quantile(table: list[float], q: float) -> float:
    """Linear interpolation in a sorted table of ``n + 1`` evenly spaced quantiles."""
    pos = min(max(q, 0.0), 1.0) * (len(table) - 1)
    i = int(pos)
    if i >= len(table) - 1:
        return table[-1]
    return table[i] + (table[i + 1] - table[i]) * (pos - i)


def thresholds_for(
    quantiles: list[float], targets: Mapping[TierName, float]
) -> tuple[float, float]:
    """``(mid, strong)`` score thresholds that send ``targets`` shares of traffic to each tier.

    ``quantiles`` is a sorted table of held-out scores (``RouterModel.quantiles``). A tier
    with share 0 gets a threshold no score reaches.

    >>> thresholds_for([0.0, 0.25, 0.5, 0.75, 1.0], {"cheap": 0.5, "mid": 0.25, "strong": 0.25})
    (0.5, 0.75)
    """
    strong = targets.get("strong", 0.0)
    mid = targets.get("mid", 0.0)
    never = math.inf
    t_strong = never if strong <= 0 else _quantile(quantiles, 1.0 - strong)
    t_mid = t_strong if mid <= 0 else _quantile(quantiles, 1.0 - strong - mid)
    if strong + mid >= 1.0:
        t_mid = -math.inf
    return t_mid, t_strong


def tier_for(score: float, thresholds: tuple[float, float]) -> TierName:
    """The tier a score falls in, given ``(mid, strong)`` thresholds.

    >>> tier_for(0.9, (0.5, 0.75)), tier_for(0.6, (0.5, 0.75)), tier_for(0.1, (0.5, 0.75))
    ('strong', 'mid', 'cheap')
    """
    t_mid, t_strong = thresholds
    if score >= t_strong:
        return "strong"
    if score >= t_mid:
        return "mid"
    return "cheap"


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, stamp: int) -> RouterModel:
    """One copy per file version per process: every graph built shares the loaded model."""
    return RouterModel.load(path)


class LearnedRouter:
    """Routes by the learned score; loads its model on first use.

    >>> router = LearnedRouter(targets={"cheap": 0.7, "mid": 0.2, "strong": 0.1})
    >>> 0.0 <= router.score("Where is my order A1003?") <= 1.0
    True
    >>> router.route("Where is my order A1003?") in ("cheap", "mid", "strong")
    True
    """

    def __init__(
        self,
        model: RouterModel | Path | None = None,
        *,
        targets: Mapping[TierName, float] | None = None,
    ) -> None:
        self._model = model if isinstance(model, RouterModel) else None
        self._path = model if isinstance(model, Path) else None
        self.targets: dict[TierName, float] = dict(targets or DEFAULT_ROUTER_TARGETS)
        self._thresholds: tuple[float, float] | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> RouterModel:
        """The model, loaded from disk on first access."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    path = (self._path or default_router_path()).resolve()
                    try:
                        stamp = path.stat().st_mtime_ns
                    except OSError:
                        stamp = 0  # RouterModel.load reports the problem
                    self._model = _load_cached(path, stamp)
        return self._model

    @property
    def thresholds(self) -> tuple[float, float]:
        """``(mid, strong)`` thresholds for this router's targets."""
        if self._thresholds is None:
            self._thresholds = thresholds_for(self.model.quantiles, self.targets)
        return self._thresholds

    def score(self, text: str) -> float:
        """P(strong model needed | text)."""
        return self.model.score(text)

    def route(self, text: str) -> TierName:
        """The tier for ``text``."""
        return tier_for(self.model.score(text), self.thresholds)

    async def aroute(self, text: str) -> TierName:
        """:meth:`route` for the event loop: the first call loads the model off the loop."""
        if self._model is None:
            await asyncio.to_thread(lambda: self.model)
        return self.route(text)
