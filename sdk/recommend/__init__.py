"""Recommendations: the shopper's context, the surfaces, business filters, search re-ranking,
and experiments between two recommender strategies (split or team-draft interleaved)."""

from .context import Context, build_context
from .experiment_report import ArmReport, ExperimentReport
from .experiments import RecommendExperiment, RecommendExperiments
from .filters import ItemFilter
from .interleaving import Preference, team_draft
from .recommender import Recommendation, Recommender
from .search import rerank_search
from .surfaces import ANCHORED, SURFACES

__all__ = [
    "ANCHORED",
    "SURFACES",
    "ArmReport",
    "Context",
    "ExperimentReport",
    "ItemFilter",
    "Preference",
    "Recommendation",
    "RecommendExperiment",
    "RecommendExperiments",
    "Recommender",
    "build_context",
    "rerank_search",
    "team_draft",
]
