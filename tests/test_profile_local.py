"""A member's profile between two devices' stores: what one device learned reaches the other
through a sealed copy, consents follow the latest answer, counters add up, erasure wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CATALOG

import shelfwise
from shelfwise.profile import (
    MemberProfile,
    blind_member_id,
    derive_member_key,
    seal,
    unseal,
)
from shelfwise.profile.local import apply_profile, count, device_id, read_profile
from shelfwise.profile.sealing import TEST_COST

CARD, PIN = "2990001234566", "482913"
BLINDED = blind_member_id(b"the-chain-secret-of-this-retailer", CARD)
KEY = derive_member_key(CARD, PIN, blinded_id=BLINDED, cost=TEST_COST)


@pytest.fixture
def kiosks(tmp_path: Path, bundle_path: Path) -> Iterator[tuple[shelfwise.Shelfwise, ...]]:
    opened = []
    for name in ("a", "b"):
        sw = shelfwise.open(tmp_path / f"{name}.db", bundle=bundle_path, store_id=f"store-{name}")
        sw.catalog.import_rows(CATALOG)
        opened.append(sw)
    yield tuple(opened)
    for sw in opened:
        sw.close()


def _carry(source: shelfwise.Shelfwise, target: shelfwise.Shelfwise) -> None:
    """What the collector relays: a sealed copy only the member's key opens."""
    sealed = seal(read_profile(source.store, CARD).to_dict(), KEY, blinded_id=BLINDED)
    target.member(CARD)
    apply_profile(
        target.store, CARD, MemberProfile.from_dict(unseal(sealed, KEY, blinded_id=BLINDED))
    )


def test_a_members_history_on_kiosk_a_gives_buy_again_on_kiosk_b(
    kiosks: tuple[shelfwise.Shelfwise, ...],
) -> None:
    a, b = kiosks
    member = a.member(CARD, consents={"personalization": True})
    member.add_to_cart("milk")
    member.add_to_cart("coffee")
    member.checkout()
    assert b.member(CARD).recommend("buy-again") == [], "kiosk B has never seen this member"
    _carry(a, b)
    on_b = b.shopper(CARD)
    assert on_b.has_consent("personalization")
    assert {r.item.item_id for r in on_b.recommend("buy-again")} == {"milk", "coffee"}
    _carry(a, b)  # syncing again records nothing twice
    purchases = b.store.query("SELECT count(*) AS n FROM events WHERE type = 'purchase'")
    assert purchases[0]["n"] == 2


def test_the_latest_consent_answer_wins_on_both_devices(
    kiosks: tuple[shelfwise.Shelfwise, ...],
) -> None:
    a, b = kiosks
    a.member(CARD, consents={"offers": True})
    b.member(CARD, consents={"offers": False})  # later: the member changed their mind on B
    _carry(a, b)
    _carry(b, a)
    assert not a.shopper(CARD).has_consent("offers")
    assert not b.shopper(CARD).has_consent("offers")
    assert read_profile(a.store, CARD).consents == read_profile(b.store, CARD).consents


def test_counters_from_both_devices_add_up_once(kiosks: tuple[shelfwise.Shelfwise, ...]) -> None:
    a, b = kiosks
    a.member(CARD)
    b.member(CARD)
    count(a.store, CARD, "points", 10)
    count(b.store, CARD, "points", 5)
    count(b.store, CARD, "points", -3)
    for _ in range(2):
        _carry(a, b)
        _carry(b, a)
    assert read_profile(a.store, CARD).counter("points") == 12
    assert read_profile(b.store, CARD).counter("points") == 12
    assert device_id(a.store) != device_id(b.store)


def test_an_erasure_from_another_device_forgets_what_came_before(
    kiosks: tuple[shelfwise.Shelfwise, ...],
) -> None:
    a, _ = kiosks
    member = a.member(CARD, consents={"personalization": True})
    member.view("milk")
    count(a.store, CARD, "points", 4)
    old_copy = read_profile(a.store, CARD)
    erased_at = max(i.ts_ms for i in old_copy.interactions) + 1
    apply_profile(a.store, CARD, old_copy.erase(erased_at))
    assert read_profile(a.store, CARD).interactions == ()
    assert read_profile(a.store, CARD).counter("points") == 0
    apply_profile(a.store, CARD, old_copy)  # an old copy comes back online
    assert read_profile(a.store, CARD).interactions == (), "the erasure cannot be undone"


SECRET = b"the-chain-secret-of-this-retailer"


def test_a_profile_travels_only_with_the_members_consent_and_key(tmp_path: Path) -> None:
    with (
        shelfwise.open(tmp_path / "a.db", chain_secret=SECRET) as a,
        shelfwise.open(tmp_path / "b.db", chain_secret=SECRET) as b,
    ):
        for sw in (a, b):
            sw.catalog.import_rows(CATALOG)
        member = a.member(CARD, consents={"personalization": True})
        member.view("coffee")
        with pytest.raises(shelfwise.ConsentRequired):
            member.seal_profile(KEY)
        member.set_consent("profile_sync", True)
        sealed = member.seal_profile(KEY)
        assert CARD.encode() not in sealed and b"coffee" not in sealed
        on_b = b.member(CARD)
        wrong = derive_member_key(CARD, "000000", blinded_id=BLINDED, cost=TEST_COST)
        with pytest.raises(shelfwise.ProfileSealError):
            on_b.open_profiles([sealed], wrong)
        assert on_b.profile().interactions == (), "a copy that does not open merges nothing"
        merged = on_b.open_profiles([sealed], KEY)
        assert [i.item_id for i in merged.interactions] == ["coffee"]
        assert on_b.has_consent("profile_sync") and on_b.has_consent("personalization")


def test_forgetting_a_member_queues_a_tombstone_that_binds_later_copies(tmp_path: Path) -> None:
    from shelfwise.profile.local import pending_profiles, pending_tombstones

    with shelfwise.open(tmp_path / "a.db", chain_secret=SECRET) as a:
        a.catalog.import_rows(CATALOG)
        member = a.member(CARD, consents={"profile_sync": True})
        member.seal_profile(KEY)
        a.forget_shopper(CARD)
        [(blinded, erased_ms)] = pending_tombstones(a.store)
        assert blinded == a.blinded_id(CARD) == BLINDED
        assert pending_profiles(a.store) == [], "a queued copy of an erased member is dropped"
        again = a.member(CARD, consents={"profile_sync": True})  # signs up again later
        again.seal_profile(KEY)
        [(_, sealed, epoch, _)] = pending_profiles(a.store)
        assert epoch == erased_ms
        assert MemberProfile.from_dict(unseal(sealed, KEY, blinded_id=BLINDED)).epoch == erased_ms


def test_a_device_without_the_chain_secret_forgets_locally_and_queues_nothing(
    tmp_path: Path,
) -> None:
    from shelfwise.profile.local import pending_tombstones

    with shelfwise.open(tmp_path / "a.db") as a:
        a.member(CARD)
        a.forget_shopper(CARD)
        assert pending_tombstones(a.store) == []
        with pytest.raises(shelfwise.InvalidInput, match="chain_secret"):
            a.blinded_id(CARD)
