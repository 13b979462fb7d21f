"""What the till would do with the cart now: the offers applied and those left out, in words.

The cart screen shows the combination ``Shopper.price_order`` chooses for the cart as it
stands (priced, never redeemed: nothing is spent and nothing is recorded), each offer's money
off, and every offer the order leaves out with the SDK's own sentence for why ("spend 3.00
more", "a better combination leaves it out").

Example:
    >>> import shelfwise
    >>> sw = shelfwise.open(":memory:", store_id="s1")
    >>> _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 4.0}])
    >>> _ = sw.offers.define({"offer_id": "o", "title": "1.00 off tea",
    ...                       "reward": {"type": "amount", "value": 1}})
    >>> guest = sw.start_session()
    >>> _ = guest.add_to_cart("tea")
    >>> view = order_view(sw, guest)
    >>> [(a["title"], a["amount"]) for a in view["applied"]], view["total"]
    ([('1.00 off tea', 1.0)], 3.0)
    >>> sw.close()
"""

from __future__ import annotations

from typing import Any

import shelfwise

# The order id of a cart priced for the screen: never redeemed, so never stored.
PREVIEW_ORDER_ID = "kiosk-cart-preview"
EMPTY = {"subtotal": 0.0, "discount": 0.0, "total": 0.0, "points_earned": 0, "applied": [],
         "left_out": []}  # fmt: skip


def order_view(sw: shelfwise.Shelfwise, shopper: shelfwise.Shopper) -> dict[str, Any]:
    """The shopper's cart priced as one order (see the module docstring), JSON-ready."""
    if not shopper.cart():
        return dict(EMPTY)
    priced = shopper.price_order(PREVIEW_ORDER_ID)
    titles = {offer.offer_id: offer.title for offer in sw.offers.all()}
    return {
        "subtotal": priced.subtotal,
        "discount": priced.discount,
        "total": priced.total,
        "points_earned": priced.points_earned,
        "applied": [
            {"offer_id": a.offer_id, "title": a.title, "amount": a.amount, "points": a.points}
            for a in priced.applied
        ],
        "left_out": [
            {
                "offer_id": x.offer_id,
                "title": titles.get(x.offer_id, x.offer_id),
                "reason": x.reason,
                "message": x.message,
            }
            for x in priced.left_out
        ],
    }


def till_totals(sw: shelfwise.Shelfwise, timezone: str) -> dict[str, Any]:
    """Points issued and burned, discounted orders and their money off, today and in all
    (``sw.offers.redemption_totals``), for the staff screen."""
    return sw.offers.redemption_totals(timezone=timezone).to_dict()


__all__ = ["PREVIEW_ORDER_ID", "order_view", "till_totals"]
