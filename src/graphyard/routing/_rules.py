"""A rule router: picks a tier from the request text with no model call.

A stand-in until the learned router lands; the interface (text in, tier out, in well
under a millisecond) is what the learned one will keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphyard.config import TierName

__all__ = ["RuleRouter"]

_STRONG = re.compile(
    r"\b(lawyer|legal|lawsuit|sue|chargeback|fraud|stolen|data breach|gdpr)\b", re.I
)
_MID = re.compile(
    r"\b(refund|complain\w*|broken|damaged|defect\w*|wrong item|warranty|escalat\w*|cancel\w*|angry|unacceptable)\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class RuleRouter:
    """Keyword and length rules. ``long_message`` characters or more go at least to ``mid``.

    >>> RuleRouter().route("Where is my order A1003?")
    'cheap'
    >>> RuleRouter().route("My tent arrived broken, I want a refund")
    'mid'
    """

    long_message: int = 1200
    strong: re.Pattern[str] = field(default=_STRONG)
    mid: re.Pattern[str] = field(default=_MID)

    def route(self, text: str) -> TierName:
        if self.strong.search(text):
            return "strong"
        if self.mid.search(text) or len(text) >= self.long_message:
            return "mid"
        return "cheap"
