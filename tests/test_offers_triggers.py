"""Triggers: an abandoned cart, repeated views, a lapsed member open an offer to that member."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shelfwise
from shelfwise.clock import DAY_MS, HOUR_MS, now_ms
from shelfwise.offers.triggers import Facts, Trigger, fires


def triggered(oid: str, trigger: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "offer_id": oid,
        "title": oid,
        "reward": {"type": "amount", "value": 1},
        "trigger": trigger,
        **fields,
    }


def test_an_abandoned_cart_is_offered_at_the_next_visit(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(triggered("cart-back", {"type": "abandoned_cart", "after_hours": 2}))
    member = sw.member("L-1", consents={"offers": True})
    left = now_ms() - 3 * HOUR_MS
    member.track("cart_add", "coffee", ts_ms=left)
    member.clear_cart()  # the kiosk visit ended; the cart was never bought
    assert sw.offers.explain("cart-back", member.offer_context()).reason == "not_triggered"
    shown = member.offers(cart=[])
    assert [o.offer.offer_id for o in shown] == ["cart-back"]
    assert [a.offer_id for a in member.price_order("t-1", cart=["milk"]).applied] == ["cart-back"]
    assert sw.offers.run_triggers(shopper_id="L-1") == []  # once per window


def test_a_cart_bought_or_too_fresh_is_not_abandoned(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(triggered("cart-back", {"type": "abandoned_cart", "after_hours": 2}))
    member = sw.member("L-1", consents={"offers": True})
    member.add_to_cart("coffee")
    assert sw.offers.run_triggers() == []  # just now
    member.checkout()
    assert sw.offers.run_triggers(now=now_ms() + 3 * HOUR_MS) == []


def test_repeated_views_without_a_purchase_open_the_offer_for_that_item(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(triggered("nudge", {"type": "repeated_views", "views": 3, "days": 7}))
    member = sw.member("L-1", consents={"offers": True})
    start = now_ms() - 2 * DAY_MS
    for n in range(3):
        member.track("view", "grill", ts_ms=start + n * HOUR_MS)
        member.track("view", "milk", ts_ms=start + n * HOUR_MS)
    member.track("purchase", "milk", ts_ms=start + 5 * HOUR_MS)
    [fire] = sw.offers.run_triggers(channel="kiosk")
    assert (fire.offer_id, fire.item_id) == ("nudge", "grill")
    assert fire.until_ms == fire.fired_ms + 7 * DAY_MS


def test_win_back_fires_for_a_lapsed_member_once_per_window(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(
        triggered("miss-you", {"type": "win_back", "lapsed_days": 60, "window_days": 90})
    )
    lapsed = sw.member("L-1", consents={"offers": True})
    lapsed.track("purchase", "milk", ts_ms=now_ms() - 61 * DAY_MS)
    recent = sw.member("L-2", consents={"offers": True})
    recent.track("purchase", "milk", ts_ms=now_ms() - 5 * DAY_MS)
    assert [f.shopper_id for f in sw.offers.run_triggers()] == ["L-1"]
    assert sw.offers.run_triggers(now=now_ms() + 30 * DAY_MS) == []
    assert [f.shopper_id for f in sw.offers.run_triggers(now=now_ms() + 91 * DAY_MS)] == [
        "L-1",
        "L-2",
    ]


def test_no_consent_no_trigger(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(triggered("miss-you", {"type": "win_back", "lapsed_days": 1}))
    member = sw.member("L-1", consents={"offers": False})
    member.track("purchase", "milk", ts_ms=now_ms() - 2 * DAY_MS)
    assert sw.offers.run_triggers() == []
    assert sw.start_session().offers(cart=[]) == []


def test_quiet_hours_delay_a_push_and_drop_a_perishable_one_until_later(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.set_quiet_hours("00:00", "23:59")
    sw.offers.define(triggered("later", {"type": "win_back", "lapsed_days": 1}))
    sw.offers.define(triggered("now-or-never", {"type": "win_back", "lapsed_days": 1}, perishable=True))  # fmt: skip
    member = sw.member("L-1", consents={"offers": True})
    member.track("purchase", "milk", ts_ms=now_ms() - 2 * DAY_MS)
    stamp = now_ms()
    fired = sw.offers.run_triggers(now=stamp)
    assert [(f.offer_id, f.deliver_at_ms is not None) for f in fired] == [("later", True)]
    sw.offers.set_quiet_hours(None)
    assert [f.offer_id for f in sw.offers.run_triggers(now=stamp + 1)] == ["now-or-never"]


def test_bad_triggers_name_the_field() -> None:
    with pytest.raises(shelfwise.InvalidOffer, match=r"trigger\.views"):
        shelfwise.parse_offer(triggered("o", {"type": "repeated_views", "views": 2.5}))
    with pytest.raises(shelfwise.InvalidOffer, match=r"trigger\.type"):
        shelfwise.parse_offer(triggered("o", {"type": "birthday"}))


# -- the pure rules --------------------------------------------------------------------------
@given(
    st.integers(0, 10),
    st.one_of(st.none(), st.integers(0, 10 * HOUR_MS)),
    st.integers(0, 10 * HOUR_MS),
    st.integers(1, 5),
)
def test_an_abandoned_cart_fires_exactly_when_units_were_left_long_enough(
    units: int, added: int | None, now: int, hours: int
) -> None:
    trigger = Trigger("abandoned_cart", after_hours=hours)
    facts = Facts(cart_units=units, last_cart_add_ms=added)
    expected = units > 0 and added is not None and now - added >= hours * HOUR_MS
    assert fires(trigger, facts, now) == ([None] if expected else [])


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.tuples(st.integers(0, 9), st.integers(0, 100))
    ),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 100)),
    st.integers(1, 6),
)
def test_repeated_views_fire_for_each_item_viewed_enough_and_not_bought_since(
    views: dict[str, tuple[int, int]], bought: dict[str, int], needed: int
) -> None:
    fired = fires(
        Trigger("repeated_views", views=needed), Facts(views=views, bought_since=bought), 500
    )
    for item, (count, first) in views.items():
        assert (item in fired) == (count >= needed and bought.get(item, -1) < first)
    assert fired == sorted(fired)  # type: ignore[type-var]
