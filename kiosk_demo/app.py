"""The kiosk web app: a thin JSON adapter over the shelfwise SDK plus static HTML/CSS/JS.

Business logic lives in the SDK; this module maps HTTP to SDK calls and SDK errors to JSON
(``{"error": ..., "message": ..., "reason": ...}``), so the kiosk never crashes on bad input.

Sessions: the browser holds an opaque random token in an HttpOnly cookie; the server maps it
to a shopper id. A session idle for ``idle_s`` seconds ends server-side (anonymous sessions are
forgotten by ``Shopper.end``; ``sw.expire_idle_sessions`` sweeps any left behind) and the
page returns to the welcome screen on its own timer too.

Example:
    >>> import shelfwise
    >>> from starlette.testclient import TestClient
    >>> sw = shelfwise.open(":memory:", store_id="s1")
    >>> client = TestClient(create_app(sw, KioskConfig(staff_pin="1234")))
    >>> client.post("/api/session/start").json()["session"]["kind"]
    'anonymous'
    >>> sw.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import shelfwise
from shelfwise import (
    ConsentRequired,
    InvalidBarcode,
    InvalidInput,
    OfferRejected,
    ShelfwiseError,
    UnknownItem,
    UnknownShopper,
)
from shelfwise._time import now_ms

from .build_store import member_of_card

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "sw_kiosk"
STAFF_COOKIE = "sw_staff"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
CONSENT_LABELS = {
    "personalization": "Use my purchases and scans to personalise suggestions",
    "offers": "Show me offers chosen for me",
    "location": "Use my phone's location for nearby offers (app only)",
    "sync": "Include me in anonymous store statistics sent to head office",
    "sensitive": "Suggest items from sensitive categories (health, hygiene)",
}


@dataclass(frozen=True)
class KioskConfig:
    """How the kiosk runs (the CLI fills it in)."""

    staff_pin: str = ""
    idle_s: float = 90.0
    upstream: str | None = None
    sync_every_s: float = 60.0
    store: dict[str, Any] = field(default_factory=dict)
    demo_cards: tuple[dict[str, Any], ...] = ()


@dataclass
class _Session:
    shopper_id: str
    last_ms: int


class Sessions:
    """Opaque cookie token -> shopper id, with the time of the last request.

    Only the mapping lives in memory (a restart ends every kiosk session, the safe way);
    everything about the shopper lives in the store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, _Session] = {}

    def open(self, shopper_id: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._by_token[token] = _Session(shopper_id, now_ms())
        return token

    def touch(self, token: str | None) -> str | None:
        with self._lock:
            session = self._by_token.get(token or "")
            if session is None:
                return None
            session.last_ms = now_ms()
            return session.shopper_id

    def peek(self, token: str | None) -> _Session | None:
        with self._lock:
            return self._by_token.get(token or "")

    def close(self, token: str | None) -> str | None:
        with self._lock:
            session = self._by_token.pop(token or "", None)
        return session.shopper_id if session else None

    def idle(self, idle_s: float) -> list[tuple[str, str]]:
        cutoff = now_ms() - int(idle_s * 1000)
        with self._lock:
            gone = [(t, s.shopper_id) for t, s in self._by_token.items() if s.last_ms < cutoff]
            for token, _ in gone:
                del self._by_token[token]
        return gone

    def close_shopper(self, shopper_id: str) -> None:
        with self._lock:
            for token in [t for t, s in self._by_token.items() if s.shopper_id == shopper_id]:
                del self._by_token[token]



class ApiError(Exception):
    """An error the kiosk itself raises (bad request body, no session, staff refused)."""

    def __init__(self, status: int, error: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.error, self.reason = status, error, reason


def jsonable(value: Any) -> Any:
    """SDK results (frozen dataclasses with ``to_dict`` or plain ones) as JSON-ready data."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def error_response(exc: Exception) -> JSONResponse:
    """Map an SDK or kiosk error to a JSON body with a status, message and reason code."""
    if isinstance(exc, ApiError):
        status, reason = exc.status, exc.reason
    elif isinstance(exc, OfferRejected):
        status, reason = 409, exc.reason
    elif isinstance(exc, InvalidBarcode):
        status, reason = 400, exc.reason
    elif isinstance(exc, ConsentRequired):
        status, reason = 403, f"consent_required:{exc.purpose}"
    elif isinstance(exc, UnknownShopper):
        status, reason = 401, "session_ended"
    elif isinstance(exc, UnknownItem):
        status, reason = 404, "unknown_item"
    elif isinstance(exc, InvalidInput):
        status, reason = 400, "invalid_input"
    else:
        status, reason = 500, "error"
    error = exc.error if isinstance(exc, ApiError) else type(exc).__name__
    return JSONResponse({"error": error, "message": str(exc), "reason": reason}, status_code=status)


Handler = Callable[[Request], Awaitable[Any]]


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: JSON out, errors translated, never a stack trace to the browser."""

    async def wrapped(request: Request) -> Response:
        try:
            result = await handler(request)
        except (ShelfwiseError, ApiError) as exc:
            return error_response(exc)
        except Exception:  # the kiosk keeps running whatever one request did
            logger.exception("kiosk request failed: %s %s", request.method, request.url.path)
            return JSONResponse(
                {"error": "InternalError", "message": "something went wrong", "reason": "error"},
                status_code=500,
            )
        if isinstance(result, Response):
            return result
        return JSONResponse(jsonable(result))

    return wrapped


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        data = None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object", "bad_request")
    return data


def _text(data: dict[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise ApiError(400, "BadRequest", f"'{key}' is required", "bad_request")
    return str(value).strip()[:limit]


class Kiosk:
    """The kiosk's view of the SDK: one open ``Shelfwise`` and the kiosk sessions."""

    def __init__(self, sw: shelfwise.Shelfwise, config: KioskConfig) -> None:
        self.sw = sw
        self.config = config
        self.sessions = Sessions()
        # Staff token -> last use (ms): an unattended unlocked staff screen locks itself.
        self.staff_tokens: dict[str, int] = {}
        self.sandbox = False
        self.started_ms = now_ms()
        self.last_sync: dict[str, Any] = {"state": "never", "upstream": config.upstream}

    # -- sessions -------------------------------------------------------------------------
    def shopper(self, request: Request) -> shelfwise.Shopper:
        shopper_id = self.sessions.touch(request.cookies.get(SESSION_COOKIE))
        if shopper_id is None:
            raise ApiError(401, "NoSession", "no shopper session: start one", "session_ended")
        try:
            return self.sw.shopper(shopper_id)
        except UnknownShopper as exc:
            self.sessions.close_shopper(shopper_id)
            raise ApiError(401, "NoSession", "the session ended", "session_ended") from exc

    def session_view(self, shopper: shelfwise.Shopper | None) -> dict[str, Any] | None:
        if shopper is None:
            return None
        info = shopper.info()
        consents = shopper.consents()
        return {
            "kind": info.kind,
            "member": info.shopper_id if info.is_member else None,
            "segment": shopper.segment() if info.is_member else "new",
            "consents": consents,
            "cart_count": sum(line.quantity for line in shopper.cart()),
        }

    def end_idle(self) -> int:
        """End sessions idle past the timeout (kiosk cookies and stray store sessions)."""
        ended = 0
        for _, shopper_id in self.sessions.idle(self.config.idle_s):
            with contextlib.suppress(UnknownShopper):
                self.sw.shopper(shopper_id).end()
            ended += 1
        return ended + self.sw.end_idle_sessions(self.config.idle_s)

    # -- staff ----------------------------------------------------------------------------
    def staff_ok(self, token: str) -> bool:
        """Whether ``token`` unlocks the staff screen (and is not idle); touches it if so."""
        now = now_ms()
        cutoff = now - int(self.config.idle_s * 1000)
        for known, last in list(self.staff_tokens.items()):
            if last < cutoff:
                del self.staff_tokens[known]  # idle: locked again, the PIN is asked anew
        match = next((t for t in self.staff_tokens if hmac.compare_digest(token, t)), None)
        if match is None:
            return False
        self.staff_tokens[match] = now
        return True

    # -- product views --------------------------------------------------------------------
    def recs(self, shopper: shelfwise.Shopper, surface: str, k: int = 6, **kw: Any) -> list[Any]:
        try:
            return [r.to_dict() for r in shopper.recommend(surface, limit=k, **kw)]
        except UnknownItem:
            return []

    def deals(self, shopper: shelfwise.Shopper) -> list[Any]:
        """Offers the SDK finds eligible for this shopper on the kiosk (shown = recorded)."""
        finder = getattr(shopper, "offers", None)
        if finder is None:
            return []
        try:
            return [jsonable(o) for o in finder(channel="kiosk")]
        except ConsentRequired:
            return []

    def scan_card(self, shopper: shelfwise.Shopper, code: str) -> dict[str, Any]:
        """The product card for a scanned code: the item, deals on it, goes-with, alternatives.

        ``Shopper.scan`` records the scan (or the miss, with its reason) and builds the card.
        """
        card: dict[str, Any] = jsonable(shopper.scan(code, channel="kiosk"))
        return card


def create_app(sw: shelfwise.Shelfwise, config: KioskConfig) -> Starlette:
    """The Starlette app serving the kiosk pages and its JSON API over ``sw``."""
    kiosk = Kiosk(sw, config)

    def set_session(response: Response, token: str) -> None:
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict")

    # -- pages ----------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    # -- sessions -------------------------------------------------------------------------
    async def state(request: Request) -> Any:
        session = kiosk.sessions.peek(request.cookies.get(SESSION_COOKIE))
        shopper = None
        if session is not None:
            with contextlib.suppress(UnknownShopper):
                shopper = sw.shopper(session.shopper_id)
        return {
            "session": kiosk.session_view(shopper),
            "store": {k: config.store.get(k) for k in ("store_id", "name")},
            "idle_seconds": config.idle_s,
            "consent_labels": CONSENT_LABELS,
            "demo_cards": list(config.demo_cards),
            "model_version": sw.model_version,
        }

    async def start(request: Request) -> Any:
        old = kiosk.sessions.close(request.cookies.get(SESSION_COOKIE))
        if old:
            with contextlib.suppress(UnknownShopper):
                sw.shopper(old).end()
        shopper = sw.start_session()
        response = JSONResponse({"session": kiosk.session_view(shopper)})
        set_session(response, kiosk.sessions.open(shopper.shopper_id))
        return response

    async def member(request: Request) -> Any:
        data = await _body(request)
        card = _text(data, "card", 64)
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
        old = kiosk.sessions.close(request.cookies.get(SESSION_COOKIE))
        if old:
            with contextlib.suppress(UnknownShopper):
                sw.shopper(old).end()
        shopper = sw.member(number, consents={str(k): bool(v) for k, v in consents.items()})
        response = JSONResponse({"session": kiosk.session_view(shopper)})
        set_session(response, kiosk.sessions.open(shopper.shopper_id))
        return response

    async def end(request: Request) -> Any:
        shopper_id = kiosk.sessions.close(request.cookies.get(SESSION_COOKIE))
        if shopper_id:
            with contextlib.suppress(UnknownShopper):
                sw.shopper(shopper_id).end()
        response = JSONResponse({"session": None})
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- scan, for you, search ------------------------------------------------------------
    async def scan(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        code = _text(await _body(request), "code", 64)
        return kiosk.scan_card(shopper, code)

    async def scan_image(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        async with request.form(max_files=1) as form:  # closes the spooled upload
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(
                    400, "BadRequest", "send the photo as the 'image' field", "bad_request"
                )
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "TooLarge", "the photo is larger than 8 MB", "too_large")
        code = decode_photo(data)
        return {"code": code, **kiosk.scan_card(shopper, code)}

    async def for_you(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        info = shopper.info()
        personal = shopper.has_consent("personalization")
        has_history = bool(shopper.context().history)
        return {
            "segment": shopper.segment() if info.is_member else "new",
            "member": info.is_member,
            "personal": kiosk.recs(shopper, "for-you", k=8) if personal and has_history else [],
            "buy_again": kiosk.recs(shopper, "buy-again", k=6) if info.is_member else [],
            "cold_start": kiosk.recs(shopper, "trending", k=8),
            # Shoppers with no history of their own see what sells here instead.
            "best_sellers": [] if has_history else kiosk.recs(shopper, "best-sellers", k=4),
            "recently_viewed": kiosk.recs(shopper, "recently-viewed", k=6),
            "deals": kiosk.deals(shopper),
            "personal_allowed": personal,
        }

    async def search(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        query = request.query_params.get("q", "")[:100]
        items = shopper.search(query, limit=12)
        # Shopper.search re-ranks by taste only with consent and a history to learn from.
        context = shopper.context()
        personalised = "personalization" in context.consents and bool(context.history)
        return {
            "query": query,
            "items": [item.to_dict() for item in items],
            "personalised": personalised,
        }

    # -- cart and checkout ----------------------------------------------------------------
    async def cart(request: Request) -> Any:
        return cart_view(kiosk, kiosk.shopper(request))

    async def cart_add(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        data = await _body(request)
        shopper.add_to_cart(_text(data, "item_id", 64), data.get("quantity", 1))
        return cart_view(kiosk, shopper)

    async def cart_remove(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        data = await _body(request)
        shopper.remove_from_cart(_text(data, "item_id", 64), data.get("quantity", 1))
        return cart_view(kiosk, shopper)

    async def redeem(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        code = _text(await _body(request), "code", 64)
        offers = getattr(sw, "offers", None)
        if offers is None:
            raise OfferRejected("offers are not available on this kiosk", reason="unavailable")
        total = cart_view(kiosk, shopper)["total"]
        if kiosk.sandbox:  # staff testing: every step runs, nothing is spent
            result = offers.sandbox().redeem(code, shopper_id=shopper.shopper_id, cart_total=total)
        else:
            result = shopper.redeem(code, cart_total=total)
        return {"redemption": jsonable(result), **cart_view(kiosk, shopper)}

    async def checkout(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        view = cart_view(kiosk, shopper)
        events = shopper.checkout()
        return {"paid": view["total"], "lines": len(events), "receipt": view["lines"]}

    # -- privacy --------------------------------------------------------------------------
    async def privacy(request: Request) -> Any:
        shopper = kiosk.shopper(request)
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
        shopper = kiosk.shopper(request)
        data = await _body(request)
        shopper.set_consent(_text(data, "purpose", 40), bool(data.get("granted")))
        return {"session": kiosk.session_view(shopper)}

    async def forget(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        removed = shopper.forget()
        kiosk.sessions.close_shopper(shopper.shopper_id)
        response = JSONResponse({"removed_rows": removed, "session": None})
        response.delete_cookie(SESSION_COOKIE)
        return response

    # -- offline app (geofences) ----------------------------------------------------------
    async def geo(request: Request) -> Any:
        return {
            "fences": config.store.get("geofences", []),
            "plot": config.store.get("plot"),
            "store": config.store.get("location"),
        }

    async def locate(request: Request) -> Any:
        shopper = kiosk.shopper(request)
        data = await _body(request)
        try:
            lat, lon = float(data["lat"]), float(data["lon"])
            accuracy = float(data.get("accuracy_m", 10.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                400, "BadRequest", "lat, lon and accuracy_m are numbers", "bad_request"
            ) from exc
        locator = getattr(shopper, "locate", None)
        if locator is None:
            raise ApiError(501, "Unavailable", "geofences are not available", "unavailable")
        events = [jsonable(event) for event in locator(lat, lon, accuracy)]
        geo_index = getattr(getattr(sw, "geo", None), "index", None)
        inside = geo_index().inside(lat, lon) if geo_index else []
        return {
            "events": events,
            "inside": inside,
            "offers": [offer for event in events for offer in event.get("offers", [])],
        }

    # -- staff ----------------------------------------------------------------------------
    def require_staff(request: Request) -> None:
        token = request.cookies.get(STAFF_COOKIE) or request.headers.get("x-staff-token") or ""
        if not kiosk.staff_ok(token):
            raise ApiError(403, "StaffOnly", "the staff screen needs the staff PIN", "staff_pin")

    async def staff_login(request: Request) -> Any:
        pin = str((await _body(request)).get("pin") or "")
        if not config.staff_pin or not hmac.compare_digest(pin, config.staff_pin):
            await asyncio.sleep(0.5)  # slows guessing; a real kiosk would also lock out
            raise ApiError(403, "StaffOnly", "wrong staff PIN", "staff_pin")
        token = secrets.token_urlsafe(24)
        kiosk.staff_tokens[token] = now_ms()
        response = JSONResponse({"ok": True})
        response.set_cookie(STAFF_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def staff_logout(request: Request) -> Any:
        kiosk.staff_tokens.pop(request.cookies.get(STAFF_COOKIE) or "", None)
        response = JSONResponse({"ok": True})
        response.delete_cookie(STAFF_COOKIE)
        return response

    async def staff_status(request: Request) -> Any:
        require_staff(request)
        return staff_view(kiosk)

    async def staff_offer(request: Request) -> Any:
        require_staff(request)
        data = await _body(request)
        offers = getattr(sw, "offers", None)
        if offers is None:
            raise ApiError(501, "Unavailable", "offers are not available", "unavailable")
        offer_id = _text(data, "offer_id", 80)
        if data.get("active"):
            offers.activate(offer_id)
        else:
            offers.deactivate(offer_id)
        return staff_view(kiosk)

    async def staff_sandbox(request: Request) -> Any:
        require_staff(request)
        kiosk.sandbox = bool((await _body(request)).get("on"))
        return staff_view(kiosk)

    async def staff_sync(request: Request) -> Any:
        require_staff(request)
        await asyncio.to_thread(sync_once, kiosk)
        return staff_view(kiosk)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def sweeper() -> None:
            while True:
                await asyncio.sleep(min(5.0, max(0.5, config.idle_s / 4)))
                try:
                    await asyncio.to_thread(kiosk.end_idle)
                except Exception:  # keep sweeping whatever one round did
                    logger.exception("idle sweep failed")

        async def syncer() -> None:
            while config.upstream:  # offline is normal: failures are shown, never raised
                await asyncio.to_thread(sync_once, kiosk)
                await asyncio.sleep(config.sync_every_s)

        tasks = [asyncio.create_task(sweeper()), asyncio.create_task(syncer())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    e = endpoint
    routes = [
        Route("/", index),
        Route("/api/state", e(state)),
        Route("/api/session/start", e(start), methods=["POST"]),
        Route("/api/session/member", e(member), methods=["POST"]),
        Route("/api/session/end", e(end), methods=["POST"]),
        Route("/api/scan", e(scan), methods=["POST"]),
        Route("/api/scan/image", e(scan_image), methods=["POST"]),
        Route("/api/for-you", e(for_you)),
        Route("/api/search", e(search)),
        Route("/api/cart", e(cart)),
        Route("/api/cart/add", e(cart_add), methods=["POST"]),
        Route("/api/cart/remove", e(cart_remove), methods=["POST"]),
        Route("/api/cart/redeem", e(redeem), methods=["POST"]),
        Route("/api/checkout", e(checkout), methods=["POST"]),
        Route("/api/privacy", e(privacy)),
        Route("/api/privacy/consent", e(consent), methods=["POST"]),
        Route("/api/privacy/forget", e(forget), methods=["POST"]),
        Route("/api/geo", e(geo)),
        Route("/api/geo/locate", e(locate), methods=["POST"]),
        Route("/api/staff/login", e(staff_login), methods=["POST"]),
        Route("/api/staff/logout", e(staff_logout), methods=["POST"]),
        Route("/api/staff/status", e(staff_status)),
        Route("/api/staff/offer", e(staff_offer), methods=["POST"]),
        Route("/api/staff/sandbox", e(staff_sandbox), methods=["POST"]),
        Route("/api/staff/sync", e(staff_sync), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.kiosk = kiosk
    return app


def decode_photo(data: bytes) -> str:
    """The first retail barcode the SDK decodes in a photo (``InvalidBarcode`` if none)."""
    from shelfwise import decode_image

    codes = decode_image(data)
    if not codes:
        raise InvalidBarcode(
            "no barcode found in the photo: hold it flat and closer", reason="no_barcode"
        )
    return str(codes[0])


def cart_view(kiosk: Kiosk, shopper: shelfwise.Shopper) -> dict[str, Any]:
    """The cart with names and prices, add-ins and the offers it is eligible for."""
    lines = shopper.cart()
    items = kiosk.sw.catalog.get_many([line.item_id for line in lines])
    out = []
    total = 0.0
    for line in lines:
        item = items.get(line.item_id)
        price = (item.price or 0.0) if item else 0.0
        total += price * line.quantity
        out.append(
            {
                "item_id": line.item_id,
                "name": item.name if item else line.item_id,
                "quantity": line.quantity,
                "price": price,
                "line_total": round(price * line.quantity, 2),
            }
        )
    return {
        "lines": out,
        "total": round(total, 2),
        "add_ins": kiosk.recs(shopper, "checkout", k=4) if out else [],
        "offers": kiosk.deals(shopper) if out else [],
    }


def store_zone(store: dict[str, Any]) -> ZoneInfo:
    """The store's time zone from store.json; UTC when it names none or an unknown one."""
    try:
        return ZoneInfo(str(store.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning(
            "unknown store time zone %r: the staff charts use UTC", store.get("timezone")
        )
        return ZoneInfo("UTC")


# The offer funnel of the staff screen, in order; refusals are broken down by reason beside it.
FUNNEL_STEPS = ("scan", "offer_shown", "cart_add", "offer_rejected", "offer_redeemed", "purchase")


def model_view(sw: shelfwise.Shelfwise) -> dict[str, Any] | None:
    """The served bundle as the staff screen shows it (None: popularity only, no model)."""
    loaded = sw.model.current
    if loaded is None:
        return None
    manifest = loaded.manifest
    return {
        "name": manifest.model_name,
        "version": manifest.model_version,
        "quantization": manifest.quantization,
        "items": manifest.num_items,
        "created_ms": manifest.created_ms,
    }


def staff_view(kiosk: Kiosk) -> dict[str, Any]:
    """What the staff screen shows: switches, sync, model, today's scans and offer funnel."""
    sw = kiosk.sw
    zone = store_zone(kiosk.config.store)
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    since = int(today.timestamp() * 1000)
    hours = [0] * 24
    for row in sw.store.query(
        "SELECT ts_ms FROM events WHERE ts_ms >= ? AND type IN ('scan', 'scan_miss')", [since]
    ):  # bucketed in the store's own hours (a DST day has 23 or 25 of them)
        hours[datetime.fromtimestamp(row["ts_ms"] / 1000, zone).hour] += 1
    funnel_rows = sw.store.query(
        "SELECT type, count(*) AS n FROM events WHERE ts_ms >= ? AND type IN "
        f"({', '.join('?' * len(FUNNEL_STEPS))}) GROUP BY type",
        [since, *FUNNEL_STEPS],
    )
    counts = {row["type"]: row["n"] for row in funnel_rows}
    rejected = sw.store.query(
        "SELECT json_extract(payload, '$.reason') AS reason, count(*) AS n FROM events "
        "WHERE ts_ms >= ? AND type = 'offer_rejected' GROUP BY reason ORDER BY n DESC",
        [since],
    )
    offers_api = getattr(sw, "offers", None)
    offers = [jsonable(o) for o in offers_api.all()] if offers_api is not None else []
    sync_status = getattr(sw, "sync_status", None)
    return {
        "model_version": sw.model_version,
        "model": model_view(sw),
        "offers": offers,
        "offers_available": offers_api is not None,
        "sandbox": kiosk.sandbox,
        "sync": jsonable(sync_status()) if sync_status else {"available": False},
        "last_sync": kiosk.last_sync,
        "timezone": str(zone),
        "today": today.date().isoformat(),
        "scans_by_hour": hours,
        "funnel": [{"step": step, "count": counts.get(step, 0)} for step in FUNNEL_STEPS],
        "rejections": [{"reason": r["reason"] or "unknown", "count": r["n"]} for r in rejected],
        "catalog_items": sw.catalog.count(),
    }


def sync_once(kiosk: Kiosk) -> None:
    """One sync round trip to the upstream, if configured; failures are recorded, not raised."""
    upstream = kiosk.config.upstream
    syncer = getattr(kiosk.sw, "sync", None)
    stamp = now_ms()
    if not upstream:
        kiosk.last_sync = {"state": "off", "upstream": None, "at_ms": stamp}
        return
    if syncer is None:
        kiosk.last_sync = {"state": "unavailable", "upstream": upstream, "at_ms": stamp}
        return
    try:
        report = syncer(upstream, device_credentials(kiosk.sw), deadline_s=5)
        error = getattr(report, "error", None)
        kiosk.last_sync = {
            "state": "failed" if error else "ok",
            "upstream": upstream,
            "at_ms": stamp,
            "message": str(error) if error else "",
            "report": jsonable(report),
        }
    except ShelfwiseError as exc:  # offline is normal: the outbox keeps the data
        kiosk.last_sync = {
            "state": "failed",
            "upstream": upstream,
            "at_ms": stamp,
            "message": str(exc),
        }
    except Exception as exc:  # the kiosk must keep serving whatever the network does
        logger.warning("sync round failed: %s", type(exc).__name__)
        kiosk.last_sync = {
            "state": "failed",
            "upstream": upstream,
            "at_ms": stamp,
            "message": str(exc),
        }


def device_credentials(sw: shelfwise.Shelfwise) -> Any:
    """This kiosk's upstream identity: a device id and secret kept in the store's meta table.

    A real fleet provisions these (``Credentials.from_file``); the demo makes its own once.
    """
    from shelfwise.sync.upload import Credentials

    device = sw.store.get_meta("kiosk.device_id")
    secret = sw.store.get_meta("kiosk.device_secret")
    if not device or not secret:
        device, secret = f"kiosk-{secrets.token_hex(4)}", secrets.token_hex(32)
        sw.store.set_meta("kiosk.device_id", device)
        sw.store.set_meta("kiosk.device_secret", secret)
    return Credentials(device, bytes.fromhex(secret))
