"""Fleet-wide limits through a real collector app: each device redeems inside the share the
collector leased it, so no partition of the fleet can overspend a total or a budget; lapsed
shares stop redemptions and come back; the collector reconciles every device's ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from click.testing import CliRunner
from conftest import CATALOG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fleet_sync import SECRET, AppTransport

import shelfwise
from shelfwise.cli import cli
from shelfwise.clock import now_ms
from shelfwise.sync.downstream import build_document
from shelfwise.sync.leasing import LEASES_PATH, LeaseRequest, WireAsk, exchange_offers
from shelfwise.sync.protocol import generate_signing_key, pack_wire, sign_request
from shelfwise.upstream import SqliteStorage, create_app
from shelfwise.upstream.__main__ import main as upstream_main

HOUR_MS = 3_600_000


def fleet_offer(**limits: Any) -> dict[str, Any]:
    return {
        "offer_id": "fleet",
        "title": "1.00 off, fleet-wide",
        "reward": {"type": "amount", "value": 1},
        "limits": {"scope": "fleet", **limits},
    }


class Chain:
    """A collector app, its published offers and devices that sync with it."""

    def __init__(self, tmp_path: Path, offers: list[dict[str, Any]], devices: int = 3) -> None:
        self.storage = SqliteStorage(str(tmp_path / "collector.db"))
        self.transport = AppTransport(create_app(self.storage, rate_per_s=0))
        private, self.public = generate_signing_key()
        self.version = 0
        self.private = private
        self.publish(offers)
        self.devices: list[tuple[shelfwise.Shelfwise, shelfwise.Credentials]] = []
        for n in range(devices):
            sw = shelfwise.open(tmp_path / f"d{n}.db", store_id=f"s{n}", chain_secret=SECRET)
            sw.catalog.import_rows(CATALOG)
            secret = self.storage.add_device(f"kiosk-{n}", stores=(f"s{n}",))
            self.devices.append((sw, shelfwise.Credentials(f"kiosk-{n}", secret)))

    def publish(self, offers: list[dict[str, Any]]) -> None:
        self.version += 1
        raw = build_document(
            "offers", {"offers": offers}, version=self.version, private_key=self.private
        )
        self.storage.publish(raw)

    def sync(self, n: int) -> shelfwise.SyncReport:
        sw, creds = self.devices[n]
        return sw.sync(self.transport, creds, public_key=self.public, k=1, fleet=False)  # type: ignore[arg-type]

    def close(self) -> None:
        for sw, _ in self.devices:
            sw.close()
        self.storage.close()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    made = Chain(tmp_path, [fleet_offer(total_redemptions=10, lease={"redemptions": 3})])
    yield made
    made.close()


def redeem(sw: shelfwise.Shelfwise, member: str, order: str) -> str:
    """Redeem the fleet offer for one order; the reason when refused."""
    priced = sw.member(member).redeem_order(order, cart=["milk", "cereal"], offers=["fleet"]).price
    if priced.applied:
        return "redeemed"
    return priced.left_out[0].reason


def test_a_device_redeems_only_inside_its_share_and_a_sync_refills_it(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sw, _ = chain.devices[0]
    report = chain.sync(0)  # the offers document comes down, then a share of the offer
    assert report.error is None and report.shares_granted == 1
    assert [redeem(sw, f"L-{i}", f"o-{i + 1}") for i in range(4)] == [
        "redeemed",
        "redeemed",
        "redeemed",
        "fleet_share_used",
    ]
    chain.sync(0)
    (share,) = sw.offers.leases()
    assert (share.redemptions, share.used_redemptions, share.live) == (6, 3, True)
    assert redeem(sw, "L-9", "o-9") == "redeemed"
    assert upstream_main(["shares", "--db", str(tmp_path / "collector.db"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["total_redemptions"], row["shared_redemptions"], row["devices"]) == (10, 6, 1)
    device_db = str(tmp_path / "d0.db")
    listed = CliRunner().invoke(cli, ["offers", "leases", "--db", device_db, "--json"])
    (mine,) = json.loads(listed.stdout)
    assert (mine["offer_id"], mine["redemptions"], mine["used_redemptions"]) == ("fleet", 6, 4)


def test_the_fleet_redeems_the_whole_total_and_never_more(chain: Chain) -> None:
    redeemed, rounds = 0, 0
    while rounds < 20:
        rounds += 1
        progress = 0
        for n, (sw, _) in enumerate(chain.devices):
            chain.sync(n)
            while redeem(sw, "L-1", f"o-{n}-{redeemed}-{progress}") == "redeemed":
                progress += 1
            shares = [s.redemptions or 0 for d, _ in chain.devices for s in d.offers.leases()]
            assert sum(shares) <= 10
        redeemed += progress
        if not progress:
            break
    assert redeemed == 10
    (status,) = chain.storage.shares()
    assert (status.total_redemptions, status.used_redemptions) == (10, 10)
    assert status.reported_redemptions == 10  # every device's ledger reached the collector


def test_a_voided_order_gives_its_share_back_on_the_device(chain: Chain) -> None:
    sw, _ = chain.devices[0]
    chain.sync(0)
    for i in range(3):
        assert redeem(sw, "L-1", f"o-{i}") == "redeemed"
    sw.offers.void_order("o-1")
    assert redeem(sw, "L-2", "o-3") == "redeemed"
    chain.sync(0)
    assert chain.storage.reconcile() == []
    (status,) = chain.storage.shares()
    assert status.used_redemptions == 3


def test_a_lapsed_share_stops_redemptions_and_its_unused_part_returns(chain: Chain) -> None:
    sw, creds = chain.devices[0]
    chain.sync(0)
    assert redeem(sw, "L-1", "o-1") == "redeemed"
    (share,) = sw.offers.leases()
    lapsed = share.expires_ms + 1
    sw.member("L-2")
    refused = sw.offers.price_order(
        "o-2", shopper_id="L-2", cart=["milk"], offers=["fleet"], now=lapsed
    ).left_out
    assert [x.reason for x in refused] == ["fleet_share_missing"]
    exchange_offers(sw.store, sw.offers, chain.transport, creds, clock=lambda: lapsed)
    (share,) = sw.offers.leases(now=lapsed)
    assert (share.redemptions, share.used_redemptions, share.live) == (4, 1, True)
    (status,) = chain.storage.shares()
    assert status.shared_redemptions == 4  # the two unused returned before the new slice


def test_a_lost_answer_is_resynced_not_granted_twice(chain: Chain) -> None:
    sw, creds = chain.devices[0]
    sw.offers.define(fleet_offer(total_redemptions=10, lease={"redemptions": 3}))
    asks = [WireAsk("fleet", 0, 0, 0.0, False, 3, 0.0)]
    chain.storage.grant_leases("kiosk-0", asks)  # answered, but the answer never arrived
    exchange_offers(sw.store, sw.offers, chain.transport, creds)
    (share,) = sw.offers.leases()
    assert share.redemptions == 3
    (status,) = chain.storage.shares()
    assert status.shared_redemptions == 3


def test_a_budget_is_shared_out_in_money(tmp_path: Path) -> None:
    chain = Chain(tmp_path, [fleet_offer(budget=5.0, lease={"budget": 2.0})], devices=2)
    try:
        for n in (0, 1):
            chain.sync(n)
        redeemed = 0
        for n, (sw, _) in enumerate(chain.devices):
            for i in range(4):
                redeemed += redeem(sw, f"L-{i}", f"o-{n}-{i}") == "redeemed"
        assert redeemed == 4  # 2.00 each: 1.00 a redemption
        for _ in range(5):  # the last 1.00 of the budget goes to whichever device asks first
            for n, (sw, _) in enumerate(chain.devices):
                chain.sync(n)
                redeemed += redeem(sw, "L-x", f"more-{n}-{redeemed}") == "redeemed"
        assert redeemed == 5
        assert chain.storage.reconcile() == []
    finally:
        chain.close()


def test_members_redeeming_a_once_per_customer_offer_on_two_offline_devices_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    once = {
        "offer_id": "once",
        "title": "once per member",
        "reward": {"type": "amount", "value": 1},
        "limits": {"per_customer": 1},  # offline policy: allow (what the device knows)
    }
    chain = Chain(tmp_path, [once], devices=2)
    try:
        for n in (0, 1):
            chain.sync(n)
            sw, _ = chain.devices[n]
            sw.member("L-7").redeem_order(f"o-{n}", cart=["milk"], offers=["once"])
        for n in (0, 1):
            assert chain.sync(n).ledger_sent == 1
        (over,) = chain.storage.reconcile()
        assert (over.kind, over.offer_id, over.used, over.devices) == (
            "customer",
            "once",
            2,
            ("kiosk-0", "kiosk-1"),
        )
        assert over.subject == chain.devices[0][0].blinded_id("L-7")  # never the loyalty id
        db = str(tmp_path / "collector.db")
        assert upstream_main(["reconcile", "--db", db, "--json"]) == 1  # the operator's view
        out = json.loads(capsys.readouterr().out)
        assert [(o["kind"], o["devices"]) for o in out] == [("customer", ["kiosk-0", "kiosk-1"])]
    finally:
        chain.close()


def test_a_lease_request_for_another_device_or_with_negative_use_is_refused(
    chain: Chain,
) -> None:
    _, creds = chain.devices[0]
    other = pack_wire(LeaseRequest(1, "kiosk-1", [WireAsk("fleet", 0, 0, 0.0, False, 3, 0.0)]))
    negative = msgpack.packb(
        {"v": 1, "device": "kiosk-0", "asks": [["fleet", 0, -1, 0.0, False, 3, 0.0]]}
    )
    for body in (other, negative):
        headers = sign_request(creds, "POST", LEASES_PATH, body, now_ms())
        reply = chain.transport.request("POST", LEASES_PATH, body, headers)
        assert reply.status == 400
    assert chain.storage.shares()[0].devices == 0


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(["redeem", "sync", "void", "partition"])),
        max_size=60,
    )
)
def test_no_schedule_of_redemptions_syncs_and_partitions_overspends_the_total(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, str]]
) -> None:
    chain = Chain(
        tmp_path_factory.mktemp("chain"),
        [fleet_offer(total_redemptions=7, lease={"redemptions": 2})],
        devices=4,
    )
    offline: set[int] = set()
    orders: list[list[str]] = [[] for _ in range(4)]
    for n in range(4):
        chain.sync(n)  # the offers document, once
    try:
        for i, (n, step) in enumerate(steps):
            sw, creds = chain.devices[n]
            if step == "partition":
                offline ^= {n}
            elif step == "sync" and n not in offline:
                exchange_offers(sw.store, sw.offers, chain.transport, creds, members=sw.fleet)
            elif step == "redeem":
                order = f"o-{n}-{i}"
                if redeem(sw, "L-1", order) == "redeemed":
                    orders[n].append(order)
            elif step == "void" and orders[n]:
                sw.offers.void_order(orders[n].pop())
            live = sum(len(o) for o in orders)
            assert live <= 7
        for n in range(4):
            chain.sync(n)
        assert chain.storage.reconcile() == []
        live = chain.storage.db.execute("SELECT count(*) FROM fleet_redemptions WHERE voided = 0")
        assert live.fetchone()[0] == sum(map(len, orders))  # the collector heard of every one
    finally:
        chain.close()


def test_a_member_pulled_from_the_collector_is_confirmed_for_a_deny_offer(tmp_path: Path) -> None:
    # Found by benchmarks/bench_fleet_offers.py: a sign-in's pull never confirmed the member,
    # so an offer with ``offline: deny`` was refused on every device, online or not.
    deny = {
        "offer_id": "once",
        "title": "once per member, never unconfirmed",
        "reward": {"type": "amount", "value": 1},
        "limits": {"per_customer": 1, "offline": "deny"},
    }
    chain = Chain(tmp_path, [deny], devices=2)
    key, consents = b"k" * 32, {"offers": True, "profile_sync": True}
    try:
        for n in (0, 1):
            chain.sync(n)
        (a, creds_a), (b, creds_b) = chain.devices
        on_a = a.member("L-7", consents=consents)
        assert on_a.pull_profile(key, chain.transport, creds_a).copies == 0  # type: ignore[arg-type]
        assert on_a.redeem("once", cart_total=5).amount == 1.0  # no uses anywhere: confirmed
        on_a.seal_profile(key)
        chain.sync(0)
        on_b = b.member("L-7", consents=consents)
        chain.transport.online = False
        assert not on_b.pull_profile(key, chain.transport, creds_b).online  # type: ignore[arg-type]
        with pytest.raises(shelfwise.OfferRejected) as offline:
            on_b.redeem("once", cart_total=5)
        assert offline.value.reason == "customer_unconfirmed"
        chain.transport.online = True
        on_b.pull_profile(key, chain.transport, creds_b)  # type: ignore[arg-type]
        with pytest.raises(shelfwise.OfferRejected) as online:
            on_b.redeem("once", cart_total=5)
        assert online.value.reason == "customer_limit"  # A's use came with the profile
    finally:
        chain.close()


def test_a_retired_device_cannot_sign_and_its_unused_share_returns_to_the_fleet(
    chain: Chain, tmp_path: Path
) -> None:
    lost, _ = chain.devices[0]
    chain.sync(0)
    assert [redeem(lost, "L-1", f"o-{i}") for i in range(2)] == ["redeemed", "redeemed"]
    chain.sync(0)  # its ledger reached the collector; then the kiosk is stolen
    db = str(tmp_path / "collector.db")
    assert upstream_main(["retire-device", "--db", db, "--device", "kiosk-0"]) == 0
    (status,) = chain.storage.shares()
    assert (status.shared_redemptions, status.per_device["kiosk-0"]) == (2, (2, 2))
    assert chain.sync(0).error is not None  # its secret is gone: nothing it sends counts
    assert upstream_main(["retire-device", "--db", db, "--device", "kiosk-9"]) == 2


def test_a_device_that_understates_its_use_gets_no_more_than_its_ledger_allows(
    chain: Chain,
) -> None:
    sw, _ = chain.devices[0]
    chain.sync(0)
    assert [redeem(sw, "L-1", f"o-{i}") for i in range(3)] == ["redeemed"] * 3
    chain.sync(0)  # the ledger (3 redemptions) and a refill: share 6
    seq = sw.store.query("SELECT seq FROM offer_leases WHERE offer_id = 'fleet'")[0]["seq"]
    lying = [WireAsk("fleet", seq, 0, 0.0, False, 3, 0.0)]  # "I used nothing, take it all back"
    (grant,) = chain.storage.grant_leases("kiosk-0", lying)
    assert grant.redemptions == 3 + 3  # its ledger's 3, not the 0 it claims, plus the slice
    (status,) = chain.storage.shares()
    assert status.shared_redemptions == 6
