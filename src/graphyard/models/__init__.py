"""Chat models for graphyard's tiers: the bundled local model, providers, prices, test models."""

from graphyard.models._local import BundledChatModel, LocalModelServer, bundled_model_path
from graphyard.models._pricing import call_cost
from graphyard.models._testing import ScriptedChatModel
from graphyard.models._tiers import (
    CACHE_HIT_METADATA_KEY,
    LOCAL_MODEL_ID,
    MODEL_METADATA_KEY,
    REPLAYED_KEY,
    TIER_METADATA_KEY,
    Tier,
    is_replayed,
    model_of,
    resolve_tiers,
)

__all__ = [
    "CACHE_HIT_METADATA_KEY",
    "LOCAL_MODEL_ID",
    "MODEL_METADATA_KEY",
    "REPLAYED_KEY",
    "TIER_METADATA_KEY",
    "BundledChatModel",
    "LocalModelServer",
    "ScriptedChatModel",
    "Tier",
    "bundled_model_path",
    "call_cost",
    "is_replayed",
    "model_of",
    "resolve_tiers",
]
