"""Session and shopper routes: the page, sign-in (guest or loyalty card), privacy, location.

Each handler is a module-level coroutine taking the request; ``ROUTES`` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import shelfwise
from shelfwise import AuthenticationFailed, AuthLocked, UnknownShopper
from shelfwise.clock import now_ms

from .cards import member_of_card
from .guard import CSRF_COOKIE, csrf_ok, new_csrf_token
from .kiosk import CONSENT_LABELS, SESSION_COOKIE, STATIC, kiosk_of
from .members import arrive, check_pin
from .web import ApiError, endpoint, jsonable, read_json, text_field


def set_session(response: Response, token: str) -> None:
    """Hand the browser its opaque session token (HttpOnly: page scripts cannot read it)."""
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's valid CSRF cookie token, or a new one (and whether it is new)."""
    kiosk = kiosk_of(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    if csrf_ok(kiosk.csrf_key, cookie, cookie):
        return str(cookie), False
    return new_csrf_token(kiosk.csrf_key), True


def set_csrf(response: Response, token: str) -> None:
    # HttpOnly too: the page gets the token from /api/state and sends it back in a header.
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")


async def index(request: Request) -> Response:
    """The kiosk page (never cached: a reset must not come back from the cache)."""
    response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
    token, new = csrf_token(request)
    if new:
        set_csrf(response, token)
    return response


async def state(request: Request) -> Any:
    """The store, the session (if any), the CSRF token and what the page needs to start."""
    kiosk = kiosk_of(request)
    session = kiosk.sessions.peek(request.cookies.get(SESSION_COOKIE))
    shopper = None
    if session is not None:
        with contextlib.suppress(UnknownShopper):
            shopper = kiosk.sw.shopper(session.shopper_id)
    config = kiosk.config
    token, new = csrf_token(request)
    response = JSONResponse(
        jsonable(
            {
                "session": kiosk.session_view(shopper, verified=bool(session and session.verified)),
                "store": {k: config.store.get(k) for k in ("store_id", "name")},
                "idle_seconds": config.idle_s,
                "consent_labels": CONSENT_LABELS,
                "demo_cards": list(config.demo_cards),
                "model_version": kiosk.sw.model_version,
                "csrf": token,
            }
        ),
        headers={"Cache-Control": "no-store"},
    )
    if new:
        set_csrf(response, token)
    return response


async def start(request: Request) -> Any:
    """A new anonymous session (ending the cookie's previous one)."""
    kiosk = kiosk_of(request)
    kiosk.end_session(request.cookies.get(SESSION_COOKIE))
    shopper = kiosk.sw.start_session()
    response = JSONResponse({"session": kiosk.session_view(shopper)})
    set_session(response, kiosk.sessions.open(shopper.shopper_id))
    return response


def pin_error(exc: AuthenticationFailed) -> ApiError:
    """A refused PIN as the page shows it: 429 with Retry-After during a lockout, else 403."""
    if isinstance(exc, AuthLocked):
        return ApiError(
            429,
            "PinLocked",
            f"too many wrong PINs: try again in {exc.retry_after_s:g} s",
            "pin_locked",
            headers={"Retry-After": str(int(exc.retry_after_s))},
        )
    return ApiError(403, "PinRefused", str(exc), exc.reason)


async def member(request: Request) -> Any:
    """Sign in with a loyalty card (``299`` + member number + check digit), PIN optional.

    The card alone personalises (recommendations, offers) with the member's stored choices;
    the consents sent are stored only for a card seen for the first time or with the right
    PIN. Signing in starts a fresh visit: the member's other kiosk sessions end and the cart
    left by an earlier visit is emptied. A guest who signs in keeps this session's scans,
    views and cart as the member's (with the personalisation consent: ``Shopper.sign_in``).
    With the PIN, the member's profile from the chain's other kiosks is merged in
    (``members.arrive``); a kiosk that never saw the member checks the PIN against it.
    """
    kiosk = kiosk_of(request)
    data = await read_json(request)
    card = text_field(data, "card", 64)
    number = member_of_card(card)
    if number is None:
        raise ApiError(
            400,
            "NotALoyaltyCard",
            f"{card} is not a loyalty card of this store (cards start with 299)",
            "not_a_card",
        )
    consents = data.get("consents") or {}
    if not isinstance(consents, dict):
        raise ApiError(400, "BadRequest", "consents must be an object", "bad_request")
    choices = {str(k): bool(v) for k, v in consents.items()}
    pin = data.get("pin")
    try:
        known: shelfwise.Shopper | None = kiosk.sw.shopper(number)
    except UnknownShopper:
        known = None
    verified, key, from_fleet = False, None, False
    if pin:
        try:
            key, from_fleet = await asyncio.to_thread(check_pin, kiosk, number, str(pin))
        except AuthenticationFailed as exc:
            raise pin_error(exc) from exc
        verified = True
    token = request.cookies.get(SESSION_COOKIE)
    guest = kiosk.guest(token)
    if guest is None:
        kiosk.end_session(token)
    kiosk.end_visits_of(number)  # the same card on another screen: that visit ends
    # Choices sent with the card count for a new card or with the PIN; a member known to the
    # chain brings their own (merged below), which a form's defaults must not overwrite.
    apply_choices = (known is None or verified) and not from_fleet
    shopper = kiosk.sw.member(number, consents=choices if apply_choices else None)
    shopper.clear_cart()
    stitched = 0
    if guest is not None:
        held = guest.export()["tables"]
        stitched = len(held.get("events", [])) + len(held.get("carts", []))
        kiosk.sessions.close(token)
        shopper = guest.sign_in(number)
        if not shopper.has_consent("personalization"):
            stitched = 0
    fleet = await asyncio.to_thread(arrive, kiosk, shopper, key)
    if from_fleet and pin:
        # Checked against the member's own copies: this kiosk keeps (or updates) its hash.
        with contextlib.suppress(shelfwise.WeakSecret):
            shopper.set_pin(str(pin))
    response = JSONResponse(
        {
            "session": kiosk.session_view(shopper, verified=verified),
            "consents_applied": apply_choices,
            "kept_from_guest": stitched,
            "fleet": fleet,
        }
    )
    set_session(response, kiosk.sessions.open(shopper.shopper_id, verified=verified, key=key))
    return response


async def verify(request: Request) -> Any:
    """The member gives their PIN: this session may now read and change their data."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    if not shopper.is_member:
        raise ApiError(400, "BadRequest", "a guest session has no PIN", "not_a_member")
    pin = (await read_json(request)).get("pin")
    try:
        await asyncio.to_thread(shopper.verify_pin, str(pin or ""), device=kiosk.kiosk_id)
    except AuthenticationFailed as exc:
        raise pin_error(exc) from exc
    kiosk.sessions.verify(request.cookies.get(SESSION_COOKIE))
    return {"session": kiosk.session_view(shopper, verified=True)}


async def end(request: Request) -> Any:
    """Sign out: the session ends (an anonymous shopper is forgotten). A member's profile,
    sealed with their key, goes to the collector at once (or when the network is back)."""
    kiosk = kiosk_of(request)
    sealed = kiosk.end_session(request.cookies.get(SESSION_COOKIE))
    fleet = await asyncio.to_thread(kiosk.exchange) if sealed else None
    response = JSONResponse({"session": None, "sealed": sealed, "fleet": fleet})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def privacy(request: Request) -> Any:
    """What the kiosk holds about the shopper: counts by table and kind, the latest events."""
    shopper = kiosk_of(request).second_factor(request)
    data = shopper.export()
    tables = data.pop("tables")
    events = tables.get("events", [])
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event["type"]] = kinds.get(event["type"], 0) + 1
    return {
        **data,
        "segment": shopper.segment(),
        "counts": {name: len(rows) for name, rows in tables.items()},
        "event_kinds": kinds,
        "recent_events": [
            {"type": e["type"], "item_id": e["item_id"], "ts_ms": e["ts_ms"]}
            for e in events[-10:][::-1]
        ],
        "consent_labels": CONSENT_LABELS,
    }


async def consent(request: Request) -> Any:
    """Give or withdraw one consent purpose."""
    kiosk = kiosk_of(request)
    shopper = kiosk.second_factor(request)
    data = await read_json(request)
    shopper.set_consent(text_field(data, "purpose", 40), bool(data.get("granted")))
    return {"session": kiosk.session_view(shopper, verified=True)}


async def forget(request: Request) -> Any:
    """ "Forget me now": erase the shopper here at once, end the session, and send the
    erasure to the chain's other kiosks; the receipt says when and whether it left."""
    kiosk = kiosk_of(request)
    shopper = kiosk.second_factor(request)
    member = shopper.is_member
    removed = shopper.forget()
    kiosk.sessions.close_shopper(shopper.shopper_id)  # nothing left to seal: erased
    erased_ms = now_ms()
    fleet = None
    if member and kiosk.sw.fleet.enabled:
        erased_ms = kiosk.sw.fleet.erased_at(shopper.shopper_id) or erased_ms
        fleet = await asyncio.to_thread(kiosk.exchange)
    response = JSONResponse(
        {
            "removed_rows": removed,
            "session": None,
            "receipt": {
                "erased_ms": erased_ms,
                "member": member,
                "fleet": bool(member and kiosk.fleet_on),
                "sent": bool(fleet and fleet.get("sent")),
            },
        }
    )
    response.delete_cookie(SESSION_COOKIE)
    return response


async def geo(request: Request) -> Any:
    """The store's fences and plot for the phone-app screen."""
    store = kiosk_of(request).config.store
    return {
        "fences": store.get("geofences", []),
        "plot": store.get("plot"),
        "store": store.get("location"),
    }


async def locate(request: Request) -> Any:
    """A phone location fix: fence events and the offers they trigger (needs consent)."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    data = await read_json(request)
    try:
        lat, lon = float(data["lat"]), float(data["lon"])
        accuracy = float(data.get("accuracy_m", 10.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(
            400, "BadRequest", "lat, lon and accuracy_m are numbers", "bad_request"
        ) from exc
    events = [jsonable(event) for event in shopper.locate(lat, lon, accuracy)]
    return {
        "events": events,
        "inside": kiosk.sw.geo.index().inside(lat, lon),
        "offers": [offer for event in events for offer in event.get("offers", [])],
    }


ROUTES = [
    Route("/", index),
    Route("/api/state", endpoint(state)),
    Route("/api/session/start", endpoint(start), methods=["POST"]),
    Route("/api/session/member", endpoint(member), methods=["POST"]),
    Route("/api/session/verify", endpoint(verify), methods=["POST"]),
    Route("/api/session/end", endpoint(end), methods=["POST"]),
    Route("/api/privacy", endpoint(privacy)),
    Route("/api/privacy/consent", endpoint(consent), methods=["POST"]),
    Route("/api/privacy/forget", endpoint(forget), methods=["POST"]),
    Route("/api/geo", endpoint(geo)),
    Route("/api/geo/locate", endpoint(locate), methods=["POST"]),
]
