"""Geofence tracking: an enter/dwell/exit state machine per shopper and fence, kept in the store.

Location updates (``Fix``: latitude, longitude, reported accuracy) drive a state machine per
shopper and fence that is built to ignore GPS jitter:

- **accuracy-aware enter**: a fix enters a fence only when it lies inside and its accuracy
  is no worse than the fence's size (radius, or the equivalent radius of a polygon);
- **hysteresis**: leaving needs the fix beyond an exit margin of max(10% of the radius,
  20 m) *and* further out than its own accuracy ...
- **confirmed exit**: ... on ``exit_fixes`` fixes in a row (an inside fix resets the count);
- **dwell** once the shopper has stayed ``dwell_s`` since entering: on the next fix, or from
  ``Geofences.tick`` when the phone has gone quiet (it reports little once still);
- **initial "already inside"**: the first fix for a fence (a new shopper, or a fence
  registered since the shopper's last fix) that is inside either emits an ``enter`` marked
  ``initial=True`` or, for fences with ``initial="silent"``, only records the state;
- state lives in the store, so a restart, a re-registered fence or a replayed fix (not newer
  than the last one) never repeats an event.

Only the fence state is stored (no coordinate ever is), events carry the fence id only, and
nothing here runs without the shopper's location consent (the facade checks it).

Shapes, distances and the spatial index are in ``shelfwise.geo.shapes``.

Example:
    >>> from shelfwise.geo.shapes import circle
    >>> state, events = step(circle("f", 45.0, 9.0, 100), None, -60.0, 10.0, 1_000, first_sight=True)
    >>> [e.kind for e in events]
    ['enter']
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidInput
from ..clock import now_ms
from ..events import Event, insert_event
from ..store.connection import Store
from .shapes import (
    DEFAULT_DWELL_S,
    Fence,
    FenceIndex,
    check_location,
    exit_margin_m,
    signed_distance_m,
)

logger = logging.getLogger(__name__)

DEFAULT_EXIT_FIXES = 3
# tick(): a dwell falls due without a fix only if the last fix is at most this much older.
DEFAULT_TICK_GAP_S = 900.0


@dataclass(frozen=True)
class GeofenceEvent:
    """A transition: ``kind`` is enter, dwell or exit; offers it triggered ride along."""

    fence_id: str
    kind: str
    ts_ms: int
    initial: bool = False
    offers: tuple[Any, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fence_id": self.fence_id,
            "kind": self.kind,
            "ts_ms": self.ts_ms,
            "initial": self.initial,
            "offers": [o.to_dict() for o in self.offers],
        }


# -- the state machine -----------------------------------------------------------------------
@dataclass(frozen=True)
class FenceState:
    """What the store keeps per (shopper, fence): no coordinates."""

    state: str = "outside"
    since_ms: int = 0
    last_fix_ms: int = 0
    outside_fixes: int = 0


def step(
    fence: Fence,
    previous: FenceState | None,
    distance_m: float,
    accuracy_m: float,
    ts_ms: int,
    *,
    first_sight: bool,
    exit_fixes: int = DEFAULT_EXIT_FIXES,
) -> tuple[FenceState, list[GeofenceEvent]]:
    """One fix through the state machine (pure): the new state and the events it emits.

    Example:
        >>> from shelfwise.geo.shapes import circle
        >>> f = circle("f", 45.0, 9.0, 100)
        >>> state, events = step(f, None, -60.0, 10.0, 1_000, first_sight=True)
        >>> state.state, [(e.kind, e.initial) for e in events]
        ('inside', [('enter', True)])
    """
    confident_inside = distance_m <= 0 and accuracy_m <= fence.radius_m
    confident_outside = distance_m > exit_margin_m(fence) and distance_m > accuracy_m
    events: list[GeofenceEvent] = []
    if previous is None or previous.state == "outside":
        if confident_inside:
            initial = previous is None and first_sight
            if not (initial and fence.initial == "silent"):
                events.append(GeofenceEvent(fence.fence_id, "enter", ts_ms, initial=initial))
            new = FenceState("inside", ts_ms, ts_ms, 0)
        else:
            new = FenceState("outside", previous.since_ms if previous else ts_ms, ts_ms, 0)
        return new, events
    outside = previous.outside_fixes
    if confident_outside:
        outside += 1
    elif distance_m <= 0:
        outside = 0  # back inside: an exit needs consecutive outside fixes
    if outside >= exit_fixes:
        events.append(GeofenceEvent(fence.fence_id, "exit", ts_ms))
        return FenceState("outside", ts_ms, ts_ms, 0), events
    state = previous.state
    if state == "inside" and outside == 0 and ts_ms - previous.since_ms >= fence.dwell_s * 1000:
        events.append(GeofenceEvent(fence.fence_id, "dwell", ts_ms))
        state = "dwelling"
    return FenceState(state, previous.since_ms, ts_ms, outside), events


class Geofences:
    """The fences of one store file and every shopper's position relative to them."""

    def __init__(self, store: Store, *, exit_fixes: int = DEFAULT_EXIT_FIXES) -> None:
        if exit_fixes < 1:
            raise InvalidInput("exit_fixes must be at least 1")
        self._store = store
        self.exit_fixes = exit_fixes
        self._index: FenceIndex | None = None
        self._index_version: str | None = None

    # -- fences ------------------------------------------------------------------------
    def add(self, *fences: Fence) -> int:
        """Register fences (re-registering one keeps every shopper's state: no repeats).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.geo.add(circle("s12", 45.46, 9.19, 150))
            1
        """
        stamp = now_ms()
        with self._store.write() as db:
            for fence in fences:
                if not isinstance(fence, Fence):
                    raise InvalidInput("add() takes fences made with circle() or polygon()")
                shape = json.dumps(fence.to_dict())
                changed = db.execute(
                    "INSERT INTO geofences (fence_id, store_id, shape, dwell_ms, initial, updated_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(fence_id) DO UPDATE SET "
                    "store_id = excluded.store_id, shape = excluded.shape, dwell_ms = excluded.dwell_ms, "
                    "initial = excluded.initial, updated_ms = excluded.updated_ms "
                    "WHERE geofences.shape != excluded.shape",
                    [
                        fence.fence_id,
                        fence.store_id,
                        shape,
                        int(fence.dwell_s * 1000),
                        fence.initial,
                        stamp,
                    ],
                ).rowcount
                if changed:
                    self._bump(db)
        return len(fences)

    def remove(self, fence_id: str) -> None:
        """Unregister a fence and forget every shopper's state for it."""
        with self._store.write() as db:
            db.execute("DELETE FROM geofence_state WHERE fence_id = ?", [fence_id])
            if db.execute("DELETE FROM geofences WHERE fence_id = ?", [fence_id]).rowcount:
                self._bump(db)

    @staticmethod
    def _bump(db: Any) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('geo.version', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def all(self) -> list[Fence]:
        """Every registered fence."""
        rows = self._store.query("SELECT shape FROM geofences ORDER BY fence_id")
        return [_fence_from_row(r["shape"]) for r in rows]

    def index(self) -> FenceIndex:
        """The spatial index, rebuilt only when the fences changed (any process)."""
        version = self._store.get_meta("geo.version", "0")
        if self._index is None or version != self._index_version:
            self._index = FenceIndex(self.all())
            self._index_version = version
        return self._index

    # -- location updates ----------------------------------------------------------------
    def update(
        self,
        shopper_id: str,
        lat: float,
        lon: float,
        accuracy_m: float,
        *,
        ts_ms: int | None = None,
    ) -> list[GeofenceEvent]:
        """Run one fix through every nearby fence (and every fence the shopper is in).

        The caller checks location consent. A fix not newer than the last one is ignored.
        """
        lat, lon, accuracy_m = check_location(lat, lon, accuracy_m)
        stamp = now_ms() if ts_ms is None else int(ts_ms)
        index = self.index()
        by_id = {f.fence_id: f for f in index.fences}
        store_id_of = {f.fence_id: f.store_id for f in index.fences}
        with self._store.write() as db:
            clock = list(
                db.query(
                    "SELECT last_fix_ms FROM geofence_clock WHERE shopper_id = ?", [shopper_id]
                )
            )
            last_fix = clock[0]["last_fix_ms"] if clock else None
            if last_fix is not None and stamp <= last_fix:
                return []  # a replay or an out-of-order fix: already accounted for
            states = {
                r["fence_id"]: (
                    FenceState(r["state"], r["since_ms"], r["last_fix_ms"], r["outside_fixes"])
                )
                for r in db.query(
                    "SELECT s.*, g.updated_ms FROM geofence_state s JOIN geofences g USING (fence_id) "
                    "WHERE s.shopper_id = ?",
                    [shopper_id],
                )
            }
            updated = (
                {
                    r["fence_id"]: r["updated_ms"]
                    for r in db.query("SELECT fence_id, updated_ms FROM geofences")
                }
                if last_fix is not None
                else {}
            )
            candidates = {f.fence_id: f for f in index.near(lat, lon, accuracy_m=accuracy_m)}
            for fence_id, state in states.items():
                if state.state != "outside" and fence_id in by_id:
                    candidates.setdefault(fence_id, by_id[fence_id])
            events: list[GeofenceEvent] = []
            for fence_id in sorted(candidates):
                fence = candidates[fence_id]
                previous = states.get(fence_id)
                first = last_fix is None or updated.get(fence_id, 0) > last_fix
                new, emitted = step(
                    fence,
                    previous,
                    signed_distance_m(fence, lat, lon),
                    accuracy_m,
                    stamp,
                    first_sight=first,
                    exit_fixes=self.exit_fixes,
                )
                if previous is None and new.state == "outside":
                    continue  # near but outside a fence never entered: nothing to remember
                db.execute(
                    "INSERT INTO geofence_state (shopper_id, fence_id, state, since_ms, last_fix_ms, "
                    "outside_fixes) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(shopper_id, fence_id) DO UPDATE "
                    "SET state = excluded.state, since_ms = excluded.since_ms, "
                    "last_fix_ms = excluded.last_fix_ms, outside_fixes = excluded.outside_fixes",
                    [
                        shopper_id,
                        fence_id,
                        new.state,
                        new.since_ms,
                        new.last_fix_ms,
                        new.outside_fixes,
                    ],
                )
                for event in emitted:
                    _log_event(db, shopper_id, event, store_id_of.get(fence_id, ""))
                events.extend(emitted)
            db.execute(
                "INSERT INTO geofence_clock (shopper_id, last_fix_ms) VALUES (?, ?) "
                "ON CONFLICT(shopper_id) DO UPDATE SET last_fix_ms = excluded.last_fix_ms",
                [shopper_id, stamp],
            )
        return events

    def tick(
        self, now: int | None = None, *, max_gap_s: float = DEFAULT_TICK_GAP_S
    ) -> list[tuple[str, GeofenceEvent]]:
        """Emit the dwell events that fell due without a new fix; return (shopper id, event).

        A phone often stops reporting once it is still (the OS batches or pauses location),
        so a dwell would otherwise wait for the next fix. Call this every 30-60 s: every
        shopper ``inside`` a fence since ``dwell_s`` ago, with no exit pending and location
        consent, moves to ``dwelling`` and gets a ``geofence_dwell`` event stamped at the
        moment it fell due (entered + ``dwell_s``) - in one transaction with the state, so a
        second tick, a restart or another process never repeats it, and a later fix inside
        does not either. A shopper whose last fix is more than ``max_gap_s`` (default 15 min)
        older than the due moment is not assumed to still be there: the next fix decides.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.geo.tick(1_750_000_000_000)
            []
        """
        stamp = now_ms() if now is None else int(now)
        if not (isinstance(max_gap_s, int | float) and math.isfinite(max_gap_s) and max_gap_s >= 0):
            raise InvalidInput("max_gap_s must be a non-negative number of seconds")
        gap_ms = int(max_gap_s * 1000)
        out: list[tuple[str, GeofenceEvent]] = []
        with self._store.write() as db:
            due = list(
                db.query(
                    "SELECT s.shopper_id, s.fence_id, s.since_ms + g.dwell_ms AS due_ms, g.store_id "
                    "FROM geofence_state s JOIN geofences g USING (fence_id) "
                    "JOIN consents c ON c.shopper_id = s.shopper_id AND c.purpose = 'location' "
                    "AND c.granted = 1 "
                    "WHERE s.state = 'inside' AND s.since_ms <= ? AND s.outside_fixes = 0 "
                    "AND s.since_ms + g.dwell_ms <= ? AND s.since_ms + g.dwell_ms - s.last_fix_ms <= ? "
                    "ORDER BY due_ms, s.shopper_id, s.fence_id",
                    [stamp, stamp, gap_ms],
                )
            )
            for row in due:
                moved = db.execute(
                    "UPDATE geofence_state SET state = 'dwelling' WHERE shopper_id = ? "
                    "AND fence_id = ? AND state = 'inside'",
                    [row["shopper_id"], row["fence_id"]],
                ).rowcount
                if not moved:  # pragma: no cover - the write lock makes this impossible
                    continue
                event = GeofenceEvent(row["fence_id"], "dwell", int(row["due_ms"]))
                _log_event(db, row["shopper_id"], event, row["store_id"])
                out.append((row["shopper_id"], event))
        if out:
            logger.info("geofence tick: %d dwell events", len(out))
        return out

    def states(self, shopper_id: str) -> dict[str, str]:
        """fence id -> inside / dwelling / outside, for the fences the shopper has been near."""
        rows = self._store.query(
            "SELECT fence_id, state FROM geofence_state WHERE shopper_id = ? ORDER BY fence_id",
            [shopper_id],
        )
        return {r["fence_id"]: r["state"] for r in rows}

    def forget(self, shopper_id: str) -> None:
        """Drop a shopper's fence state (e.g. when location consent is withdrawn)."""
        with self._store.write() as db:
            db.execute("DELETE FROM geofence_state WHERE shopper_id = ?", [shopper_id])
            db.execute("DELETE FROM geofence_clock WHERE shopper_id = ?", [shopper_id])


def _log_event(db: Any, shopper_id: str, event: GeofenceEvent, store_id: str) -> None:
    """The ``geofence_<kind>`` event row: the fence id only, never a coordinate."""
    payload: dict[str, Any] = {"fence_id": event.fence_id}
    if event.initial:
        payload["initial"] = True
    record = Event(
        type=f"geofence_{event.kind}",
        ts_ms=event.ts_ms,
        store_id=store_id,
        event_id=uuid.uuid4().hex,
        payload=payload,
    )
    insert_event(db, shopper_id, record)


def _fence_from_row(shape: str) -> Fence:
    data = json.loads(shape)
    return Fence(
        fence_id=data["fence_id"],
        kind=data["kind"],
        lat=data["lat"],
        lon=data["lon"],
        radius_m=data["radius_m"],
        ring=tuple((float(a), float(b)) for a, b in data.get("ring") or ()),
        store_id=data.get("store_id", ""),
        dwell_s=data.get("dwell_s", DEFAULT_DWELL_S),
        initial=data.get("initial", "enter"),
    )


__all__ = ["FenceState", "GeofenceEvent", "Geofences", "step"]
