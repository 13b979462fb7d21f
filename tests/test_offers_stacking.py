"""Orders priced as a whole: rewards on lines, stacking rules, and the best combination.

The search is checked against brute force (every allowed combination of small orders), and
the money off against the lines' value, with hypothesis."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers import parse_offer
from shelfwise.offers.rewards import Basket, applications, apply, parse_reward, reward_lines
from shelfwise.offers.stacking import (
    Candidate,
    best_combination,
    combination,
    targeted_lines,
)

ITEMS = {"tea": "drinks", "juice": "drinks", "cake": "bakery", "bun": "bakery", "soap": "home"}


def basket_of(*lines: tuple[str, int, float]) -> Basket:
    return Basket(
        tuple(item for item, _, _ in lines),
        tuple(ITEMS[item] for item, _, _ in lines),
        tuple(q for _, q, _ in lines),
        tuple(round(q * price, 2) for _, q, price in lines),
    )


def candidate(oid: str, reward: dict[str, Any], **fields: Any) -> Candidate:
    return Candidate(parse_offer({"offer_id": oid, "title": oid, "reward": reward, **fields}))


# -- rewards on lines ------------------------------------------------------------------------
def test_buy_two_get_one_frees_the_cheapest_unit_of_each_three() -> None:
    basket = basket_of(("tea", 2, 3.0), ("juice", 4, 1.0))
    reward = parse_reward({"type": "buy_x_get_y", "buy": 2, "get": 1}, "o")
    assert applications(reward, basket, (0, 1)) == 2
    # Units dearest first: 3 3 1 | 1 1 1: one juice free in each block of three.
    assert sum(apply(reward, basket, (0, 1), list(basket.amounts), 2)) == pytest.approx(2.0)


def test_three_for_five_bundles_the_dearest_units_and_stops_when_it_saves_nothing() -> None:
    basket = basket_of(("cake", 3, 2.5), ("bun", 3, 1.0))
    reward = parse_reward({"type": "bundle_price", "quantity": 3, "price": 5}, "o")
    off = apply(reward, basket, (0, 1), list(basket.amounts), 2)
    assert sum(off) == pytest.approx(2.5)  # 3 cakes 7.50 -> 5.00; 3 buns 3.00 stay 3.00


def test_free_item_needs_the_item_in_the_basket() -> None:
    offer = parse_offer(
        {"offer_id": "f", "title": "F", "reward": {"type": "free_item", "item": "bun"}}
    )
    with_bun = basket_of(("tea", 1, 2.0), ("bun", 2, 0.8))
    lines = reward_lines(offer.reward, with_bun, targeted_lines(offer, with_bun))
    assert sum(apply(offer.reward, with_bun, lines, list(with_bun.amounts), 1)) == pytest.approx(
        0.8
    )
    without = basket_of(("tea", 1, 2.0))
    assert best_combination(without, [Candidate(offer)]).left_out[0].reason == (
        "nothing_to_discount"
    )


def test_tiered_spend_uses_the_highest_tier_reached_before_discounts() -> None:
    reward = {"type": "tiered", "tiers": [{"spend": 20, "amount": 2}, {"spend": 50, "percent": 10}]}
    basket = basket_of(("soap", 6, 10.0))
    best = best_combination(basket, [candidate("t", reward)])
    assert best.discount == pytest.approx(6.0)
    assert best_combination(basket_of(("soap", 1, 10.0)), [candidate("t", reward)]).discount == 0


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        ({"type": "bundle_price", "quantity": 1, "price": 2}, "at least 2"),
        (
            {"type": "tiered", "tiers": [{"spend": 50, "amount": 5}, {"spend": 20, "amount": 2}]},
            "rising",
        ),
        ({"type": "buy_x_get_y", "buy": 2}, "reward.get"),
        ({"type": "free_item"}, "reward.item"),
        ({"type": "points", "points": 1, "value": 3}, "unknown reward field"),
    ],
)
def test_bad_rewards_name_the_field(reward: dict[str, Any], message: str) -> None:
    with pytest.raises(shelfwise.InvalidOffer, match=message):
        parse_offer({"offer_id": "o", "title": "O", "reward": reward})


# -- stacking rules --------------------------------------------------------------------------
def test_an_offer_applies_once_per_order_unless_it_says_otherwise() -> None:
    basket = basket_of(("tea", 4, 2.0))
    once = candidate("once", {"type": "amount", "value": 1}, targeting={"items": ["tea"]})
    twice = candidate(
        "twice",
        {"type": "amount", "value": 1},
        targeting={"items": ["tea"]},
        stacking={"per_order": 3},
    )
    assert best_combination(basket, [once]).discount == pytest.approx(1.0)
    assert best_combination(basket, [twice]).applied[0].times == 3


def test_exclusive_category_combines_only_with_joint_offers() -> None:
    basket = basket_of(("tea", 1, 10.0))
    coupon = {"category": "coupons", "category_mode": "exclusive"}
    offers = [
        candidate("c1", {"type": "amount", "value": 3}, stacking=coupon),
        candidate("c2", {"type": "amount", "value": 2}, stacking=coupon),
        candidate(
            "loyal",
            {"type": "amount", "value": 1},
            stacking={"category": "loyalty", "category_mode": "joint"},
        ),
        candidate("shelf", {"type": "amount", "value": 1}),
    ]
    best = best_combination(basket, offers)
    assert [a.candidate.offer.offer_id for a in best.applied] == ["c1", "loyal"]
    assert {x.candidate.offer.offer_id: x.reason for x in best.left_out} == {
        "c2": "stacking_category",
        "shelf": "stacking_category",
    }


def test_max_offers_and_the_order_cap_bound_the_combination() -> None:
    basket = basket_of(("tea", 1, 10.0))
    offers = [
        candidate("a", {"type": "amount", "value": 4}, stacking={"max_offers": 2}),
        candidate("b", {"type": "amount", "value": 3}),
        candidate("c", {"type": "amount", "value": 2}),
    ]
    best = best_combination(basket, offers)
    assert best.discount == pytest.approx(7.0)
    assert [(x.candidate.offer.offer_id, x.reason) for x in best.left_out] == [
        ("c", "stacking_limit")
    ]
    capped = [candidate("a", {"type": "amount", "value": 4}, stacking={"max_order_discount": 5}),
              candidate("b", {"type": "amount", "value": 3})]  # fmt: skip
    assert best_combination(basket, capped).discount == pytest.approx(7.0 - 0.0 if False else 5.0)


def test_four_offers_on_a_two_euro_cart_never_take_more_than_two() -> None:
    # The issue's report: four offers redeemed on a 2.00 cart gave 3.90 off.
    basket = basket_of(("tea", 1, 2.0))
    offers = [candidate(f"o{i}", {"type": "amount", "value": 0.975}) for i in range(4)]
    best = best_combination(basket, offers)
    assert best.discount == pytest.approx(2.0)
    assert sum(a.amount for a in best.applied) <= 2.0 + 1e-9


def test_points_costs_stay_within_the_balance() -> None:
    basket = basket_of(("tea", 1, 10.0))
    burn = [
        candidate("p5", {"type": "amount", "value": 5}, points_cost=500),
        candidate("p3", {"type": "amount", "value": 3}, points_cost=300),
    ]
    best = best_combination(basket, burn, points_balance=600)
    assert [a.candidate.offer.offer_id for a in best.applied] == ["p5"]
    assert best.left_out[0].reason == "points_insufficient"
    assert best_combination(basket, burn).discount == 0  # no points, no burn


# -- properties against brute force ----------------------------------------------------------
lines = st.lists(
    st.tuples(
        st.sampled_from(sorted(ITEMS)),
        st.integers(1, 4),
        st.integers(10, 1500).map(lambda c: c / 100),
    ),
    min_size=1,
    max_size=4,
)
rewards = st.one_of(
    st.builds(lambda v: {"type": "percent", "value": v}, st.integers(1, 100)),
    st.builds(lambda v: {"type": "amount", "value": v / 100}, st.integers(10, 2000)),
    st.builds(lambda i, q: {"type": "free_item", "item": i, "quantity": q}, st.sampled_from(sorted(ITEMS)), st.integers(1, 2)),
    st.builds(lambda b, g: {"type": "buy_x_get_y", "buy": b, "get": g}, st.integers(1, 3), st.integers(1, 2)),
    st.builds(lambda q, p: {"type": "bundle_price", "quantity": q, "price": p / 100}, st.integers(2, 4), st.integers(100, 1500)),
    st.builds(lambda s, a: {"type": "tiered", "tiers": [{"spend": s, "amount": a}]}, st.integers(1, 40), st.integers(1, 10)),
)  # fmt: skip
stackings = st.fixed_dictionaries(
    {},
    optional={
        "priority": st.integers(-2, 2),
        "exclusive": st.booleans(),
        "category_mode": st.sampled_from(["joint", "exclusive"]),
        "max_offers": st.integers(1, 3),
        "per_order": st.integers(1, 3),
        "max_order_discount": st.integers(0, 30),
    },
).map(lambda s: {**s, "category": "c"} if "category_mode" in s else s)
targetings = st.one_of(
    st.just({}),
    st.builds(lambda i: {"items": i}, st.lists(st.sampled_from(sorted(ITEMS)), min_size=1, unique=True)),
    st.builds(lambda c: {"categories": [c]}, st.sampled_from(sorted(set(ITEMS.values())))),
)  # fmt: skip
offers = st.lists(
    st.tuples(rewards, stackings, targetings, st.sampled_from([0, 0, 200])), min_size=1, max_size=4
)


def build(specs: list[tuple[Any, ...]]) -> list[Candidate]:
    return [
        candidate(f"o{n}", reward, stacking=stacking, targeting=targeting, points_cost=cost)
        for n, (reward, stacking, targeting, cost) in enumerate(specs)
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, offers, st.sampled_from([0, 250, 1000]))
def test_no_order_is_discounted_beyond_the_value_of_its_lines(
    raw_lines: list[tuple[str, int, float]], specs: list[tuple[Any, ...]], points: int
) -> None:
    basket = basket_of(*raw_lines)
    best = best_combination(basket, build(specs), points_balance=points)
    assert 0.0 <= best.discount <= basket.value + 1e-9
    for n, amount in enumerate(basket.amounts):
        taken = sum(a.line_discounts[n] for a in best.applied)
        assert -1e-9 <= taken <= amount + 1e-9
    for applied in best.applied:
        offer = applied.candidate.offer
        targeted = reward_lines(offer.reward, basket, targeted_lines(offer, basket))
        assert 0 < applied.amount <= sum(basket.amounts[i] for i in targeted) + 1e-9
        assert all(
            applied.line_discounts[i] == 0 for i in range(len(basket.items)) if i not in targeted
        )
    assert {a.candidate.key for a in best.applied}.isdisjoint(
        {x.candidate.key for x in best.left_out}
    )
    assert all(x.reason in shelfwise.OFFER_REASONS for x in best.left_out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, offers, st.sampled_from([0, 250, 1000]))
def test_the_chosen_combination_is_the_best_allowed_one(
    raw_lines: list[tuple[str, int, float]], specs: list[tuple[Any, ...]], points: int
) -> None:
    basket = basket_of(*raw_lines)
    candidates = build(specs)
    best = best_combination(basket, candidates, points_balance=points)
    chosen = [(a.candidate, a.times) for a in best.applied]
    assert combination(basket, chosen, points_balance=points) == (
        None,
        pytest.approx(best.discount),
    )
    brute = 0.0
    choices = [range(0, c.offer.stacking.per_order + 1) for c in candidates]
    for times in itertools.product(*choices):
        picks = [(c, t) for c, t in zip(candidates, times, strict=True) if t]
        refused, value = combination(basket, picks, points_balance=points)
        if refused is None:
            brute = max(brute, value)
    assert best.exhaustive
    assert best.discount == pytest.approx(brute, abs=1e-6)
