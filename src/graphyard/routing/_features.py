"""Features of a request's text, shared by the router at run time and by its training.

Pure Python on purpose: the router scores a request in well under a millisecond with the
standard library alone, so serving never imports numpy. Training (``_train.py``) calls the
same functions, so what the model learned from is exactly what it sees when serving.

Two kinds of features:

- sparse: lower-cased word unigrams and bigrams (``w:refund``, ``b:my order``), numbers
  folded into their digit count (``<n2>`` for ``42``), weighted ``(1 + ln tf) * idf`` and
  L2-normalised, like a TF-IDF vectoriser;
- dense: a dozen shape measurements (length, how many numbers, math symbols, sentences,
  answer options, ...), standardised with the training set's mean and spread.

This module must never read files, import numpy or depend on anything but the text.
"""

from __future__ import annotations

import itertools
import math
import re

__all__ = ["DENSE_FEATURES", "dense_features", "grams"]

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")
_MATH = re.compile(r"[=+*/^<>×÷√∑∫π]|\\[a-z]+")
_OPTION = re.compile(r"^\s*\(?[A-E][.)]\s", re.M)
_FRACTION = re.compile(r"\d/\d")
_FRACTION_WORDS = ("half", "third", "quarter", "fourth", "fifth", "twice", "double", "triple")
_CODE_MARKS = ("```", "def ", "class ", "return ", "{\n", ";\n", "};")
_DECIMAL = re.compile(r"\d\.\d")


def _number_shape(token: str) -> str:
    return f"<n{min(len(token), 4)}>"


def grams(text: str) -> list[str]:
    """The sparse features of ``text``: word unigrams and bigrams, numbers by digit count.

    >>> grams("Refund 25 dollars?")
    ['w:refund', 'w:<n2>', 'w:dollars', 'w:?', 'b:refund <n2>', 'b:<n2> dollars', 'b:dollars ?']
    """
    tokens = [_number_shape(t) if t[0].isdigit() else t for t in _TOKEN.findall(text.lower())]
    out = ["w:" + t for t in tokens]
    out += ["b:" + a + " " + b for a, b in itertools.pairwise(tokens)]
    return out


def _max_number(numbers: list[str]) -> float:
    best = 0.0
    for match in numbers:
        try:
            best = max(best, float(match.replace(",", "")))
        except ValueError:  # "1.2.3"
            continue
    return min(best, 1e12)


_NAMES = (
    "log_chars",
    "log_words",
    "log_numbers",
    "digit_share",
    "log_max_number",
    "log_sentences",
    "log_lines",
    "log_math_symbols",
    "options",
    "fractions",
    "percent",
    "decimals",
    "money",
    "questions",
    "code",
)

DENSE_FEATURES: tuple[str, ...] = _NAMES
"""Names of the dense features, in the order :func:`dense_features` returns them."""


def dense_features(text: str) -> list[float]:
    """The dense measurements of ``text``, in :data:`DENSE_FEATURES` order (unscaled).

    >>> dict(zip(DENSE_FEATURES, dense_features("What is 15% of $80?")))["percent"]
    1.0
    """
    low = text.lower()
    numbers = _NUMBER.findall(text)
    digits = sum(len(n) for n in numbers)
    log1p = math.log1p
    return [
        log1p(len(text)),
        log1p(len(text.split())),
        log1p(len(numbers)),
        digits / max(len(text), 1),
        log1p(_max_number(numbers)),
        log1p(len(_SENTENCE_END.findall(text))),
        log1p(text.count("\n")),
        log1p(len(_MATH.findall(text))),
        float(len(_OPTION.findall(text)) >= 2),
        float(any(w in low for w in _FRACTION_WORDS) or _FRACTION.search(text) is not None),
        float("%" in text or "percent" in low),
        float(_DECIMAL.search(text) is not None),
        log1p(text.count("$")),
        log1p(text.count("?")),
        float(any(m in text for m in _CODE_MARKS)),
    ]
