"""The kiosk demo across the fleet (TestClient, a real collector in a thread): a guest's scans
survive signing in; a member's history and offers follow them from kiosk A to kiosk B, where
their PIN is checked against their own sealed profile; "Forget me" on B clears A with a
receipt; the staff screen shows erasures pending per device; the phone app opens the profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kiosk_helpers import MEMBER_PIN, TestClient, page_client, staff_hash
from sync_helpers import serve_in_thread
from test_kiosk_api import WHOLE_MILK, YOGURT, demo_bundle

import shelfwise
from shelfwise.kiosk_demo.__main__ import demo_cards, enrol_demo_members, open_store
from shelfwise.kiosk_demo.app import KioskConfig, create_app
from shelfwise.kiosk_demo.cards import card_code
from shelfwise.profile.sealing import TEST_COST
from shelfwise.upstream import SqliteStorage
from shelfwise.upstream import create_app as collector_app

SECRET = b"the-chain-secret-of-the-demo-fleet"
SISTER = "demo-milano-02"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A collector and two kiosk stores: A with the members' baskets, B a sister store that
    never saw them (no history, no PINs)."""
    folder = tmp_path_factory.mktemp("fleet")
    storage = SqliteStorage(str(folder / "collector.db"))
    a, config_a = open_store(folder / "a.db", demo_bundle(), chain_secret=SECRET)
    b, config_b = open_store(
        folder / "b.db", demo_bundle(), history=False, store_id=SISTER, chain_secret=SECRET
    )
    enrol_demo_members(a, demo_cards())
    for sw in (a, b):
        sw.fleet.kdf_cost = TEST_COST  # the real Argon2id cost is a second per PIN
    creds = {
        name: shelfwise.Credentials(name, storage.add_device(name, stores=(store,)))
        for name, store in (("kiosk-a", config_a["store_id"]), ("kiosk-b", SISTER))
    }
    with serve_in_thread(collector_app(storage, rate_per_s=0)) as live:
        yield {
            "url": f"http://127.0.0.1:{live.port}",
            "a": (a, config_a, creds["kiosk-a"]),
            "b": (b, config_b, creds["kiosk-b"]),
            "storage": storage,
        }
    a.close()
    b.close()
    storage.close()


def kiosk(chain: dict, name: str, *, upstream: str | None = None) -> TestClient:
    sw, config, creds = chain[name]
    config = KioskConfig(
        staff_pin_hash=staff_hash(),
        idle_s=300,
        upstream=upstream or chain["url"],
        sync_every_s=3600,
        store=config,
        demo_cards=demo_cards(),
        credentials=creds,
    )
    return page_client(create_app(sw, config))


def staff(client: TestClient) -> dict:
    from kiosk_helpers import PIN

    assert client.post("/api/staff/login", json={"pin": PIN}).status_code == 200
    return client.get("/api/staff/status").json()


def sign_in(client: TestClient, card: str, pin: str | None = MEMBER_PIN, **consents: bool):
    body: dict = {"card": card, "consents": consents}
    if pin:
        body["pin"] = pin
    return client.post("/api/session/member", json=body)


def test_a_guests_scans_and_cart_become_the_members_when_they_sign_in(chain: dict) -> None:
    a = chain["a"][0]
    number = "8101"
    a.member(number, consents={"personalization": True}).set_pin(MEMBER_PIN)
    with kiosk(chain, "a") as client:
        client.post("/api/session/start", json={})
        for code in (YOGURT, WHOLE_MILK, YOGURT):
            assert client.post("/api/scan", json={"code": code}).status_code == 200
        client.post("/api/cart/add", json={"item_id": "yogurt"})
        reply = sign_in(client, card_code(number))
        assert reply.status_code == 200, reply.json()
        assert reply.json()["kept_from_guest"] >= 4
        assert reply.json()["session"]["cart_count"] == 1
        kinds = client.get("/api/privacy").json()["event_kinds"]
        assert kinds["scan"] == 3 and kinds["cart_add"] == 1
    assert a.store.query("SELECT count(*) AS n FROM shoppers WHERE kind = 'anonymous'")[0]["n"] == 0


def test_without_the_personalisation_consent_a_guests_scans_are_dropped(chain: dict) -> None:
    a = chain["a"][0]
    with kiosk(chain, "a") as client:
        client.post("/api/session/start", json={})
        client.post("/api/scan", json={"code": YOGURT})
        reply = sign_in(client, card_code("8102"), pin=None, personalization=False)
        assert reply.json()["kept_from_guest"] == 0
    held = a.store.query("SELECT count(*) AS n FROM events WHERE shopper_id = '8102'")
    assert held[0]["n"] == 0


def test_a_members_history_and_offers_follow_them_from_kiosk_a_to_kiosk_b(chain: dict) -> None:
    card = demo_cards()[0]["card"]
    with kiosk(chain, "b") as on_b:  # B never saw the member: no PIN to check, no history
        refused = sign_in(on_b, card)
        assert refused.status_code == 403 and refused.json()["reason"] == "no_pin"
    with kiosk(chain, "a") as on_a:
        reply = sign_in(on_a, card)
        assert reply.json()["fleet"]["on"] and reply.json()["fleet"]["online"]
        bought_on_a = {r["item"]["item_id"] for r in on_a.get("/api/for-you").json()["buy_again"]}
        out = on_a.post("/api/session/end", json={}).json()
        assert out["sealed"] and out["fleet"]["sent"], out
    with kiosk(chain, "b") as on_b:
        wrong = sign_in(on_b, card, pin="0852")
        assert wrong.status_code == 403 and wrong.json()["reason"] == "pin_wrong"
        reply = sign_in(on_b, card)
        assert reply.status_code == 200, reply.json()
        assert reply.json()["fleet"]["copies"] == 1
        session = reply.json()["session"]
        assert session["segment"] in {"returning", "loyal"} and session["verified"]
        assert session["consents"]["personalization"] and session["consents"]["profile_sync"]
        shelves = on_b.get("/api/for-you").json()
        assert {r["item"]["item_id"] for r in shelves["buy_again"]} == bought_on_a
        offers = {d["offer_id"] for d in shelves["deals"]}
        assert "loyal-dairy" in offers, "an offer for loyal members follows them too"
    b = chain["b"][0]
    assert b.shopper(card[3:12].lstrip("0")).has_pin(), "B keeps the PIN it checked"
    assert b.summarise(k=1) == [], "A's baskets are not counted again by B"


def test_forget_me_on_b_clears_a_with_a_receipt_and_the_staff_see_it_pending(chain: dict) -> None:
    number = "8103"
    a = chain["a"][0]
    a.member(number, consents={"personalization": True, "profile_sync": True}).set_pin(MEMBER_PIN)
    with kiosk(chain, "a") as on_a:
        sign_in(on_a, card_code(number))
        on_a.post("/api/cart/add", json={"item_id": "yogurt"})
        on_a.post("/api/checkout", json={})
        on_a.post("/api/session/end", json={})
    with kiosk(chain, "b") as on_b:
        assert sign_in(on_b, card_code(number)).status_code == 200
        receipt = on_b.post("/api/privacy/forget", json={}).json()["receipt"]
        assert receipt["member"] and receipt["fleet"] and receipt["sent"]
        assert receipt["erased_ms"] == chain["b"][0].fleet.erased_at(number)
        status = staff(on_b)["fleet"]
        assert status["pending_erasures"] == 0 and status["known_erasures"] >= 1
        assert status["erasures_pending_per_device"]["kiosk-a"] >= 1, "A has not heard yet"
    a.shopper(number)  # still on A until it syncs
    with kiosk(chain, "a") as on_a:
        staff(on_a)
        fleet = on_a.post("/api/staff/sync", json={}).json()["fleet"]
        assert fleet["erasures_pending_per_device"]["kiosk-a"] == 0
    with pytest.raises(shelfwise.UnknownShopper):
        a.shopper(number)
    assert chain["storage"].member_copies(a.blinded_id(number)).copies == []


def test_the_phone_app_shows_the_profile_the_chain_holds_after_card_and_pin(chain: dict) -> None:
    number = "8104"
    a = chain["a"][0]
    a.member(number, consents={"personalization": True, "profile_sync": True}).set_pin(MEMBER_PIN)
    with kiosk(chain, "a") as on_a:
        sign_in(on_a, card_code(number))
        on_a.post("/api/scan", json={"code": YOGURT})
        on_a.post("/api/session/end", json={})
    with kiosk(chain, "b") as phone:
        assert phone.get("/phone").status_code == 200
        wrong = phone.post("/api/phone/profile", json={"card": card_code(number), "pin": "0852"})
        assert wrong.status_code == 403
        data = phone.post(
            "/api/phone/profile", json={"card": card_code(number), "pin": MEMBER_PIN}
        ).json()
        assert data["copies"] == 1 and data["counts"] == {"scan": 1}
        assert (
            data["recent"][0]["item_id"] == "yogurt" and data["consents"]["profile_sync"]["granted"]
        )


def test_a_kiosk_that_cannot_reach_the_collector_serves_what_it_holds(chain: dict) -> None:
    number = "8105"
    a = chain["a"][0]
    a.member(number, consents={"personalization": True, "profile_sync": True}).set_pin(MEMBER_PIN)
    with kiosk(chain, "a", upstream="http://127.0.0.1:9") as offline:
        reply = sign_in(offline, card_code(number))
        assert reply.status_code == 200 and reply.json()["fleet"]["online"] is False
        offline.post("/api/scan", json={"code": YOGURT})
        out = offline.post("/api/session/end", json={}).json()
        assert out["sealed"] and not out["fleet"]["sent"]
    assert a.fleet.status().pending_copies >= 1, "the sealed copy waits for the network"
    with kiosk(chain, "b", upstream="http://127.0.0.1:9") as offline_b:
        reply = sign_in(offline_b, card_code(number))
        assert reply.status_code == 503 and reply.json()["reason"] == "fleet_offline"
        assert sign_in(offline_b, card_code(number), pin=None).status_code == 200  # card alone


def test_fleet_pin_guesses_are_throttled_before_any_key_is_derived(chain: dict) -> None:
    with kiosk(chain, "b") as on_b:
        for guess in ("0852", "0853", "0854"):
            assert sign_in(on_b, demo_cards()[1]["card"], pin=guess).status_code == 403
        locked = sign_in(on_b, demo_cards()[1]["card"], pin=MEMBER_PIN)
        assert locked.status_code == 429 and locked.json()["reason"] == "pin_locked"


def test_the_fleet_demo_provisions_a_collector_and_two_kiosks(tmp_path: Path) -> None:
    import argparse

    from shelfwise.kiosk_demo.fleet_demo import commands, provision

    files = provision(tmp_path)
    assert oct(files["secret"].stat().st_mode & 0o777) == "0o600"
    assert provision(tmp_path) == files, "provisioning twice keeps the same keys"
    args = argparse.Namespace(
        host="127.0.0.1", port=8500, idle_seconds=90, sync_every=60.0, log_level="INFO",
        allow_host=[], bundle=None,
    )  # fmt: skip
    lines = commands(args, files, "58029374")
    assert "8502" in lines["collector"] and "--no-history" in lines["kiosk-b"]
    assert lines["kiosk-a"][lines["kiosk-a"].index("--upstream") + 1] == "http://127.0.0.1:8502"


def test_a_pin_changed_on_one_kiosk_works_on_the_others_and_old_copies_do_not_block(
    chain: dict,
) -> None:
    number, new_pin = "8106", "5820"
    a, b = chain["a"][0], chain["b"][0]
    for sw in (a, b):
        sw.member(number, consents={"personalization": True, "profile_sync": True})
        sw.shopper(number).set_pin(MEMBER_PIN)
    with kiosk(chain, "b") as on_b:  # a copy sealed under the old PIN
        sign_in(on_b, card_code(number))
        on_b.post("/api/scan", json={"code": YOGURT})
        assert on_b.post("/api/session/end", json={}).json()["fleet"]["sent"]
    a.shopper(number).set_pin(new_pin)  # the member sets a new PIN at A's till
    with kiosk(chain, "a") as on_a:
        reply = sign_in(on_a, card_code(number), pin=new_pin)
        assert reply.status_code == 200, reply.json()
        assert reply.json()["fleet"]["unreadable"], "the old copy does not open, and is kept"
        on_a.post("/api/session/end", json={})
    with kiosk(chain, "b") as on_b:  # B holds the old PIN's hash: the member's copy decides
        reply = sign_in(on_b, card_code(number), pin=new_pin)
        assert reply.status_code == 200, reply.json()
    b.shopper(number).verify_pin(new_pin)
