"""Cart and checkout routes: add, remove, the order as priced, redeem a code, pay (demo)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from .kiosk import kiosk_of
from .till import order_view
from .web import endpoint, jsonable, read_json, text_field


async def cart(request: Request) -> Any:
    """The cart with prices, add-ins and eligible offers."""
    kiosk = kiosk_of(request)
    return kiosk.cart_view(kiosk.shopper(request))


async def cart_order(request: Request) -> Any:
    """The cart priced as one order, never redeemed: the offers applied, each one's money
    off, and the offers left out with the reason in words."""
    kiosk = kiosk_of(request)
    return order_view(kiosk.sw, kiosk.shopper(request))


async def cart_add(request: Request) -> Any:
    """Put an item (id or GTIN) in the cart."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    data = await read_json(request)
    shopper.add_to_cart(text_field(data, "item_id", 64), data.get("quantity", 1))
    return kiosk.cart_view(shopper)


async def cart_remove(request: Request) -> Any:
    """Take an item (or some of it) out of the cart."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    data = await read_json(request)
    shopper.remove_from_cart(text_field(data, "item_id", 64), data.get("quantity", 1))
    return kiosk.cart_view(shopper)


async def redeem(request: Request) -> Any:
    """Redeem an offer code against the cart; a refusal says why (409 with its reason).

    A member signed in with the card alone gives their PIN first: a code spent here counts
    against the member's own allowance (and a member-bound code is theirs alone).
    """
    kiosk = kiosk_of(request)
    shopper = kiosk.second_factor(request)
    code = text_field(await read_json(request), "code", 64)
    total = kiosk.cart_view(shopper)["total"]
    if kiosk.sandbox:  # staff testing: every step runs, nothing is spent
        sandbox = kiosk.sw.offers.sandbox()
        result = sandbox.redeem(code, shopper_id=shopper.shopper_id, cart_total=total)
    else:
        result = shopper.redeem(code, cart_total=total)
    return {"redemption": jsonable(result), **kiosk.cart_view(shopper)}


async def checkout(request: Request) -> Any:
    """Pay (demo): every cart line becomes a purchase."""
    kiosk = kiosk_of(request)
    shopper = kiosk.shopper(request)
    view = kiosk.cart_view(shopper)
    events = shopper.checkout()
    # The purchase travels with the member even if they walk away without signing out.
    kiosk.seal(shopper, kiosk.session_key(request))
    return {"paid": view["total"], "lines": len(events), "receipt": view["lines"]}


ROUTES = [
    Route("/api/cart", endpoint(cart)),
    Route("/api/cart/order", endpoint(cart_order)),
    Route("/api/cart/add", endpoint(cart_add), methods=["POST"]),
    Route("/api/cart/remove", endpoint(cart_remove), methods=["POST"]),
    Route("/api/cart/redeem", endpoint(redeem), methods=["POST"]),
    Route("/api/checkout", endpoint(checkout), methods=["POST"]),
]
