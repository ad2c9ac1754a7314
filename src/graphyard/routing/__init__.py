"""Routing: choose the cheapest adequate tier for each request."""

from graphyard.routing._rules import RuleRouter

__all__ = ["RuleRouter"]
