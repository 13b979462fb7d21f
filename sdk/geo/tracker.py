"""Geofences: circles and polygons, a spatial index, and an enter/dwell/exit state machine.

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

Distances are metres on a local tangent plane around each fence (equirectangular: exact to
well under 0.1% over a few kilometres), circles by haversine. The spatial index is a shapely
``STRtree`` over each fence's latitude/longitude box grown by its exit margin; shapely is the
optional ``geo`` extra and is imported when the first polygon or index is built.

Example:
    >>> fence = circle("store-12", 45.4642, 9.1900, radius_m=150)
    >>> round(signed_distance_m(fence, 45.4642, 9.1900))    # at the centre: 150 m inside
    -150
    >>> exit_margin_m(fence)
    20.0
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidInput, InvalidLocation
from .._time import now_ms
from ..store.connection import Store

logger = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_DWELL_S = 300.0
DEFAULT_EXIT_FIXES = 3
MIN_EXIT_MARGIN_M = 20.0
MAX_FENCE_RADIUS_M = 100_000.0
# tick(): a dwell falls due without a fix only if the last fix is at most this much older.
DEFAULT_TICK_GAP_S = 900.0


@dataclass(frozen=True)
class Fence:
    """A circle (centre + radius) or a polygon (ring of (lat, lon)) around a place."""

    fence_id: str
    kind: str
    lat: float
    lon: float
    radius_m: float
    ring: tuple[tuple[float, float], ...] = ()
    store_id: str = ""
    dwell_s: float = DEFAULT_DWELL_S
    initial: str = "enter"  # enter: report "already inside"; silent: record state only

    def to_dict(self) -> dict[str, Any]:
        return {
            "fence_id": self.fence_id,
            "kind": self.kind,
            "lat": self.lat,
            "lon": self.lon,
            "radius_m": self.radius_m,
            "ring": [list(p) for p in self.ring],
            "store_id": self.store_id,
            "dwell_s": self.dwell_s,
            "initial": self.initial,
        }


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


def check_location(lat: Any, lon: Any, accuracy_m: Any) -> tuple[float, float, float]:
    """Validate a fix; ``InvalidLocation`` for impossible values.

    Example:
        >>> check_location(91, 0, 5)
        Traceback (most recent call last):
        ...
        shelfwise.InvalidLocation: latitude 91 is outside -90..90
    """
    values = []
    for name, value in (("latitude", lat), ("longitude", lon), ("accuracy", accuracy_m)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidLocation(f"{name} must be a finite number, not {value!r}")
        values.append(float(value))
    if not -90 <= values[0] <= 90:
        raise InvalidLocation(f"latitude {lat} is outside -90..90")
    if not -180 <= values[1] <= 180:
        raise InvalidLocation(f"longitude {lon} is outside -180..180")
    if values[2] < 0:
        raise InvalidLocation(f"accuracy {accuracy_m} m is negative")
    return values[0], values[1], values[2]


def _check_id(fence_id: str) -> str:
    text = str(fence_id or "").strip()
    if not text or len(text) > 64:
        raise InvalidInput("a fence id must be 1 to 64 characters")
    return text


def _options(dwell_s: float, initial: str) -> None:
    if not (isinstance(dwell_s, int | float) and math.isfinite(dwell_s) and 0 <= dwell_s <= 86_400):
        raise InvalidInput("dwell_s must be between 0 and 86400 seconds")
    if initial not in {"enter", "silent"}:
        raise InvalidInput("initial must be 'enter' or 'silent'")


def circle(
    fence_id: str,
    lat: float,
    lon: float,
    radius_m: float,
    *,
    store_id: str = "",
    dwell_s: float = DEFAULT_DWELL_S,
    initial: str = "enter",
) -> Fence:
    """A circular fence; radius in metres (Android suggests >= 100-150 m for real GPS).

    Example:
        >>> circle("s12-1mi", 45.46, 9.19, 1609.344).radius_m
        1609.344
    """
    lat, lon, _ = check_location(lat, lon, 0)
    if (
        not (isinstance(radius_m, int | float) and math.isfinite(radius_m))
        or not 1 <= radius_m <= MAX_FENCE_RADIUS_M
    ):
        raise InvalidLocation(f"radius {radius_m!r} m must be between 1 and {MAX_FENCE_RADIUS_M:g}")
    _options(dwell_s, initial)
    return Fence(
        _check_id(fence_id),
        "circle",
        lat,
        lon,
        float(radius_m),
        (),
        store_id,
        float(dwell_s),
        initial,
    )


def polygon(
    fence_id: str,
    ring: Sequence[tuple[float, float]],
    *,
    store_id: str = "",
    dwell_s: float = DEFAULT_DWELL_S,
    initial: str = "enter",
) -> Fence:
    """A polygon fence from (lat, lon) corners (a car park, a mall); needs ``shelfwise[geo]``.

    Example:
        >>> square = polygon("lot", [(45.0, 9.0), (45.0, 9.001), (45.001, 9.001), (45.001, 9.0)])
        >>> round(square.radius_m)
        53
    """
    points = tuple(check_location(lat, lon, 0)[:2] for lat, lon in ring)
    if len(points) >= 2 and points[0] == points[-1]:
        points = points[:-1]
    if len(points) < 3:
        raise InvalidLocation("a polygon fence needs at least 3 corners")
    _options(dwell_s, initial)
    lat0 = sum(p[0] for p in points) / len(points)
    lon0 = sum(p[1] for p in points) / len(points)
    shapely = _shapely()
    shape = shapely.Polygon([_project(lat0, lon0, lat, lon) for lat, lon in points])
    if not shape.is_valid or shape.area <= 1.0:
        raise InvalidLocation(f"polygon {fence_id}: the corners cross or enclose no area")
    if math.sqrt(shape.area / math.pi) > MAX_FENCE_RADIUS_M:
        raise InvalidLocation(f"polygon {fence_id} is larger than {MAX_FENCE_RADIUS_M:g} m across")
    centre = shape.centroid
    clat, clon = _unproject(lat0, lon0, centre.x, centre.y)
    return Fence(
        _check_id(fence_id),
        "polygon",
        clat,
        clon,
        math.sqrt(shape.area / math.pi),
        points,
        store_id,
        float(dwell_s),
        initial,
    )


def fence_from_dict(data: Mapping[str, Any]) -> Fence:
    """A fence from JSON-ready data (``Fence.to_dict`` or a config file)."""
    kind = data.get("kind", "circle")
    options = {
        "store_id": str(data.get("store_id") or ""),
        "dwell_s": data.get("dwell_s", DEFAULT_DWELL_S),
        "initial": data.get("initial", "enter"),
    }
    if kind == "circle":
        return circle(data["fence_id"], data["lat"], data["lon"], data["radius_m"], **options)
    if kind == "polygon":
        return polygon(data["fence_id"], [tuple(p) for p in data["ring"]], **options)
    raise InvalidInput(f"fence kind {kind!r} must be circle or polygon")


# -- geometry ---------------------------------------------------------------------------------
def _shapely() -> Any:
    try:
        import shapely
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "polygon fences and the spatial index need the 'geo' extra: "
            f"pip install 'shelfwise[geo]' ({exc.name or exc} is missing)"
        ) from exc
    return shapely


def _project(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """Metres east/north of (lat0, lon0) on the local tangent plane."""
    dlon = (lon - lon0 + 540.0) % 360.0 - 180.0  # across the antimeridian too
    x = math.radians(dlon) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    y = math.radians(lat - lat0) * EARTH_RADIUS_M
    return x, y


def _unproject(lat0: float, lon0: float, x: float, y: float) -> tuple[float, float]:
    lat = lat0 + math.degrees(y / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(x / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat, (lon + 540.0) % 360.0 - 180.0


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres.

    Example:
        >>> round(haversine_m(0, 0, 0, 1) / 1000, 1)
        111.2
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


_POLYGONS: dict[tuple[tuple[float, float], ...], Any] = {}


def _polygon_shape(fence: Fence) -> Any:
    shape = _POLYGONS.get(fence.ring)
    if shape is None:
        shapely = _shapely()
        shape = shapely.Polygon(
            [_project(fence.lat, fence.lon, lat, lon) for lat, lon in fence.ring]
        )
        shapely.prepare(shape)
        if len(_POLYGONS) > 50_000:
            _POLYGONS.clear()
        _POLYGONS[fence.ring] = shape
    return shape


def signed_distance_m(fence: Fence, lat: float, lon: float) -> float:
    """Metres from the fence's edge: negative inside, positive outside."""
    if fence.kind == "circle":
        return haversine_m(fence.lat, fence.lon, lat, lon) - fence.radius_m
    shapely = _shapely()
    shape = _polygon_shape(fence)
    point = shapely.Point(_project(fence.lat, fence.lon, lat, lon))
    if shape.contains(point):
        return -float(shape.exterior.distance(point))
    return float(shape.distance(point))


def exit_margin_m(fence: Fence) -> float:
    """The hysteresis band outside the edge: max(10% of the radius, 20 m)."""
    return max(0.1 * fence.radius_m, MIN_EXIT_MARGIN_M)


def _degree_box(fence: Fence, pad_m: float) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) around the fence grown by ``pad_m``."""
    reach = fence.radius_m + pad_m
    if fence.kind == "polygon":
        reach = max(haversine_m(fence.lat, fence.lon, a, b) for a, b in fence.ring) + pad_m
    dlat = math.degrees(reach / EARTH_RADIUS_M)
    coslat = max(math.cos(math.radians(min(89.9, abs(fence.lat) + dlat))), 1e-6)
    dlon = min(180.0, math.degrees(reach / (EARTH_RADIUS_M * coslat)))
    return fence.lon - dlon, fence.lat - dlat, fence.lon + dlon, fence.lat + dlat


class FenceIndex:
    """A shapely STRtree over many fences: which fences could a fix be in or near?

    Example:
        >>> index = FenceIndex([circle("a", 45.0, 9.0, 100), circle("b", 46.0, 9.0, 100)])
        >>> [f.fence_id for f in index.near(45.0005, 9.0, accuracy_m=10)]
        ['a']
    """

    def __init__(self, fences: Iterable[Fence]) -> None:
        shapely = _shapely()
        self.fences = list(fences)
        boxes = []
        for fence in self.fences:
            a, b, c, d = _degree_box(fence, exit_margin_m(fence))
            boxes.append(shapely.box(a, b, c, d))
        self._tree = shapely.STRtree(boxes)
        self._shapely = shapely

    def near(self, lat: float, lon: float, *, accuracy_m: float = 0.0) -> list[Fence]:
        """Fences whose edge plus exit margin may be within ``accuracy_m`` of the fix."""
        pad = math.degrees(accuracy_m / EARTH_RADIUS_M)
        padlon = pad / max(math.cos(math.radians(min(89.9, abs(lat)))), 1e-6)
        query = self._shapely.box(lon - padlon, lat - pad, lon + padlon, lat + pad)
        hits = self._tree.query(query)
        # A box that crosses the antimeridian is rare enough for a second plain query.
        if lon - padlon < -180 or lon + padlon > 180:
            shifted = self._shapely.box(
                lon - padlon + 360, lat - pad, lon + padlon + 360, lat + pad
            )
            hits = [*hits, *self._tree.query(shifted)]
        return [self.fences[int(i)] for i in sorted(set(int(i) for i in hits))]

    def inside(self, lat: float, lon: float) -> list[str]:
        """Ids of the fences that contain the point (index, then exact test)."""
        return [f.fence_id for f in self.near(lat, lon) if signed_distance_m(f, lat, lon) <= 0]


def inside_brute_force(fences: Sequence[Fence], lat: float, lon: float) -> list[str]:
    """The naive baseline: test every fence (what the index saves; see the benchmark)."""
    return [f.fence_id for f in fences if signed_distance_m(f, lat, lon) <= 0]


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
    db.execute(
        "INSERT INTO events (event_id, shopper_id, type, store_id, ts_ms, payload) "
        "VALUES (lower(hex(randomblob(16))), ?, ?, ?, ?, ?)",
        [
            shopper_id,
            f"geofence_{event.kind}",
            store_id,
            event.ts_ms,
            json.dumps(payload, sort_keys=True),
        ],
    )


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


__all__ = [
    "Fence",
    "FenceIndex",
    "GeofenceEvent",
    "Geofences",
    "circle",
    "inside_brute_force",
    "polygon",
    "signed_distance_m",
    "step",
]
