"""The phone app's screen (a minimal simulation served by the kiosk): a member types their card
and PIN and sees their profile as the chain holds it, opened with their key, stored nowhere.

``GET /phone`` is the page; ``POST /api/phone/profile`` checks the PIN (here, or against the
member's own sealed copies; throttled either way), derives the member's key and opens the
copies the collector holds (``members.profile_view``). The key is dropped after the answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from shelfwise import AuthenticationFailed

from .cards import member_of_card
from .kiosk import STATIC, kiosk_of
from .members import check_pin, profile_view
from .session_api import csrf_token, pin_error, set_csrf
from .web import ApiError, endpoint, read_json, text_field


async def phone_page(request: Request) -> Response:
    """The phone app's page (never cached)."""
    response = FileResponse(STATIC / "phone.html", headers={"Cache-Control": "no-store"})
    token, new = csrf_token(request)
    if new:
        set_csrf(response, token)
    return response


async def phone_profile(request: Request) -> Any:
    """Card + PIN -> the member's profile across the chain (recent activity, choices)."""
    kiosk = kiosk_of(request)
    if not kiosk.fleet_on:
        raise ApiError(
            503, "FleetOff", "this kiosk takes no part in a fleet (no collector)", "fleet_off"
        )
    data = await read_json(request)
    number = member_of_card(text_field(data, "card", 64))
    if number is None:
        raise ApiError(400, "NotALoyaltyCard", "that is not a loyalty card", "not_a_card")
    pin = text_field(data, "pin", 32)
    try:
        key, _ = await asyncio.to_thread(check_pin, kiosk, number, pin)
    except AuthenticationFailed as exc:
        raise pin_error(exc) from exc
    if key is None:  # pragma: no cover - check_pin derives it whenever the fleet is on
        raise ApiError(503, "FleetOff", "no member key", "fleet_off")
    return await asyncio.to_thread(profile_view, kiosk, number, key)


ROUTES = [
    Route("/phone", phone_page),
    Route("/api/phone/profile", endpoint(phone_profile), methods=["POST"]),
]
