"""Staff routes (behind the staff PIN): status, offers on/off, sandbox mode, sync now."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import shelfwise
from shelfwise import AuthLocked
from shelfwise.clock import now_ms

from .kiosk import STAFF_COOKIE, kiosk_of
from .web import ApiError, endpoint, read_json, text_field


def require_staff(request: Request) -> str:
    """The request's staff token, or ``ApiError`` 403 unless it is unlocked and not idle."""
    token = request.cookies.get(STAFF_COOKIE) or request.headers.get("x-staff-token") or ""
    if not kiosk_of(request).staff_ok(token):
        raise ApiError(403, "StaffOnly", "the staff screen needs the staff PIN", "staff_pin")
    return token


async def staff_login(request: Request) -> Any:
    """Unlock the staff screen with the staff PIN (throttled: a lockout outlives a restart).

    The attempt is counted in the store *before* the PIN is checked, so guesses sent in
    parallel are each counted; past the free attempts each failure doubles the wait.
    """
    kiosk = kiosk_of(request)
    pin = (await read_json(request)).get("pin")
    try:
        kiosk.staff_throttle.attempt(kiosk.kiosk_id)
    except AuthLocked as exc:
        kiosk.audit(None, "staff_login_locked", detail=f"retry in {exc.retry_after_s:g} s")
        raise ApiError(
            429,
            "StaffLocked",
            f"too many wrong staff PINs: the staff screen is locked for {exc.retry_after_s:g} s",
            "staff_locked",
            headers={"Retry-After": str(int(exc.retry_after_s))},
        ) from exc
    stored = kiosk.config.staff_pin_hash
    if not stored or not await asyncio.to_thread(shelfwise.verify_secret, stored, pin):
        kiosk.audit(None, "staff_login_failed")
        raise ApiError(403, "StaffOnly", "wrong staff PIN", "staff_pin")
    kiosk.staff_throttle.succeeded(kiosk.kiosk_id)
    token = secrets.token_urlsafe(24)
    kiosk.staff_tokens[token] = now_ms()
    kiosk.audit(token, "staff_login")
    response = JSONResponse({"ok": True})
    response.set_cookie(STAFF_COOKIE, token, httponly=True, samesite="strict")
    return response


async def staff_logout(request: Request) -> Any:
    """Lock the staff screen again."""
    kiosk = kiosk_of(request)
    token = request.cookies.get(STAFF_COOKIE) or ""
    if kiosk.staff_tokens.pop(token, None) is not None:
        kiosk.audit(token, "staff_logout")
    response = JSONResponse({"ok": True})
    response.delete_cookie(STAFF_COOKIE)
    return response


async def staff_status(request: Request) -> Any:
    """Switches, sync, model, today's charts."""
    require_staff(request)
    return kiosk_of(request).staff_view()


async def staff_offer(request: Request) -> Any:
    """Switch one offer on or off."""
    token = require_staff(request)
    kiosk = kiosk_of(request)
    data = await read_json(request)
    offer_id = text_field(data, "offer_id", 80)
    if data.get("active"):
        kiosk.sw.offers.activate(offer_id)
    else:
        kiosk.sw.offers.deactivate(offer_id)
    kiosk.audit(token, "offer_on" if data.get("active") else "offer_off", target=offer_id)
    return kiosk.staff_view()


async def staff_sandbox(request: Request) -> Any:
    """Sandbox mode on or off (redemptions run every check and roll back)."""
    token = require_staff(request)
    kiosk = kiosk_of(request)
    kiosk.sandbox = bool((await read_json(request)).get("on"))
    kiosk.audit(token, "sandbox_on" if kiosk.sandbox else "sandbox_off")
    return kiosk.staff_view()


async def staff_sync(request: Request) -> Any:
    """One sync round trip now (failures are shown, not raised)."""
    token = require_staff(request)
    kiosk = kiosk_of(request)
    await asyncio.to_thread(kiosk.sync_once)
    kiosk.audit(token, "sync", detail=str(kiosk.last_sync.get("state", "")))
    return kiosk.staff_view()


ROUTES = [
    Route("/api/staff/login", endpoint(staff_login), methods=["POST"]),
    Route("/api/staff/logout", endpoint(staff_logout), methods=["POST"]),
    Route("/api/staff/status", endpoint(staff_status)),
    Route("/api/staff/offer", endpoint(staff_offer), methods=["POST"]),
    Route("/api/staff/sandbox", endpoint(staff_sandbox), methods=["POST"]),
    Route("/api/staff/sync", endpoint(staff_sync), methods=["POST"]),
]
