"""The facade's verbs under their new names, on either side of the rename.

main renamed ``erase_shopper`` -> ``forget_shopper``, ``purge_events`` -> ``forget_events``,
``k=`` -> ``limit=`` and ``Catalog.all_items`` -> ``Catalog.all`` (the old names warn) while
this CLI was written against the old ones. The commands call these four functions so they
work, without a deprecation warning, before and after that merge; once both are on one
branch, call the new names directly and delete this module.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     all_items(sw)
    []
"""

from __future__ import annotations

import inspect
from typing import Any

from .. import Item, Recommendation, Shelfwise


def forget_shopper(sw: Shelfwise, shopper_id: str) -> int:
    """``sw.forget_shopper(shopper_id)`` (``erase_shopper`` before the rename)."""
    forget = getattr(sw, "forget_shopper", None) or sw.erase_shopper
    removed: int = forget(shopper_id)
    return removed


def forget_events(sw: Shelfwise, *, older_than_days: float, now: int | None) -> int:
    """``sw.forget_events(...)`` (``purge_events`` before the rename)."""
    forget = getattr(sw, "forget_events", None) or sw.purge_events
    removed: int = forget(older_than_days=older_than_days, now=now)
    return removed


def recommend(sw: Shelfwise, *, limit: int, **options: Any) -> list[Recommendation]:
    """``sw.recommend(..., limit=...)`` (``k=`` before the rename)."""
    takes_limit = "limit" in inspect.signature(sw.recommend).parameters
    call: Any = sw.recommend
    found: list[Recommendation] = call(**options, **{"limit" if takes_limit else "k": limit})
    return found


def all_items(sw: Shelfwise) -> list[Item]:
    """``sw.catalog.all()`` (``all_items()`` before the rename)."""
    every = getattr(type(sw.catalog), "all", None)
    items: list[Item] = every(sw.catalog) if every else sw.catalog.all_items()
    return items


__all__ = ["all_items", "forget_events", "forget_shopper", "recommend"]
