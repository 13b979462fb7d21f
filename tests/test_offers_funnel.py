"""The offer funnel the store syncs: experiment conversions at checkout, rejections by reason."""

from __future__ import annotations

import json

import msgpack
import pytest

import shelfwise
from shelfwise._offers import assign_variant, parse_offer

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
