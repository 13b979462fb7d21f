"""Carts: the lines a shopper is about to buy (this module owns the ``carts`` table).

A cart changes only through ``cart_add``/``cart_remove`` events, applied in the same transaction
that records the event; checkout turns every line into a ``purchase`` event and empties it.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "milk", "name": "Milk", "price": 1.25}])
    ...     shopper = sw.start_session()
    ...     _ = shopper.add_to_cart("milk", 2)
    ...     [(line.item_id, line.quantity) for line in shopper.cart()]
    [('milk', 2)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import Item
from .events import Event, validate_event


@dataclass(frozen=True)
class CartLine:
    """One line of a shopper's cart."""

    item_id: str
    quantity: int
    added_ms: int


def apply_event(db: Any, shopper_id: str, event: Event) -> None:
    """Change the cart for a ``cart_add``/``cart_remove`` event, in the caller's transaction.

    Removing more than the line holds removes the line; other event types change nothing.
    """
    if event.type == "cart_add":
        db.execute(
            "INSERT INTO carts (shopper_id, item_id, quantity, added_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(shopper_id, item_id) DO UPDATE SET quantity = quantity + excluded.quantity",
            [shopper_id, event.item_id, event.quantity, event.ts_ms],
        )
    elif event.type == "cart_remove":
        db.execute(
            "UPDATE carts SET quantity = quantity - ? WHERE shopper_id = ? AND item_id = ? "
            "AND quantity > ?",
            [event.quantity, shopper_id, event.item_id, event.quantity],
        )
        db.execute(
            "DELETE FROM carts WHERE shopper_id = ? AND item_id = ? AND quantity <= ?",
            [shopper_id, event.item_id, event.quantity],
        )


def cart_lines(db: Any, shopper_id: str) -> list[CartLine]:
    """The shopper's cart, oldest line first (``db``: a Store or the open transaction)."""
    rows = db.query(
        "SELECT item_id, quantity, added_ms FROM carts WHERE shopper_id = ? ORDER BY rowid",
        [shopper_id],
    )
    return [CartLine(**row) for row in rows]


def empty(db: Any, shopper_id: str) -> None:
    """Remove every line of the shopper's cart, in the caller's transaction."""
    db.execute("DELETE FROM carts WHERE shopper_id = ?", [shopper_id])


def purchase_events(
    lines: Sequence[CartLine], items: Mapping[str, Item], *, store_id: str, stamp: int
) -> list[Event]:
    """One validated ``purchase`` event per cart line, valued at the catalog price.

    Example:
        >>> [e.quantity for e in purchase_events([CartLine("tea", 3, 0)], {}, store_id="s", stamp=1_700_000_000_000)]
        [3]
    """
    return [
        validate_event(
            {
                "type": "purchase",
                "item_id": line.item_id,
                "quantity": line.quantity,
                "value": (items[line.item_id].price or 0.0) * line.quantity
                if line.item_id in items
                else None,
                "store_id": store_id,
                "ts_ms": stamp,
            }
        )
        for line in lines
    ]


def merge_into(db: Any, from_shopper: str, to_shopper: str) -> None:
    """Add one shopper's cart lines to another's (quantities add up), then empty the first."""
    db.execute(
        "INSERT INTO carts (shopper_id, item_id, quantity, added_ms) "
        "SELECT ?, item_id, quantity, added_ms FROM carts WHERE shopper_id = ? ORDER BY rowid "
        "ON CONFLICT(shopper_id, item_id) DO UPDATE SET quantity = quantity + excluded.quantity",
        [to_shopper, from_shopper],
    )
    empty(db, from_shopper)
