"""The offer funnel the store syncs: experiment conversions at checkout, rejections by reason."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import msgpack
import pytest

import shelfwise
from shelfwise.offers import OfferContext, assign_variant, parse_offer
from shelfwise.offers.context import resolve_zone
from shelfwise.offers.rules import day_bounds

EXPERIMENT_OFFER = {
    "offer_id": "coffee-ab",
    "title": "10% off coffee",
    "reward": {"type": "percent", "value": 10},
    "targeting": {"items": ["coffee"]},
    "experiment": {"id": "coffee-exp"},
}


def member_in(variant: str, start: int = 0) -> str:
    experiment = parse_offer(EXPERIMENT_OFFER).experiment
    assert experiment is not None
    return next(
        f"L-{i}" for i in range(start, 1000) if assign_variant(experiment, f"L-{i}")[0] == variant
    )


def conversions(sw: shelfwise.Shelfwise) -> list[tuple[str | None, int, dict[str, str]]]:
    rows = sw.store.query(
        "SELECT shopper_id, ts_ms, payload FROM events WHERE type = 'experiment_conversion' "
        "ORDER BY seq"
    )
    return [(r["shopper_id"], r["ts_ms"], json.loads(r["payload"])) for r in rows]


def buy(shopper: shelfwise.Shopper, *items: str) -> int:
    for item in items:
        shopper.add_to_cart(item)
    [*_, last] = shopper.checkout()
    return last.ts_ms


# -- conversions ---------------------------------------------------------------------------
def test_checkout_records_the_conversion_with_the_purchase_once(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    treated = sw.member(member_in("treatment"), consents={"offers": True})
    assert [o.offer.offer_id for o in treated.offers(cart=[])] == ["coffee-ab"]
    buy(treated, "milk")  # not what the offer is about: no conversion
    assert conversions(sw) == []
    paid = buy(treated, "coffee", "milk")
    assert conversions(sw) == [
        (
            treated.shopper_id,
            paid,
            {"experiment_id": "coffee-exp", "variant": "treatment", "offer_id": "coffee-ab"},
        )
    ]
    buy(treated, "coffee")  # only the first matching purchase after exposure counts
    treated.offers(cart=[])
    assert len(conversions(sw)) == 1


def test_the_control_arm_converts_too_and_the_report_matches_the_events(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    held_out = sw.member(member_in("control"), consents={"offers": True})
    treated = sw.member(member_in("treatment"), consents={"offers": True})
    assert held_out.offers(cart=[]) == []  # exposed, but shown nothing
    treated.offers(cart=[])
    buy(held_out, "coffee")
    assert [c[2]["variant"] for c in conversions(sw)] == ["control"]
    report = sw.offers.experiment_report("coffee-exp")
    assert report["variants"]["control"] == {"exposed": 1, "converted": 1, "rate": 1.0}
    assert report["variants"]["treatment"] == {"exposed": 1, "converted": 0, "rate": 0.0}
    assert sw.offers.experiment_report("coffee-exp") == report
    assert len(conversions(sw)) == 1


def test_a_purchase_before_the_exposure_is_not_a_conversion(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    shopper = sw.member(member_in("treatment"), consents={"offers": True})
    buy(shopper, "coffee")
    shopper.offers(cart=[])
    assert conversions(sw) == []
    assert sw.offers.record_conversions() == 0  # the catch-up agrees
    shopper.track("purchase", "coffee")  # a purchase recorded by an app backend counts too
    assert [c[0] for c in conversions(sw)] == [shopper.shopper_id]


def test_a_purchase_in_the_same_millisecond_but_before_the_exposure_is_not_a_conversion(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    shopper = sw.member(member_in("treatment"), consents={"offers": True})
    bought_at = buy(shopper, "coffee")
    shopper.offers(cart=[], now=bought_at)  # exposed in the very same millisecond, afterwards
    assert sw.offers.record_conversions() == 0
    assert conversions(sw) == []


def test_conversions_reach_the_next_sync_summary_without_a_report(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    for start in (0, 100, 200):
        shopper = sw.member(member_in("treatment", start), consents={"offers": True, "sync": True})
        shopper.offers(cart=[])
        buy(shopper, "coffee")
    sw.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells: dict[tuple[str, str, str], int] = {}
    for row in sw.store.query("SELECT body FROM sync_outbox ORDER BY id"):
        for cell in msgpack.unpackb(row["body"], raw=False)["cells"]:
            key = (cell[0], cell[3], cell[4])
            cells[key] = cells.get(key, 0) + cell[5]
    assert cells[("experiment_conversion", "coffee-ab", "treatment")] == 3
    assert cells[("experiment_exposure", "coffee-ab", "treatment")] == 3


def test_an_empty_checkout_records_nothing(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EXPERIMENT_OFFER)
    shopper = sw.member(member_in("treatment"), consents={"offers": True})
    shopper.offers(cart=[])
    with pytest.raises(shelfwise.InvalidEvent):
        shopper.checkout()
    assert conversions(sw) == []


# -- rejections ----------------------------------------------------------------------------
NOON = int(dt.datetime(2025, 6, 4, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
DAY = 86_400_000


def rejections(sw: shelfwise.Shelfwise) -> list[tuple[str | None, dict[str, str]]]:
    rows = sw.store.query(
        "SELECT shopper_id, payload FROM events WHERE type = 'offer_rejected' ORDER BY seq"
    )
    return [(r["shopper_id"], json.loads(r["payload"])) for r in rows]


def big_basket_offer(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(
        {
            "offer_id": "big-basket",
            "title": "5.00 off 50.00",
            "reward": {"type": "amount", "value": 5},
            "targeting": {"cart_total_min": 50},
        }
    )


def test_an_explained_rejection_is_recorded_once_per_shopper_offer_reason_and_day(
    sw: shelfwise.Shelfwise,
) -> None:
    big_basket_offer(sw)
    shopper = sw.member("L-1", consents={"offers": True})
    small = shopper.offer_context(cart_total=12.0, now=NOON)
    for minutes in range(3):  # the shopper taps the offer three times
        later = replace(small, now_ms=NOON + minutes * 60_000)
        assert sw.offers.explain("big-basket", later, record=True).reason == "cart_total_below"
    assert rejections(sw) == [("L-1", {"offer_id": "big-basket", "reason": "cart_total_below"})]
    sw.offers.deactivate("big-basket")  # another reason the same day is another row
    assert sw.offers.explain("big-basket", small, record=True).reason == "inactive"
    sw.offers.activate("big-basket")
    tomorrow = replace(small, now_ms=NOON + DAY, local=small.local + dt.timedelta(days=1))
    sw.offers.explain("big-basket", tomorrow, record=True)
    assert [r[1]["reason"] for r in rejections(sw)] == [
        "cart_total_below",
        "inactive",
        "cart_total_below",
    ]


def test_listing_offers_and_operator_checks_record_no_rejections(sw: shelfwise.Shelfwise) -> None:
    big_basket_offer(sw)
    shopper = sw.member("L-1", consents={"offers": True})
    for _ in range(5):
        assert shopper.offers(cart=["milk"]) == []  # considered, not eligible
    assert sw.offers.explain("big-basket", shopper.offer_context(cart_total=1.0)).eligible is False
    big = shopper.offer_context(cart_total=80.0)
    assert sw.offers.explain("big-basket", big, record=True).eligible  # eligible: nothing to log
    assert rejections(sw) == []


def test_repeated_redemption_failures_count_once_a_day(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(
        {"offer_id": "once", "title": "1.00 off", "reward": {"type": "amount", "value": 1},
         "codes": "unique"}
    )  # fmt: skip
    [code] = sw.offers.issue_codes("once", 1)
    sw.member("L-1").redeem(code, cart_total=10)
    bob = sw.member("L-2")
    for _ in range(4):
        with pytest.raises(shelfwise.OfferRejected):
            bob.redeem(code, cart_total=10)
    assert rejections(sw) == [("L-2", {"offer_id": "once", "reason": "code_used"})]


def test_an_expired_hold_is_a_rejection_of_the_commit(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define({"offer_id": "o", "title": "O", "reward": {"type": "amount", "value": 1}})
    held = sw.member("L-1").reserve("o", cart_total=10, ttl_s=1)
    with pytest.raises(shelfwise.OfferRejected):
        sw.offers.commit(held.reservation_id, now=held.expires_ms + 1)
    assert rejections(sw) == [("L-1", {"offer_id": "o", "reason": "reservation_expired"})]


def test_rejections_by_reason_reach_the_sync_summary(sw: shelfwise.Shelfwise) -> None:
    big_basket_offer(sw)
    for i in range(3):
        shopper = sw.member(f"L-{i}", consents={"offers": True, "sync": True})
        for _ in range(2):
            sw.offers.explain("big-basket", shopper.offer_context(cart_total=5.0), record=True)
    sw.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells = [
        cell
        for row in sw.store.query("SELECT body FROM sync_outbox")
        for cell in msgpack.unpackb(row["body"], raw=False)["cells"]
        if cell[0] == "offer_rejected"
    ]
    assert [(c[3], c[4], c[5]) for c in cells] == [("big-basket", "cart_total_below", 3)]


def test_the_rejection_day_follows_the_store_clock_across_dst() -> None:
    rome = resolve_zone("Europe/Rome")
    spring = dt.datetime(2025, 3, 30, 12, 0, tzinfo=rome)  # clocks go forward at 02:00
    start, end = day_bounds(OfferContext(now_ms=int(spring.timestamp() * 1000), local=spring))
    assert end - start == 23 * 3_600_000
    assert start == int(dt.datetime(2025, 3, 30, tzinfo=rome).timestamp() * 1000)
