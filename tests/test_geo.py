"""Geofences: exact events from noisy GPS traces, restarts, consent, privacy, offers on enter."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shelfwise
from shelfwise.geo.shapes import EARTH_RADIUS_M, FenceIndex, circle, inside_brute_force, polygon

CENTRE = (45.4642, 9.1900)
NOW = int(dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)  # a Monday


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (
        lat + math.degrees(north_m / EARTH_RADIUS_M),
        lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat)))),
    )


def stationary_trace(seed: int = 7) -> list[tuple[float, float, float, int]]:
    """A phone on a table 60 m from the centre of a 150 m fence for 30 minutes."""
    rng = random.Random(seed)
    fixes = []
    for i in range(180):
        accuracy = rng.uniform(8, 45)
        east, north = 60 + rng.gauss(0, accuracy / 2), rng.gauss(0, accuracy / 2)
        if i % 37 == 36:  # a multipath outlier: far away, and it says so
            east, accuracy = 260.0, 220.0
        lat, lon = offset(*CENTRE, east, north)
        fixes.append((lat, lon, accuracy, NOW + i * 10_000))
    return fixes


def drive_trace(miss_m: float, seed: int = 3) -> list[tuple[float, float, float, int]]:
    """A car at 15 m/s on a straight road passing ``miss_m`` from the centre, fix every 2 s."""
    rng = random.Random(seed)
    fixes = []
    for i in range(140):
        east = -1000 + 15 * 2 * i
        lat, lon = offset(*CENTRE, east + rng.gauss(0, 6), miss_m + rng.gauss(0, 6))
        fixes.append((lat, lon, rng.uniform(5, 15), NOW + i * 2000))
    return fixes


@pytest.fixture
def geo_sw(sw: shelfwise.Shelfwise) -> shelfwise.Shelfwise:
    sw.geo.add(circle("s12", *CENTRE, radius_m=150, dwell_s=300))
    return sw


def located(sw: shelfwise.Shelfwise) -> shelfwise.Shopper:
    return sw.member("L-1", consents={"location": True, "offers": True})


def run(
    shopper: shelfwise.Shopper, trace: list[tuple[float, float, float, int]]
) -> list[tuple[str, str]]:
    events = []
    for lat, lon, accuracy, ts in trace:
        events += [(e.kind, e.fence_id) for e in shopper.locate(lat, lon, accuracy, ts_ms=ts)]
    return events


def test_a_stationary_phone_with_jitter_enters_once_dwells_once_and_never_exits(
    geo_sw: shelfwise.Shelfwise,
) -> None:
    assert run(located(geo_sw), stationary_trace()) == [("enter", "s12"), ("dwell", "s12")]


@pytest.mark.parametrize("seed", range(5))
def test_stationary_trace_is_stable_for_other_noise_draws(
    geo_sw: shelfwise.Shelfwise, seed: int
) -> None:
    assert run(located(geo_sw), stationary_trace(seed)) == [("enter", "s12"), ("dwell", "s12")]


def test_a_drive_through_enters_and_exits_without_dwelling(geo_sw: shelfwise.Shelfwise) -> None:
    assert run(located(geo_sw), drive_trace(miss_m=0)) == [("enter", "s12"), ("exit", "s12")]


def test_a_drive_past_outside_the_fence_triggers_nothing(geo_sw: shelfwise.Shelfwise) -> None:
    assert run(located(geo_sw), drive_trace(miss_m=200)) == []


def test_a_fix_less_accurate_than_the_fence_is_not_an_enter(geo_sw: shelfwise.Shelfwise) -> None:
    shopper = located(geo_sw)
    assert shopper.locate(*CENTRE, 400.0, ts_ms=NOW) == []
    assert [e.kind for e in shopper.locate(*CENTRE, 20.0, ts_ms=NOW + 1000)] == ["enter"]


def test_hysteresis_keeps_a_shopper_inside_near_the_edge(geo_sw: shelfwise.Shelfwise) -> None:
    shopper = located(geo_sw)
    shopper.locate(*CENTRE, 10.0, ts_ms=NOW)
    just_outside = offset(*CENTRE, 150 + 12, 0)  # inside the 20 m exit margin
    events = [shopper.locate(*just_outside, 5.0, ts_ms=NOW + i * 1000) for i in range(1, 20)]
    assert all(e == [] for e in events)
    assert geo_sw.geo.states("L-1") == {"s12": "inside"}


def test_an_exit_needs_several_fixes_outside_in_a_row(geo_sw: shelfwise.Shelfwise) -> None:
    shopper = located(geo_sw)
    shopper.locate(*CENTRE, 10.0, ts_ms=NOW)
    far = offset(*CENTRE, 400, 0)
    assert shopper.locate(*far, 10.0, ts_ms=NOW + 1000) == []
    assert shopper.locate(*far, 10.0, ts_ms=NOW + 2000) == []
    assert shopper.locate(*CENTRE, 10.0, ts_ms=NOW + 3000) == []  # back: the count restarts
    assert shopper.locate(*far, 10.0, ts_ms=NOW + 4000) == []
    assert shopper.locate(*far, 10.0, ts_ms=NOW + 5000) == []
    assert [e.kind for e in shopper.locate(*far, 10.0, ts_ms=NOW + 6000)] == ["exit"]


def test_first_fix_inside_is_reported_explicitly_as_already_inside(
    geo_sw: shelfwise.Shelfwise,
) -> None:
    geo_sw.geo.add(circle("quiet", *CENTRE, radius_m=300, initial="silent"))
    events = located(geo_sw).locate(*CENTRE, 10.0, ts_ms=NOW)
    assert [(e.fence_id, e.kind, e.initial) for e in events] == [("s12", "enter", True)]
    assert geo_sw.geo.states("L-1") == {"quiet": "inside", "s12": "inside"}


def test_restart_replay_and_re_registration_never_repeat_events(
    tmp_path: Path, bundle_path: Path
) -> None:
    trace = drive_trace(miss_m=0)
    path = tmp_path / "restart.db"
    events: list[tuple[str, str]] = []
    for part in (trace[:60], trace[60:]):  # the kiosk restarts half-way
        with shelfwise.open(path, bundle=bundle_path) as sw:
            sw.geo.add(circle("s12", *CENTRE, radius_m=150))  # registered again on start-up
            shopper = located(sw)
            events += run(shopper, part)
            assert run(shopper, part) == [], "a replayed fix changes nothing"
    assert events == [("enter", "s12"), ("exit", "s12")]
    with shelfwise.open(path) as sw:
        recorded = sw.store.query(
            "SELECT type FROM events WHERE type LIKE 'geofence_%' ORDER BY seq"
        )
    assert [r["type"] for r in recorded] == ["geofence_enter", "geofence_exit"]


def test_location_needs_consent_and_bad_fixes_are_typed_errors(geo_sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.ConsentRequired):
        geo_sw.member("L-2").locate(*CENTRE, 10.0)
    shopper = located(geo_sw)
    for lat, lon, accuracy in [
        (91, 0, 5),
        (0, 181, 5),
        (float("nan"), 0, 5),
        (0, 0, -1),
        (0, 0, float("inf")),
    ]:
        with pytest.raises(shelfwise.InvalidLocation):
            shopper.locate(lat, lon, accuracy)
    assert geo_sw.store.query("SELECT count(*) AS n FROM geofence_clock")[0]["n"] == 0


def test_precise_coordinates_are_never_stored(geo_sw: shelfwise.Shelfwise) -> None:
    trace = stationary_trace()
    run(located(geo_sw), trace)
    dump = "\n".join(geo_sw.store.db.iterdump())
    for lat, lon, _, _ in trace:
        assert f"{lat:.5f}"[:-1] not in dump.replace(f"{CENTRE[0]}", "")
        assert f"{lon:.5f}"[:-1] not in dump.replace(f"{CENTRE[1]}", "")


def test_a_geofence_enter_triggers_an_offer_through_the_rules(geo_sw: shelfwise.Shelfwise) -> None:
    geo_sw.geo.add(circle("s12-1mi", *CENTRE, radius_m=1609.344))
    geo_sw.offers.define(
        {
            "offer_id": "come-back",
            "title": "We miss you: 5.00 off",
            "reward": {"type": "amount", "value": 5},
            "targeting": {
                "geofences": ["s12-1mi"],
                "members_only": True,
                "min_days_since_purchase": 30,
            },
            "schedule": {"days": ["weekdays"]},
        }
    )
    lapsed = located(geo_sw)
    lapsed.track("purchase", "milk", ts_ms=NOW - 40 * 86_400_000)
    recent = geo_sw.member("L-2", consents={"location": True, "offers": True})
    recent.track("purchase", "milk", ts_ms=NOW - 3 * 86_400_000)
    near = offset(*CENTRE, 1000, 0)  # inside the mile, outside the store fence
    [event] = lapsed.locate(*near, 30.0, ts_ms=NOW)
    assert (event.fence_id, [o.offer.offer_id for o in event.offers]) == ("s12-1mi", ["come-back"])
    [other] = recent.locate(*near, 30.0, ts_ms=NOW)
    assert other.offers == ()
    saturday = NOW + 5 * 86_400_000
    geo_sw.member("L-3", consents={"location": True, "offers": True}).track(
        "purchase", "milk", ts_ms=NOW - 40 * 86_400_000
    )
    [weekend] = geo_sw.shopper("L-3").locate(*near, 30.0, ts_ms=saturday)
    assert weekend.offers == ()


def test_quiet_hours_drop_location_offers(geo_sw: shelfwise.Shelfwise) -> None:
    geo_sw.offers.set_timezone("Europe/Rome")
    geo_sw.offers.set_quiet_hours("13:00", "15:00")  # 12:00 UTC is 14:00 in Rome in June
    geo_sw.offers.define(
        {
            "offer_id": "hi",
            "title": "Hi",
            "reward": {"type": "amount", "value": 1},
            "targeting": {"geofences": ["s12"]},
        }
    )
    [event] = located(geo_sw).locate(*CENTRE, 10.0, ts_ms=NOW)
    assert event.kind == "enter" and event.offers == ()


def test_polygon_fences_use_the_same_state_machine(sw: shelfwise.Shelfwise) -> None:
    corners = [
        offset(*CENTRE, e, n) for e, n in [(-100, -100), (100, -100), (100, 100), (-100, 100)]
    ]
    sw.geo.add(polygon("lot", corners))
    shopper = located(sw)
    assert [e.kind for e in shopper.locate(*CENTRE, 10.0, ts_ms=NOW)] == ["enter"]
    far = offset(*CENTRE, 500, 0)
    kinds = [
        e.kind for i in range(3) for e in shopper.locate(*far, 10.0, ts_ms=NOW + 1000 * (i + 1))
    ]
    assert kinds == ["exit"]


@given(
    st.lists(
        st.tuples(st.floats(-60, 60), st.floats(-170, 170), st.floats(50, 5000)),
        min_size=1,
        max_size=30,
    ),
    st.floats(-60, 60),
    st.floats(-170, 170),
)
def test_the_spatial_index_finds_exactly_what_brute_force_finds(
    fences: list[tuple[float, float, float]], lat: float, lon: float
) -> None:
    built = [circle(f"f{i}", a, b, r) for i, (a, b, r) in enumerate(fences)]
    # Put the query point next to a fence half of the time so hits actually happen.
    lat, lon = (fences[0][0] + 0.001, fences[0][1]) if int(abs(lat)) % 2 else (lat, lon)
    assert FenceIndex(built).inside(lat, lon) == inside_brute_force(built, lat, lon)
