"""Experiments (A/B tests on offers): deterministic assignment, exposures, conversions, the report.

A shopper's variant is a hash of the experiment id and the shopper id, so every device and
every call agrees without storing anything first. The first time a shopper is shown an
experiment's offer (or held out of it) the assignment is stored as an exposure; the first
purchase after it of an item the offer targets is the conversion. Both are logged as events
(``experiment_exposure`` / ``experiment_conversion``), the counts the synced summaries carry
and ``report`` reads. This module owns the ``experiment_assignments`` table.

Example:
    >>> from shelfwise.offers.definitions import Experiment
    >>> experiment = Experiment("e1", (("a", 1.0, False), ("b", 3.0, False)))
    >>> sorted({assign_variant(experiment, f"L-{i}")[0] for i in range(20)})
    ['a', 'b']
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._errors import InvalidInput
from ..events import Event, insert_event
from .definitions import Experiment, Offer, Targeting

# How a caller hands over an offer's targeting, read through its own connection (the offers
# table belongs to the engine); None once the offer was deleted.
TargetingOf = Callable[[Any, str], Targeting | None]


def assign_variant(experiment: Experiment, identity: str) -> tuple[str, bool]:
    """The variant (and whether it is a holdout) for an identity: the same every time.

    Example:
        >>> exp = Experiment("e1")
        >>> assign_variant(exp, "L-1") == assign_variant(exp, "L-1")
        True
    """
    digest = hashlib.sha256(f"{experiment.experiment_id}:{identity}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v[1] for v in experiment.variants)
    for name, weight, holdout in experiment.variants:
        if point < weight:
            return name, holdout
        point -= weight
    name, _, holdout = experiment.variants[-1]
    return name, holdout


def converts(targeting: Targeting, item_id: str | None, category: str | None) -> bool:
    """Does buying this item count as converting on an offer with this targeting?

    Example:
        >>> converts(Targeting(categories=frozenset({"coffee"})), "espresso", "coffee")
        True
        >>> converts(Targeting(items=frozenset({"tea"})), "espresso", "coffee")
        False
    """
    if not (targeting.items or targeting.categories):
        return True
    return item_id in targeting.items or (category is not None and category in targeting.categories)


def _log(
    db: Any, shopper_id: str, event_type: str, payload: dict[str, Any], ts: int, store_id: str
) -> None:
    event = Event(event_type, ts, store_id=store_id, event_id=uuid.uuid4().hex, payload=payload)
    insert_event(db, shopper_id, event)


def record_exposures(
    db: Any,
    shopper_id: str,
    exposures: Sequence[tuple[Offer, str | None]],
    *,
    ts: int,
    store_id: str,
) -> None:
    """Store each (offer, variant) as the shopper's exposure to the offer's experiment, in the
    caller's transaction; only the first exposure per shopper and experiment counts."""
    for offer, variant in exposures:
        assert offer.experiment is not None
        experiment_id = offer.experiment.experiment_id
        inserted = db.execute(
            "INSERT OR IGNORE INTO experiment_assignments (shopper_id, experiment_id, variant, offer_id, "
            "exposed_ms) VALUES (?, ?, ?, ?, ?)",
            [shopper_id, experiment_id, variant, offer.offer_id, ts],
        ).rowcount
        if inserted:
            payload = {
                "experiment_id": experiment_id,
                "variant": variant,
                "offer_id": offer.offer_id,
            }
            _log(db, shopper_id, "experiment_exposure", payload, ts, store_id)
            # Timestamps tie within a millisecond; the event order says what came first.
            db.execute(
                "UPDATE experiment_assignments SET exposed_seq = (SELECT max(seq) FROM events) "
                "WHERE shopper_id = ? AND experiment_id = ?",
                [shopper_id, experiment_id],
            )


def _convert(
    db: Any, shopper_id: str, assignment: Mapping[str, Any], ts: int, store_id: str
) -> int:
    """Mark one assignment converted and log it, unless it already was (then 0)."""
    moved: int = db.execute(
        "UPDATE experiment_assignments SET converted_ms = ? WHERE shopper_id = ? "
        "AND experiment_id = ? AND converted_ms IS NULL",
        [ts, shopper_id, assignment["experiment_id"]],
    ).rowcount
    if moved:
        payload = {
            "experiment_id": assignment["experiment_id"],
            "variant": assignment["variant"],
            # The offer id makes the summary cell (offer, variant) line up with the
            # experiment_exposure cells of the same offer.
            "offer_id": assignment["offer_id"],
        }
        _log(db, shopper_id, "experiment_conversion", payload, ts, store_id)
    return moved


def record_purchase(
    db: Any,
    shopper_id: str,
    purchases: Sequence[Any],
    *,
    targeting_of: TargetingOf,
    store_id: str,
) -> int:
    """Record the conversions these purchases make, in the caller's transaction; return how
    many were new (see ``Offers.record_purchase``, which passes the offers' targeting)."""
    if not shopper_id or not purchases:
        return 0
    open_rows = list(
        db.query(
            "SELECT experiment_id, variant, offer_id, exposed_ms FROM experiment_assignments "
            "WHERE shopper_id = ? AND converted_ms IS NULL",
            [shopper_id],
        )
    )
    if not open_rows:  # the common case: one indexed lookup per checkout
        return 0
    item_ids = sorted({str(p.item_id) for p in purchases if p.item_id})
    marks = ",".join("?" * len(item_ids))
    categories = {
        r["item_id"]: r["category"]
        for r in db.query(
            f"SELECT item_id, category FROM items WHERE item_id IN ({marks})", item_ids
        )
    }
    done = 0
    for assignment in open_rows:
        targeting = targeting_of(db, assignment["offer_id"])
        if targeting is None:
            continue
        for purchase in purchases:
            if purchase.ts_ms < assignment["exposed_ms"] or not converts(
                targeting, purchase.item_id, categories.get(purchase.item_id)
            ):
                continue
            done += _convert(
                db,
                shopper_id,
                assignment,
                purchase.ts_ms,
                getattr(purchase, "store_id", "") or store_id,
            )
            break
    return done


def pending_conversions(store: Any, shopper_id: str | None = None) -> list[dict[str, Any]]:
    """Purchases after an exposure that is not converted yet (one row per pair), in order."""
    sql = (
        "SELECT a.shopper_id, a.experiment_id, a.variant, a.offer_id, a.exposed_ms, "
        "e.item_id, e.ts_ms, e.store_id, i.category FROM experiment_assignments a "
        "JOIN events e ON e.shopper_id = a.shopper_id AND e.type = 'purchase' "
        "AND (e.ts_ms > a.exposed_ms OR (e.ts_ms = a.exposed_ms AND e.seq > coalesce(a.exposed_seq, 0))) "
        "LEFT JOIN items i ON i.item_id = e.item_id WHERE a.converted_ms IS NULL"
    )
    params: list[Any] = []
    if shopper_id is not None:
        sql += " AND a.shopper_id = ?"
        params.append(shopper_id)
    rows: list[dict[str, Any]] = store.query(sql + " ORDER BY e.ts_ms, e.seq", params)
    return rows


def convert_pending(
    db: Any, rows: Sequence[Mapping[str, Any]], *, targeting_of: TargetingOf, store_id: str
) -> int:
    """Convert each shopper and experiment on its first matching row of ``pending_conversions``,
    in the caller's transaction; return how many were new."""
    done = 0
    settled: set[tuple[str, str]] = set()
    targeting: dict[str, Targeting | None] = {}
    for row in rows:
        key = (row["shopper_id"], row["experiment_id"])
        if key in settled:
            continue
        if row["offer_id"] not in targeting:
            targeting[row["offer_id"]] = targeting_of(db, row["offer_id"])
        t = targeting[row["offer_id"]]
        if t is None or not converts(t, row["item_id"], row["category"]):
            continue
        settled.add(key)
        done += _convert(db, row["shopper_id"], row, row["ts_ms"], row["store_id"] or store_id)
    return done


def check_known(store: Any, experiment_id: str, offers: Iterable[Offer]) -> None:
    """``InvalidInput`` unless an offer runs the experiment or shoppers were exposed to it (an
    experiment whose offer has moved on still has a report); a typo must not read as "no
    shopper saw it yet".

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     check_known(sw.store, "nothing-yet", [])
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: no offer experiment 'nothing-yet' (no offer runs it and nobody was exposed to it)
    """
    if any(o.experiment and o.experiment.experiment_id == experiment_id for o in offers):
        return
    exposed = store.query(
        "SELECT 1 FROM events WHERE type = 'experiment_exposure' "
        "AND json_extract(payload, '$.experiment_id') = ? LIMIT 1",
        [experiment_id],
    )
    if not exposed:
        raise InvalidInput(
            f"no offer experiment {experiment_id!r} (no offer runs it and nobody was exposed to it)"
        )


def report(store: Any, experiment_id: str) -> dict[str, Any]:
    """Exposed and converted shoppers per variant, conversion rates and the lift, from the
    ``experiment_exposure``/``experiment_conversion`` event counts (what the summaries carry).

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     report(sw.store, "nothing-yet")
        {'experiment_id': 'nothing-yet', 'variants': {}, 'lift': None}
    """
    rows = store.query(
        "SELECT type, json_extract(payload, '$.variant') AS variant, count(*) AS n FROM events "
        "WHERE type IN ('experiment_exposure', 'experiment_conversion') "
        "AND json_extract(payload, '$.experiment_id') = ? GROUP BY type, variant",
        [experiment_id],
    )
    variants: dict[str, dict[str, float]] = {}
    for r in rows:
        v = variants.setdefault(r["variant"], {"exposed": 0, "converted": 0})
        v["exposed" if r["type"] == "experiment_exposure" else "converted"] += r["n"]
    for v in variants.values():
        v["rate"] = v["converted"] / v["exposed"] if v["exposed"] else 0.0
    control = variants.get("control", {}).get("rate")
    treatment = variants.get("treatment", {}).get("rate")
    lift = (treatment / control - 1.0) if control and treatment is not None else None
    return {"experiment_id": experiment_id, "variants": variants, "lift": lift}


__all__ = [
    "TargetingOf",
    "assign_variant",
    "check_known",
    "convert_pending",
    "converts",
    "pending_conversions",
    "record_exposures",
    "record_purchase",
    "report",
]
