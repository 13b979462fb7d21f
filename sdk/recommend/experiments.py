"""Recommender experiments: two arms on one surface, split by shopper or interleaved.

An experiment takes over one surface (``"for-you"``, ...) while it runs. Each of its two
arms is a *strategy*: another bundle loaded side by side with the served one (``bundle``),
another surface (``surface``: e.g. the model against best-sellers), another
parameterisation (``diversity``), or simply the default (no keys). Two modes:

- ``split`` (A/B): a shopper's arm is a hash of the experiment id and the shopper id (as
  for offer experiments), so every call and every device agrees without storing anything;
- ``interleave``: every shopper sees both arms merged by team draft
  (``shelfwise.recommend.interleaving``), each item credited to the arm that picked it.

Measurement is events, like everything else the store summarises: a list recorded as shown
(``recommend(record=True)``) carries ``experiment`` and ``arm`` (and, interleaved, the team
of every item); a click carries the arm of the item clicked; a purchase of an item a list
of the experiment showed, within ``window_hours`` of showing it, is logged as a
``recommendation_conversion`` (once per shown list and item, to the most recent list that
showed it). The synced summaries count all three per (experiment, arm) under the same
privacy rules as any cell. This module owns the ``recommend_experiments`` table.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     experiment = sw.recommend_experiments.define({
    ...         "experiment_id": "model-vs-popular", "surface": "for-you",
    ...         "arms": [{"name": "model"}, {"name": "popular", "surface": "best-sellers"}]})
    ...     sorted({experiment.arm_for(f"L-{i}").name for i in range(20)})
    ['model', 'popular']
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._errors import BundleError, InvalidInput
from ..clock import DAY_MS, HOUR_MS, now_ms
from ..events import Event, insert_event
from ..model.runtime import ModelHandle
from ..store.connection import Store
from .context import Context
from .filters import NO_FILTER, ItemFilter
from .interleaving import team_draft
from .recommender import Recommendation, Recommender
from .surfaces import ANCHORED, SURFACES

logger = logging.getLogger(__name__)

MODES = ("split", "interleave")
DEFAULT_WINDOW_HOURS = 24.0
MAX_WINDOW_HOURS = 24.0 * 30
MAX_NAME = 40
DEFINITION_KEYS = frozenset({"experiment_id", "surface", "arms", "mode", "window_hours"})
ARM_KEYS = frozenset({"name", "weight", "bundle", "surface", "diversity"})
INTERLEAVED = "interleaved"  # the arm a shown interleaved list is recorded under


@dataclass(frozen=True)
class Arm:
    """One strategy: a bundle ("" = the served one), a surface ("" = the experiment's) and
    a diversity (None = the surface's default); ``weight`` is its share in a split."""

    name: str
    weight: float = 1.0
    bundle: str = ""
    surface: str = ""
    diversity: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "bundle": self.bundle,
            "surface": self.surface,
            "diversity": self.diversity,
        }


@dataclass(frozen=True)
class RecommendExperiment:
    """A recommender experiment: its surface, two arms, the mode and the attribution window."""

    experiment_id: str
    surface: str
    arms: tuple[Arm, Arm]
    mode: str = "split"
    window_hours: float = DEFAULT_WINDOW_HOURS
    active: bool = True

    @property
    def window_ms(self) -> int:
        return int(self.window_hours * HOUR_MS)

    def arm_for(self, shopper_id: str) -> Arm:
        """The shopper's arm in a split: the same on every call and every device.

        Example:
            >>> arms = (Arm("a"), Arm("b", weight=3))
            >>> exp = RecommendExperiment("e1", "for-you", arms)
            >>> exp.arm_for("L-1") == exp.arm_for("L-1")
            True
        """
        digest = hashlib.sha256(f"{self.experiment_id}:{shopper_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(a.weight for a in self.arms)
        for arm in self.arms:
            if point < arm.weight:
                return arm
            point -= arm.weight
        return self.arms[-1]

    def team_of(self, arm_name: str) -> int | None:
        names = [arm.name for arm in self.arms]
        return names.index(arm_name) if arm_name in names else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "surface": self.surface,
            "arms": [arm.to_dict() for arm in self.arms],
            "mode": self.mode,
            "window_hours": self.window_hours,
            "active": self.active,
        }


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        raise InvalidInput(f"{what} must be a name of 1 to {MAX_NAME} characters")
    return value.strip()


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        raise InvalidInput(f"{what} must be a number above {low:g} and at most {high:g}")
    return float(value)


def _surface(value: Any, what: str) -> str:
    if value not in SURFACES:
        raise InvalidInput(f"{what} {value!r} is not one of: {', '.join(SURFACES)}")
    return str(value)


def _arm(raw: Any, experiment_surface: str) -> Arm:
    if not isinstance(raw, Mapping):
        raise InvalidInput("each arm must be a mapping such as {'name': 'model'}")
    unknown = sorted(set(map(str, raw)) - ARM_KEYS)
    if unknown:
        raise InvalidInput(f"unknown arm key(s) {', '.join(unknown)}; known: {sorted(ARM_KEYS)}")
    name = _name(raw.get("name"), "an arm's name")
    surface = _surface(raw["surface"], f"arm {name}'s surface") if raw.get("surface") else ""
    if surface in ANCHORED and experiment_surface not in ANCHORED:
        raise InvalidInput(f"arm {name} runs {surface}, which needs an item this surface lacks")
    diversity = raw.get("diversity")
    if diversity is not None and (
        isinstance(diversity, bool) or not isinstance(diversity, int) or not 1 <= diversity <= 200
    ):
        raise InvalidInput(f"arm {name}'s diversity must be an integer from 1 to 200")
    bundle = raw.get("bundle") or ""
    if not isinstance(bundle, str | Path):
        raise InvalidInput(f"arm {name}'s bundle must be a folder path")
    return Arm(
        name=name,
        weight=_number(raw.get("weight", 1), f"arm {name}'s weight", 0, 1e6),
        bundle=str(Path(bundle).resolve()) if bundle else "",
        surface=surface,
        diversity=diversity,
    )


def parse_experiment(data: Any) -> RecommendExperiment:
    """A validated experiment from a mapping; ``InvalidInput`` says what is wrong.

    Example:
        >>> parse_experiment({"experiment_id": "e1", "surface": "for-you", "arms": [{"name": "a"}]})
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: an experiment has exactly two arms, not 1
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("an experiment must be a mapping with experiment_id, surface and arms")
    unknown = sorted(set(map(str, data)) - DEFINITION_KEYS)
    if unknown:
        raise InvalidInput(f"unknown key(s) {', '.join(unknown)}; known: {sorted(DEFINITION_KEYS)}")
    experiment_id = _name(data.get("experiment_id"), "experiment_id")
    surface = _surface(data.get("surface", "for-you"), "surface")
    raw_arms = data.get("arms")
    if not isinstance(raw_arms, Sequence) or isinstance(raw_arms, str) or len(raw_arms) != 2:
        count = len(raw_arms) if isinstance(raw_arms, Sequence) else raw_arms
        raise InvalidInput(f"an experiment has exactly two arms, not {count!r}")
    first, second = (_arm(raw, surface) for raw in raw_arms)
    if first.name == second.name:
        raise InvalidInput(f"the two arms need different names (both are {first.name!r})")
    mode = data.get("mode", "split")
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r} is not one of: {', '.join(MODES)}")
    window = data.get("window_hours", DEFAULT_WINDOW_HOURS)
    return RecommendExperiment(
        experiment_id=experiment_id,
        surface=surface,
        arms=(first, second),
        mode=str(mode),
        window_hours=_number(window, "window_hours", 0, MAX_WINDOW_HOURS),
    )


def _from_row(row: Mapping[str, Any]) -> RecommendExperiment:
    data = json.loads(row["definition"])
    arms = tuple(Arm(**arm) for arm in data["arms"])
    return RecommendExperiment(
        experiment_id=row["experiment_id"],
        surface=row["surface"],
        arms=(arms[0], arms[1]),
        mode=data["mode"],
        window_hours=float(data["window_hours"]),
        active=bool(row["active"]),
    )


def session_key(experiment_id: str, shopper_id: str, ts_ms: int) -> str:
    """An opaque key for one shopper's visit (their UTC day) in one experiment: it groups
    interleaved lists into sessions and names nobody (it never leaves the device)."""
    day = ts_ms // DAY_MS
    return hashlib.sha256(f"{experiment_id}:{shopper_id}:{day}".encode()).hexdigest()[:16]


def shown_tags(results: Sequence[Recommendation], shopper_id: str, ts_ms: int) -> dict[str, Any]:
    """What a ``recommendation_shown`` event adds for a list an experiment served ({} if none).

    Example:
        >>> shown_tags([], "L-1", 0)
        {}
    """
    tagged = [r for r in results if r.experiment]
    if not tagged:
        return {}
    experiment_id = tagged[0].experiment
    tags: dict[str, Any] = {
        "experiment": experiment_id,
        "arm": tagged[0].arm if tagged[0].team < 0 else INTERLEAVED,
        "session": session_key(experiment_id, shopper_id, ts_ms),
    }
    if tagged[0].team >= 0:
        tags["teams"] = [r.team for r in results]
    return tags


class RecommendExperiments:
    """The store's recommender experiments (``sw.recommend_experiments``): define, stop,
    serve a request through the running one, attribute purchases; reports live in
    ``shelfwise.recommend.experiment_report``."""

    def __init__(self, store: Store, recommender: Recommender) -> None:
        self._store = store
        self._default = recommender
        # Arm bundles loaded side by side with the served one, by folder (loaded once).
        self._recommenders: dict[str, Recommender] = {}
        self._loading = threading.Lock()

    # -- definitions ----------------------------------------------------------------------
    def define(self, definition: Mapping[str, Any]) -> RecommendExperiment:
        """Validate, load the arms' bundles and start an experiment; nothing is stored when
        anything is wrong (``InvalidInput``, ``BundleVerificationError``).

        One experiment runs per surface at a time, and an id is never reused (its events
        would mix with the new one's): stop the old one and pick a new id.

        Example: ``sw.recommend_experiments.define({"experiment_id": "v2", "surface":
        "for-you", "arms": [{"name": "v1"}, {"name": "v2", "bundle": "bundles/v2"}]})``
        """
        experiment = parse_experiment(definition)
        for arm in experiment.arms:
            if arm.bundle:
                self._arm_recommender(arm)  # a bad bundle is refused before anything is stored
        with self._store.write() as db:
            if self._row(db, experiment.experiment_id) is not None:
                raise InvalidInput(
                    f"experiment {experiment.experiment_id!r} exists; define a new id"
                )
            running = self._running_row(db, experiment.surface)
            if running is not None:
                raise InvalidInput(
                    f"experiment {running['experiment_id']!r} is running on "
                    f"{experiment.surface}; stop it first"
                )
            db.execute(
                "INSERT INTO recommend_experiments (experiment_id, surface, definition, active, "
                "created_ms) VALUES (?, ?, ?, 1, ?)",
                [
                    experiment.experiment_id,
                    experiment.surface,
                    json.dumps(experiment.to_dict()),
                    now_ms(),
                ],
            )
        return experiment

    @staticmethod
    def _row(db: Any, experiment_id: str) -> dict[str, Any] | None:
        rows = list(
            db.query("SELECT * FROM recommend_experiments WHERE experiment_id = ?", [experiment_id])
        )
        return rows[0] if rows else None

    @staticmethod
    def _running_row(db: Any, surface: str) -> dict[str, Any] | None:
        rows = list(
            db.query(
                "SELECT * FROM recommend_experiments WHERE surface = ? AND active = 1", [surface]
            )
        )
        return rows[0] if rows else None

    def get(self, experiment_id: str) -> RecommendExperiment:
        """One experiment by id, running or stopped (``InvalidInput`` if there is none)."""
        row = self._row(self._store, experiment_id)
        if row is None:
            raise InvalidInput(f"no recommender experiment {experiment_id!r}")
        return _from_row(row)

    def all(self) -> list[RecommendExperiment]:
        """Every experiment, oldest first."""
        rows = self._store.query("SELECT * FROM recommend_experiments ORDER BY created_ms, rowid")
        return [_from_row(row) for row in rows]

    def stop(self, experiment_id: str) -> RecommendExperiment:
        """Stop serving an experiment (its events and report stay; purchases within the
        window of a list it showed still count)."""
        self.get(experiment_id)
        with self._store.write() as db:
            db.execute(
                "UPDATE recommend_experiments SET active = 0 WHERE experiment_id = ?",
                [experiment_id],
            )
        return self.get(experiment_id)

    def running_on(self, surface: str) -> RecommendExperiment | None:
        """The experiment serving ``surface`` now, if any."""
        # On every recommendation: plain tuples, and the common case (none) parses nothing.
        rows = self._store.rows(
            "SELECT experiment_id, surface, definition, active FROM recommend_experiments "
            "WHERE surface = ? AND active = 1",
            [surface],
        )
        if not rows:
            return None
        experiment_id, surface, definition, active = rows[0]
        return _from_row(
            {
                "experiment_id": experiment_id,
                "surface": surface,
                "definition": definition,
                "active": active,
            }
        )

    # -- serving --------------------------------------------------------------------------
    def _arm_recommender(self, arm: Arm) -> Recommender:
        if not arm.bundle:
            return self._default
        with self._loading:  # concurrent requests load a bundle once
            if arm.bundle not in self._recommenders:
                main = self._default.model
                handle = ModelHandle(public_key=main.public_key, threads=main.threads)
                handle.swap(arm.bundle)
                self._recommenders[arm.bundle] = Recommender(
                    self._default.sources.store, self._default.catalog, handle
                )
            return self._recommenders[arm.bundle]

    def serve(
        self,
        shopper_id: str,
        surface: str,
        context: Context,
        *,
        limit: int = 10,
        item: str | None = None,
        category: str | None = None,
        filters: ItemFilter = NO_FILTER,
    ) -> list[Recommendation]:
        """A shopper's request: through the experiment running on ``surface`` (each result
        tagged with its experiment and arm), else the served model as usual.

        An arm whose bundle can no longer be loaded does not stop the kiosk: the request is
        served as if no experiment ran (untagged, so it counts for neither arm).
        """
        experiment = self.running_on(surface) if surface in SURFACES else None
        if experiment is None:
            return self._default.recommend(
                surface, context, limit=limit, item=item, category=category, filters=filters
            )

        def run(arm: Arm) -> list[Recommendation]:
            results = self._arm_recommender(arm).recommend(
                arm.surface or surface,
                context,
                limit=limit,
                item=item,
                category=category,
                diversity=arm.diversity,
                filters=filters,
            )
            return [
                replace(r, surface=surface, experiment=experiment.experiment_id, arm=arm.name)
                for r in results
            ]

        try:
            if experiment.mode == "split":
                return run(experiment.arm_for(shopper_id))
            return self._interleave(experiment, shopper_id, context, limit, run)
        except BundleError:
            logger.warning("experiment %s: an arm's bundle failed", experiment.experiment_id)
            return self._default.recommend(
                surface, context, limit=limit, item=item, category=category, filters=filters
            )

    @staticmethod
    def _interleave(
        experiment: RecommendExperiment,
        shopper_id: str,
        context: Context,
        limit: int,
        run: Callable[[Arm], list[Recommendation]],
    ) -> list[Recommendation]:
        lists = [run(arm) for arm in experiment.arms]
        by_team = [{r.item.item_id: r for r in results} for results in lists]
        # A fresh coin per request, reproducible from who asked and when.
        seed = f"{experiment.experiment_id}:{shopper_id}:{context.now_ms}"
        rng = random.Random(hashlib.sha256(seed.encode()).digest())
        merged = team_draft(
            [r.item.item_id for r in lists[0]],
            [r.item.item_id for r in lists[1]],
            limit=limit,
            rng=rng,
        )
        return [replace(by_team[team][item_id], team=team) for item_id, team in merged]

    # -- conversions ----------------------------------------------------------------------
    def record_purchase(self, db: Any, shopper_id: str, purchases: Sequence[Event]) -> int:
        """Log a ``recommendation_conversion`` for each purchase of an item an experiment's
        list showed this shopper within its window, in the caller's transaction (the one
        that writes the purchases); return how many were new."""
        bought = [p for p in purchases if p.type == "purchase" and p.item_id]
        if not shopper_id or not bought:
            return 0
        windows = {
            row["experiment_id"]: _from_row(row).window_ms
            for row in db.query("SELECT * FROM recommend_experiments")
        }
        if not windows:  # the common case: one tiny query per checkout
            return 0
        since = min(p.ts_ms for p in bought) - max(windows.values())
        shown = [
            (row["ts_ms"], json.loads(row["payload"]))
            for row in db.query(
                "SELECT ts_ms, payload FROM events WHERE shopper_id = ? "
                "AND type = 'recommendation_shown' AND ts_ms >= ? "
                "AND json_extract(payload, '$.experiment') IS NOT NULL "
                "ORDER BY ts_ms DESC, seq DESC",
                [shopper_id, since],
            )
        ]
        done = 0
        for purchase in bought:
            for experiment_id, window in windows.items():
                for ts, payload in shown:
                    if payload.get("experiment") != experiment_id or ts > purchase.ts_ms:
                        continue
                    if purchase.ts_ms - ts > window:
                        break  # older lists are further away still
                    if purchase.item_id in payload.get("items", []):
                        done += _convert(db, shopper_id, purchase, payload)
                        break
        return done


def _arm_of_item(payload: Mapping[str, Any], item_id: str, arms: Sequence[str]) -> str:
    """The arm a shown list credits ``item_id`` to (its team's, when interleaved)."""
    if payload.get("arm") != INTERLEAVED:
        return str(payload.get("arm", ""))
    position = payload["items"].index(item_id)
    teams = payload.get("teams", [])
    return arms[teams[position]] if position < len(teams) else ""


def _convert(db: Any, shopper_id: str, purchase: Event, payload: Mapping[str, Any]) -> int:
    """Log one conversion, unless this shown list already converted on this item (then 0)."""
    assert purchase.item_id is not None
    already = db.execute(
        "SELECT 1 FROM events WHERE shopper_id = ? AND type = 'recommendation_conversion' "
        "AND item_id = ? AND json_extract(payload, '$.shown_id') = ?",
        [shopper_id, purchase.item_id, payload.get("shown_id")],
    ).fetchone()
    if already:
        return 0
    definition = db.execute(
        "SELECT definition FROM recommend_experiments WHERE experiment_id = ?",
        [payload["experiment"]],
    ).fetchone()
    arms = [arm["name"] for arm in json.loads(definition[0])["arms"]] if definition else []
    arm = _arm_of_item(payload, purchase.item_id, arms)
    event = Event(
        "recommendation_conversion",
        purchase.ts_ms,
        item_id=purchase.item_id,
        quantity=purchase.quantity,
        store_id=purchase.store_id,
        event_id=uuid.uuid4().hex,
        payload={
            "experiment": payload["experiment"],
            "arm": arm,
            "surface": payload.get("surface", ""),
            "shown_id": payload.get("shown_id", ""),
        },
    )
    return int(insert_event(db, shopper_id, event))


__all__ = [
    "INTERLEAVED",
    "MODES",
    "Arm",
    "RecommendExperiment",
    "RecommendExperiments",
    "parse_experiment",
    "session_key",
    "shown_tags",
]
