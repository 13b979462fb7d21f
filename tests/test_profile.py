"""Member profiles: copies edited on several offline devices converge whatever the sync order,
counters never lose or double an increment, an erasure always wins, and only the member's key
opens a sealed profile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.profile import (
    Interaction,
    MemberProfile,
    blind_member_id,
    derive_member_key,
    merge_all,
    seal,
    unseal,
)
from shelfwise.profile.crdt import MAX_INTERACTIONS
from shelfwise.profile.sealing import TEST_COST

DEVICES = ["kiosk-a", "kiosk-b", "app"]

_interactions = st.builds(
    Interaction,
    event_id=st.text("abcdef0123", min_size=1, max_size=4),
    item_id=st.sampled_from(["milk", "tea", "buns"]),
    type=st.sampled_from(["view", "scan", "purchase"]),
    ts_ms=st.integers(1, 50),
)
_profiles = st.builds(
    lambda recs, consents, counts, erased: _apply(recs, consents, counts, erased),
    st.lists(_interactions, max_size=6),
    st.lists(
        st.tuples(st.sampled_from(["offers", "sync"]), st.booleans(), st.integers(1, 50)),
        max_size=3,
    ),
    st.lists(st.tuples(st.sampled_from(DEVICES), st.integers(-3, 5)), max_size=4),
    st.one_of(st.none(), st.integers(1, 50)),
)


def _apply(
    recs: list[Interaction],
    consents: list[tuple[str, bool, int]],
    counts: list[tuple[str, int]],
    erased: int | None,
) -> MemberProfile:
    profile = MemberProfile().record(*recs)
    for purpose, granted, ts in consents:
        profile = profile.with_consent(purpose, granted, ts, "kiosk-a")
    for device, amount in counts:
        profile = profile.count("points", device, amount)
    return profile.erase(erased) if erased else profile


@settings(max_examples=300, deadline=None)
@given(a=_profiles, b=_profiles, c=_profiles)
def test_merge_is_commutative_associative_and_idempotent(
    a: MemberProfile, b: MemberProfile, c: MemberProfile
) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a.merge(MemberProfile()) == a


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("visit"), st.sampled_from(DEVICES), st.sampled_from(["milk", "tea"])),
        st.tuples(st.just("consent"), st.sampled_from(DEVICES), st.booleans()),
        st.tuples(st.just("earn"), st.sampled_from(DEVICES), st.integers(1, 5)),
        st.tuples(st.just("sync"), st.sampled_from(DEVICES), st.sampled_from(DEVICES)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops=_ops, final_order=st.permutations(DEVICES))
def test_any_interleaving_of_offline_edits_and_syncs_converges_and_counts_every_increment(
    ops: list[tuple[Any, ...]], final_order: list[str]
) -> None:
    copies = {device: MemberProfile() for device in DEVICES}
    earned = 0
    for clock, op in enumerate(ops, 1):
        kind, device, arg = op
        before = copies[device].counter("points")
        if kind == "visit":
            event = Interaction(f"{device}-{clock}", arg, "scan", clock)
            copies[device] = copies[device].record(event)
        elif kind == "consent":
            copies[device] = copies[device].with_consent("offers", arg, clock, device)
        elif kind == "earn":
            copies[device] = copies[device].count("points", device, arg)
            earned += arg
        else:
            merged = copies[device].merge(copies[arg])
            copies[device] = copies[arg] = merged
        assert copies[device].counter("points") >= before, "a counter never goes down"
    # Everyone comes online, in any order, through the collector's copy.
    hub = MemberProfile()
    for device in final_order:
        hub = hub.merge(copies[device])
    for device in DEVICES:
        copies[device] = copies[device].merge(hub)
    assert len({repr(copy) for copy in copies.values()}) == 1, "every device holds the same profile"
    final = copies[DEVICES[0]]
    assert final.counter("points") == earned, "no increment lost or counted twice"
    visits = sum(1 for op in ops if op[0] == "visit")
    assert len(final.interactions) == min(visits, MAX_INTERACTIONS)


@settings(max_examples=200, deadline=None)
@given(old=_profiles, erased_at=st.integers(51, 60), later=st.lists(_interactions, max_size=3))
def test_an_erasure_wins_over_any_old_copy_that_comes_back_online(
    old: MemberProfile, erased_at: int, later: list[Interaction]
) -> None:
    erased = old.erase(erased_at)
    back_online = old.record(*later)  # a device that never heard of the erasure
    for merged in (erased.merge(back_online), back_online.merge(erased)):
        assert merged.epoch == erased_at
        assert all(i.ts_ms > erased_at for i in merged.interactions)
        assert all(r.updated_ms > erased_at for r in merged.consents.values())
        assert merged.counter("points") == 0


def test_new_activity_after_an_erasure_is_kept() -> None:
    profile = MemberProfile().record(Interaction("e1", "milk", "scan", 10)).erase(20)
    profile = profile.record(Interaction("e2", "tea", "scan", 30))
    assert [i.item_id for i in profile.interactions] == ["tea"]


def test_only_the_newest_interactions_are_kept_on_every_device() -> None:
    many = [Interaction(f"e{n:04}", "milk", "view", n + 1) for n in range(MAX_INTERACTIONS + 50)]
    a = MemberProfile().record(*many[::2])
    b = MemberProfile().record(*many[1::2])
    merged = merge_all([a, b])
    assert len(merged.interactions) == MAX_INTERACTIONS
    assert merged.interactions[0].ts_ms == 51 and merged.interactions[-1].ts_ms == len(many)


@settings(max_examples=300, deadline=None)
@given(
    data=st.recursive(
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        lambda kids: (
            st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_decoded_blob_is_a_valid_profile_or_an_invalid_input(data: Any) -> None:
    candidates = [data, {"v": 1, "interactions": data}, {"v": 1, "consents": data},
                  {"v": 1, "counters": {"points": data}}]  # fmt: skip
    for candidate in candidates:
        try:
            profile = MemberProfile.from_dict(candidate)
        except shelfwise.InvalidInput:
            continue
        assert MemberProfile.from_dict(profile.to_dict()) == profile


def test_to_dict_round_trips() -> None:
    profile = (
        MemberProfile()
        .record(Interaction("e1", "milk", "purchase", 10, "s1", 2))
        .with_consent("offers", True, 11, "kiosk-a")
        .count("points", "kiosk-a", 7)
        .count("points", "app", -2)
    )
    assert MemberProfile.from_dict(profile.to_dict()) == profile
    assert profile.counter("points") == 5


BLINDED = blind_member_id(b"chain-secret-of-the-retailer", "2990001234566")


def test_a_sealed_profile_opens_only_with_the_members_key_and_id() -> None:
    key = derive_member_key("2990001234566", "482913", blinded_id=BLINDED, cost=TEST_COST)
    sealed = seal(MemberProfile().count("points", "a", 3).to_dict(), key, blinded_id=BLINDED)
    assert b"points" not in sealed, "nothing readable leaves the device"
    assert MemberProfile.from_dict(unseal(sealed, key, blinded_id=BLINDED)).counter("points") == 3
    wrong_pin = derive_member_key("2990001234566", "000000", blinded_id=BLINDED, cost=TEST_COST)
    with pytest.raises(shelfwise.ProfileSealError, match="does not open"):
        unseal(sealed, wrong_pin, blinded_id=BLINDED)
    with pytest.raises(shelfwise.ProfileSealError):  # replayed under another member's id
        unseal(sealed, key, blinded_id=blind_member_id(b"chain-secret-of-the-retailer", "x"))
    flipped = bytearray(sealed)
    flipped[20] ^= 1
    with pytest.raises(shelfwise.ProfileSealError):
        unseal(bytes(flipped), key, blinded_id=BLINDED)
    with pytest.raises(shelfwise.ProfileSealError, match="wrong size"):
        unseal(b"short", key, blinded_id=BLINDED)


def test_the_same_card_and_pin_give_the_same_key_on_every_device() -> None:
    one = derive_member_key("2990001234566", "482913", blinded_id=BLINDED, cost=TEST_COST)
    two = derive_member_key("2990001234566", "482913", blinded_id=BLINDED, cost=TEST_COST)
    other = derive_member_key("2990001234573", "482913", blinded_id=BLINDED, cost=TEST_COST)
    assert one == two and one != other and len(one) == 32
