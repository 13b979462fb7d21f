"""Watches: a member asks to hear when an item is back in stock or its price drops.

``shopper.watch(item, kind=...)`` keeps a row in ``watches`` (this module owns the table);
SQL triggers on ``items`` (migration 016) count every catalog change that matters to a watch
in the catalog write's own transaction, whatever wrote it (an import, a ``replace`` import,
``set_stock``, a signed catalog document):

- ``back_in_stock``: the item goes from out of stock to in stock;
- ``price_drop``: the price falls below the lowest price since the watch was set (starting
  at the price then), so 10 -> 8 counts, 8 -> 9 -> 8.5 does not, 8.5 -> 7 counts again.

An offer with ``trigger: {type: back_in_stock}`` (or ``price_drop``) turns each counted
change into one fire for the watching member (``shelfwise.offers.firing``), once per watch
and change, under the offer's consent, frequency-cap and quiet-hour rules.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 4.0}])
    ...     member = sw.member("L-1", consents={"offers": True})
    ...     watch = member.watch("tea", kind="price_drop")
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 3.5}])
    ...     watch.watch_price, [w.pending for w in member.watches()]
    (4.0, [1])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .._errors import InvalidInput
from ..catalog import Item
from ..store.connection import Store

WATCH_KINDS = ("back_in_stock", "price_drop")


@dataclass(frozen=True)
class Watch:
    """A member's watch on an item; ``pending``: counted changes not fired yet."""

    shopper_id: str
    item_id: str
    kind: str
    watch_price: float | None
    created_ms: int
    changes: int = 0
    fired_changes: int = 0

    @property
    def pending(self) -> int:
        return self.changes - self.fired_changes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pending": self.pending}


_COLUMNS = "shopper_id, item_id, kind, watch_price, created_ms, changes, fired_changes"


def check_kind(kind: object) -> str:
    """``kind`` if it is a watch kind, else ``InvalidInput`` naming the kinds.

    Example:
        >>> check_kind("sale")
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: watch kind 'sale' is not one of: back_in_stock, price_drop
    """
    if kind not in WATCH_KINDS:
        raise InvalidInput(f"watch kind {kind!r} is not one of: {', '.join(WATCH_KINDS)}")
    return str(kind)


def add_watch(store: Store, shopper_id: str, item: Item, kind: str, now: int) -> Watch:
    """Watch ``item`` for ``kind`` (a watch already there is kept as it is); returns it."""
    if kind == "price_drop" and item.price is None:
        raise InvalidInput(f"item {item.item_id!r} has no price: a price drop cannot be watched")
    with store.write() as db:
        db.execute(
            "INSERT INTO watches (shopper_id, item_id, kind, watch_price, low_price, "
            "seen_in_stock, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (shopper_id, item_id, kind) DO NOTHING",
            [shopper_id, item.item_id, kind, item.price, item.price, int(item.in_stock), now],
        )
    [watch] = watches_of(store, shopper_id, item_id=item.item_id, kind=kind)
    return watch


def remove_watch(store: Store, shopper_id: str, item_id: str, kind: str | None) -> int:
    """Stop watching ``item_id`` (for ``kind``, or every kind); returns the watches removed."""
    with store.write() as db:
        cursor = db.execute(
            "DELETE FROM watches WHERE shopper_id = ? AND item_id = ? AND kind = coalesce(?, kind)",
            [shopper_id, item_id, kind],
        )
        return int(cursor.rowcount)


def watches_of(
    store: Store, shopper_id: str, *, item_id: str | None = None, kind: str | None = None
) -> list[Watch]:
    """The member's watches, oldest first (only ``item_id``/``kind`` when given)."""
    rows = store.rows(
        f"SELECT {_COLUMNS} FROM watches WHERE shopper_id = ? AND item_id = coalesce(?, item_id) "
        "AND kind = coalesce(?, kind) ORDER BY created_ms, item_id, kind",
        [shopper_id, item_id, kind],
    )
    return [Watch(*row) for row in rows]


def due(db: Any, shopper_id: str) -> dict[str, dict[str, int]]:
    """Kind -> {item: changes counted} for the watches with a change not fired yet, in the
    caller's transaction (items in id order)."""
    found: dict[str, dict[str, int]] = {}
    for kind, item_id, changes in db.execute(
        "SELECT kind, item_id, changes FROM watches WHERE shopper_id = ? "
        "AND changes > fired_changes ORDER BY item_id",
        [shopper_id],
    ).fetchall():
        found.setdefault(kind, {})[item_id] = int(changes)
    return found


def mark_fired(db: Any, shopper_id: str, kind: str, fired: Mapping[str, int]) -> None:
    """These watches fired up to the given change counts (``due``'s, in the firing's
    transaction: nothing counted since then)."""
    db.conn.executemany(
        "UPDATE watches SET fired_changes = ? WHERE shopper_id = ? AND kind = ? AND item_id = ?",
        [[changes, shopper_id, kind, item_id] for item_id, changes in fired.items()],
    )


def watchers_due(db: Any) -> list[str]:
    """Members with a watch change not fired yet (a sweep's candidates)."""
    rows = db.execute(
        "SELECT DISTINCT shopper_id FROM watches WHERE changes > fired_changes ORDER BY shopper_id"
    ).fetchall()
    return [r[0] for r in rows]


__all__ = [
    "WATCH_KINDS",
    "Watch",
    "add_watch",
    "check_kind",
    "due",
    "mark_fired",
    "remove_watch",
    "watchers_due",
    "watches_of",
]
