"""Trending kept up to date from what changed: the same ranking as reading the whole window,
through events recorded, aging out, erased and purged, and a clock that moves either way."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.recommend.trending import POPULARITY_WEIGHTS, TRENDING_WINDOW_DAYS

ITEMS = ["a", "b", "c", "d", "e"]
HOUR_MS = 3_600_000


def from_scratch(sw: shelfwise.Shelfwise, store_id: str, now: int) -> dict[str, float]:
    """Every item's trending score read from the whole window, as the formula says."""
    scores: dict[str, float] = {}
    for item_id, kind, ts in sw.store.rows(
        "SELECT item_id, type, ts_ms FROM events WHERE ts_ms >= ? AND item_id IS NOT NULL "
        "AND type IN ('purchase', 'cart_add', 'scan', 'view') AND (? = '' OR store_id = ?)",
        [now - TRENDING_WINDOW_DAYS * DAY_MS, store_id, store_id],
    ):
        age_days = (now - ts) / DAY_MS
        scores[item_id] = scores.get(item_id, 0.0) + POPULARITY_WEIGHTS[kind] * 0.5 ** (
            age_days / 2
        )
    return scores


def assert_a_true_top(got: list[tuple[str, float]], wanted: dict[str, float], n: int) -> None:
    """``got`` is the n best of ``wanted``, best first (near-equal scores may swap)."""
    assert len(got) == min(n, len(wanted))
    for item_id, score in got:
        assert score == pytest.approx(wanted[item_id], rel=1e-9, abs=1e-12)
    shown = [score for _, score in got]
    assert all(a >= b - 1e-9 * max(1.0, abs(a)) for a, b in itertools.pairwise(shown))
    left_out = [score for item_id, score in wanted.items() if item_id not in dict(got)]
    if got and left_out:
        assert shown[-1] >= max(left_out) - 1e-9 * max(1.0, abs(shown[-1]))


step = st.one_of(
    st.tuples(
        st.just("track"),
        st.integers(0, 3),  # member
        st.sampled_from(["view", "scan", "cart_add", "purchase", "search"]),
        st.sampled_from(ITEMS),
        st.integers(-8 * 24, 12),  # hours from the clock: some outside the window
        st.sampled_from(["s1", "s2"]),
    ),
    st.tuples(st.just("forget"), st.integers(0, 3)),
    st.tuples(st.just("purge"), st.integers(1, 9)),
    st.tuples(st.just("clock"), st.integers(-30, 24 * 8)),  # hours: back a little, or ahead
    st.tuples(st.just("ask"), st.integers(1, 6), st.sampled_from(["", "s1", "s2"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, max_size=40))
def test_trending_kept_up_to_date_ranks_as_reading_the_whole_window(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    start = now_ms()
    clock = start
    with shelfwise.open(tmp_path_factory.mktemp("trend") / "s.db", store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": i, "name": i} for i in ITEMS])
        members = [sw.member(f"L-{n}", consents={"personalization": True}) for n in range(4)]
        tallies = sw.recommender.sources.trend
        for action, *args in steps:
            if action == "track":
                member, kind, item, hours, store_id = args
                fields: dict[str, Any] = {"payload": {"query": item}} if kind == "search" else {}
                target = None if kind == "search" else item
                ts = min(start + hours * HOUR_MS, now_ms() + 12 * HOUR_MS)
                members[member].track(kind, target, ts_ms=ts, store_id=store_id, **fields)
            elif action == "forget":
                sw.forget_shopper(members[args[0]].shopper_id)
                members[args[0]] = sw.member(f"L-{args[0]}", consents={"personalization": True})
            elif action == "purge":
                sw.forget_events(older_than_days=args[0])
            elif action == "clock":
                clock = start + args[0] * HOUR_MS
            else:
                n, store_id = args
                got = tallies.top(store_id, clock, n)
                assert_a_true_top(got, from_scratch(sw, store_id, clock), n)
        for store_id in ("", "s1", "s2"):  # and at the end, whatever came last
            wanted = from_scratch(sw, store_id, clock)
            assert_a_true_top(tallies.top(store_id, clock, 6), wanted, 6)


def test_trending_inside_a_write_sees_the_open_transaction_and_keeps_nothing(
    tmp_path: Path,
) -> None:
    with shelfwise.open(tmp_path / "s.db", store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": i, "name": i} for i in ITEMS])
        shopper = sw.start_session()
        shopper.track("view", "a")
        tallies = sw.recommender.sources.trend
        assert [i for i, _ in tallies.top("s1", now_ms(), 5)] == ["a"]
        with pytest.raises(RuntimeError), sw.store.write() as db:
            db.execute("UPDATE events SET item_id = 'b' WHERE shopper_id = ?", [shopper.shopper_id])
            assert [i for i, _ in tallies.top("s1", now_ms(), 5)] == ["b"]
            raise RuntimeError("roll back")
        assert [i for i, _ in tallies.top("s1", now_ms(), 5)] == ["a"]


def test_an_event_ages_out_of_trending_and_back_in_when_the_clock_goes_back(
    tmp_path: Path,
) -> None:
    with shelfwise.open(tmp_path / "s.db", store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": i, "name": i} for i in ITEMS])
        now = now_ms()
        shopper = sw.start_session()
        shopper.track("purchase", "a", ts_ms=now - 6 * DAY_MS - 12 * HOUR_MS)
        shopper.track("view", "b", ts_ms=now - 3 * DAY_MS)
        tallies = sw.recommender.sources.trend

        def ranked(at: int) -> list[str]:
            return [item for item, _ in tallies.top("s1", at, 5)]

        assert ranked(now) == ["a", "b"]  # a purchase weighs more, even older
        assert ranked(now + DAY_MS) == ["b"]  # the purchase is 7.5 days old now
        assert ranked(now) == ["a", "b"]  # a clock set back reads the week again
