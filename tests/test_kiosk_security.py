"""The kiosk as a web app under attack: origins, CSRF, bodies, headers, PINs, shared cards.

Each test here failed on the kiosk before issue 10's fixes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kiosk_helpers import MEMBER_PIN, PIN, TestClient, arm, page_client, staff_hash
from test_kiosk_api import YOGURT, busy_member_card, demo_bundle

import shelfwise
from shelfwise.kiosk_demo.__main__ import demo_cards, enrol_demo_members, main, open_store
from shelfwise.kiosk_demo.app import KioskConfig, create_app
from shelfwise.kiosk_demo.kiosk import STATIC

OTHER_SITE = "http://evil.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[shelfwise.Shelfwise, dict]]:
    sw, config = open_store(tmp_path_factory.mktemp("kiosk-sec") / "store.db", demo_bundle())
    enrol_demo_members(sw, demo_cards())
    yield sw, config
    sw.close()


def make_app(store: tuple, **options: object):  # type: ignore[no-untyped-def]
    sw, config = store
    settings = {"staff_pin_hash": staff_hash(), "idle_s": 300, "store": config, **options}
    return create_app(sw, KioskConfig(**settings))  # type: ignore[arg-type]


@pytest.fixture
def client(store: tuple) -> Iterator[TestClient]:
    with page_client(make_app(store)) as test_client:
        yield test_client


def card_only(client: TestClient, card: str, consents: dict | None = None) -> dict:
    response = client.post("/api/session/member", json={"card": card, "consents": consents or {}})
    assert response.status_code == 200, response.json()
    return response.json()


# -- the web app --------------------------------------------------------------------------------
def test_a_post_from_another_site_is_refused(client: TestClient) -> None:
    response = client.post("/api/session/start", json={}, headers={"Origin": OTHER_SITE})
    assert response.status_code == 403 and response.json()["reason"] == "bad_origin"
    cross = client.post("/api/session/start", json={}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    same = client.post("/api/session/start", json={}, headers={"Origin": "http://localhost"})
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"item_id": "yogurt"}', "text/plain"),
        ("item_id=yogurt", "application/x-www-form-urlencoded"),
        ('{"item_id": "yogurt"}', None),
    ],
)
def test_a_body_that_is_not_json_is_refused(
    client: TestClient, content: str, content_type: str | None
) -> None:
    client.post("/api/session/start", json={})
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/cart/add", content=content, headers=headers)
    assert response.status_code == 415 and response.json()["reason"] == "content_type"
    assert client.get("/api/cart").json()["lines"] == []


def test_a_state_change_without_the_csrf_token_is_refused(client: TestClient) -> None:
    del client.headers["X-CSRF-Token"]
    response = client.post("/api/session/start", json={})
    assert response.status_code == 403 and response.json()["reason"] == "csrf"
    forged = client.post("/api/session/start", json={}, headers={"X-CSRF-Token": "a.b"})
    assert forged.status_code == 403
    arm(client)
    assert client.post("/api/session/start", json={}).status_code == 200


def test_another_host_name_is_refused(store: tuple) -> None:
    with TestClient(make_app(store), base_url="http://rebound.example") as client:
        response = client.get("/api/state")
    assert response.status_code == 400 and response.json()["reason"] == "bad_host"


@pytest.mark.parametrize("path", ["/", "/api/state", "/static/app.js", "/no/such/page"])
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_style_for_the_csp_to_block() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in html and " on" + "click=" not in html and "style=" not in html
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and 'setAttribute("style"' not in script


def test_a_huge_json_body_is_refused_with_413_while_it_streams(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    sent = 0

    def body() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        nonlocal sent
        yield b'{"code": "'
        for _ in range(50 * 16):  # 50 MB in 64 KB pieces
            sent += 1
            yield b"1" * 65536
        yield b'"}'

    response = client.post(
        "/api/scan", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["reason"] == "too_large"
    declared = client.post(
        "/api/scan",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(50 * 2**20)},
    )
    assert declared.status_code == 413


def test_deep_or_wide_json_is_refused_with_400(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    headers = {"Content-Type": "application/json"}
    deep = client.post(
        "/api/scan", content='{"code": ' + "[" * 5000 + "]" * 5000 + "}", headers=headers
    )
    assert deep.status_code == 400 and deep.json()["reason"] in {"too_deep", "bad_json"}
    nested = client.post("/api/scan", json={"code": YOGURT, "x": [[[[["deep"]]]]]})
    assert nested.status_code == 400 and nested.json()["reason"] == "too_deep"
    wide = client.post("/api/scan", json={"code": YOGURT, **{f"f{n}": n for n in range(500)}})
    assert wide.status_code == 400 and wide.json()["reason"] == "too_many"


def test_uploads_take_one_file_and_malformed_multipart_is_a_400(client: TestClient) -> None:
    client.post("/api/session/start", json={})
    two = client.post(
        "/api/scan/image",
        files=[("image", ("a.png", b"x", "image/png")), ("other", ("b.png", b"y", "image/png"))],
    )
    assert two.status_code == 400 and two.json()["message"]
    broken = client.post(
        "/api/scan/image",
        content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nno end',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400
    json_upload = client.post("/api/scan/image", json={"image": "x"})
    assert json_upload.status_code == 415


# -- the staff PIN ----------------------------------------------------------------------------
def test_staff_pin_guessing_locks_the_screen_even_for_the_right_pin(store: tuple) -> None:
    app = make_app(store, kiosk_id="kiosk-guess")
    with page_client(app) as client:
        for guess in ["000000", "111111", "222222"]:
            assert client.post("/api/staff/login", json={"pin": guess}).status_code == 403
        locked = client.post("/api/staff/login", json={"pin": PIN})
        assert locked.status_code == 429 and locked.json()["reason"] == "staff_locked"
        assert int(locked.headers["Retry-After"]) >= 1
    with page_client(make_app(store, kiosk_id="kiosk-guess")) as restarted:
        again = restarted.post("/api/staff/login", json={"pin": PIN})
        assert again.status_code == 429, "the lockout survives a restart"


def test_parallel_staff_pin_guesses_are_each_counted(store: tuple) -> None:
    app = make_app(store, kiosk_id="kiosk-parallel")

    async def storm() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            token = (await http.get("/api/state")).json()["csrf"]
            http.headers["X-CSRF-Token"] = token
            http.cookies.set("sw_csrf", token)
            guesses = [http.post("/api/staff/login", json={"pin": f"{n:06d}9"}) for n in range(12)]
            return [r.status_code for r in await asyncio.gather(*guesses)]

    statuses = asyncio.run(storm())
    assert statuses.count(403) <= 3 and statuses.count(429) >= 9, statuses


def test_a_weak_staff_pin_is_refused_at_start_up(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(shelfwise.WeakSecret):
        KioskConfig(staff_pin="2468")
    with pytest.raises(SystemExit) as exited:
        main(["--db", str(tmp_path / "s.db"), "--staff-pin", "123456"])
    assert exited.value.code == 2
    assert "weak staff PIN" in capsys.readouterr().err


def test_the_staff_pin_is_kept_only_as_an_argon2id_hash() -> None:
    config = KioskConfig(staff_pin=PIN)
    assert config.staff_pin_hash.startswith("$argon2id$")
    assert PIN not in repr(config) and PIN not in json.dumps(config.store)
    assert getattr(config, "staff_pin", "") == "", "the PIN itself is not kept"


def test_staff_actions_are_audited_and_shown_on_the_staff_screen(client: TestClient) -> None:
    client.post("/api/staff/login", json={"pin": PIN})
    client.post("/api/staff/offer", json={"offer_id": "milk-monday", "active": False})
    client.post("/api/staff/offer", json={"offer_id": "milk-monday", "active": True})
    status = client.post("/api/staff/sandbox", json={"on": False}).json()
    actions = [(e["action"], e["target"]) for e in status["audit"]]
    assert actions[:4] == [
        ("sandbox_off", ""),
        ("offer_on", "milk-monday"),
        ("offer_off", "milk-monday"),
        ("staff_login", ""),
    ]
    entry = status["audit"][1]
    assert entry["actor"].startswith("staff:") and entry["device"] == status["kiosk_id"]
    assert entry["ts_ms"] > 0


# -- members at a shared kiosk ----------------------------------------------------------------
def test_the_card_alone_personalises_with_the_member_s_stored_choices(
    client: TestClient, store: tuple
) -> None:
    member = store[0].shopper(busy_member_card()[3:12].lstrip("0"))
    before = member.consents()
    session = card_only(client, busy_member_card(), {"personalization": False, "sync": True})
    assert session["consents_applied"] is False and member.consents() == before
    assert client.get("/api/for-you").json()["personal"], "the card alone personalises"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/privacy", None),
        ("POST", "/api/privacy/consent", {"purpose": "offers", "granted": False}),
        ("POST", "/api/privacy/forget", {}),
        ("POST", "/api/cart/redeem", {"code": "ANY-CODE-1"}),
    ],
)
def test_history_consents_erasure_and_codes_need_the_member_pin(
    client: TestClient, store: tuple, method: str, path: str, body: dict | None
) -> None:
    card_only(client, busy_member_card())
    response = client.get(path) if body is None else client.post(path, json=body)
    assert response.status_code == 403 and response.json()["reason"] == "pin_required"
    store[0].shopper(busy_member_card()[3:12].lstrip("0"))  # not erased
    wrong = client.post("/api/session/verify", json={"pin": "0000"})
    assert wrong.status_code == 403 and wrong.json()["reason"] == "pin_wrong"
    assert client.post("/api/session/verify", json={"pin": MEMBER_PIN}).status_code == 200
    if path != "/api/privacy/forget":
        again = client.get(path) if body is None else client.post(path, json=body)
        assert again.json().get("reason") != "pin_required"


def test_guessing_a_member_pin_locks_the_card(store: tuple) -> None:
    sw = store[0]
    sw.member("7001").set_pin(MEMBER_PIN)
    from shelfwise.kiosk_demo.cards import card_code

    with page_client(make_app(store)) as client:
        for guess in ["0001", "0002", "0003"]:
            body = {"card": card_code("7001"), "pin": guess}
            assert client.post("/api/session/member", json=body).status_code == 403
        body = {"card": card_code("7001"), "pin": MEMBER_PIN}
        locked = client.post("/api/session/member", json=body)
        assert locked.status_code == 429 and locked.json()["reason"] == "pin_locked"


def test_after_sign_out_the_next_person_with_the_card_sees_nothing_of_the_visit(
    store: tuple,
) -> None:
    app = make_app(store)
    with page_client(app) as first:
        first.post(
            "/api/session/member",
            json={"card": busy_member_card(), "pin": MEMBER_PIN, "consents": {"offers": True}},
        )
        first.post("/api/cart/add", json={"item_id": "yogurt", "quantity": 3})
        first.post("/api/session/end", json={})
    with page_client(app) as second:
        session = card_only(second, busy_member_card())["session"]
        assert session["cart_count"] == 0 and session["verified"] is False
        assert second.get("/api/cart").json()["lines"] == []
        assert second.get("/api/for-you").json()["recently_viewed"] == []
        assert second.get("/api/privacy").status_code == 403


def test_after_an_idle_reset_the_next_person_with_the_card_sees_nothing(store: tuple) -> None:
    app = make_app(store, idle_s=0.05)
    with page_client(app) as first:
        first.post("/api/session/member", json={"card": busy_member_card(), "pin": MEMBER_PIN})
        first.post("/api/cart/add", json={"item_id": "yogurt"})
        time.sleep(0.1)  # older than the idle limit (not a timing assertion)
        app.state.kiosk.end_idle()
    with page_client(app) as second:
        assert card_only(second, busy_member_card())["session"]["cart_count"] == 0
        assert second.get("/api/cart").json()["lines"] == []


def test_the_same_card_on_another_screen_ends_the_first_visit(store: tuple) -> None:
    app = make_app(store)
    with page_client(app) as first, page_client(app) as second:
        first.post("/api/session/member", json={"card": busy_member_card(), "pin": MEMBER_PIN})
        first.post("/api/cart/add", json={"item_id": "yogurt"})
        assert card_only(second, busy_member_card())["session"]["cart_count"] == 0
        assert first.get("/api/cart").status_code == 401
