"""The business rules every surface obeys, and category diversity.

Example:
    >>> from shelfwise.catalog import Item
    >>> from shelfwise.recommend.context import Context
    >>> passes_filters(Item("gin", "Gin", tags=("age_restricted",)), Context(), set(), None)
    False
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..catalog import Item
from .context import Context


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


def pick_diverse(items: Sequence[Item], k: int, per_category: int) -> tuple[list[Item], list[Item]]:
    """Best-first items with at most ``per_category`` per category, and those left over."""
    chosen: list[Item] = []
    overflow: list[Item] = []
    counts: Counter[str] = Counter()
    for item in items:
        if len(chosen) == k:
            break
        if item.category and counts[item.category] >= per_category:
            overflow.append(item)
            continue
        counts[item.category] += 1
        chosen.append(item)
    return chosen, overflow


def diversify(items: Sequence[Item], k: int, per_category: int) -> list[Item]:
    """Best-first items with at most ``per_category`` per category; fill up if short."""
    chosen, overflow = pick_diverse(items, k, per_category)
    if len(chosen) < k:  # a small catalog: relevance beats diversity
        chosen.extend(overflow[: k - len(chosen)])
    return chosen
