"""Loyalty points: earned and spent with orders, tiers, expiry, carried in the member's profile."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers.loyalty import (
    BUCKET,
    EARNED,
    LoyaltyProgram,
    Points,
    burn_moves,
    earn_moves,
    month_start,
    points_of,
)
from shelfwise.profile.local import apply_profile, read_profile

JUNE = month_start("2025-06") + 12 * 3_600_000
DAY = 86_400_000

EARN = {"offer_id": "earn", "title": "1 point per 1.00", "reward": {"type": "points", "points": 1}}


def burn(oid: str = "burn", cost: int = 500, value: float = 5) -> dict[str, Any]:
    return {
        "offer_id": oid,
        "title": f"{cost} points for {value:.2f} off",
        "reward": {"type": "amount", "value": value},
        "points_cost": cost,
    }


def test_points_are_earned_on_what_is_paid_after_discounts(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EARN)
    sw.offers.define(
        {"offer_id": "ten", "title": "10.00 off", "reward": {"type": "amount", "value": 10}}
    )
    order = sw.member("L-1").redeem_order("t-1", cart=["grill"])  # 89.00 - 10.00
    assert order.price.points_earned == 79
    assert [(a.offer_id, a.points) for a in order.price.applied] == [("ten", 0), ("earn", 79)]
    assert sw.offers.points("L-1").balance == 79
    assert sw.start_session().price_order("t-2", cart=["grill"]).points_earned == 0


def test_a_burn_is_spent_only_when_named_and_only_from_a_large_enough_balance(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EARN)
    sw.offers.define(burn())
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=[("grill", 6)])  # 534 points
    assert "burn" not in [a.offer_id for a in member.price_order("t-2", cart=["milk"]).applied]
    order = member.redeem_order("t-2", cart=["coffee"], offers=["burn"])
    assert [a.offer_id for a in order.price.applied] == ["burn"]
    assert order.price.points_spent == 500 and order.price.discount == 5.0
    assert sw.offers.points("L-1").balance == 534 - 500 + 0  # 0.49 paid earns nothing
    again = member.price_order("t-3", cart=["coffee"], offers=["burn"])
    assert [(x.offer_id, x.reason) for x in again.left_out] == [("burn", "points_insufficient")]
    with pytest.raises(shelfwise.OfferRejected) as caught:
        member.redeem("burn", cart_total=10)
    assert caught.value.reason == "order_required"


def test_voiding_an_order_gives_points_back_both_ways(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EARN)
    sw.offers.define(burn(cost=50, value=1))
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=["grill"])
    member.redeem_order("t-2", cart=["coffee"], offers=["burn"])
    assert sw.offers.points("L-1").balance == 89 - 50 + 4
    sw.offers.void_order("t-2")
    assert sw.offers.points("L-1").balance == 89
    sw.offers.void_order("t-1")
    assert (sw.offers.points("L-1").balance, sw.offers.points("L-1").earned) == (0, 0)


def test_two_tills_at_once_never_spend_one_balance_twice_on_the_device(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EARN)
    sw.offers.define(burn(cost=80, value=1))
    sw.member("L-1").redeem_order("t-0", cart=["grill"])  # 89 points
    results: list[Any] = []

    def till(n: int) -> None:
        order = sw.offers.redeem_order(f"t-{n}", shopper_id="L-1", cart=["milk"], offers=["burn"])
        results.append(order.price.points_spent)

    threads = [threading.Thread(target=till, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 0, 80]
    # 89, less the one burn, plus a point for each 1.19 of milk paid in full
    assert sw.offers.points("L-1").balance == 89 - 80 + 3


def test_tiers_multiply_earning_and_can_be_targeted(sw: shelfwise.Shelfwise) -> None:
    sw.offers.set_loyalty({"tiers": [{"name": "gold", "points": 100, "multiplier": 2}]})
    sw.offers.define(EARN)
    sw.offers.define(
        {"offer_id": "gold-only", "title": "1.00 off for gold", "targeting": {"attributes": {"tier": "gold"}},
         "reward": {"type": "amount", "value": 1}}
    )  # fmt: skip
    member = sw.member("L-1", consents={"offers": True})
    first = member.redeem_order("t-1", cart=[("grill", 2)])
    assert first.price.points_earned == 178 and "gold-only" not in [
        a.offer_id for a in first.price.applied
    ]
    second = member.redeem_order("t-2", cart=["coffee"])
    assert "gold-only" in [a.offer_id for a in second.price.applied]
    assert second.price.points_earned == 2 * 4  # 5.49 - 1.00 paid, doubled
    assert sw.offers.points("L-1").tier == "gold"
    with pytest.raises(shelfwise.InvalidInput, match="rising"):
        sw.offers.set_loyalty({"tiers": [{"name": "a", "points": 9}, {"name": "b", "points": 1}]})


def test_points_expire_after_the_programs_months(sw: shelfwise.Shelfwise) -> None:
    sw.offers.set_loyalty({"expiry_months": 1})
    sw.offers.define(EARN)
    sw.offers.redeem_order("t-1", shopper_id=sw.member("L-1").shopper_id, cart=["grill"], now=JUNE)
    assert sw.offers.points("L-1", now=JUNE + 30 * DAY).balance == 89  # July: still live
    assert sw.offers.points("L-1", now=JUNE + 62 * DAY).balance == 0  # August: gone
    assert sw.offers.points("L-1", now=JUNE + 62 * DAY).earned == 89  # the tier keeps them


def test_the_balance_travels_with_the_members_profile(
    sw: shelfwise.Shelfwise, tmp_path: Any
) -> None:
    sw.offers.define(EARN)
    sw.member("L-1").redeem_order("t-1", cart=["grill"])
    with shelfwise.open(tmp_path / "kiosk-b.db") as other:
        other.member("L-1")
        apply_profile(other.store, "L-1", read_profile(sw.store, "L-1"))
        assert other.offers.points("L-1").balance == 89


# -- the pure rules --------------------------------------------------------------------------
months = st.sampled_from(["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"])
counters = st.dictionaries(months.map(lambda m: BUCKET + m), st.integers(-200, 500), max_size=6)


@settings(max_examples=300)
@given(counters, st.integers(0, 800), st.one_of(st.none(), st.integers(1, 4)))
def test_a_burn_never_takes_a_month_or_the_balance_below_zero(
    values: dict[str, int], asked: int, expiry: int | None
) -> None:
    held = points_of(values, LoyaltyProgram(expiry_months=expiry), month_start("2025-06"))
    assert held.balance >= 0
    if asked > held.balance:
        with pytest.raises(shelfwise.InvalidInput):
            burn_moves(held, asked)
        return
    moves = burn_moves(held, asked)
    assert -sum(change for _, change in moves) == asked
    after = dict(values)
    for name, change in moves:
        assert change < 0 and values[name] + change >= 0
        after[name] += change
    later = points_of(after, LoyaltyProgram(expiry_months=expiry), month_start("2025-06"))
    assert later.balance == held.balance - asked
    taken = [name for name, _ in moves]
    assert taken == sorted(taken), "the oldest points go first"


@given(st.integers(0, 10_000), st.integers(0, 10**13))
def test_earning_adds_to_this_months_points_and_to_the_points_ever_earned(
    points: int, now: int
) -> None:
    moves = dict(earn_moves(points, now))
    held = points_of(moves, LoyaltyProgram(expiry_months=1), now)
    assert held == Points(points, points, live=held.live) if points else held.balance == 0
    assert moves.get(EARNED, 0) == points
