"""Offers: definitions, targeting rules, budgets and caps, codes, redemption, experiments."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers import OfferContext, OfferUsage, assign_variant, evaluate, parse_offer
from shelfwise.offers.codes import ALPHABET, check_code, new_code

MONDAY_NOON = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)
NOW = int(MONDAY_NOON.timestamp() * 1000)


def offer(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "offer_id": "o1",
        "title": "2.00 off",
        "reward": {"type": "amount", "value": 2},
    }
    base.update(fields)
    return base


def ctx(**fields: object) -> OfferContext:
    base: dict[str, object] = {
        "now_ms": NOW,
        "local": MONDAY_NOON,
        "shopper_id": "L-1",
        "is_member": True,
        "consented": True,
        "cart_total": 30.0,
    }
    base.update(fields)
    return OfferContext(**base)  # type: ignore[arg-type]


# -- definitions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"title": "x", "reward": {"type": "amount", "value": 1}}, "offer_id"),
        (offer(reward={"type": "bogof", "value": 1}), "reward.type"),
        (offer(targeting={"segments": ["vip"]}), "vip not one of"),
        (offer(targeting={"cart_totl_min": 5}), "unknown targeting field(s): cart_totl_min"),
        (offer(schedule={"hours": ["25:00", "08:00"]}), "not a time of day"),
        (offer(schedule={"starts": "2025-02-01", "ends": "2025-01-01"}), "before schedule.ends"),
        (offer(limits={"per_customer": -1}), "limits.per_customer must be a non-negative integer"),
        (offer(targeting={"channels": ["fax"]}), "fax not one of"),
        (offer(targeting={"calendar": ["holiday"]}), "targeting.holidays is empty"),
    ],
)
def test_bad_definitions_name_the_field(definition: dict[str, object], message: str) -> None:
    with pytest.raises(
        shelfwise.InvalidOffer, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        parse_offer(definition)


def test_offers_load_from_json_and_yaml_all_or_nothing(
    sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    good = tmp_path / "offers.yaml"
    good.write_text(
        "offers:\n"
        "  - offer_id: coffee10\n    title: 10% off coffee\n    reward: {type: percent, value: 10}\n"
        "    targeting: {items: [coffee]}\n"
        "  - offer_id: bbq\n    title: 1.00 off buns\n    reward: {type: amount, value: 1}\n"
    )
    assert [o.offer_id for o in sw.offers.load(good)] == ["coffee10", "bbq"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([offer(offer_id="new1"), offer(offer_id="new2", reward={})]))
    with pytest.raises(shelfwise.InvalidOffer, match="new2"):
        sw.offers.load(bad)
    assert [o.offer_id for o in sw.offers.all()] == ["bbq", "coffee10"]


# -- rules (pure) ----------------------------------------------------------------------------
def test_rejections_carry_a_reason_code_and_a_readable_message() -> None:
    decision = evaluate(parse_offer(offer(targeting={"cart_total_min": 20})), ctx(cart_total=12.5))
    assert (decision.reason, decision.message) == (
        "cart_total_below",
        "not eligible: cart total 12.50 is below 20.00",
    )


@pytest.mark.parametrize(
    ("definition", "context", "reason"),
    [
        (offer(active=False), {}, "inactive"),
        (offer(), {"consented": False}, "consent_required"),
        (offer(limits={"per_customer": 1}), {"is_member": False}, "member_required"),
        (offer(targeting={"segments": ["lapsed"]}), {"segment": "loyal"}, "segment"),
        (offer(targeting={"stores": ["s12"]}), {"store_id": "s1"}, "store"),
        (offer(targeting={"channels": ["app_push"]}), {"channel": "kiosk"}, "channel"),
        (offer(schedule={"days": ["weekend"]}), {}, "wrong_day"),
        (offer(schedule={"hours": ["18:00", "22:00"]}), {}, "outside_hours"),
        (offer(schedule={"ends": "2025-06-01"}), {}, "expired"),
        (offer(schedule={"starts": "2025-07-01"}), {}, "not_started"),
        (offer(schedule={"days": ["mon"]}), {"local": None}, "timezone_unknown"),
        (
            offer(targeting={"attributes": {"tier": "gold"}}),
            {"attributes": {"tier": "silver"}},
            "attribute",
        ),
        (
            offer(targeting={"calendar": ["birthday"]}),
            {"attributes": {"birthday": "1990-03-04"}},
            "calendar",
        ),
        (
            offer(targeting={"min_days_since_purchase": 30}),
            {"days_since_purchase": 3.0},
            "lapsed_days",
        ),
        (offer(targeting={"geofences": ["s12-1mi"]}), {"geofence": None}, "geofence"),
        (
            offer(limits={"budget": 10}),
            {"purpose": "redeem", "_usage": {"spent": 9.0}},
            "budget_exhausted",
        ),
        (
            offer(limits={"total_redemptions": 5}),
            {"_usage": {"redemptions": 5}},
            "redemptions_exhausted",
        ),
        (offer(limits={"per_customer": 1}), {"_usage": {"customer_total": 1}}, "customer_limit"),
        (offer(limits={"impressions_per_day": 2}), {"_usage": {"shown_today": 2}}, "frequency_cap"),
    ],
)
def test_each_rule_rejects_with_its_own_reason(
    definition: dict[str, object], context: dict[str, object], reason: str
) -> None:
    usage = OfferUsage(**context.pop("_usage", {}))  # type: ignore[arg-type]
    decision = evaluate(parse_offer(definition), ctx(**context), usage)
    assert not decision.eligible
    assert decision.reason == reason
    assert decision.message


def test_birthday_offer_applies_on_the_birthday() -> None:
    definition = offer(targeting={"calendar": ["birthday"], "calendar_window_days": 1})
    assert evaluate(parse_offer(definition), ctx(attributes={"birthday": "1990-06-03"})).eligible


def test_perishable_push_offers_are_dropped_in_quiet_hours_others_delayed() -> None:
    quiet = ctx(channel="app_push", quiet_until_ms=NOW + 3_600_000)
    dropped = evaluate(parse_offer(offer(perishable=True)), quiet)
    assert dropped.reason == "quiet_hours"
    delayed = evaluate(parse_offer(offer()), quiet)
    assert delayed.eligible and delayed.deliver_at_ms == NOW + 3_600_000
    assert evaluate(
        parse_offer(offer(perishable=True)), ctx(channel="kiosk", quiet_until_ms=NOW + 1)
    ).eligible


def test_push_fails_closed_when_the_time_zone_is_unknown() -> None:
    decision = evaluate(parse_offer(offer()), ctx(channel="app_push", local=None))
    assert decision.reason == "timezone_unknown"


rule_fields = st.fixed_dictionaries(
    {},
    optional={
        "segments": st.lists(st.sampled_from(shelfwise.SEGMENTS), min_size=1, unique=True),
        "cart_total_min": st.floats(0, 100),
        "members_only": st.booleans(),
        "stores": st.lists(st.sampled_from(["s1", "s2"]), min_size=1, unique=True),
        "channels": st.lists(st.sampled_from(["kiosk", "app_push"]), min_size=1, unique=True),
    },
)
contexts = st.builds(
    ctx,
    segment=st.sampled_from(shelfwise.SEGMENTS),
    cart_total=st.floats(0, 200),
    is_member=st.booleans(),
    store_id=st.sampled_from(["s1", "s2"]),
    channel=st.sampled_from(["kiosk", "app_push"]),
    consented=st.booleans(),
)


@settings(max_examples=300)
@given(rule_fields, contexts)
def test_eligibility_is_exactly_the_conjunction_of_the_rules(
    rules: dict, context: OfferContext
) -> None:
    decision = evaluate(parse_offer(offer(targeting=rules)), context)
    expected = (
        context.consented
        and (not rules.get("members_only") or context.is_member)
        and context.segment in rules.get("segments", shelfwise.SEGMENTS)
        and context.total >= rules.get("cart_total_min", 0)
        and context.store_id in rules.get("stores", ["s1", "s2"])
        and context.channel in rules.get("channels", ["kiosk", "app_push"])
    )
    assert decision.eligible == expected
    assert decision.reason in shelfwise.OFFER_REASONS


@given(rule_fields, rule_fields, contexts)
def test_adding_a_rule_never_makes_an_ineligible_offer_eligible(
    a: dict, b: dict, context: OfferContext
) -> None:
    loose = evaluate(parse_offer(offer(targeting=a)), context)
    strict = evaluate(parse_offer(offer(targeting={**b, **a})), context)
    assert not (strict.eligible and not loose.eligible)


@given(st.text(min_size=1, max_size=40))
def test_experiment_assignment_is_deterministic_and_covers_both_arms(identity: str) -> None:
    experiment = parse_offer(offer(experiment={"id": "e1"})).experiment
    assert experiment is not None
    assert assign_variant(experiment, identity) == assign_variant(experiment, identity)


def test_experiment_split_is_close_to_the_weights() -> None:
    experiment = parse_offer(offer(experiment={"id": "e1"})).experiment
    assert experiment is not None
    control = sum(assign_variant(experiment, f"L-{i}")[0] == "control" for i in range(4000))
    assert 1800 < control < 2200


# -- codes ---------------------------------------------------------------------------------
def test_codes_are_unambiguous_and_a_typo_is_caught_by_the_check_character() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert not set("".join(codes)) - set(ALPHABET)
    code = next(iter(codes))
    assert check_code(code.lower()[:4] + "-" + code[4:]) == code
    for position in range(len(code)):
        for replacement in ALPHABET:
            if replacement == code[position]:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(shelfwise.OfferRejected) as caught:
                check_code(typo)
            assert caught.value.reason == "code_invalid"


# -- the engine over the store ---------------------------------------------------------------
def test_single_use_code_redeems_once_and_the_second_try_says_why(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(codes="unique"))
    [code] = sw.offers.issue_codes("o1", 1)
    ann, bob = sw.member("L-1"), sw.member("L-2")
    assert ann.redeem(code, cart_total=10).amount == 2.0
    with pytest.raises(shelfwise.OfferRejected) as caught:
        bob.redeem(code, cart_total=10)
    assert caught.value.reason == "code_used"
    assert sw.offers.stats("o1")["redemptions"] == 1
    rejected = sw.store.query("SELECT payload FROM events WHERE type = 'offer_rejected'")
    assert json.loads(rejected[0]["payload"]) == {"offer_id": "o1", "reason": "code_used"}


def test_reserve_then_release_gives_the_code_back(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(codes="unique"))
    [code] = sw.offers.issue_codes("o1", 1)
    ann, bob = sw.member("L-1"), sw.member("L-2")
    held = ann.reserve(code, cart_total=10)
    with pytest.raises(shelfwise.OfferRejected) as caught:
        bob.reserve(code, cart_total=10)
    assert caught.value.reason == "code_reserved"
    sw.offers.release(held.reservation_id)
    with pytest.raises(shelfwise.OfferRejected) as closed:
        sw.offers.commit(held.reservation_id)
    assert closed.value.reason == "reservation_closed"
    assert bob.redeem(code, cart_total=10).shopper_id == "L-2"


def test_an_expired_reservation_cannot_be_committed_and_frees_the_code(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(offer(codes="unique"))
    [code] = sw.offers.issue_codes("o1", 1)
    held = sw.member("L-1").reserve(code, cart_total=10, ttl_s=1)
    with pytest.raises(shelfwise.OfferRejected) as caught:
        sw.offers.commit(held.reservation_id, now=held.expires_ms + 1)
    assert caught.value.reason == "reservation_expired"
    assert sw.offers.stats("o1")["reserved"] == 0
    assert sw.member("L-2").redeem(code, cart_total=10).amount == 2.0


def test_money_budget_counts_reservations_so_it_cannot_be_overspent(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(offer(limits={"budget": 5}))
    first = sw.member("L-1").reserve("o1", cart_total=10)
    second = sw.member("L-2").reserve("o1", cart_total=10)
    with pytest.raises(shelfwise.OfferRejected) as caught:
        sw.member("L-3").reserve("o1", cart_total=10)
    assert caught.value.reason == "budget_exhausted"
    sw.offers.commit(first.reservation_id)
    sw.offers.release(second.reservation_id)
    assert sw.member("L-3").redeem("o1", cart_total=10).amount == 2.0
    assert sw.offers.stats("o1")["spent"] == 4.0


def test_per_customer_limit_is_keyed_on_the_loyalty_id(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(limits={"per_customer": 1}))
    member = sw.member("L-1", attributes={"email": "a@example.com"})
    member.redeem("o1", cart_total=10)
    sw.member("L-1", attributes={"email": "new@example.com"})  # editing the email resets nothing
    with pytest.raises(shelfwise.OfferRejected) as caught:
        member.redeem("o1", cart_total=10)
    assert caught.value.reason == "customer_limit"
    with pytest.raises(shelfwise.OfferRejected) as anonymous:
        sw.start_session().redeem("o1", cart_total=10)
    assert anonymous.value.reason == "member_required"


def test_deactivated_offer_is_neither_shown_nor_redeemable(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer())
    shopper = sw.member("L-1", consents={"offers": True})
    assert [o.offer.offer_id for o in shopper.offers(cart=["milk"])] == ["o1"]
    sw.offers.deactivate("o1")
    assert shopper.offers(cart=["milk"]) == []
    with pytest.raises(shelfwise.OfferRejected) as caught:
        shopper.redeem("o1", cart_total=10)
    assert caught.value.reason == "inactive"


def test_sandbox_evaluates_and_redeems_without_spending(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(codes="unique", limits={"total_redemptions": 1}))
    [code] = sw.offers.issue_codes("o1", 1)
    sw.member("L-1")
    sandbox = sw.offers.sandbox()
    for _ in range(3):
        assert sandbox.redeem(code, shopper_id="L-1", cart_total=10).sandbox
    assert sw.offers.stats("o1")["redemptions"] == 0
    assert sw.store.query("SELECT count(*) AS n FROM redemptions")[0]["n"] == 0
    assert sw.member("L-1").redeem(code, cart_total=10).sandbox is False


def test_members_without_offer_consent_get_no_targeted_offers(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer())
    assert sw.member("L-9", consents={"offers": False}).offers(cart=[]) == []


def test_frequency_cap_stops_showing_after_n_impressions(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(limits={"impressions_per_day": 2}))
    shopper = sw.member("L-1", consents={"offers": True})
    shown = [len(shopper.offers(cart=[], now=NOW + i)) for i in range(4)]
    assert shown == [1, 1, 0, 0]


def test_offers_rank_by_expected_value(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(offer_id="small", reward={"type": "amount", "value": 1}))
    sw.offers.define(offer(offer_id="big", reward={"type": "percent", "value": 20}))
    shopper = sw.member("L-1", consents={"offers": True})
    shopper.add_to_cart("grill")  # 89.00: 20% is worth 17.80, more than 1.00
    assert [o.offer.offer_id for o in shopper.offers(record=False)] == ["big", "small"]


def test_unknown_store_time_zone_fails_closed(sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        sw.offers.set_timezone("Mars/Olympus_Mons")
    sw.offers.define(offer(schedule={"days": ["weekdays"]}))
    sw.store.set_meta("offers.timezone", "Mars/Olympus_Mons")  # e.g. written by an old build
    shopper = sw.member("L-1", consents={"offers": True})
    assert shopper.offers(cart=[]) == []
    assert sw.offers.explain("o1", shopper.offer_context()).reason == "timezone_unknown"


def test_schedule_runs_in_the_store_time_zone(sw: shelfwise.Shelfwise) -> None:
    sw.offers.set_timezone("Asia/Tokyo")  # 12:00 UTC is 21:00 in Tokyo
    sw.offers.define(offer(schedule={"hours": ["08:00", "20:00"]}))
    shopper = sw.member("L-1", consents={"offers": True})
    assert sw.offers.explain("o1", shopper.offer_context(now=NOW)).reason == "outside_hours"
    assert sw.offers.explain("o1", shopper.offer_context(now=NOW - 6 * 3_600_000)).eligible


def test_ab_experiment_logs_exposure_in_both_arms_and_computes_lift(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(offer(experiment={"id": "exp1"}, targeting={"items": ["coffee"]}))
    arms: dict[str, int] = {}
    for i in range(40):
        shopper = sw.member(f"L-{i}", consents={"offers": True})
        shown = shopper.offers(cart=[])
        variant = "treatment" if shown else "control"
        arms[variant] = arms.get(variant, 0) + 1
        if variant == "treatment" or i % 4 == 0:
            shopper.add_to_cart("coffee")
            shopper.checkout()
    report = sw.offers.experiment_report("exp1")
    assert report["variants"]["treatment"]["exposed"] == arms["treatment"]
    assert report["variants"]["control"]["exposed"] == arms["control"]
    assert report["variants"]["treatment"]["rate"] == 1.0
    assert report["lift"] is not None and report["lift"] > 0
    again = sw.offers.experiment_report("exp1")
    assert again == report, "conversions are counted once"


def test_the_report_of_an_experiment_no_offer_runs_is_refused(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(offer(experiment={"id": "exp1"}))
    events_before = sw.store.query("SELECT count(*) AS n FROM events")
    with pytest.raises(shelfwise.InvalidInput, match="no offer experiment 'exp2'"):
        sw.offers.experiment_report("exp2")
    assert sw.store.query("SELECT count(*) AS n FROM events") == events_before


def test_an_experiment_is_reported_before_anyone_saw_it_and_after_its_offer_moved_on(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(offer(experiment={"id": " exp1 "}, targeting={"items": ["coffee"]}))
    assert sw.offers.experiment_report("exp1")["variants"] == {}
    sw.member("L-1", consents={"offers": True}).offers(cart=[])
    sw.offers.define(offer(targeting={"items": ["coffee"]}))  # the experiment is over
    assert sum(v["exposed"] for v in sw.offers.experiment_report("exp1")["variants"].values()) == 1
