"""Geofence shapes: circles and polygons, distances to their edge, and a spatial index.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidInput, InvalidLocation

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_DWELL_S = 300.0
MIN_EXIT_MARGIN_M = 20.0
MAX_FENCE_RADIUS_M = 100_000.0


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
