"""The business rules every surface obeys, the caller's item filters, and category diversity.

``ItemFilter`` is what a caller may ask on any surface and on search: a price range, brands,
categories, tags every item must carry or must not carry, and allow/deny lists of item ids.

Example:
    >>> from shelfwise.catalog import Item
    >>> milk = Item("m", "Milk", brand="acme", price=1.2)
    >>> ItemFilter.build(max_price=2.0, brand="Acme").allows(milk)
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidInput
from ..catalog import Item
from .context import Context

MAX_LISTED = 1000  # ids in an include/exclude list, names in a brand/category/tag list
FILTER_KEYS = (
    "brand",
    "category",
    "exclude",
    "exclude_tags",
    "include",
    "max_price",
    "min_price",
    "tags",
)


def _names(value: Any, what: str) -> frozenset[str]:
    """One name or a list of names, compared case-insensitively."""
    if value is None:
        return frozenset()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, Iterable) or isinstance(values, Mapping | bytes):
        raise InvalidInput(f"{what} must be a name or a list of names")
    names = list(values)
    if len(names) > MAX_LISTED or not all(isinstance(v, str) and v.strip() for v in names):
        raise InvalidInput(f"{what} must be at most {MAX_LISTED} non-empty names")
    return frozenset(v.strip().casefold() for v in names)


def _ids(value: Any, what: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a list of item ids")
    ids = list(value)
    if len(ids) > MAX_LISTED or not all(isinstance(v, str) and v for v in ids):
        raise InvalidInput(f"{what} must be at most {MAX_LISTED} item ids")
    return frozenset(ids)


def _price(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number, not {value!r}")
    if value < 0:
        raise InvalidInput(f"{what} must not be negative")
    return float(value)


@dataclass(frozen=True)
class ItemFilter:
    """What a caller asks of the items on a surface or in search (all conditions must hold)."""

    min_price: float | None = None
    max_price: float | None = None
    brands: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()
    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        min_price: float | None = None,
        max_price: float | None = None,
        brand: str | Iterable[str] | None = None,
        category: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        exclude_tags: str | Iterable[str] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> ItemFilter:
        """A validated filter; ``InvalidInput`` says which condition is malformed.

        Example:
            >>> ItemFilter.build(min_price=3, max_price=1)
            Traceback (most recent call last):
            ...
            shelfwise.InvalidInput: min_price 3.0 is above max_price 1.0
        """
        low, high = _price(min_price, "min_price"), _price(max_price, "max_price")
        if low is not None and high is not None and low > high:
            raise InvalidInput(f"min_price {low} is above max_price {high}")
        return cls(
            min_price=low,
            max_price=high,
            brands=_names(brand, "brand"),
            categories=_names(category, "category"),
            tags=_names(tags, "tags"),
            exclude_tags=_names(exclude_tags, "exclude_tags"),
            include=None if include is None else _ids(include, "include"),
            exclude=_ids(exclude, "exclude"),
        )

    @classmethod
    def of(cls, value: ItemFilter | Mapping[str, Any] | None) -> ItemFilter:
        """A filter from a mapping of ``build``'s keywords (or an ``ItemFilter``, or nothing)."""
        if value is None:
            return NO_FILTER
        if isinstance(value, ItemFilter):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInput("filters must be a mapping such as {'max_price': 2.5}")
        unknown = sorted(set(map(str, value)) - set(FILTER_KEYS))
        if unknown:
            raise InvalidInput(
                f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTER_KEYS)}"
            )
        return cls.build(**value)

    def allows(self, item: Item) -> bool:
        """Whether ``item`` meets every condition."""
        if self.include is not None and item.item_id not in self.include:
            return False
        if item.item_id in self.exclude:
            return False
        if self.min_price is not None and (item.price is None or item.price < self.min_price):
            return False
        if self.max_price is not None and (item.price is None or item.price > self.max_price):
            return False
        if self.brands and (item.brand or "").casefold() not in self.brands:
            return False
        if self.categories and (item.category or "").casefold() not in self.categories:
            return False
        tags = {t.casefold() for t in item.tags}
        return self.tags <= tags and not (self.exclude_tags & tags)


NO_FILTER = ItemFilter()


def passes_filters(item: Item, context: Context, bought: set[str], anchor: Item | None) -> bool:
    """The business rules every surface obeys."""
    if not item.in_stock or item.item_id in context.cart:
        return False
    if anchor is not None and item.item_id == anchor.item_id:
        return False
    if item.sensitive and "sensitive" not in context.consents:
        return False
    if item.age_restricted and not context.age_verified:
        return False
    return item.repeatable or item.item_id not in bought


class DiversePage:
    """A page filled best first with at most ``per_category`` items per category; items over
    their category's share wait, and fill the page only if it would otherwise be short.

    Example:
        >>> from shelfwise.catalog import Item
        >>> page = DiversePage(2, per_category=1)
        >>> for name in ("a", "b", "c"):
        ...     page.offer(Item(name, name, category="tea" if name != "c" else "milk"))
        >>> [item.item_id for item in page.items()]
        ['a', 'c']
    """

    def __init__(self, limit: int, per_category: int) -> None:
        self.limit = limit
        self.per_category = per_category
        self.chosen: list[Item] = []
        self.overflow: list[Item] = []
        self._counts: dict[str, int] = {}

    @property
    def full(self) -> bool:
        return len(self.chosen) >= self.limit

    def offer(self, item: Item) -> None:
        """Take ``item`` (the next best), unless the page is full."""
        if self.full:
            return
        taken = self._counts.get(item.category, 0)
        if item.category and taken >= self.per_category:
            self.overflow.append(item)
            return
        self._counts[item.category] = taken + 1
        self.chosen.append(item)

    def items(self) -> list[Item]:
        """The page: the diverse picks, then waiting items if it is short (a small catalog:
        relevance beats diversity)."""
        return self.chosen + self.overflow[: self.limit - len(self.chosen)]


def _filled(items: Sequence[Item], k: int, per_category: int) -> DiversePage:
    page = DiversePage(k, per_category)
    for item in items:
        if page.full:
            break
        page.offer(item)
    return page


def pick_diverse(items: Sequence[Item], k: int, per_category: int) -> tuple[list[Item], list[Item]]:
    """Best-first items with at most ``per_category`` per category, and those left over."""
    page = _filled(items, k, per_category)
    return page.chosen, page.overflow


def diversify(items: Sequence[Item], k: int, per_category: int) -> list[Item]:
    """Best-first items with at most ``per_category`` per category; fill up if short."""
    return _filled(items, k, per_category).items()
