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
from typing import Any, Protocol

from ._errors import InvalidBarcode, UnknownItem
from .barcode.gtin import ParsedBarcode, parse_barcode
from .barcode.layout import in_store_layout
from .catalog import Catalog, Item
from .clock import now_ms
from .identity import get_shopper
from .offers import Offers, RankedOffer
from .recommend.context import Context
from .recommend.reasons import reason, when_code
from .recommend.recommender import Recommendation, Recommender
from .store.connection import Store

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


class ScanShopper(Protocol):
    """What a scan needs of the shopper (``shelfwise.Shopper`` is one)."""

    shopper_id: str

    def track(self, event_type: str, item: str | None = None, **fields: Any) -> Any: ...

    def context(self, *, now: int | None = None) -> Context: ...


def _miss(shopper: ScanShopper, code: str, reason: str) -> None:
    shown = (code or "").strip()[:64] or "(empty)"
    shopper.track("scan_miss", payload={"code": shown, "reason": reason})


def find_item(catalog: Catalog, parsed: ParsedBarcode) -> Item:
    """The catalog item for a parsed code (base code for variable measure, UPC-E/EAN-8 both)."""
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
    code: str,
    *,
    shopper: ScanShopper,
    store: Store,
    catalog: Catalog,
    recommender: Recommender,
    offers: Offers,
    symbology: str | None = None,
    channel: str = "kiosk",
    now: int | None = None,
) -> ScanCard:
    """Scan a code for a shopper: record it and build the suggestion card.

    Example: see the module docstring (``Shopper.scan`` passes its collaborators).
    """
    if not isinstance(code, str):
        raise InvalidBarcode(
            f"a barcode is text, not {type(code).__name__}",
            code=str(code)[:64],
            reason="characters",
        )
    layout = in_store_layout(store)  # the store's own, so kiosk, CLI and app agree
    try:
        parsed = parse_barcode(code, symbology=symbology, layout=layout)
    except InvalidBarcode as exc:
        _miss(shopper, code, exc.reason)
        raise
    try:
        item = find_item(catalog, parsed)
    except UnknownItem:
        _miss(shopper, parsed.code, "not_in_catalog")
        raise
    stamp = now_ms() if now is None else now
    shopper.track("scan", item.item_id, payload={"gtin": parsed.gtin})
    context = shopper.context(now=stamp)
    goes_with = recommender.recommend("complements", context, limit=GOES_WITH, item=item.item_id)
    similar = recommender.recommend("similar", context, limit=20, item=item.item_id)
    deals: list[RankedOffer] = []
    if offers.all():  # evaluate() checks offers consent itself
        ctx = offers.context(shopper.shopper_id, channel=channel, item_id=item.item_id, now=stamp)
        deals = offers.eligible(ctx, limit=3, record=True)
    is_member = get_shopper(store, shopper.shopper_id).is_member
    note = (
        _note(store, shopper.shopper_id, item, stamp)
        if is_member and "personalization" in context.consents
        else None
    )
    price = parsed.price if parsed.price is not None else item.price
    alternatives = _alternatives(similar, item)
    return ScanCard(parsed, item, price, tuple(deals), tuple(goes_with), tuple(alternatives), note)


def _alternatives(similar: list[Recommendation], item: Item) -> list[Recommendation]:
    """Similar items in stock: the cheaper ones in the same category when there are any,
    else the closest of the same category, else (reason says so) of another category."""

    def saving(other: Item) -> float:
        if item.price is None or other.price is None:
            return 0.0
        return max(0.0, item.price - other.price)

    def cheaper(other: Item) -> bool:
        return saving(other) > 0

    def same_category(other: Item) -> bool:
        return not item.category or other.category == item.category

    savings = [r for r in similar if same_category(r.item) and cheaper(r.item)]
    if savings and item.in_stock:
        picked = savings
    else:  # stable sort: similarity order within each group
        picked = sorted(similar, key=lambda r: (not same_category(r.item), not cheaper(r.item)))
    chosen = []
    for rec in picked[:ALTERNATIVES]:
        other = rec.item
        why = rec.why
        if not same_category(other) and why is not None:
            pass  # the similar surface names the other category
        elif cheaper(other):
            why = reason("cheaper_alternative", item=item.name, saving=f"{saving(other):.2f}")
        else:
            why = reason("similar_alternative", item=item.name)
        if not item.in_stock and same_category(other):
            why = reason("sold_out_alternative", item=item.name)
        text = why.text() if why is not None else rec.reason
        chosen.append(replace(rec, reason=text, why=why, surface="alternatives"))
    return chosen


def _note(store: Store, shopper_id: str, item: Item, stamp: int) -> str | None:
    rows = store.query(
        "SELECT max(ts_ms) AS last, count(*) AS n FROM events "
        "WHERE shopper_id = ? AND item_id = ? AND type = 'purchase' AND ts_ms <= ?",
        [shopper_id, item.item_id, stamp],
    )
    if not rows or rows[0]["last"] is None:
        return None
    return reason("bought_ago", when=when_code(stamp, rows[0]["last"])).text()


__all__ = ["ScanCard", "ScanShopper", "find_item", "scan"]
