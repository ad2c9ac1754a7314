"""The reference customer-support agent, built from the parts users build their own with."""

from graphyard.agent._graph import build_graph, critique, reference_graph
from graphyard.agent._shop import DemoShop, KnowledgeBase
from graphyard.agent._tools import HIGH_IMPACT_TOOLS, make_tools

__all__ = [
    "HIGH_IMPACT_TOOLS",
    "DemoShop",
    "KnowledgeBase",
    "build_graph",
    "critique",
    "make_tools",
    "reference_graph",
]
