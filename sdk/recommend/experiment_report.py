"""What a recommender experiment measured, per arm, from the store's events.

Per arm: impressions, clicks, click-through rate, conversions and conversion rate. In a
split an impression is one list shown; interleaved, it is one item shown (a list holds
both arms' items), and the report adds the per-session preference: each session (a
shopper's visit) is a win for the arm whose items were clicked more, and the sign test
says whether the wins are more than chance. ``lift`` is the second arm's conversion rate
over the first's, minus one (``ctr_lift`` the same for click-through).

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.recommend_experiments.define({"experiment_id": "e1", "surface": "trending",
    ...         "arms": [{"name": "a"}, {"name": "b", "surface": "best-sellers"}]})
    ...     report = sw.recommend_experiment_report("e1")
    >>> [(arm.name, arm.impressions, arm.ctr) for arm in report.arms]
    [('a', 0, None), ('b', 0, None)]
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ..store.connection import Store
from .experiments import INTERLEAVED, RecommendExperiment
from .interleaving import Preference, preference

MEASURED = ("recommendation_shown", "recommendation_clicked", "recommendation_conversion")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class ArmReport:
    """One arm's counts and rates (a rate is None before anything was shown)."""

    name: str
    impressions: int
    clicks: int
    conversions: int

    @property
    def ctr(self) -> float | None:
        return _rate(self.clicks, self.impressions)

    @property
    def conversion_rate(self) -> float | None:
        return _rate(self.conversions, self.impressions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "conversions": self.conversions,
            "conversion_rate": self.conversion_rate,
        }


def _lift(first: float | None, second: float | None) -> float | None:
    return second / first - 1.0 if first and second is not None else None


@dataclass(frozen=True)
class ExperimentReport:
    """An experiment's arms (in definition order), lifts, and the interleaved preference."""

    experiment_id: str
    surface: str
    mode: str
    active: bool
    arms: tuple[ArmReport, ...]
    preference: Preference | None = None

    @property
    def lift(self) -> float | None:
        """The second arm's conversion rate over the first's, minus one."""
        return _lift(self.arms[0].conversion_rate, self.arms[1].conversion_rate)

    @property
    def ctr_lift(self) -> float | None:
        """The second arm's click-through rate over the first's, minus one."""
        return _lift(self.arms[0].ctr, self.arms[1].ctr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "surface": self.surface,
            "mode": self.mode,
            "active": self.active,
            "arms": [arm.to_dict() for arm in self.arms],
            "lift": self.lift,
            "ctr_lift": self.ctr_lift,
            "preference": self.preference.to_dict() if self.preference else None,
        }


def _events(store: Store, experiment_id: str) -> list[tuple[str, dict[str, Any]]]:
    marks = ",".join("?" * len(MEASURED))
    rows = store.rows(
        f"SELECT type, payload FROM events WHERE type IN ({marks}) "
        "AND json_extract(payload, '$.experiment') = ? ORDER BY seq",
        [*MEASURED, experiment_id],
    )
    return [(kind, json.loads(payload)) for kind, payload in rows]


def experiment_report(store: Store, experiment: RecommendExperiment) -> ExperimentReport:
    """Count ``experiment``'s shown lists, clicks and conversions per arm (see the module)."""
    names = [arm.name for arm in experiment.arms]
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in MEASURED}
    session_of: dict[str, str] = {}  # shown id -> session (interleaved)
    clicks: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # session -> clicks per team
    for kind, payload in _events(store, experiment.experiment_id):
        arm = str(payload.get("arm", ""))
        if kind == "recommendation_shown" and arm == INTERLEAVED:
            teams = Counter(payload.get("teams", []))
            for team, name in enumerate(names):
                counts[kind][name] += teams[team]
            session_of[str(payload.get("shown_id"))] = str(payload.get("session", ""))
            continue
        counts[kind][arm] += 1
        session = session_of.get(str(payload.get("shown_id")))
        if kind == "recommendation_clicked" and session is not None and arm in names:
            clicks[session][names.index(arm)] += 1
    arms = tuple(
        ArmReport(
            name,
            impressions=counts["recommendation_shown"][name],
            clicks=counts["recommendation_clicked"][name],
            conversions=counts["recommendation_conversion"][name],
        )
        for name in names
    )
    interleaved = experiment.mode == "interleave"
    return ExperimentReport(
        experiment_id=experiment.experiment_id,
        surface=experiment.surface,
        mode=experiment.mode,
        active=experiment.active,
        arms=arms,
        preference=preference((a, b) for a, b in clicks.values()) if interleaved else None,
    )


__all__ = ["ArmReport", "ExperimentReport", "experiment_report"]
