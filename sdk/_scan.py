"""Scan suggestions: a barcode in, a card out (the item, deals, goes-with, alternatives, a note).

Every scan is recorded: a hit as a ``scan`` event, a miss as a ``scan_miss`` whose payload
says why (``check_digit``, ``length``, ``characters``, ``empty`` or ``not_in_catalog``), so the
store's summary can count both. The caller still gets a typed error for a miss:
``InvalidBarcode`` (the code itself is wrong) or ``UnknownItem`` (valid, not sold here).

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "milk", "name": "Whole milk",
    ...                                  "gtin": "036000291452", "price": 1.19}])
    ...     card = sw.start_session().scan("036000291452")
    ...     card.item.name, card.price
    ('Whole milk', 1.19)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._barcode import ParsedBarcode, parse_barcode
from ._catalog import Item
from ._errors import InvalidBarcode, UnknownItem
from ._offers import RankedOffer
from ._recommend import Recommendation, _ago
from ._store import now_ms

if TYPE_CHECKING:
    from ._facade import Shopper

logger = logging.getLogger(__name__)

GOES_WITH = 3
ALTERNATIVES = 3


@dataclass(frozen=True)
class ScanCard:
    """What a shopper sees after scanning: the item and what to do with it."""

    barcode: ParsedBarcode
    item: Item
    price: float | None
    deals: tuple[RankedOffer, ...] = ()
    goes_with: tuple[Recommendation, ...] = ()
    alternatives: tuple[Recommendation, ...] = ()
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the kiosk screen and ``shelfwise scan --json`` show)."""
        return {
            "barcode": self.barcode.to_dict(),
            "item": self.item.to_dict(),
            "price": self.price,
            "deals": [d.to_dict() for d in self.deals],
            "goes_with": [r.to_dict() for r in self.goes_with],
            "alternatives": [r.to_dict() for r in self.alternatives],
            "note": self.note,
        }


def _miss(shopper: Shopper, code: str, reason: str) -> None:
    shown = (code or "").strip()[:64] or "(empty)"
    shopper.track("scan_miss", payload={"code": shown, "reason": reason})


def find_item(shopper: Shopper, parsed: ParsedBarcode) -> Item:
    """The catalog item for a parsed code (base code for variable measure, UPC-E/EAN-8 both)."""
    catalog = shopper._sw.catalog
    for key in (parsed.lookup_gtin, *parsed.alternatives):
        try:
            return catalog.by_gtin(key)
        except UnknownItem:
            continue
    raise UnknownItem(
        f"barcode {parsed.code} is a valid {parsed.form} but is not in this store's catalog",
        item=parsed.gtin,
    )


def scan(
    shopper: Shopper,
    code: str,
    *,
    symbology: str | None = None,
    channel: str = "kiosk",
    now: int | None = None,
) -> ScanCard:
    """Scan a code for a shopper: record it and build the suggestion card.

    Example: see the module docstring.
    """
    sw = shopper._sw
    try:
        parsed = parse_barcode(code, symbology=symbology)
    except InvalidBarcode as exc:
        _miss(shopper, str(code), exc.reason)
        raise
    try:
        item = find_item(shopper, parsed)
    except UnknownItem:
        _miss(shopper, parsed.code, "not_in_catalog")
        raise
    stamp = now_ms() if now is None else now
    shopper.track("scan", item.item_id, payload={"gtin": parsed.gtin})
    context = shopper.context(now=stamp)
    rec = sw.recommender
    goes_with = rec.recommend("complements", context, k=GOES_WITH, item=item.item_id)
    alternatives = _alternatives(rec.recommend("similar", context, k=20, item=item.item_id), item)
    deals: list[RankedOffer] = []
    if sw.offers.all():  # evaluate() checks offers consent itself
        ctx = sw.offers.context(
            shopper.shopper_id, channel=channel, item_id=item.item_id, now=stamp
        )
        deals = sw.offers.eligible(ctx, limit=3, record=True)
    info = shopper.info()
    note = (
        _note(shopper, item, stamp)
        if info.is_member and "personalization" in context.consents
        else None
    )
    price = parsed.price if parsed.price is not None else item.price
    return ScanCard(parsed, item, price, tuple(deals), tuple(goes_with), tuple(alternatives), note)


def _alternatives(similar: list[Recommendation], item: Item) -> list[Recommendation]:
    """Similar items in stock that cost less (any similar item when this one is sold out)."""
    chosen = []
    for rec in similar:
        other = rec.item
        if item.in_stock and (
            item.price is None or other.price is None or other.price >= item.price
        ):
            continue
        saving = (
            f", {item.price - other.price:.2f} cheaper"
            if item.price is not None and other.price is not None and other.price < item.price
            else ""
        )
        reason = (
            f"similar to {item.name}{saving}"
            if item.in_stock
            else f"{item.name} is sold out: similar"
        )
        chosen.append(replace(rec, reason=reason, surface="alternatives"))
        if len(chosen) == ALTERNATIVES:
            break
    return chosen


def _note(shopper: Shopper, item: Item, stamp: int) -> str | None:
    rows = shopper._sw.store.query(
        "SELECT max(ts_ms) AS last, count(*) AS n FROM events "
        "WHERE shopper_id = ? AND item_id = ? AND type = 'purchase' AND ts_ms <= ?",
        [shopper.shopper_id, item.item_id, stamp],
    )
    if not rows or rows[0]["last"] is None:
        return None
    return f"you bought this {_ago(stamp, rows[0]['last'])}"


__all__ = ["ScanCard", "find_item", "scan"]
