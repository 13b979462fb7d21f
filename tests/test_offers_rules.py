"""Offer rules as properties: discounts, schedule hours, calendar windows, limits, day bounds."""

from __future__ import annotations

import datetime as dt
import warnings
import zoneinfo
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers import OfferContext, OfferUsage, Reward, evaluate, parse_offer
from shelfwise.offers.rules import FleetShare, day_bounds, period_starts

HOUR_MS = 3_600_000
ZONES = ["UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
cents = st.integers(0, 1_000_000).map(lambda c: c / 100)


def offer(**fields: object) -> dict[str, object]:
    return {
        "offer_id": "o1",
        "title": "2.00 off",
        "reward": {"type": "amount", "value": 2},
        **fields,
    }


def at(local: dt.datetime, **fields: object) -> OfferContext:
    base: dict[str, object] = {
        "now_ms": int(local.timestamp() * 1000),
        "local": local,
        "shopper_id": "L-1",
        "is_member": True,
        "consented": True,
        "cart_total": 30.0,
    }
    return OfferContext(**{**base, **fields})  # type: ignore[arg-type]


@given(
    st.sampled_from(["percent", "amount"]),
    st.integers(1, 100),
    st.one_of(st.none(), cents),
    cents,
)
def test_a_discount_is_never_negative_never_above_the_base_or_the_cap(
    kind: str, value: int, cap: float | None, base: float
) -> None:
    discount = Reward(kind, float(value), cap).discount(base)
    assert 0.0 <= discount <= base + 1e-9
    if cap is not None:
        assert discount <= cap + 1e-9
    if kind == "percent" and cap is None:
        assert discount == round(base * value / 100, 2)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 1439))
def test_schedule_hours_cover_exactly_the_minutes_from_start_until_end_wrapping_midnight(
    start: int, end: int, now: int
) -> None:
    if start == end:
        return
    definition = offer(schedule={"hours": [hhmm(start), hhmm(end)]})
    local = dt.datetime(2025, 6, 2, tzinfo=dt.UTC) + dt.timedelta(minutes=now)
    # Walk the clock from the start minute to the end minute (past midnight when it wraps).
    covered = {(start + step) % 1440 for step in range((end - start) % 1440)}
    decision = evaluate(parse_offer(definition), at(local))
    assert decision.eligible == (now in covered)
    assert decision.eligible or decision.reason == "outside_hours"


def _birthday_in_window(today: dt.date, born: dt.date, window: int) -> bool:
    """Reference: a day within ``window`` days of today is the birthday (28 February standing
    in for 29 February in a common year)."""
    for offset in range(-window, window + 1):
        day = today + dt.timedelta(days=offset)
        if (day.month, day.day) == (born.month, born.day):
            return True
        leap_stand_in = (born.month, born.day) == (2, 29) and (day.month, day.day) == (2, 28)
        if leap_stand_in and not _is_leap(day.year):
            return True
    return False


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@given(
    st.dates(dt.date(1940, 1, 1), dt.date(2000, 12, 31)),
    st.integers(2001, 2040),
    st.integers(-15, 15),
    st.integers(0, 10),
)
def test_a_birthday_offer_applies_exactly_within_its_window(
    born: dt.date, year: int, offset: int, window: int
) -> None:
    # Today lands near the birthday, so the window's edges are where the examples are.
    anniversary = dt.date(year, born.month, min(born.day, 28 if born.month == 2 else 31))
    today = anniversary + dt.timedelta(days=offset)
    definition = offer(targeting={"calendar": ["birthday"], "calendar_window_days": window})
    local = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    ctx = at(local, attributes={"birthday": born.isoformat()})
    decision = evaluate(parse_offer(definition), ctx)
    assert decision.eligible == _birthday_in_window(today, born, window)


small = st.one_of(st.none(), st.integers(0, 3))
limits = st.fixed_dictionaries(
    {},
    optional={
        "total_redemptions": small,
        "budget": st.one_of(st.none(), st.integers(0, 20)),
        "per_day": small,
        "per_customer": small,
        "per_customer_per_day": small,
        "per_customer_per_week": small,
        "impressions_per_day": small,
        "impressions_per_week": small,
    },
)
counts = st.builds(
    OfferUsage,
    redemptions=st.integers(0, 4),
    spent=st.integers(0, 24).map(float),
    today=st.integers(0, 4),
    customer_total=st.integers(0, 4),
    customer_today=st.integers(0, 4),
    customer_week=st.integers(0, 4),
    shown_today=st.integers(0, 4),
    shown_week=st.integers(0, 4),
)


@settings(max_examples=400)
@given(limits, counts, counts, st.sampled_from(["show", "redeem"]))
def test_more_usage_never_makes_an_offer_available_again(
    caps: dict[str, int | None], a: OfferUsage, b: OfferUsage, purpose: str
) -> None:
    counters = [f.name for f in fields(a) if f.name != "share"]  # the device's fleet share: below
    low = OfferUsage(**{n: min(getattr(a, n), getattr(b, n)) for n in counters})
    high = OfferUsage(**{n: max(getattr(a, n), getattr(b, n)) for n in counters})
    rules = parse_offer(offer(limits=caps))
    ctx = at(dt.datetime(2025, 6, 2, 12, tzinfo=dt.UTC), purpose=purpose)
    more, less = evaluate(rules, ctx, high), evaluate(rules, ctx, low)
    assert not (more.eligible and not less.eligible)
    assert more.reason in shelfwise.OFFER_REASONS


@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6), st.booleans())
def test_a_fleet_wide_offer_redeems_only_inside_a_live_share(
    used: int, more: int, share: int, live: bool
) -> None:
    rules = parse_offer(offer(limits={"scope": "fleet", "total_redemptions": 100}))
    ctx = at(dt.datetime(2025, 6, 2, 12, tzinfo=dt.UTC), purpose="redeem")
    held = FleetShare(redemptions=share, live=live)
    less = evaluate(rules, ctx, OfferUsage(redemptions=used, share=held))
    higher = evaluate(rules, ctx, OfferUsage(redemptions=used + more, share=held))
    assert less.eligible == (live and used < share)
    assert not (higher.eligible and not less.eligible)
    assert not evaluate(rules, ctx, OfferUsage(redemptions=used)).eligible  # no share: refused


@given(
    st.integers(1_577_836_800_000, 2_208_988_800_000),  # 2020-2040
    st.sampled_from(ZONES),
)
def test_the_store_day_and_week_start_at_local_midnight_and_hold_the_moment(
    now: int, zone: str
) -> None:
    local = dt.datetime.fromtimestamp(now / 1000, tz=zoneinfo.ZoneInfo(zone))
    ctx = OfferContext(now_ms=now, local=local)
    start, end = day_bounds(ctx)
    day_start, week_start = period_starts(ctx)
    assert start == day_start and start <= now < end
    assert 23 * HOUR_MS <= end - start <= 25 * HOUR_MS  # a DST day is an hour short or long
    for edge in (start, week_start):
        midnight = dt.datetime.fromtimestamp(edge / 1000, tz=zoneinfo.ZoneInfo(zone))
        assert (midnight.hour, midnight.minute) == (0, 0)
    monday = dt.datetime.fromtimestamp(week_start / 1000, tz=zoneinfo.ZoneInfo(zone))
    assert monday.weekday() == 0 and week_start <= start
    assert start - week_start < 7 * 25 * HOUR_MS


def test_the_clock_takes_now_and_the_old_ts_ms_name_still_works_with_a_warning(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.set_timezone("Asia/Tokyo")
    sw.offers.set_quiet_hours("21:00", "08:00")
    midday_utc = 1_748_865_600_000  # 2025-06-02 12:00 UTC = 21:00 in Tokyo
    assert sw.offers.local_time(now=midday_utc) == sw.offers.local_time(midday_utc)
    quiet_end = sw.offers.quiet_until(now=midday_utc)
    assert quiet_end == midday_utc + 11 * HOUR_MS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sw.offers.local_time(ts_ms=midday_utc) == sw.offers.local_time(midday_utc)
        assert sw.offers.quiet_until(ts_ms=midday_utc) == quiet_end
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 2 and "now=" in messages[0] and "now=" in messages[1]
