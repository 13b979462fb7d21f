"""Members across the fleet, device to device through a real collector: a member's profile
sealed on kiosk A opens on kiosk B with the member's key, "forget me" on one device erases the
member on every other at its next sync, an old copy coming back online cannot undo it, and all
of it survives the collector being unreachable, retries and repeats."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CATALOG
from hypothesis import given, settings
from hypothesis import strategies as st
from kiosk_helpers import TestClient

import shelfwise
from shelfwise.profile.sealing import TEST_COST
from shelfwise.sync.fleet import CURSOR_KEY
from shelfwise.sync.transport import HttpTransport, Response
from shelfwise.upstream import SqliteStorage, create_app

SECRET = b"the-chain-secret-of-this-retailer"
CARD, PIN = "2990000018083", "482913"
OFFLINE = "http://127.0.0.1:9"  # nobody listens there


class AppTransport(HttpTransport):
    """The collector app in this process (no sockets); ``online`` False acts as a dead network."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        super().__init__("http://collector.test")
        self.client = TestClient(app, base_url="http://collector.test")
        self.online = True
        self.requests = 0

    def request(self, method, path, body=b"", headers=None, *, max_bytes=16 << 20):  # type: ignore[no-untyped-def]
        if not self.online:
            raise shelfwise.SyncRetryable("network error talking to upstream: offline (test)")
        self.requests += 1
        reply = self.client.request(method, path, content=body or None, headers=headers or {})
        return Response(
            reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.content
        )


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[dict]:
    storage = SqliteStorage(str(tmp_path / "collector.db"))
    transport = AppTransport(create_app(storage, rate_per_s=0))
    devices: dict = {"storage": storage, "transport": transport}
    for name in ("a", "b", "c"):
        sw = shelfwise.open(tmp_path / f"{name}.db", store_id=f"store-{name}", chain_secret=SECRET)
        sw.catalog.import_rows(CATALOG)
        sw.fleet.kdf_cost = TEST_COST
        secret = storage.add_device(f"kiosk-{name}", region="north", stores=(f"store-{name}",))
        devices[name] = (sw, shelfwise.Credentials(f"kiosk-{name}", secret))
    yield devices
    for name in ("a", "b", "c"):
        devices[name][0].close()
    storage.close()


def sync(fleet: dict, name: str) -> shelfwise.SyncReport:
    sw, creds = fleet[name]
    return sw.sync(fleet["transport"], creds, fleet=False, documents=(), deadline_s=0)


def key_of(sw: shelfwise.Shelfwise) -> bytes:
    return sw.fleet.member_key(CARD, PIN)


def shopping_member(sw: shelfwise.Shelfwise, *items: str) -> shelfwise.Shopper:
    member = sw.member(CARD, consents={"personalization": True, "profile_sync": True, "sync": True})
    for item in items:
        member.add_to_cart(item)
    if items:
        member.checkout()
    return member


def test_a_members_history_sealed_on_kiosk_a_opens_on_kiosk_b_and_nowhere_else(fleet):
    (a, _), (b, creds_b) = fleet["a"], fleet["b"]
    member = shopping_member(a, "milk", "coffee")
    sealed = member.seal_profile(key_of(a))
    report = sync(fleet, "a")
    assert report.profiles_sent == 1 and report.error is None
    held = fleet["storage"].member_copies(a.blinded_id(CARD))
    assert [c[2] for c in held.copies] == [sealed], "the collector holds ciphertext only"
    assert CARD.encode() not in sealed and b"coffee" not in sealed
    # Kiosk B has never seen the member; with their key the history follows them.
    on_b = b.member(CARD)
    assert on_b.recommend("buy-again") == []
    pulled = on_b.pull_profile(key_of(b), fleet["transport"], creds_b)
    assert (pulled.online, pulled.copies) == (True, 1)
    assert {r.item.item_id for r in on_b.recommend("buy-again")} == {"milk", "coffee"}
    assert on_b.has_consent("personalization") and on_b.has_consent("profile_sync")
    # ...without B counting A's purchases upstream a second time.
    assert b.store.query("SELECT count(*) AS n FROM events WHERE summarised = 0")[0]["n"] == 0
    assert b.summarise(k=1) == []
    # A wrong PIN opens nothing and merges nothing.
    stranger = b.member("2990000099992")
    with pytest.raises(shelfwise.ProfileSealError):
        b.fleet.copies(CARD, b.fleet.member_key(CARD, "000000"), fleet["transport"], creds_b)
    assert stranger.profile().interactions == ()


def test_the_copy_a_device_merged_is_replaced_so_copies_do_not_pile_up(fleet):
    (a, _), (b, creds_b) = fleet["a"], fleet["b"]
    shopping_member(a, "milk").seal_profile(key_of(a))
    sync(fleet, "a")
    on_b = shopping_member(b, "buns")
    on_b.pull_profile(key_of(b), fleet["transport"], creds_b)
    on_b.seal_profile(key_of(b))
    sync(fleet, "b")
    held = fleet["storage"].member_copies(b.blinded_id(CARD)).copies
    assert len(held) == 1, "B's copy replaced A's, which it merged"
    # A seals again later (without having merged B's): both are kept, nothing is lost.
    shopping_member(a, "juice").seal_profile(key_of(a))
    sync(fleet, "a")
    copies = b.fleet.copies(CARD, key_of(b), fleet["transport"], creds_b)
    assert len(copies.copy_ids) == 2
    bought = {i.item_id for i in copies.profile.interactions if i.type == "purchase"}
    assert bought == {"milk", "buns", "juice"}


def test_forget_me_on_one_device_erases_the_member_on_every_other_at_its_next_sync(fleet):
    (a, _), (b, _), (c, _) = fleet["a"], fleet["b"], fleet["c"]
    for sw in (a, b, c):
        shopping_member(sw, "milk").seal_profile(key_of(sw))
        sync(fleet, "a" if sw is a else "b" if sw is b else "c")
    b.forget_shopper(CARD)
    erased_at = b.fleet.erased_at(CARD)
    assert b.fleet.status().pending_erasures == 1
    report = sync(fleet, "b")
    assert report.erasures_sent == 1 and b.fleet.status().pending_erasures == 0
    assert fleet["storage"].member_copies(b.blinded_id(CARD)).copies == []
    report = sync(fleet, "a")
    assert (report.erasures_received, report.members_erased) == (1, 1)
    with pytest.raises(shelfwise.UnknownShopper):
        a.shopper(CARD)
    assert a.fleet.erased_at(CARD) == erased_at
    assert sync(fleet, "a").members_erased == 0, "pulling again erases nothing twice"
    # Kiosk C syncs last; the staff screen saw it was one erasure behind until then.
    backlog = a.fleet.status().erasures_pending_per_device
    assert backlog["kiosk-c"] == 1 and backlog["kiosk-a"] == 0
    sync(fleet, "c")
    with pytest.raises(shelfwise.UnknownShopper):
        c.shopper(CARD)
    for sw in (a, b, c):
        rows = sw.store.query("SELECT count(*) AS n FROM events WHERE shopper_id = ?", [CARD])
        assert rows[0]["n"] == 0


def test_an_old_copy_coming_back_online_cannot_undo_an_erasure(fleet):
    (a, _), (c, _) = fleet["a"], fleet["c"]
    shopping_member(a, "milk").seal_profile(key_of(a))
    sync(fleet, "a")
    # Kiosk C is offline: the member shops there and C seals a copy from before the erasure.
    fleet["transport"].online = False
    shopping_member(c, "coffee").seal_profile(key_of(c))
    assert sync(fleet, "c").error is not None
    fleet["transport"].online = True
    a.forget_shopper(CARD)
    sync(fleet, "a")
    # C comes back: its tombstone feed arrives before its copy would go up, so the copy
    # is dropped; and the collector would refuse it anyway.
    report = sync(fleet, "c")
    assert report.members_erased == 1 and report.profiles_sent == 0
    assert fleet["storage"].member_copies(a.blinded_id(CARD)).copies == []
    with pytest.raises(shelfwise.UnknownShopper):
        c.shopper(CARD)


def test_the_collector_answers_erased_to_a_copy_from_before_the_erasure(fleet):
    (a, _), (c, _) = fleet["a"], fleet["c"]
    shopping_member(c, "coffee").seal_profile(key_of(c))
    a.member(CARD)
    a.forget_shopper(CARD)
    sync(fleet, "a")
    # C never pulls the feed first (its place is already past it, say a restored backup).
    c.store.set_meta(CURSOR_KEY, "999")
    report = sync(fleet, "c")
    assert report.profiles_sent == 0 and report.members_erased == 1
    assert c.fleet.erased_at(CARD) == a.fleet.erased_at(CARD)
    assert fleet["storage"].member_copies(a.blinded_id(CARD)).copies == []


def test_a_member_who_comes_back_after_an_erasure_keeps_what_they_did_since(fleet):
    (a, _), (b, _) = fleet["a"], fleet["b"]
    shopping_member(b, "milk")
    b.forget_shopper(CARD)
    sync(fleet, "b")
    erased_at = b.fleet.erased_at(CARD)
    # On A the member shops again after the erasure, before A heard of it.
    member = shopping_member(a, "buns")
    a.store.db.execute("UPDATE events SET ts_ms = ? WHERE shopper_id = ?", [erased_at + 5, CARD])
    sync(fleet, "a")
    assert [i.item_id for i in a.shopper(CARD).profile().interactions if i.type == "purchase"] == [
        "buns"
    ]
    member.seal_profile(key_of(a))  # sealed after the erasure: it is kept
    sync(fleet, "a")
    assert len(fleet["storage"].member_copies(a.blinded_id(CARD)).copies) == 1


def test_everything_waits_while_the_collector_is_unreachable_and_goes_once_it_is_back(fleet):
    (a, _), (b, creds_b) = fleet["a"], fleet["b"]
    fleet["transport"].online = False
    shopping_member(a, "milk").seal_profile(key_of(a))
    a.member("2990000099992")
    a.forget_shopper("2990000099992")
    report = sync(fleet, "a")
    assert report.error and report.error.startswith("members:")
    status = a.fleet.status()
    assert (status.pending_copies, status.pending_erasures) == (1, 1)
    # A kiosk that cannot reach the collector serves what it holds.
    on_b = shopping_member(b, "buns")
    pulled = on_b.pull_profile(key_of(b), fleet["transport"], creds_b)
    assert not pulled.online and {i.item_id for i in pulled.profile.interactions} == {"buns"}
    fleet["transport"].online = True
    report = sync(fleet, "a")
    assert (report.profiles_sent, report.erasures_sent, report.error) == (1, 1, None)
    again = sync(fleet, "a")
    assert (again.profiles_sent, again.erasures_sent) == (0, 0), "nothing is sent twice"
    assert len(fleet["storage"].member_copies(a.blinded_id(CARD)).copies) == 1
    assert a.fleet.status().last_error == ""


def test_a_device_without_the_chain_secret_stays_an_island(tmp_path: Path, fleet):
    with shelfwise.open(tmp_path / "island.db") as island:
        island.member(CARD)
        island.forget_shopper(CARD)
        report = island.sync(
            fleet["transport"], fleet["b"][1], fleet=False, documents=(), deadline_s=0
        )
        assert report.erasures_sent == 0 and not island.fleet.enabled
    assert fleet["storage"].member_stats()["tombstones"] == 0


def known(sw: shelfwise.Shelfwise) -> bool:
    try:
        sw.shopper(CARD)
    except shelfwise.UnknownShopper:
        return False
    return True


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["shop", "seal", "sync", "pull", "forget", "offline", "online"]),
            st.sampled_from("abc"),
            st.sampled_from(["milk", "buns", "coffee", "juice"]),
        ),
        max_size=25,
    ),
    seed=st.integers(0, 1000),
)
def test_any_schedule_of_shopping_syncs_outages_and_erasures_converges(
    tmp_path_factory, steps, seed
):
    """Whatever happened, once every device is online and synced twice: no device holds
    anything of the member from before the last erasure, the collector holds no copy older
    than it, every copy still held opens, and a pull on any device gets the same profile."""
    folder = tmp_path_factory.mktemp("schedule")
    storage = SqliteStorage(str(folder / "collector.db"))
    transport = AppTransport(create_app(storage, rate_per_s=0))
    fleet: dict = {"storage": storage, "transport": transport}
    for name in "abc":
        sw = shelfwise.open(folder / f"{name}.db", store_id=f"s-{name}", chain_secret=SECRET)
        sw.catalog.import_rows(CATALOG)
        sw.fleet.kdf_cost = TEST_COST
        secret = storage.add_device(f"kiosk-{name}", stores=(f"s-{name}",))
        fleet[name] = (sw, shelfwise.Credentials(f"kiosk-{name}", secret))
    key = fleet["a"][0].fleet.member_key(CARD, PIN)
    rng = random.Random(seed)
    try:
        for kind, name, item in steps:
            sw, creds = fleet[name]
            if kind == "shop":
                member = sw.member(CARD, consents={"personalization": True, "profile_sync": True})
                member.track("purchase", item, event_id=os.urandom(8).hex())
            elif kind == "seal" and known(sw):
                sw.shopper(CARD).seal_profile(key)
            elif kind == "sync":
                sync(fleet, name)
            elif kind == "pull" and known(sw):
                sw.shopper(CARD).pull_profile(key, transport, creds)
            elif kind == "forget" and known(sw):
                sw.forget_shopper(CARD)
            elif kind in ("offline", "online"):
                transport.online = kind == "online" or rng.random() < 0.2
        transport.online = True
        for _ in range(2):
            for name in "abc":
                assert sync(fleet, name).error is None
        erased = max(fleet[n][0].fleet.erased_at(CARD) for n in "abc")
        held = storage.member_copies(fleet["a"][0].blinded_id(CARD))
        assert held.erased_ms == erased
        assert all(epoch >= erased for _, epoch, _ in held.copies)
        profiles = []
        for name in "abc":
            sw, creds = fleet[name]
            assert sw.fleet.erased_at(CARD) == erased
            old = sw.store.query(
                "SELECT count(*) AS n FROM events WHERE shopper_id = ? AND ts_ms <= ?",
                [CARD, erased],
            )
            assert old[0]["n"] == 0, f"kiosk {name} still holds the member from before the erasure"
            if held.copies:
                profiles.append(sw.fleet.copies(CARD, key, transport, creds).profile)
        assert len({repr(p) for p in profiles}) <= 1
    finally:
        for name in "abc":
            fleet[name][0].close()
        storage.close()
