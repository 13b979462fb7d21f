"""Scan and discovery routes: a typed or photographed barcode, the "for you" shelves, search."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from .guard import MAX_UPLOAD_BYTES
from .kiosk import SESSION_COOKIE, decode_photo, kiosk_of
from .web import ApiError, endpoint, read_json, text_field


async def scan(request: Request) -> Any:
    """The product card for a scanned code (a miss is recorded with its reason)."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    code = text_field(await read_json(request), "code", 64)
    return kiosk.scan_card(shopper, code)


async def scan_image(request: Request) -> Any:
    """The product card for the first barcode decoded in an uploaded photo."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    # One file, a handful of fields; the guard has already capped the body's size.
    async with request.form(max_files=1, max_fields=4) as form:  # closes the spooled upload
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "BadRequest", "send the photo as the 'image' field", "bad_request")
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "TooLarge", "the photo is larger than 8 MB", "too_large")
    code = decode_photo(data)
    return {"code": code, **kiosk.scan_card(shopper, code)}


async def watch(request: Request) -> Any:
    """Tell the signed-in member when a product is back in stock or cheaper: a watch; the
    offer it triggers reaches their app through the notification outbox."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    body = await read_json(request)
    item, kind = text_field(body, "item_id", 64), text_field(body, "kind", 16)
    return {"watch": shopper.watch(item, kind=kind).to_dict()}


async def for_you(request: Request) -> Any:
    """The personal shelf, buy-again, cold-start and best-seller shelves, deals."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    info = shopper.info()
    session = kiosk.sessions.peek(request.cookies.get(SESSION_COOKIE))
    verified = not info.is_member or bool(session and session.verified)
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
        # A list of what the member looked at is history: only once they gave their PIN.
        "recently_viewed": kiosk.recs(shopper, "recently-viewed", k=6) if verified else [],
        "deals": kiosk.deals(shopper),
        "personal_allowed": personal,
    }


async def search(request: Request) -> Any:
    """Full-text search, re-ranked by the shopper's taste when they consented."""
    shopper = kiosk_of(request).shopper(request)
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


async def recommendation_click(request: Request) -> Any:
    """A tap on an item of a shelf an experiment served: the click of its arm."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    data = await read_json(request)
    shown_id, item_id = text_field(data, "shown_id", 64), text_field(data, "item_id", 200)
    if not kiosk.clicked(shopper, shown_id, item_id):
        raise ApiError(404, "UnknownList", "no such shown list for this session", "not_shown")
    return {"ok": True}


ROUTES = [
    Route("/api/scan", endpoint(scan), methods=["POST"]),
    Route("/api/recommendation/click", endpoint(recommendation_click), methods=["POST"]),
    Route("/api/scan/image", endpoint(scan_image), methods=["POST"]),
    Route("/api/for-you", endpoint(for_you)),
    Route("/api/watch", endpoint(watch), methods=["POST"]),
    Route("/api/search", endpoint(search)),
]
