"""Per-customer limits across devices: uses travel in the member's profile counters; an
offline policy decides when the device cannot confirm the member's uses elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CATALOG
from hypothesis import given
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers import OfferContext, OfferUsage, evaluate, parse_offer
from shelfwise.profile import new_member_key
from shelfwise.profile.local import apply_profile, read_profile

SECRET = b"chain-secret-for-tests-000000000"


def once(**limits: Any) -> dict[str, Any]:
    return {
        "offer_id": "once",
        "title": "once per member",
        "reward": {"type": "amount", "value": 1},
        "limits": {"per_customer": 1, **limits},
    }


def kiosk(path: Path) -> shelfwise.Shelfwise:
    sw = shelfwise.open(path, chain_secret=SECRET)
    sw.catalog.import_rows(CATALOG)
    return sw


def test_a_once_per_member_offer_used_on_kiosk_a_is_refused_on_kiosk_b(tmp_path: Path) -> None:
    # The issue: a member redeemed a once-per-customer offer on kiosk A and again on kiosk B.
    with kiosk(tmp_path / "a.db") as a, kiosk(tmp_path / "b.db") as b:
        for sw in (a, b):
            sw.offers.define(once())
        a.member("L-1").redeem_order("a-1", cart=["milk"])
        b.member("L-1")
        apply_profile(b.store, "L-1", read_profile(a.store, "L-1"))  # the profile travelled
        refused = b.member("L-1").price_order("b-1", cart=["milk"], offers=["once"])
        assert [(x.offer_id, x.reason) for x in refused.left_out] == [("once", "customer_limit")]
        with pytest.raises(shelfwise.OfferRejected) as caught:
            b.member("L-1").redeem("once", cart_total=5)
        assert caught.value.reason == "customer_limit"


def test_a_void_gives_the_use_back_on_every_device(tmp_path: Path) -> None:
    with kiosk(tmp_path / "a.db") as a, kiosk(tmp_path / "b.db") as b:
        for sw in (a, b):
            sw.offers.define(once())
        a.member("L-1").redeem_order("a-1", cart=["milk"])
        a.offers.void_order("a-1")
        b.member("L-1")
        apply_profile(b.store, "L-1", read_profile(a.store, "L-1"))
        assert b.member("L-1").redeem("once", cart_total=5).amount == 1.0


def test_single_redemptions_count_in_the_profile_too(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(once())
    sw.member("L-1").redeem("once", cart_total=5)
    assert read_profile(sw.store, "L-1").counter("offer:once") == 1
    sw.offers.define({**once(), "offer_id": "free", "limits": {}})
    sw.member("L-1").redeem("free", cart_total=5)
    assert read_profile(sw.store, "L-1").counter("offer:free") == 0


def test_deny_refuses_until_the_members_profile_is_merged_from_the_fleet(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(once(offline="deny", confirm_within_s=600))
    member = sw.member("L-1", consents={"offers": True})
    with pytest.raises(shelfwise.OfferRejected) as caught:
        member.redeem("once", cart_total=5)
    assert caught.value.reason == "customer_unconfirmed"
    sw.offers.confirm_member("L-1")
    assert member.redeem("once", cart_total=5).amount == 1.0
    late = sw.offers.context("L-1", cart_total=5, now=shelfwise.clock.now_ms() + 601_000)
    assert sw.offers.explain("once", late).reason == "customer_unconfirmed"


def test_allow_up_to_n_lets_an_unconfirmed_device_give_n_uses(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(once(per_customer=3, offline={"allow_up_to": 1}))
    member = sw.member("L-1")
    member.redeem("once", cart_total=5)
    with pytest.raises(shelfwise.OfferRejected) as caught:
        member.redeem("once", cart_total=5)
    assert caught.value.reason == "customer_unconfirmed"
    sw.offers.confirm_member("L-1")
    member.redeem("once", cart_total=5)
    member.redeem("once", cart_total=5)
    with pytest.raises(shelfwise.OfferRejected) as limit:
        member.redeem("once", cart_total=5)
    assert limit.value.reason == "customer_limit"


def test_opening_the_members_profiles_confirms_their_uses(tmp_path: Path) -> None:
    key = new_member_key()
    with kiosk(tmp_path / "a.db") as a, kiosk(tmp_path / "b.db") as b:
        for sw in (a, b):
            sw.offers.define(once(offline="deny"))
        consents = {"profile_sync": True, "offers": True}
        a.offers.confirm_member("L-1")
        a.member("L-1", consents=consents).redeem_order("a-1", cart=["milk"])
        sealed = a.member("L-1").seal_profile(key)
        member = b.member("L-1", consents=consents)
        assert b.offers.explain("once", member.offer_context()).reason == "customer_unconfirmed"
        member.open_profiles([sealed], key)
        assert b.offers.explain("once", member.offer_context()).reason == "customer_limit"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"offline": "deny"}, "applies to per-customer limits"),
        ({"per_customer": 1, "offline": "maybe"}, "deny, allow or"),
        ({"per_customer": 1, "confirm_within_s": 0}, "confirm_within_s"),
    ],
)
def test_bad_offline_policies_name_the_field(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(shelfwise.InvalidOffer, match=message):
        parse_offer({**once(), "limits": limits})


policies = st.one_of(st.just("allow"), st.just("deny"), st.integers(0, 4))


@given(policies, st.integers(0, 6), st.integers(1, 5), st.one_of(st.none(), st.integers(0, 7200)))
def test_the_offline_policy_is_exactly_what_it_says(
    policy: str | int, used: int, limit: int, confirmed_ago_s: int | None
) -> None:
    offline: Any = policy if isinstance(policy, str) else {"allow_up_to": policy}
    offer = parse_offer(once(per_customer=limit, offline=offline, confirm_within_s=3600))
    now = 10_000_000_000
    seen = None if confirmed_ago_s is None else now - confirmed_ago_s * 1000
    ctx = OfferContext(now_ms=now, local=None, shopper_id="L-1", is_member=True,
                       consented=True, cart_total=10.0, confirmed_ms=seen)  # fmt: skip
    decision = evaluate(offer, ctx, OfferUsage(customer_total=used))
    confirmed = confirmed_ago_s is not None and confirmed_ago_s <= 3600
    if policy == "allow" or confirmed:
        allowed = used < limit
    elif policy == "deny":
        allowed = False
    else:
        allowed = used < min(limit, int(policy))
    assert decision.eligible == allowed
    if not allowed:
        assert decision.reason in {"customer_limit", "customer_unconfirmed"}
