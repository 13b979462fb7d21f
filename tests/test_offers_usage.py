"""Offer limits read batched counters: exactly what per-offer counting gives, in a fixed
number of queries however many offers a store runs."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers import OfferContext, OfferUsage
from shelfwise.offers.context import resolve_zone
from shelfwise.offers.rules import period_starts
from shelfwise.offers.usage import usage_snapshot

WEDNESDAY_NOON = dt.datetime(2025, 6, 4, 12, 0, tzinfo=dt.UTC)
NOW = int(WEDNESDAY_NOON.timestamp() * 1000)
HOUR = 3_600_000
OFFERS = ["o0", "o1", "o2"]
SHOPPERS = ["L-0", "L-1"]

moments = st.integers(-10 * 24, 2).map(lambda h: NOW + h * HOUR + 1)
redemption = st.tuples(st.sampled_from(OFFERS), st.sampled_from(SHOPPERS), moments)
reservation = st.tuples(
    st.sampled_from(OFFERS),
    st.sampled_from(SHOPPERS),
    moments,
    st.integers(-3, 3).map(lambda h: NOW + h * HOUR),  # expires: before or after now
    st.sampled_from(["held", "committed", "released", "expired"]),
)
impression = st.tuples(st.sampled_from(OFFERS), st.sampled_from(SHOPPERS), moments)


def reference(
    history: dict[str, list], offer_id: str, shopper: str, ctx: OfferContext
) -> OfferUsage:
    """Per-offer counting in plain Python: the definition the batched queries must match."""
    day, week = period_starts(ctx)
    counters = history["counters"][offer_id]
    live_holds = [
        r for r in history["reservations"] if r[0] == offer_id and r[4] == "held" and r[3] > NOW
    ]
    offer_uses = [r[2] for r in history["redemptions"] if r[0] == offer_id] + [
        r[2] for r in live_holds
    ]
    mine = [r[2] for r in history["redemptions"] if r[0] == offer_id and r[1] == shopper] + [
        r[2] for r in live_holds if r[1] == shopper
    ]
    seen = [r[2] for r in history["impressions"] if r[0] == offer_id and r[1] == shopper]
    return OfferUsage(
        redemptions=counters[0] + counters[2],
        spent=counters[1] + counters[3],
        today=sum(t >= day for t in offer_uses),
        customer_total=len(mine),
        customer_today=sum(t >= day for t in mine),
        customer_week=sum(t >= week for t in mine),
        shown_today=sum(t >= day for t in seen),
        shown_week=sum(t >= week for t in seen),
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(redemption, max_size=12),
    st.lists(reservation, max_size=12),
    st.lists(impression, max_size=12),
    st.lists(
        st.tuples(st.integers(0, 9), st.floats(0, 50), st.integers(0, 3)), min_size=3, max_size=3
    ),
    st.sampled_from(["UTC", "Asia/Tokyo", None]),
)
def test_batched_usage_counts_exactly_what_per_offer_counting_counts(
    redemptions: list, reservations: list, impressions: list, counters: list, zone: str | None
) -> None:
    history = {
        "redemptions": redemptions,
        "reservations": reservations,
        "impressions": impressions,
        "counters": {
            o: (c[0], c[1], c[2], c[2] * 1.5) for o, c in zip(OFFERS, counters, strict=True)
        },
    }
    with shelfwise.open(":memory:") as sw:
        for o in OFFERS:
            sw.offers.define({"offer_id": o, "title": o, "reward": {"type": "amount", "value": 1}})
        with sw.store.write() as db:
            for o, (n, spent, held, held_amount) in history["counters"].items():
                db.execute(
                    "UPDATE offer_counters SET redemptions = ?, spent = ?, reserved = ?, "
                    "reserved_amount = ? WHERE offer_id = ?",
                    [n, spent, held, held_amount, o],
                )
            for i, (o, who, ts) in enumerate(redemptions):
                db.execute(
                    "INSERT INTO redemptions (redemption_id, offer_id, shopper_id, amount, ts_ms) "
                    "VALUES (?, ?, ?, 1, ?)",
                    [f"r{i}", o, who, ts],
                )
            for i, (o, who, ts, expires, state) in enumerate(reservations):
                db.execute(
                    "INSERT INTO reservations (reservation_id, offer_id, shopper_id, amount, "
                    "created_ms, expires_ms, state) VALUES (?, ?, ?, 1, ?, ?, ?)",
                    [f"h{i}", o, who, ts, expires, state],
                )
            for o, who, ts in impressions:
                db.execute(
                    "INSERT INTO impressions (shopper_id, offer_id, channel, ts_ms) "
                    "VALUES (?, ?, 'kiosk', ?)",
                    [who, o, ts],
                )
        local = None if zone is None else WEDNESDAY_NOON.astimezone(resolve_zone(zone))
        for shopper in SHOPPERS:
            ctx = OfferContext(now_ms=NOW, local=local, shopper_id=shopper)
            snapshot = usage_snapshot(sw.store.read(), OFFERS, shopper, ctx)
            for o in OFFERS:
                got, want = snapshot.usage(o), reference(history, o, shopper, ctx)
                assert got.redemptions == want.redemptions
                assert got.spent == pytest.approx(want.spent)
                assert (got.today, got.customer_total, got.customer_today, got.customer_week) == (
                    want.today,
                    want.customer_total,
                    want.customer_today,
                    want.customer_week,
                )
                assert (got.shown_today, got.shown_week) == (want.shown_today, want.shown_week)


def _statements(sw: shelfwise.Shelfwise, shopper: shelfwise.Shopper) -> int:
    seen: list[str] = []
    conn = sw.store.read().conn
    conn.set_trace_callback(seen.append)
    try:
        shopper.offers(record=False)
    finally:
        conn.set_trace_callback(None)
    return len(seen)


def test_showing_offers_costs_the_same_queries_for_ten_or_a_hundred_offers(
    sw: shelfwise.Shelfwise,
) -> None:
    def define(start: int, stop: int) -> None:
        for i in range(start, stop):
            sw.offers.define(
                {
                    "offer_id": f"o{i:03d}",
                    "title": f"offer {i}",
                    "reward": {"type": "percent", "value": 5 + i % 3},
                    "limits": {"per_customer": 2, "impressions_per_day": 3, "per_day": 50},
                }
            )

    shopper = sw.member("L-1", consents={"offers": True})
    define(0, 10)
    shopper.redeem("o001", cart_total=20)
    shopper.offers()
    few = _statements(sw, shopper)
    define(10, 100)
    many = _statements(sw, shopper)
    assert few == many, "no query per offer"


def test_a_redeemed_per_customer_offer_is_no_longer_shown(sw: shelfwise.Shelfwise) -> None:
    for i in range(3):
        sw.offers.define(
            {
                "offer_id": f"once{i}",
                "title": "once",
                "reward": {"type": "amount", "value": 1},
                "limits": {"per_customer": 1},
            }
        )
    shopper = sw.member("L-1", consents={"offers": True})
    shopper.redeem("once1", cart_total=10)
    assert [o.offer.offer_id for o in shopper.offers(cart=[], record=False)] == ["once0", "once2"]
    payloads = [
        json.loads(r["payload"])
        for r in sw.store.query("SELECT payload FROM events WHERE type = 'offer_redeemed'")
    ]
    assert payloads == [{"offer_id": "once1"}]
