"""The seed recipe, kept for comparison: ask the cheap model to label each request.

``LLMRouter`` sends the request to a chat model (the cheap tier's, when graphyard builds
it) with an instruction to answer SIMPLE, MODERATE or COMPLEX, and maps the label to
cheap / mid / strong. It costs a model call per request and its quality is whatever the
labelling model's judgement is; ``benchmarks/router.py`` measures both against the
learned router. An answer with no label routes to ``fallback``.

This module must never be the default: it is the baseline graphyard's router has to beat.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from graphyard.config import TierName

__all__ = ["INSTRUCTION", "LLMRouter", "Label"]

Label = Literal["SIMPLE", "MODERATE", "COMPLEX"]
"""The three labels of the seed recipe."""

INSTRUCTION = (
    "You route requests to AI models of different cost. Classify how hard the user's "
    "request is to answer well. Reply with exactly one word: SIMPLE (a small model can "
    "answer it), MODERATE (needs a capable model) or COMPLEX (needs the strongest model)."
)
_LABEL = re.compile(r"\b(SIMPLE|MODERATE|COMPLEX)\b", re.I)
_TIER: dict[str, TierName] = {"SIMPLE": "cheap", "MODERATE": "mid", "COMPLEX": "strong"}
_SCORE: dict[str, float] = {"SIMPLE": 0.0, "MODERATE": 0.5, "COMPLEX": 1.0}


class LLMRouter:
    """Routes by a chat model's SIMPLE / MODERATE / COMPLEX label.

    >>> from graphyard.testing import ScriptedChatModel
    >>> LLMRouter(ScriptedChatModel(responses=["COMPLEX"])).route("Prove Fermat's last theorem")
    'strong'
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        fallback: TierName = "mid",
        max_tokens: int | None = 8,
    ) -> None:
        self.model = model
        self.fallback: TierName = fallback
        self.max_tokens = max_tokens
        """Completion budget of the labelling call (the label is one word)."""

    def _messages(self, text: str) -> list[Any]:
        return [SystemMessage(INSTRUCTION), HumanMessage(f"Request:\n{text}\n\nLabel:")]

    def _kwargs(self) -> dict[str, Any]:
        return {} if self.max_tokens is None else {"max_tokens": self.max_tokens}

    @staticmethod
    def parse(answer: str) -> Label | None:
        """The first label in the model's answer, or ``None``.

        >>> LLMRouter.parse("Label: moderate."), LLMRouter.parse("I think it is easy")
        ('MODERATE', None)
        """
        match = _LABEL.search(answer)
        return match.group(1).upper() if match else None  # type: ignore[return-value]

    def classify(self, text: str) -> Label | None:
        """The model's label for ``text`` (``None`` if it gave none)."""
        answer = self.model.invoke(self._messages(text), **self._kwargs())
        return self.parse(str(answer.content))

    async def aclassify(self, text: str) -> Label | None:
        answer = await self.model.ainvoke(self._messages(text), **self._kwargs())
        return self.parse(str(answer.content))

    def score(self, text: str) -> float:
        """The label as a score (0, 0.5, 1; ``fallback``'s for no label), for evaluation."""
        label = self.classify(text)
        return _SCORE[label] if label else {"cheap": 0.0, "mid": 0.5, "strong": 1.0}[self.fallback]

    def route(self, text: str) -> TierName:
        label = self.classify(text)
        return _TIER[label] if label else self.fallback

    async def aroute(self, text: str) -> TierName:
        label = await self.aclassify(text)
        return _TIER[label] if label else self.fallback
