"""The kiosk's JSON API on a seeded copy of the demo store (Starlette TestClient, no browser)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kiosk_helpers import MEMBER_PIN, PIN, TestClient, page_client, staff_hash

import shelfwise
from shelfwise.kiosk_demo.__main__ import demo_cards, enrol_demo_members, open_store
from shelfwise.kiosk_demo.app import KioskConfig, create_app
from shelfwise.kiosk_demo.cards import card_code
from shelfwise.kiosk_demo.seed import BUNDLE_DIR, STORE_DIR

YOGURT = "8004983005474"  # Open Food Facts: Latteria sociale Merano yogurt, the store's "yogurt"
NUTELLA = "3017620422003"  # a real EAN-13 the demo store sells
WHOLE_MILK = "8001120914460"  # Open Food Facts: Vivi Verde whole milk, the store's "whole-milk"


def demo_bundle() -> Path:
    """The committed bundle, trained on the real groceries baskets (kiosk_demo/store/bundle/)."""
    if not (BUNDLE_DIR / "manifest.json").exists():
        pytest.fail(f"the trained demo bundle is missing from {BUNDLE_DIR}")
    return BUNDLE_DIR


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[shelfwise.Shelfwise, dict]]:
    folder = tmp_path_factory.mktemp("kiosk")
    sw, config = open_store(folder / "store.db", demo_bundle())
    enrol_demo_members(sw, demo_cards())
    yield sw, config
    sw.close()


@pytest.fixture
def client(store: tuple[shelfwise.Shelfwise, dict]) -> Iterator[TestClient]:
    sw, config = store
    app = create_app(
        sw,
        KioskConfig(staff_pin_hash=staff_hash(), idle_s=300, store=config, demo_cards=demo_cards()),
    )
    with page_client(app) as test_client:
        yield test_client


def busy_member_card() -> str:
    return demo_cards()[0]["card"]


def sign_in(client: TestClient, card: str, consents: dict | None = None, pin: str = MEMBER_PIN):
    """Sign in with the card and its PIN (the consents sent are stored)."""
    body = {"card": card, "consents": consents or {}, "pin": pin}
    response = client.post("/api/session/member", json=body)
    assert response.status_code == 200, response.json()
    return response


def enrol(sw: shelfwise.Shelfwise, member: str) -> str:
    """A member who set the test PIN in the phone app; returns their card."""
    sw.member(member).set_pin(MEMBER_PIN)
    return card_code(member)


def test_new_shopper_scanning_a_real_barcode_sees_the_product_and_suggestions(
    client: TestClient,
) -> None:
    client.post("/api/session/start", json={})
    card = client.post("/api/scan", json={"code": YOGURT}).json()
    assert card["item"]["item_id"] == "yogurt"
    assert card["item"]["brand"] == "Latteria sociale Merano"
    suggestions = card["goes_with"] + card["alternatives"]
    assert suggestions, "a scan of a real product should come with suggestions"
    assert all(s["reason"] for s in suggestions)


def test_reasons_follow_the_browsers_language(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    english = client.post("/api/scan", json={"code": YOGURT}).json()
    italian = client.post(
        "/api/scan", json={"code": YOGURT}, headers={"Accept-Language": "it-IT,it;q=0.9"}
    ).json()
    pairs = [
        (en["reason"], it["reason"])
        for key in ("goes_with", "alternatives")
        for en, it in zip(english[key], italian[key], strict=True)
    ]
    assert pairs, "the yogurt card comes with suggestions"
    assert all(en != it for en, it in pairs), "every reason is translated"
    assert all(r["reason_code"]["code"] for r in italian["goes_with"] + italian["alternatives"])


def test_a_scanned_item_with_an_offer_shows_the_deal_and_one_without_shows_none(
    client: TestClient,
) -> None:
    client.post("/api/session/start", json={})
    milk = client.post("/api/scan", json={"code": WHOLE_MILK}).json()
    assert milk["item"]["item_id"] == "whole-milk"
    assert [d["offer_id"] for d in milk["deals"]] == ["milk-monday"]
    assert milk["deals"][0]["title"] == "20% off whole milk"
    # yogurt's offers need rolls in the cart or a loyal member: none for a guest today
    assert client.post("/api/scan", json={"code": YOGURT}).json()["deals"] == []


def test_a_member_scanning_an_item_they_bought_gets_a_personal_note(client: TestClient) -> None:
    sign_in(client, busy_member_card(), {"personalization": True, "offers": True})
    card = client.post("/api/scan", json={"code": WHOLE_MILK}).json()
    assert card["note"].startswith("you bought this")
    assert "loyal-dairy" in {d["offer_id"] for d in card["deals"]}, "a dairy deal for members"


def test_the_personal_shelf_comes_from_the_trained_bundle_with_its_reasons(
    client: TestClient,
) -> None:
    sign_in(client, busy_member_card(), {"personalization": True})
    data = client.get("/api/for-you").json()
    assert data["member"] is True and data["segment"] in {"returning", "loyal"}
    assert any(r["reason"].startswith("because you bought") for r in data["personal"])
    assert data["best_sellers"] == [], "a shopper with a history gets their own shelf instead"
    found = client.get("/api/search", params={"q": "latte"}).json()
    assert found["items"] and found["personalised"] is True


def test_a_new_guest_gets_the_cold_start_shelves_and_unpersonalised_search(
    client: TestClient,
) -> None:
    client.post("/api/session/start", json={})
    data = client.get("/api/for-you").json()
    assert data["segment"] == "new" and data["personal"] == []
    assert data["cold_start"] and all(r["reason"] for r in data["cold_start"])
    assert data["best_sellers"] and all(r["reason"] for r in data["best_sellers"])
    assert client.get("/api/search", params={"q": "latte"}).json()["personalised"] is False


def test_a_wrong_check_digit_is_refused_with_its_reason_and_the_next_scan_works(
    client: TestClient,
) -> None:
    client.post("/api/session/start", json={})
    refused = client.post("/api/scan", json={"code": YOGURT[:-1] + "5"})
    assert refused.status_code == 400
    assert refused.json()["reason"] == "check_digit"
    assert client.post("/api/scan", json={"code": NUTELLA}).status_code == 200


def test_a_valid_barcode_the_store_does_not_sell_is_a_404_miss(
    client: TestClient, store: tuple
) -> None:
    client.post("/api/session/start", json={})
    before = store[0].store.query("SELECT count(*) AS n FROM events WHERE type = 'scan_miss'")[0][
        "n"
    ]
    response = client.post("/api/scan", json={"code": "4006381333931"})
    assert response.status_code == 404
    after = store[0].store.query("SELECT count(*) AS n FROM events WHERE type = 'scan_miss'")[0][
        "n"
    ]
    assert after == before + 1


def test_member_signs_in_with_a_loyalty_card_and_sees_their_own_baskets(client: TestClient) -> None:
    session = sign_in(client, busy_member_card(), {"personalization": True}).json()["session"]
    assert session["kind"] == "member"
    assert session["segment"] in {"returning", "loyal"}  # dates shifted: recent, not lapsed
    data = client.get("/api/for-you").json()
    assert data["buy_again"], "a member with real baskets should see buy-again"
    assert all(r["reason"].startswith("you bought this") for r in data["buy_again"])
    assert data["personal"]


def test_without_personalization_consent_a_member_gets_no_personal_shelf(
    client: TestClient,
) -> None:
    sign_in(client, busy_member_card(), {"personalization": False})
    data = client.get("/api/for-you").json()
    assert data["personal"] == [] and data["buy_again"] == []
    assert data["cold_start"]


def test_a_card_that_is_not_a_loyalty_card_is_refused(client: TestClient) -> None:
    response = client.post("/api/session/member", json={"card": NUTELLA})
    assert response.status_code == 400
    assert response.json()["reason"] == "not_a_card"


def test_a_refused_code_says_why(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    client.post("/api/cart/add", json={"item_id": "whole-milk"})
    response = client.post("/api/cart/redeem", json={"code": "NOT-A-REAL-CODE"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "OfferRejected"
    assert body["reason"].startswith("code_") and body["message"]


def test_an_eligible_code_is_accepted_and_a_second_use_is_refused(
    client: TestClient, store: tuple
) -> None:
    sw = store[0]
    [code] = sw.offers.issue_codes("big-basket", 1)
    sign_in(client, enrol(sw, "5555"), {"offers": True})
    client.post("/api/cart/add", json={"item_id": "beef", "quantity": 10})
    accepted = client.post("/api/cart/redeem", json={"code": code})
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["redemption"]["amount"] == 5.0
    again = client.post("/api/cart/redeem", json={"code": code})
    assert again.status_code == 409 and again.json()["reason"] == "code_used"


def test_consent_can_be_changed_on_the_privacy_screen(client: TestClient, store: tuple) -> None:
    sign_in(client, enrol(store[0], "6001"), {"personalization": True})
    client.post("/api/privacy/consent", json={"purpose": "personalization", "granted": False})
    assert client.get("/api/privacy").json()["consents"]["personalization"] is False
    bad = client.post("/api/privacy/consent", json={"purpose": "mind-reading", "granted": True})
    assert bad.status_code == 400


def test_forget_me_erases_the_member_and_ends_the_session(client: TestClient, store: tuple) -> None:
    sign_in(client, enrol(store[0], "6002"), {"personalization": True})
    client.post("/api/scan", json={"code": YOGURT})
    removed = client.post("/api/privacy/forget", json={}).json()["removed_rows"]
    assert removed >= 2
    assert client.get("/api/for-you").status_code == 401
    with pytest.raises(shelfwise.UnknownShopper):
        store[0].shopper("6002")


def test_an_idle_session_is_ended_server_side_and_its_shopper_forgotten(store: tuple) -> None:
    sw, config = store
    app = create_app(sw, KioskConfig(staff_pin_hash=staff_hash(), idle_s=0.05, store=config))
    with page_client(app) as client:
        client.post("/api/session/start", json={})
        client.post("/api/scan", json={"code": YOGURT})
        client.post("/api/cart/add", json={"item_id": "yogurt"})
        anonymous = sw.store.query("SELECT shopper_id FROM shoppers WHERE kind = 'anonymous'")
        time.sleep(0.1)  # older than the idle limit (not a timing assertion)
        app.state.kiosk.end_idle()
        assert client.get("/api/cart").status_code == 401
        for row in anonymous:
            with pytest.raises(shelfwise.UnknownShopper):
                sw.shopper(row["shopper_id"])
        assert client.get("/api/state").json()["session"] is None


def test_the_staff_screen_refuses_without_the_pin(client: TestClient) -> None:
    assert client.get("/api/staff/status").status_code == 403
    assert client.post("/api/staff/login", json={"pin": "0000"}).status_code == 403
    assert (
        client.post(
            "/api/staff/offer", json={"offer_id": "milk-monday", "active": False}
        ).status_code
        == 403
    )
    assert client.post("/api/staff/login", json={"pin": PIN}).status_code == 200
    status = client.get("/api/staff/status").json()
    assert {o["offer_id"] for o in status["offers"]} >= {"milk-monday", "big-basket"}
    assert len(status["scans_by_hour"]) == 24


def test_staff_charts_count_today_in_the_store_time_zone_and_list_refusals(
    client: TestClient, store: tuple
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(store[1]["timezone"])
    client.post("/api/session/start", json={})
    client.post("/api/scan", json={"code": "8004983005474"})
    client.post("/api/cart/redeem", json={"code": "NOT-A-REAL-CODE"})
    client.post("/api/staff/login", json={"pin": PIN})
    status = client.get("/api/staff/status").json()
    assert status["timezone"] == store[1]["timezone"]
    assert status["scans_by_hour"][datetime.now(zone).hour] >= 1, "bucketed in local hours"
    reasons = {r["reason"]: r["count"] for r in status["rejections"]}
    assert any(reason.startswith("code_") for reason in reasons), reasons


def test_the_staff_status_names_the_served_model_and_counts_refusals_in_the_funnel(
    client: TestClient,
) -> None:
    client.post("/api/staff/login", json={"pin": PIN})
    status = client.get("/api/staff/status").json()
    manifest = json.loads((BUNDLE_DIR / "manifest.json").read_text())
    assert status["model"]["version"] == manifest["model_version"]
    assert status["model"]["quantization"] == manifest["quantization"]
    assert status["model"]["items"] == manifest["num_items"]
    assert "offer_rejected" in [f["step"] for f in status["funnel"]]
    assert status["sandbox"] is False


def test_an_unlocked_staff_screen_locks_again_after_the_idle_timeout(store: tuple) -> None:
    sw, config = store
    app = create_app(sw, KioskConfig(staff_pin_hash=staff_hash(), idle_s=0.05, store=config))
    with page_client(app) as client:
        client.post("/api/staff/login", json={"pin": PIN})
        assert client.get("/api/staff/status").status_code == 200
        time.sleep(0.1)  # older than the idle limit (not a timing assertion)
        assert client.get("/api/staff/status").status_code == 403


def test_staff_can_switch_an_offer_off(client: TestClient) -> None:
    client.post("/api/staff/login", json={"pin": PIN})
    status = client.post(
        "/api/staff/offer", json={"offer_id": "milk-monday", "active": False}
    ).json()
    assert {o["offer_id"]: o["active"] for o in status["offers"]}["milk-monday"] is False
    client.post("/api/staff/offer", json={"offer_id": "milk-monday", "active": True})


def test_a_location_near_the_store_triggers_a_fence_offer_for_a_consenting_member(
    client: TestClient,
) -> None:
    sign_in(client, busy_member_card(), {"location": True, "offers": True})
    far = client.post("/api/geo/locate", json={"lat": 45.46, "lon": 9.20, "accuracy_m": 10}).json()
    assert far["inside"] == []
    near = client.post(
        "/api/geo/locate", json={"lat": 45.4781, "lon": 9.2270, "accuracy_m": 10}
    ).json()
    assert "store-citta-studi" in near["inside"]
    assert [e["kind"] for e in near["events"]] == ["enter"]


def test_location_without_consent_is_refused_with_the_purpose(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    response = client.post(
        "/api/geo/locate", json={"lat": 45.4781, "lon": 9.2270, "accuracy_m": 10}
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "consent_required:location"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/scan", {}),
        ("/api/scan", {"code": ["x"]}),
        ("/api/scan", {"code": "ab12"}),
        ("/api/cart/add", {"item_id": "no-such-item"}),
        ("/api/cart/add", {"item_id": "yogurt", "quantity": "lots"}),
        ("/api/geo/locate", {"lat": 123, "lon": 9.2, "accuracy_m": 5}),
        ("/api/search", None),
    ],
)
def test_bad_input_gets_a_json_error_not_a_crash(
    client: TestClient, path: str, body: dict | None
) -> None:
    sign_in(client, busy_member_card(), {"location": True})
    response = client.get(path) if body is None else client.post(path, json=body)
    assert 400 <= response.status_code < 500
    assert response.json()["message"]


def test_a_photo_that_is_not_an_image_is_refused(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    response = client.post("/api/scan/image", files={"image": ("x.png", b"not a png", "image/png")})
    assert response.status_code == 400


def test_without_a_session_the_api_asks_to_start_one(client: TestClient) -> None:
    client.cookies.clear()
    response = client.get("/api/for-you")
    assert response.status_code == 401 and response.json()["reason"] == "session_ended"


def test_the_kiosk_works_when_the_upstream_is_unreachable(store: tuple) -> None:
    sw, config = store
    app = create_app(
        sw, KioskConfig(staff_pin_hash=staff_hash(), upstream="http://127.0.0.1:9", store=config)
    )
    with page_client(app) as client:
        client.post("/api/session/start", json={})
        assert client.post("/api/scan", json={"code": YOGURT}).status_code == 200
        client.post("/api/staff/login", json={"pin": PIN})
        status = client.post("/api/staff/sync", json={}).json()
        assert status["last_sync"]["state"] == "failed"
        assert client.post("/api/scan", json={"code": NUTELLA}).status_code == 200


@pytest.mark.realdata
def test_the_one_build_command_reproduces_the_committed_demo_store(tmp_path: Path) -> None:
    from conftest import SHARED_DATA

    from shelfwise.kiosk_demo.build_store import build

    counts = build(SHARED_DATA, tmp_path)
    assert counts["groceries_items"] == 167 and counts["members"] == 3898
    for name in ["catalog.jsonl", "categories.json", "history.csv.gz", "members.csv"]:
        assert (tmp_path / name).read_bytes() == (STORE_DIR / name).read_bytes(), name


def test_an_upgraded_demo_store_reseeds_a_stale_working_copy(tmp_path: Path) -> None:
    import shutil

    store_dir = tmp_path / "store"
    shutil.copytree(STORE_DIR, store_dir, ignore=shutil.ignore_patterns("bundle"))
    db = tmp_path / "work.db"
    sw, _ = open_store(db, None, store_dir)
    sw.start_session().track("scan", sw.catalog.all()[0].item_id)  # the shop's own use
    sw.close()
    sw, _ = open_store(db, None, store_dir)  # unchanged store: the working copy is kept
    assert sw.store.query("SELECT count(*) AS n FROM events WHERE type = 'scan'")[0]["n"] == 1
    sw.close()

    catalog = store_dir / "catalog.jsonl"
    lines = catalog.read_text(encoding="utf-8").splitlines()
    catalog.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # an upgrade drops an item
    sw, _ = open_store(db, None, store_dir)
    try:
        assert sw.catalog.count() == len(lines) - 1, "seeded again from the new files"
        assert sw.store.query("SELECT count(*) AS n FROM events WHERE type = 'scan'")[0]["n"] == 0
    finally:
        sw.close()
    assert (tmp_path / "work.db.old").exists(), "the previous working copy is kept aside"


def test_a_recommender_experiment_counts_its_shelf_taps_and_purchases_on_the_staff_screen(
    client: TestClient, store: tuple
) -> None:
    sw = store[0]
    sw.recommend_experiments.define(
        {
            "experiment_id": "kiosk-shelf",
            "surface": "for-you",
            # One arm only gets traffic: the signed-in member's arm is known in advance.
            "arms": [{"name": "model", "weight": 1e-6}, {"name": "popular", "surface": "trending"}],
        }
    )
    try:
        sign_in(client, busy_member_card(), {"personalization": True})
        shelf = client.get("/api/for-you").json()["personal"]
        assert shelf and all(r["arm"] == "popular" and r["shown_id"] for r in shelf)
        tapped = shelf[0]
        body = {"shown_id": tapped["shown_id"], "item_id": tapped["item"]["item_id"]}
        assert client.post("/api/recommendation/click", json=body).status_code == 200
        stranger = {**body, "shown_id": "not-a-list"}
        assert client.post("/api/recommendation/click", json=stranger).status_code == 404
        client.post("/api/cart/add", json={"item_id": tapped["item"]["item_id"]})
        assert client.post("/api/checkout", json={}).status_code == 200

        client.post("/api/staff/login", json={"pin": PIN})
        [shown] = client.get("/api/staff/status").json()["recommend_experiments"]
        arms = {arm["name"]: arm for arm in shown["arms"]}
        assert (arms["popular"]["impressions"], arms["popular"]["clicks"]) == (1, 1)
        assert arms["popular"]["conversions"] == 1 and arms["popular"]["ctr"] == 1.0
        assert arms["model"]["impressions"] == 0

        # The visit is over: the lists it was shown are gone, and nobody else can tap them.
        client.post("/api/session/end", json={})
        assert tapped["shown_id"] not in client.app.state.kiosk.shown  # type: ignore[attr-defined]
        client.post("/api/session/start", json={})
        assert client.post("/api/recommendation/click", json=body).status_code == 404
    finally:
        sw.recommend_experiments.stop("kiosk-shelf")


def test_a_member_asks_to_be_told_when_an_item_is_cheaper_and_a_guest_cannot(
    client: TestClient, store: tuple[shelfwise.Shelfwise, dict]
) -> None:
    sw = store[0]
    client.post("/api/session/start", json={})
    guest = client.post("/api/watch", json={"item_id": WHOLE_MILK, "kind": "price_drop"})
    assert guest.status_code == 400 and "loyalty" in guest.json()["message"]
    client.post("/api/session/end", json={})
    member = sw.member("90417", consents={"offers": True})
    sign_in(client, enrol(sw, member.shopper_id), consents={"offers": True})
    found = sw.catalog.lookup(WHOLE_MILK)
    told = client.post("/api/watch", json={"item_id": found.item_id, "kind": "price_drop"})
    assert told.status_code == 200, told.json()
    assert told.json()["watch"]["watch_price"] == found.price
    assert [(w.item_id, w.kind) for w in member.watches()] == [(found.item_id, "price_drop")]
    bad = client.post("/api/watch", json={"item_id": found.item_id, "kind": "teleport"})
    assert bad.status_code == 400
