"""Context budget: fit each model call's prompt into that model's window.

- :func:`plan_window` / :func:`apply_window`: the largest recent window that fits, with the
  invariants (system message kept, starts on a human turn, tool pairs whole, history intact);
- :class:`ContextWindow`: windows that move in chunks (cache-friendly), pinned facts, an
  optional running summary, token counts rescaled from real usage or exact, and Anthropic
  cache breakpoints;
- :func:`context_node` / :func:`context_prompt`: the same step in any ``StateGraph``.
"""

from graphyard.context._pins import Pin, extract_pins, merge_pins, render_pins
from graphyard.context._tokens import ExactCounter, exact_counter, rescale, scaled_counter
from graphyard.context._trim import TokenCounter, WindowPlan, apply_window, plan_window
from graphyard.context._window import (
    ContextState,
    ContextWindow,
    build_prompt,
    context_node,
    context_prompt,
)

__all__ = [
    "ContextState",
    "ContextWindow",
    "ExactCounter",
    "Pin",
    "TokenCounter",
    "WindowPlan",
    "apply_window",
    "build_prompt",
    "context_node",
    "context_prompt",
    "exact_counter",
    "extract_pins",
    "merge_pins",
    "plan_window",
    "render_pins",
    "rescale",
    "scaled_counter",
]
