"""Triggers: events that open an offer to one shopper, decided by pure functions.

An offer with a ``trigger`` is shown or applied only to a shopper the trigger fired for
(reason ``not_triggered`` otherwise), until the fire's ``valid_days`` run out:

```yaml
trigger: {type: abandoned_cart, after_hours: 2}     # put in the cart, not bought for 2 h
trigger: {type: repeated_views, views: 5, days: 7}  # an item viewed 5 times in 7 days, not bought
trigger: {type: win_back, lapsed_days: 60}          # a member who bought, not for 60 days
trigger: {type: back_in_stock}                      # a watched item is in stock again
trigger: {type: price_drop}                         # a watched item's price hit a new low
# each also: valid_days (7): the offer stays open that long after it fired;
# all but the watches: window_days (30): fires at most once per shopper in that many days
# (a watch fires once per change instead: shelfwise.offers.watches)
```

``fires(trigger, facts, now)`` says whether the trigger fires for a shopper's ``Facts`` (what
their events say), and for which item; ``shelfwise.offers.firing`` reads the facts, keeps the
fires and respects consent and quiet hours.

Example:
    >>> trigger = parse_trigger({"type": "repeated_views", "views": 3, "days": 7}, "o")
    >>> facts = Facts(views={"tea": (3, 1_000), "cake": (1, 2_000)})
    >>> fires(trigger, facts, now=5_000)
    ['tea']
    >>> fires(trigger, Facts(views={"tea": (3, 1_000)}, bought_since={"tea": 1_500}), now=5_000)
    []
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidOffer
from ..clock import DAY_MS, HOUR_MS

TRIGGER_TYPES = ("abandoned_cart", "back_in_stock", "price_drop", "repeated_views", "win_back")
# Fired by a member's watch on an item (``shelfwise.offers.watches``), once per change.
WATCH_TRIGGERS = frozenset({"back_in_stock", "price_drop"})
_KEYS: dict[str, set[str]] = {
    "abandoned_cart": {"after_hours"},
    "back_in_stock": set(),
    "price_drop": set(),
    "repeated_views": {"views", "days"},
    "win_back": {"lapsed_days"},
}


@dataclass(frozen=True)
class Trigger:
    """When an offer opens to one shopper (see the module docstring)."""

    type: str
    after_hours: float = 2.0
    views: int = 3
    days: float = 7.0
    lapsed_days: float = 60.0
    window_days: float = 30.0
    valid_days: float = 7.0

    @property
    def watched(self) -> bool:
        """Fired by watches: once per watch and change, no ``window_days``."""
        return self.type in WATCH_TRIGGERS

    @property
    def lookback_ms(self) -> int:
        """How far back the facts must reach for this trigger."""
        return int(self.days * DAY_MS) if self.type == "repeated_views" else 0


@dataclass(frozen=True)
class Facts:
    """What one shopper's events say, as the triggers read them.

    ``last_purchase_ms``: their latest purchase (None: never); ``cart_units`` and
    ``last_cart_add_ms``: units put in the cart (less those taken out) since that purchase,
    and the latest add; ``views``: item -> (views in the lookback, first of them);
    ``bought_since``: item -> latest purchase of it in the lookback; ``watched``: watch
    kind -> items whose watch has a change that has not fired yet."""

    last_purchase_ms: int | None = None
    cart_units: int = 0
    last_cart_add_ms: int | None = None
    views: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    bought_since: Mapping[str, int] = field(default_factory=dict)
    watched: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def parse_trigger(raw: Any, oid: str) -> Trigger | None:
    """Validate an offer's ``trigger`` mapping; ``InvalidOffer`` names the field.

    Example:
        >>> parse_trigger({"type": "win_back", "lapsed_days": 0}, "o")
        Traceback (most recent call last):
        ...
        shelfwise.InvalidOffer: offer o: trigger.lapsed_days must be a positive number
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or raw.get("type") not in _KEYS:
        raise InvalidOffer(f"offer {oid}: trigger.type must be one of {', '.join(TRIGGER_TYPES)}")
    kind = raw["type"]
    common = {"valid_days"} if kind in WATCH_TRIGGERS else {"window_days", "valid_days"}
    extra = sorted(set(raw) - _KEYS[kind] - {"type"} - common)
    if extra:
        raise InvalidOffer(f"offer {oid}: unknown trigger field(s) for {kind}: {', '.join(extra)}")
    values: dict[str, Any] = {}
    for key in (*_KEYS[kind], *sorted(common)):
        if key not in raw:
            continue
        value = raw[key]
        integer = key == "views"
        kinds = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value <= 3650:
            what = "a positive integer" if integer else "a positive number"
            raise InvalidOffer(f"offer {oid}: trigger.{key} must be {what}")
        values[key] = value
    return Trigger(kind, **values)


def fires(trigger: Trigger, facts: Facts, now: int) -> list[str | None]:
    """The instances ``trigger`` fires for at ``now`` given ``facts``: item ids for repeated
    views and watches, ``[None]`` for a shopper-wide trigger, ``[]`` when it does not fire."""
    if trigger.watched:
        return list(facts.watched.get(trigger.type, ()))
    if trigger.type == "abandoned_cart":
        added = facts.last_cart_add_ms
        left_for = int(trigger.after_hours * HOUR_MS)
        return (
            [None] if facts.cart_units > 0 and added is not None and now - added >= left_for else []
        )
    if trigger.type == "win_back":
        last = facts.last_purchase_ms
        return [None] if last is not None and now - last >= trigger.lapsed_days * DAY_MS else []
    viewed: list[str | None] = [
        item
        for item, (count, first) in sorted(facts.views.items())
        if count >= trigger.views and facts.bought_since.get(item, -1) < first
    ]
    return viewed


__all__ = ["TRIGGER_TYPES", "WATCH_TRIGGERS", "Facts", "Trigger", "fires", "parse_trigger"]
