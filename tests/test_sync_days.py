"""Closing a UTC day: suppressed hourly cells come back as day cells where privacy allows.

An hourly cell below k is suppressed; its events are *carried* to their day. When the day
closes they are counted per day (``<metric>_day_rest``) with distinct contributors across
the whole day, released at >= k and suppressed for good below. Released hourly cells and
released day cells count disjoint events, so nothing is ever counted twice, and the
device's ledger (``released_totals``) stays exactly what upstream holds.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import backend_args, collector, open_backend, register, view_row

import shelfwise
from shelfwise.clock import now_ms
from shelfwise.sync.outbox import released_totals, summarise
from shelfwise.sync.privacy import DAY_MS, HOUR_MS, PrivacyPolicy, aggregate, aggregate_day

ITEMS = [{"item_id": f"i{n}", "name": f"Item {n}"} for n in range(4)]
DAY = (now_ms() // DAY_MS - 3) * DAY_MS  # a closed day, three days ago


@pytest.fixture
def sw(tmp_path: Path):
    with shelfwise.open(tmp_path / "device.db", store_id="s1") as opened:
        opened.catalog.import_rows(ITEMS)
        yield opened


def _outbox_cells(sw: shelfwise.Shelfwise) -> dict[tuple, tuple[int, int]]:
    out: dict[tuple, tuple[int, int]] = {}
    for row in sw.store.query("SELECT body FROM sync_outbox"):
        for cell in msgpack.unpackb(row["body"], raw=False)["cells"]:
            n, q = out.get(tuple(cell[:5]), (0, 0))
            out[tuple(cell[:5])] = (n + cell[5], q + cell[6])
    return out


def _at(hour: int, minute: int = 0) -> int:
    return DAY + hour * HOUR_MS + minute * 60_000


def test_suppressed_hourly_cells_are_released_per_day_once_the_day_closes(sw):
    sessions = [sw.start_session() for _ in range(6)]
    for hour in range(3):  # two different shoppers an hour view i1: 6 across the day
        for session in sessions[2 * hour : 2 * hour + 2]:
            session.track("view", "i1", ts_ms=_at(9 + hour))
            session.track("view", "i2", ts_ms=_at(9 + hour, 5))
    for session in sessions[:2]:  # the same two shoppers view i3 every hour: 2 a day
        for hour in range(3):
            session.track("view", "i3", ts_ms=_at(9 + hour, 10))
    # the day is still open at 13:00: hourly cells only, every one below k=3
    assert summarise(sw.store, device_id="kiosk-1", k=3, now=_at(13)) != []
    assert _outbox_cells(sw) == {}
    releases = summarise(sw.store, device_id="kiosk-1", k=3, now=DAY + DAY_MS + HOUR_MS)
    assert [r.granularity for r in releases] == ["day"]
    assert _outbox_cells(sw) == {
        ("view_day_rest", "s1", DAY, "i1", ""): (6, 6),
        ("view_day_rest", "s1", DAY, "i2", ""): (6, 6),
    }  # i3: two shoppers all day long is still fewer than k: suppressed for good
    assert releases[0].suppressed == 1
    assert released_totals(sw.store) == _outbox_cells(sw)
    # closing again finds nothing more to close
    assert summarise(sw.store, device_id="kiosk-1", k=3, now=DAY + 2 * DAY_MS) == []


def test_released_hourly_cells_are_not_counted_again_in_the_day(sw):
    sessions = [sw.start_session() for _ in range(4)]
    for session in sessions[:3]:
        session.track("view", "i1", ts_ms=_at(10))  # hour 10: 3 shoppers, released
    sessions[3].track("view", "i1", ts_ms=_at(11))  # hour 11: 1 shopper, carried
    summarise(sw.store, device_id="kiosk-1", k=3, now=DAY + DAY_MS)
    cells = _outbox_cells(sw)
    assert cells[("view", "s1", _at(10), "i1", "")] == (3, 3)
    assert ("view_day_rest", "s1", DAY, "i1", "") not in cells  # 1 carried shopper < k


def test_an_ended_session_across_hours_is_still_one_contributor_in_its_day(sw):
    session = sw.start_session()
    session.track("view", "i1", ts_ms=_at(8))
    summarise(sw.store, device_id="kiosk-1", k=2, now=_at(9))  # hour 8 summarised
    session.track("view", "i1", ts_ms=_at(9, 30))
    session.end()  # unlinks its events, hour 8's included: they keep the session's token
    summarise(sw.store, device_id="kiosk-1", k=2, now=DAY + DAY_MS)
    assert _outbox_cells(sw) == {}  # one shopper, not two, however the hours were split
    tokens = sw.store.query("SELECT count(*) AS n FROM events WHERE contributor IS NOT NULL")
    assert tokens[0]["n"] == 0  # cleared once the day closed


def test_an_event_arriving_for_a_closed_day_counts_in_its_hour_only(sw):
    sessions = [sw.start_session() for _ in range(3)]
    for session in sessions[:2]:
        session.track("view", "i1", ts_ms=_at(10))
    summarise(sw.store, device_id="kiosk-1", k=2, now=DAY + DAY_MS)
    sessions[2].track("view", "i2", ts_ms=_at(10, 30))  # late: its day has closed
    summarise(sw.store, device_id="kiosk-1", k=1, now=DAY + DAY_MS + HOUR_MS)
    cells = _outbox_cells(sw)
    assert cells[("view", "s1", _at(10), "i2", "")] == (1, 1)
    assert not [key for key in cells if key[0].endswith("_day_rest")]
    open_days = sw.store.query("SELECT count(*) AS n FROM events WHERE day_summary_id IS NULL")
    assert open_days[0]["n"] == 0


def test_a_member_withdrawing_sync_consent_is_purged_from_a_queued_day_release(sw):
    members = [sw.member(f"L-{n}", consents={"sync": True}) for n in range(3)]
    for hour, member in enumerate(members):
        member.track("view", "i1", ts_ms=_at(10 + hour))
    summarise(sw.store, device_id="kiosk-1", k=3, now=DAY + DAY_MS)
    assert _outbox_cells(sw)[("view_day_rest", "s1", DAY, "i1", "")] == (3, 3)
    members[0].set_consent("sync", False)
    assert shelfwise.sync.outbox.rebuild_dirty(sw.store) >= 1
    assert ("view_day_rest", "s1", DAY, "i1", "") not in _outbox_cells(sw)  # 2 left < k
    assert released_totals(sw.store) == _outbox_cells(sw)


def test_day_cells_reach_the_collector_and_its_totals_match_the_device(tmp_path, sw):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-d")
    for n in range(5):
        session = sw.start_session()
        session.track("view", "i1", ts_ms=_at(n + 8))  # one viewer an hour: all carried
        session.track("cart_add", "i2", quantity=2, ts_ms=_at(n + 8, 1))
    summarise(sw.store, device_id="kiosk-d", k=5, now=DAY + DAY_MS)
    with collector(backend) as url:
        assert shelfwise.sync.upload.upload(sw.store, url, creds).complete
    storage = open_backend(backend)
    totals = storage.totals("kiosk-d")
    storage.close()
    assert totals == released_totals(sw.store)
    assert totals[("cart_add_day_rest", "s1", DAY, "i2", "")] == (5, 10)


# -- the rule, as a property over any day of events -----------------------------------------


def _row(seq: int, shopper: int, item: int, hour: int) -> dict:
    return view_row(seq, shopper, item, DAY + hour * HOUR_MS, quantity=1 + item % 2)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2), st.integers(0, 5)), max_size=80),
    st.integers(1, 4),
)
def test_hourly_plus_day_cells_count_each_event_at_most_once_and_respect_k(events, k):
    policy = PrivacyPolicy(k=k, k_pairs=k)
    rows = [_row(i, *e) for i, e in enumerate(events)]
    released: dict[str, int] = defaultdict(int)  # item -> events released (hour + day)
    carried: set[int] = set()
    for hour in range(6):
        release = aggregate([r for r in rows if r["ts_ms"] == DAY + hour * HOUR_MS], policy)
        carried |= release.carried
        for cell in release.cells:
            released[cell[3]] += cell[5]
    day = aggregate_day([{**r, "carried": r["seq"] in carried} for r in rows], policy)
    for cell in day.cells:
        assert cell[0] == "view_day_rest" and cell[2] == DAY
        released[cell[3]] += cell[5]
    for item in {f"i{n}" for n in range(3)}:
        mine = [r for r in rows if r["item_id"] == item]
        hours: dict[int, set[str]] = defaultdict(set)
        for r in mine:
            hours[r["ts_ms"]].add(r["shopper_id"])
        # what the rule says: hourly cells at >= k shoppers, then the rest per day at >= k
        expected = sum(1 for r in mine if len(hours[r["ts_ms"]]) >= k)
        rest = [r for r in mine if len(hours[r["ts_ms"]]) < k]
        if len({r["shopper_id"] for r in rest}) >= k:
            expected += len(rest)
        assert released[item] == expected
        assert released[item] <= len(mine)  # never counted twice


# -- distinct-contributor metrics are counted once per day -------------------------------------


def test_a_member_whose_hour_is_split_across_two_summaries_counts_once_per_day(sw):
    member = sw.member("L-1", consents={"sync": True})
    member.track("view", "i1", ts_ms=_at(10, 5))
    summarise(sw.store, device_id="kiosk-1", k=1, now=_at(11))
    member.track("view", "i2", ts_ms=_at(10, 40))  # recorded late: hour 10 is split
    summarise(sw.store, device_id="kiosk-1", k=1, now=_at(12))
    member.track("view", "i1", ts_ms=_at(15))
    summarise(sw.store, device_id="kiosk-1", k=1, now=DAY + DAY_MS)
    hour_10 = [r for r in _bodies(sw) if any(c[2] == _at(10) for c in r["cells"])]
    assert len(hour_10) == 2  # the hour really went out in two releases
    cells = _outbox_cells(sw)
    assert [(k, v) for k, v in cells.items() if k[0] == "segment"] == [
        (("segment", "s1", DAY, "new", ""), (1, 0))
    ]


def _bodies(sw: shelfwise.Shelfwise) -> list[dict]:
    return [
        msgpack.unpackb(r["body"], raw=False)
        for r in sw.store.query("SELECT body FROM sync_outbox ORDER BY id")
    ]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, 5)), max_size=60),
    st.lists(st.integers(0, 60), max_size=4),
)
def test_segment_counts_are_distinct_members_per_day_however_the_releases_split(events, cuts):
    policy = PrivacyPolicy(k=1, k_pairs=1)
    segment_of = {m: ("new", "returning", "loyal")[m % 3] for m in range(6)}
    rows = [
        {**_row(i, member, item, hour), "shopper_id": f"L-{member}", "segment": segment_of[member]}
        for i, (member, item, hour) in enumerate(events)
    ]
    bounds = [0, *sorted(cuts), len(rows)]
    hourly = [aggregate(rows[a:b], policy) for a, b in itertools.pairwise(bounds)]
    assert not [c for r in hourly for c in r.cells if c[0] == "segment"]
    day = aggregate_day([{**r, "carried": False} for r in rows], policy)
    members: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        members[r["segment"]].add(r["shopper_id"])
    assert {c[3]: c[5] for c in day.cells if c[0] == "segment"} == {
        segment: len(who) for segment, who in members.items()
    }


def test_a_backlog_of_days_closes_in_one_release_with_each_day_counted_apart(sw):
    member = sw.member("L-1", consents={"sync": True})
    for day in range(3):
        member.track("view", "i1", ts_ms=DAY - day * DAY_MS + HOUR_MS)
    releases = summarise(sw.store, device_id="kiosk-1", k=1, now=DAY + DAY_MS)
    assert [r.granularity for r in releases] == ["hour", "day"]
    segments = {k[2]: v for k, v in _outbox_cells(sw).items() if k[0] == "segment"}
    assert segments == {DAY - day * DAY_MS: (1, 0) for day in range(3)}
    days = sw.store.query("SELECT count(DISTINCT outbox_id) AS n, count(*) AS d FROM sync_days")
    assert days == [{"n": 1, "d": 3}]
