"""Dwell without a new fix: ``sw.geo.tick`` emits due dwell events once, across restarts."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

import pytest

import shelfwise
from shelfwise.geo.shapes import EARTH_RADIUS_M, circle

CENTRE = (45.4642, 9.1900)
NOW = int(dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)  # a Monday
SECOND = 1000


def offset(east_m: float, north_m: float) -> tuple[float, float]:
    lat, lon = CENTRE
    return (
        lat + math.degrees(north_m / EARTH_RADIUS_M),
        lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat)))),
    )


def walk_in_then_quiet(seed: int = 5) -> list[tuple[float, float, float, int]]:
    """A shopper walks in from 400 m east at 1.4 m/s, a fix every 10 s, until 40 m from the
    centre; then the phone goes quiet (still in a pocket: the OS stops reporting)."""
    rng = random.Random(seed)
    fixes = []
    east, ts = 400.0, NOW
    while east > 40:
        lat, lon = offset(east + rng.gauss(0, 5), rng.gauss(0, 5))
        fixes.append((lat, lon, rng.uniform(6, 20), ts))
        east -= 14.0
        ts += 10 * SECOND
    return fixes


def located(sw: shelfwise.Shelfwise, who: str = "L-1") -> shelfwise.Shopper:
    return sw.member(who, consents={"location": True, "offers": True})


def replay(shopper: shelfwise.Shopper, trace: list[tuple[float, float, float, int]]) -> list:
    return [e for lat, lon, acc, ts in trace for e in shopper.locate(lat, lon, acc, ts_ms=ts)]


def geo_events(sw: shelfwise.Shelfwise) -> list[tuple[str, int]]:
    rows = sw.store.query(
        "SELECT type, ts_ms FROM events WHERE type LIKE 'geofence_%' ORDER BY seq"
    )
    return [(r["type"], r["ts_ms"]) for r in rows]


def test_a_quiet_phone_gets_one_dwell_when_it_falls_due_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.db"
    trace = walk_in_then_quiet()
    with shelfwise.open(path) as sw:
        sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=300))
        [enter] = replay(located(sw), trace)
        assert enter.kind == "enter"
        due = enter.ts_ms + 300 * SECOND
        last_fix = trace[-1][3]
        ticks = {t: sw.geo.tick(t) for t in range(last_fix, last_fix + 900 * SECOND, 30 * SECOND)}
    emitted = {t: events for t, events in ticks.items() if events}
    [(first_tick, [(who, dwell)])] = emitted.items()
    assert (who, dwell.kind, dwell.fence_id, dwell.ts_ms) == ("L-1", "dwell", "s12", due)
    assert due <= first_tick < due + 30 * SECOND, "the first tick at or after the due moment"
    with shelfwise.open(path) as sw:  # the kiosk restarts
        sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=300))
        assert sw.geo.tick(due + 3600 * SECOND) == []
        inside = offset(30, 0)
        assert located(sw).locate(*inside, 10.0, ts_ms=due + 3601 * SECOND) == []
        assert sw.geo.states("L-1") == {"s12": "dwelling"}
        assert geo_events(sw) == [("geofence_enter", enter.ts_ms), ("geofence_dwell", due)]


def test_a_phone_silent_for_too_long_before_the_dwell_is_left_to_the_next_fix(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=1800))
    shopper = located(sw)
    assert [e.kind for e in shopper.locate(*CENTRE, 10.0, ts_ms=NOW)] == ["enter"]
    assert sw.geo.tick(NOW + 3600 * SECOND) == []  # due at 30 min, last heard of at 0
    assert sw.geo.states("L-1") == {"s12": "inside"}
    [dwell] = shopper.locate(*CENTRE, 10.0, ts_ms=NOW + 3601 * SECOND)
    assert dwell.kind == "dwell"
    assert sw.geo.tick(NOW + 7200 * SECOND, max_gap_s=86_400) == []


def test_no_dwell_from_a_tick_while_an_exit_is_pending_or_without_consent(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=60))
    leaving, private = located(sw, "L-1"), located(sw, "L-2")
    leaving.locate(*CENTRE, 10.0, ts_ms=NOW)
    assert leaving.locate(*offset(400, 0), 10.0, ts_ms=NOW + 30 * SECOND) == []  # 1st outside
    private.locate(*CENTRE, 10.0, ts_ms=NOW)
    private.set_consent("location", False)
    assert sw.geo.tick(NOW + 120 * SECOND) == []
    assert sw.geo.states("L-1") == {"s12": "inside"}
    assert sw.geo.states("L-2") == {"s12": "inside"}


def test_a_dwell_from_a_tick_triggers_a_dwell_offer(sw: shelfwise.Shelfwise) -> None:
    sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=300))
    sw.offers.define(
        {
            "offer_id": "linger",
            "title": "Coffee is on us",
            "reward": {"type": "amount", "value": 2},
            "targeting": {"geofences": ["s12"], "geofence_events": ["dwell"]},
        }
    )
    shopper = located(sw)
    [enter] = shopper.locate(*CENTRE, 10.0, ts_ms=NOW)
    assert enter.offers == ()  # the offer waits for a dwell
    [(who, dwell)] = sw.tick_geofences(now=NOW + 301 * SECOND)
    assert (who, dwell.kind, [o.offer.offer_id for o in dwell.offers]) == (
        "L-1",
        "dwell",
        ["linger"],
    )
    assert sw.tick_geofences(now=NOW + 400 * SECOND) == []


def test_tick_refuses_a_negative_gap(sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        sw.geo.tick(NOW, max_gap_s=-1)
