"""The kiosk's cart screen prices the cart as one order; the staff screen shows the till's totals.

Both read through the SDK (``Shopper.price_order``, ``sw.offers.redemption_totals``) on a
seeded copy of the demo store, over the kiosk's real JSON API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kiosk_helpers import PIN, TestClient, page_client, staff_hash
from sync_helpers import serve_in_thread
from test_kiosk_api import demo_bundle

import shelfwise
from shelfwise.kiosk_demo.__main__ import open_store
from shelfwise.kiosk_demo.app import KioskConfig, create_app
from shelfwise.sync.downstream import build_document
from shelfwise.sync.protocol import generate_signing_key
from shelfwise.upstream import SqliteStorage
from shelfwise.upstream import create_app as create_collector

EARN = {"offer_id": "earn", "title": "1 point per 1.00", "reward": {"type": "points", "points": 1}}
BURN = {
    "offer_id": "burn",
    "title": "100 points for 1.00 off",
    "reward": {"type": "amount", "value": 1},
    "points_cost": 100,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[shelfwise.Shelfwise, dict]]:
    sw, config = open_store(tmp_path_factory.mktemp("till") / "store.db", demo_bundle())
    yield sw, config
    sw.close()


@pytest.fixture
def client(store: tuple[shelfwise.Shelfwise, dict]) -> Iterator[TestClient]:
    sw, config = store
    app = create_app(sw, KioskConfig(staff_pin_hash=staff_hash(), idle_s=300, store=config))
    with page_client(app) as test_client:
        yield test_client


def test_the_cart_shows_the_offers_applied_and_those_left_out_with_the_reason(
    client: TestClient, store: tuple[shelfwise.Shelfwise, dict]
) -> None:
    sw = store[0]
    client.post("/api/session/start", json={})
    assert client.get("/api/cart/order").json()["applied"] == []  # an empty cart
    client.post("/api/cart/add", json={"item_id": "whole-milk"})
    client.post("/api/cart/add", json={"item_id": "yogurt"})
    order = client.get("/api/cart/order").json()
    assert [(a["offer_id"], a["title"]) for a in order["applied"]] == [
        ("milk-monday", "20% off whole milk")
    ]
    assert order["discount"] == order["applied"][0]["amount"] > 0
    assert order["total"] == round(order["subtotal"] - order["discount"], 2)
    [left] = [x for x in order["left_out"] if x["offer_id"] == "breakfast-bundle"]
    assert left["reason"] == "cart_items" and "rolls-buns" in left["message"]
    assert left["title"].startswith("1.00 off yogurt")
    # Priced, never redeemed: nothing was spent or kept.
    assert sw.offers.stats("milk-monday")["redemptions"] == 0
    assert sw.offers.redemptions(sandbox=None) == []


def test_the_cart_order_needs_a_session(client: TestClient) -> None:
    response = client.get("/api/cart/order")
    assert response.status_code in {401, 403, 409}
    assert response.json()["error"]


def test_the_staff_screen_shows_points_and_order_discounts_today_and_in_all(
    client: TestClient, store: tuple[shelfwise.Shelfwise, dict]
) -> None:
    sw = store[0]
    sw.offers.define(EARN)
    sw.offers.define(BURN)
    try:
        client.post("/api/staff/login", json={"pin": PIN})
        before = client.get("/api/staff/status").json()["till"]
        member = sw.member("L-TILL-1")
        member.redeem_order("till-1", cart=[("whole-milk", 100)])
        earned = sw.offers.order("till-1").price.points_earned
        member.redeem_order("till-2", cart=["whole-milk"], offers=["burn"])
        second = sw.offers.order("till-2").price
        member.redeem_order("till-3", cart=["whole-milk"])
        sw.offers.void_order("till-3")  # a refund counts nowhere
        after = client.get("/api/staff/status").json()["till"]
    finally:
        sw.offers.deactivate("earn")
        sw.offers.deactivate("burn")
    issued = earned + second.points_earned
    assert earned > 100 and second.points_spent == 100
    assert after["points_issued_total"] - before["points_issued_total"] == issued
    assert after["points_burned_total"] - before["points_burned_total"] == 100
    assert after["discounted_orders_total"] - before["discounted_orders_total"] == 2
    off = sw.offers.order("till-1").price.discount + second.discount
    assert after["order_discount_total"] - before["order_discount_total"] == pytest.approx(off)
    # Today's share is the store-local day's (the SDK's tests pin the clock to check it).
    for name in ("points_issued", "points_burned", "discounted_orders", "order_discount"):
        assert 0 <= after[f"{name}_today"] <= after[f"{name}_total"]


def test_the_staff_screen_shows_this_kiosks_share_of_a_fleet_wide_offer(
    tmp_path: Path, store: tuple[shelfwise.Shelfwise, dict]
) -> None:
    sw, config = store
    fleet_wide = {
        "offer_id": "fleet-wide",
        "title": "0.50 off, 100 in the whole chain",
        "reward": {"type": "amount", "value": 0.5},
        "limits": {"scope": "fleet", "total_redemptions": 100, "lease": {"redemptions": 10}},
    }
    storage = SqliteStorage(str(tmp_path / "collector.db"))
    private, _ = generate_signing_key()
    storage.publish(build_document("offers", {"offers": [fleet_wide]}, version=1, private_key=private))
    creds = shelfwise.Credentials("kiosk-till", storage.add_device("kiosk-till", stores=("s",)))
    sw.offers.define(fleet_wide)
    try:
        with serve_in_thread(create_collector(storage, rate_per_s=0)) as live:
            kiosk_config = KioskConfig(
                staff_pin_hash=staff_hash(), idle_s=300, store=config,
                upstream=f"http://127.0.0.1:{live.port}", credentials=creds,
            )  # fmt: skip
            with page_client(create_app(sw, kiosk_config)) as client:
                client.post("/api/staff/login", json={"pin": PIN})
                client.post("/api/staff/sync", json={})
                shares = client.get("/api/staff/status").json()["shares"]
    finally:
        sw.offers.deactivate("fleet-wide")
        storage.close()
    assert [(s["offer_id"], s["redemptions"], s["live"]) for s in shares] == [
        ("fleet-wide", 10, True)
    ]
