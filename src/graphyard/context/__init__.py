"""Context budget: fit each model call's prompt into that model's window."""

from graphyard.context._trim import TokenCounter, WindowPlan, apply_window, plan_window

__all__ = ["TokenCounter", "WindowPlan", "apply_window", "plan_window"]
