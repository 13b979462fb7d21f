"""Recommendations: the shopper's context, the surfaces, business filters, search re-ranking."""

from .context import Context, build_context
from .filters import ItemFilter
from .recommender import Recommendation, Recommender
from .search import rerank_search
from .surfaces import ANCHORED, SURFACES

__all__ = [
    "ANCHORED",
    "SURFACES",
    "Context",
    "ItemFilter",
    "Recommendation",
    "Recommender",
    "build_context",
    "rerank_search",
]
