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

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from ._errors import InvalidBarcode, InvalidInput, UnknownItem
from ._time import now_ms
from .barcode.gtin import DEFAULT_LAYOUT, InStoreLayout, ParsedBarcode, parse_barcode
from .catalog import Item
from .offers.engine import RankedOffer
from .recommend.recommender import Recommendation, _ago
from .store.connection import Store

if TYPE_CHECKING:
    from ._facade import Shopper

logger = logging.getLogger(__name__)

GOES_WITH = 3
ALTERNATIVES = 3
LAYOUT_KEY = "scan.in_store_layout"  # the store's meta table: JSON of an InStoreLayout


# -- the store's in-store barcode layout -------------------------------------------------------
def layout_to_dict(layout: InStoreLayout) -> dict[str, Any]:
    """An ``InStoreLayout`` as JSON-ready data (prefix tuples as lists).

    Example:
        >>> layout_to_dict(DEFAULT_LAYOUT)["weight_prefixes"]
        ['21', '22']
    """
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(layout).items()}


def layout_from_dict(data: Mapping[str, Any]) -> InStoreLayout:
    """A validated ``InStoreLayout`` from JSON-ready data; fields left out keep the default.

    ``InvalidInput`` names the field: positions index the 13-digit code, the item and value
    fields must not overlap, lie after the 2-digit prefix and before the check digit, and a
    prefix (20-29) is either weight or price, not both.

    Example:
        >>> layout_from_dict({"weight_prefixes": ["21"], "price_prefixes": ["22", "23"]}).price_prefixes
        ('22', '23')
        >>> layout_from_dict({"value_start": 5})
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: in-store layout: the item digits 2-6 and the value digits 5-9 overlap
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("in-store layout: expected a mapping of layout fields")
    known = set(layout_to_dict(DEFAULT_LAYOUT))
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(
            f"in-store layout: unknown field(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    merged = {**layout_to_dict(DEFAULT_LAYOUT), **data}
    numbers = {}
    for name in ("item_start", "item_length", "value_start", "value_length", "price_decimals"):
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"in-store layout: {name} must be an integer, not {value!r}")
        numbers[name] = value
    item = (numbers["item_start"], numbers["item_start"] + numbers["item_length"])
    value = (numbers["value_start"], numbers["value_start"] + numbers["value_length"])
    for name, (start, end) in (("item", item), ("value", value)):
        if start < 2 or end <= start or end > 12:
            raise InvalidInput(
                f"in-store layout: the {name} digits must lie within positions 2-11 "
                f"(after the prefix, before the check digit), not {start}-{end - 1}"
            )
    if item[0] < value[1] and value[0] < item[1]:
        raise InvalidInput(
            f"in-store layout: the item digits {item[0]}-{item[1] - 1} and the value digits "
            f"{value[0]}-{value[1] - 1} overlap"
        )
    if not 0 <= numbers["price_decimals"] <= 4:
        raise InvalidInput("in-store layout: price_decimals must be between 0 and 4")
    prefixes = {}
    for name in ("weight_prefixes", "price_prefixes"):
        raw = merged[name]
        if isinstance(raw, str) or not isinstance(raw, list | tuple):
            raise InvalidInput(f"in-store layout: {name} must be a list like ['21', '22']")
        for prefix in raw:
            if not (isinstance(prefix, str) and len(prefix) == 2 and "20" <= prefix <= "29"):
                raise InvalidInput(
                    f"in-store layout: {name} holds {prefix!r}; in-store prefixes are '20'-'29'"
                )
        prefixes[name] = tuple(dict.fromkeys(raw))
    both = set(prefixes["weight_prefixes"]) & set(prefixes["price_prefixes"])
    if both:
        raise InvalidInput(
            f"in-store layout: prefix(es) {', '.join(sorted(both))} cannot carry both a weight "
            "and a price"
        )
    return InStoreLayout(
        item_start=numbers["item_start"],
        item_length=numbers["item_length"],
        value_start=numbers["value_start"],
        value_length=numbers["value_length"],
        weight_prefixes=prefixes["weight_prefixes"],
        price_prefixes=prefixes["price_prefixes"],
        price_decimals=numbers["price_decimals"],
    )


def in_store_layout(store: Store) -> InStoreLayout:
    """The store's in-store barcode layout (the documented default until one is set).

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     in_store_layout(sw.store) == DEFAULT_LAYOUT
        True
    """
    raw = store.get_meta(LAYOUT_KEY)
    if not raw:
        return DEFAULT_LAYOUT
    try:
        return layout_from_dict(json.loads(raw))
    except (ValueError, InvalidInput) as exc:
        # Failing closed: a wrong layout would read weights as prices; set it again.
        raise InvalidInput(
            f"the store's in-store barcode layout setting is unreadable ({exc}); "
            "set it again with shelfwise barcode-layout --set"
        ) from exc


def set_in_store_layout(
    store: Store, layout: InStoreLayout | Mapping[str, Any] | None
) -> InStoreLayout:
    """Save the store's in-store barcode layout (validated first); None restores the default.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     set_in_store_layout(sw.store, {"price_decimals": 1}).price_decimals
        1
    """
    if layout is None:
        chosen = DEFAULT_LAYOUT
    elif isinstance(layout, InStoreLayout):
        chosen = layout_from_dict(layout_to_dict(layout))
    else:
        chosen = layout_from_dict(layout)
    store.set_meta(LAYOUT_KEY, json.dumps(layout_to_dict(chosen), sort_keys=True))
    return chosen


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
    layout = in_store_layout(sw.store)  # the store's own, so kiosk, CLI and app agree
    try:
        parsed = parse_barcode(code, symbology=symbology, layout=layout)
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


__all__ = [
    "ScanCard",
    "find_item",
    "in_store_layout",
    "layout_from_dict",
    "layout_to_dict",
    "scan",
    "set_in_store_layout",
]
