"""Routing: choose the cheapest adequate tier for each request.

- :class:`LearnedRouter` (the default): P(strong model needed | request) from the text, a
  trained linear model scored in pure Python in well under a millisecond; tiers from two
  thresholds calibrated for a target traffic share per tier. A trained model ships inside
  the package; ``graphyard router train`` makes one from your own labeled prompts.
- :class:`RuleRouter`: keywords and length.
- :class:`LLMRouter`: the common recipe (ask the cheap model SIMPLE / MODERATE / COMPLEX),
  kept to compare against.

Training and evaluation (``graphyard.routing._train``, ``._eval``) need numpy
(``pip install 'graphyard[router]'``); serving does not.
"""

from graphyard.routing._learned import LearnedRouter, RouterModel, default_router_path
from graphyard.routing._llm import LLMRouter
from graphyard.routing._router import Router, aroute, build_router
from graphyard.routing._rules import RuleRouter

__all__ = [
    "LLMRouter",
    "LearnedRouter",
    "Router",
    "RouterModel",
    "RuleRouter",
    "aroute",
    "build_router",
    "default_router_path",
]
