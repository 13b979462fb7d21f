"""A store's in-store barcode layout: where prefix 20-29 codes keep the item and the value.

The layout is a store setting (the ``meta`` table), validated before it is saved, so the kiosk,
the CLI and the app read the same one. See ``shelfwise.barcode.gtin`` for the default layout.

Example:
    >>> layout_from_dict({"price_decimals": 1}).price_decimals
    1
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .._errors import InvalidInput
from ..store.connection import Store

LAYOUT_KEY = "scan.in_store_layout"  # the store's meta table: JSON of an InStoreLayout


@dataclass(frozen=True)
class InStoreLayout:
    """Where a store's restricted-circulation (prefix 20-29) codes keep item and value.

    Positions index the 13-digit form. ``weight_prefixes`` carry grams, ``price_prefixes``
    carry cents (``price_decimals`` digits after the point); any other 2x prefix is a fixed
    in-store item whose whole code is its key.
    """

    item_start: int = 2
    item_length: int = 5
    value_start: int = 7
    value_length: int = 5
    weight_prefixes: tuple[str, ...] = ("21", "22")
    price_prefixes: tuple[str, ...] = ("23", "24", "25", "26", "27", "28", "29")
    price_decimals: int = 2

    def __post_init__(self) -> None:
        item = range(self.item_start, self.item_start + self.item_length)
        value = range(self.value_start, self.value_start + self.value_length)
        if (
            min(self.item_start, self.value_start) < 2
            or min(self.item_length, self.value_length) < 1
        ):
            raise InvalidInput(
                "in-store layout fields start after the 2-digit prefix and are non-empty"
            )
        if item.stop > 12 or value.stop > 12:
            raise InvalidInput("in-store layout fields must end before the check digit (12)")
        if set(item) & set(value):
            raise InvalidInput("in-store layout item and value fields must not overlap")


DEFAULT_LAYOUT = InStoreLayout()


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
