"""Staff routes (behind the staff PIN): status, offers on/off, sandbox mode, sync now."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shelfwise._time import now_ms

from .kiosk import STAFF_COOKIE, kiosk_of
from .web import ApiError, endpoint, read_json, text_field


def require_staff(request: Request) -> None:
    """``ApiError`` 403 unless the request carries an unlocked, not idle staff token."""
    token = request.cookies.get(STAFF_COOKIE) or request.headers.get("x-staff-token") or ""
    if not kiosk_of(request).staff_ok(token):
        raise ApiError(403, "StaffOnly", "the staff screen needs the staff PIN", "staff_pin")


async def staff_login(request: Request) -> Any:
    """Unlock the staff screen with the staff PIN."""
    kiosk = kiosk_of(request)
    pin = str((await read_json(request)).get("pin") or "")
    staff_pin = kiosk.config.staff_pin
    if not staff_pin or not hmac.compare_digest(pin, staff_pin):
        await asyncio.sleep(0.5)  # slows guessing; a real kiosk would also lock out
        raise ApiError(403, "StaffOnly", "wrong staff PIN", "staff_pin")
    token = secrets.token_urlsafe(24)
    kiosk.staff_tokens[token] = now_ms()
    response = JSONResponse({"ok": True})
    response.set_cookie(STAFF_COOKIE, token, httponly=True, samesite="strict")
    return response


async def staff_logout(request: Request) -> Any:
    """Lock the staff screen again."""
    kiosk_of(request).staff_tokens.pop(request.cookies.get(STAFF_COOKIE) or "", None)
    response = JSONResponse({"ok": True})
    response.delete_cookie(STAFF_COOKIE)
    return response


async def staff_status(request: Request) -> Any:
    """Switches, sync, model, today's charts."""
    require_staff(request)
    return kiosk_of(request).staff_view()


async def staff_offer(request: Request) -> Any:
    """Switch one offer on or off."""
    require_staff(request)
    kiosk = kiosk_of(request)
    data = await read_json(request)
    offer_id = text_field(data, "offer_id", 80)
    if data.get("active"):
        kiosk.sw.offers.activate(offer_id)
    else:
        kiosk.sw.offers.deactivate(offer_id)
    return kiosk.staff_view()


async def staff_sandbox(request: Request) -> Any:
    """Sandbox mode on or off (redemptions run every check and roll back)."""
    require_staff(request)
    kiosk = kiosk_of(request)
    kiosk.sandbox = bool((await read_json(request)).get("on"))
    return kiosk.staff_view()


async def staff_sync(request: Request) -> Any:
    """One sync round trip now (failures are shown, not raised)."""
    require_staff(request)
    kiosk = kiosk_of(request)
    await asyncio.to_thread(kiosk.sync_once)
    return kiosk.staff_view()


ROUTES = [
    Route("/api/staff/login", endpoint(staff_login), methods=["POST"]),
    Route("/api/staff/logout", endpoint(staff_logout), methods=["POST"]),
    Route("/api/staff/status", endpoint(staff_status)),
    Route("/api/staff/offer", endpoint(staff_offer), methods=["POST"]),
    Route("/api/staff/sandbox", endpoint(staff_sandbox), methods=["POST"]),
    Route("/api/staff/sync", endpoint(staff_sync), methods=["POST"]),
]
