"""Rewards: what an offer gives, parsed and applied to the lines of a basket, as pure functions.

Seven kinds, each a ``Reward`` (``type`` says which):

- ``percent`` (``value`` % off, capped by ``max_discount``), ``amount`` (``value`` off);
- ``free_item``: ``quantity`` units of ``item`` free (the item must be in the basket);
- ``buy_x_get_y``: of every ``buy`` + ``get`` units, the ``get`` cheapest are ``value`` % off (100);
- ``bundle_price``: ``quantity`` units for ``value`` (3 for 5.00), the dearest units first;
- ``tiered``: spend thresholds on the lines' prices before any discount, each with an amount or
  a percent off (the highest tier reached applies);
- ``points``: no money off; ``value`` loyalty points per ``per`` spent (see ``loyalty``).

``apply`` takes what is left to pay on each line (after offers applied before this one) and
returns the money off per line: never more than a line has left, never below zero, so any
sequence of offers keeps an order's discount within the value of its lines. Units of a line
are alike: an offer taking one unit of three takes a third of what the line has left.

Example:
    >>> basket = Basket(("tea", "cake"), ("drinks", "bakery"), (3, 1), (6.0, 4.0))
    >>> three_for_five = parse_reward({"type": "bundle_price", "quantity": 3, "price": 5}, "o")
    >>> [round(d, 2) for d in apply(three_for_five, basket, (0, 1), list(basket.amounts), 1)]
    [1.5, 1.5]
    >>> b2g1 = parse_reward({"type": "buy_x_get_y", "buy": 2, "get": 1}, "o")
    >>> [round(d, 2) for d in apply(b2g1, basket, (0,), list(basket.amounts), 1)]
    [2.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidOffer

REWARD_TYPES = (
    "percent",
    "amount",
    "free_item",
    "buy_x_get_y",
    "bundle_price",
    "tiered",
    "points",
)
# Rewards whose money off, applied before any other offer, never lowers what the others
# together take off (each maps what is left on a line to less, monotonically): adding one to
# an order can only help, which lets the search take all of them at once.
MONOTONE = frozenset({"percent", "amount", "free_item", "tiered"})
MAX_UNITS = 10_000  # units a reward looks at in one basket (40 lines x 250)
EPS = 1e-9


@dataclass(frozen=True)
class Tier:
    """A spend threshold of a ``tiered`` reward: ``amount`` off, or ``percent`` off."""

    spend: float
    amount: float = 0.0
    percent: float = 0.0


@dataclass(frozen=True)
class Reward:
    """What the offer gives (see the module docstring for each ``type``)."""

    type: str = "percent"
    value: float = 0.0
    max_discount: float | None = None
    item: str | None = None
    quantity: int = 1
    buy: int = 0
    get: int = 0
    tiers: tuple[Tier, ...] = ()
    per: float = 1.0

    def discount(self, base: float) -> float:
        """The money off a base amount (never more than the base) for ``percent``, ``amount``
        and ``tiered`` rewards; rewards on units (free item, buy X get Y, bundles) need the
        basket (``apply``) and give 0 here."""
        if self.type == "tiered":
            tier = self.tier_for(base)
            raw = 0.0 if tier is None else tier.amount or base * tier.percent / 100
        elif self.type in {"percent", "amount"}:
            raw = base * self.value / 100 if self.type == "percent" else self.value
        else:
            return 0.0
        if self.max_discount is not None:
            raw = min(raw, self.max_discount)
        return round(max(0.0, min(raw, base)), 2)

    def tier_for(self, spend: float) -> Tier | None:
        """The highest tier ``spend`` reaches (None below the first).

        Example:
            >>> r = parse_reward({"type": "tiered", "tiers": [{"spend": 50, "amount": 5},
            ...                   {"spend": 100, "amount": 15}]}, "o")
            >>> r.tier_for(120.0).amount, r.tier_for(20.0)
            (15.0, None)
        """
        reached = [t for t in self.tiers if spend + EPS >= t.spend]
        return reached[-1] if reached else None

    @property
    def gives_money(self) -> bool:
        return self.type != "points"


@dataclass(frozen=True)
class Basket:
    """The lines an order prices: item, category, quantity and line total, index-aligned."""

    items: tuple[str, ...]
    categories: tuple[str, ...]
    quantities: tuple[int, ...]
    amounts: tuple[float, ...]

    @property
    def value(self) -> float:
        return sum(self.amounts)


# -- parsing -------------------------------------------------------------------------------
_KEYS = {
    "percent": {"value", "max_discount"},
    "amount": {"value", "max_discount"},
    "free_item": {"item", "quantity"},
    "buy_x_get_y": {"buy", "get", "percent", "max_discount"},
    "bundle_price": {"quantity", "price"},
    "tiered": {"tiers", "max_discount"},
    "points": {"points", "per"},
}


def _fail(oid: str, message: str) -> InvalidOffer:
    return InvalidOffer(f"offer {oid or '?'}: {message}")


def _positive(raw: Mapping[str, Any], key: str, oid: str, *, integer: bool = False) -> Any:
    value = raw.get(key)
    kind = int if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = "a positive integer" if integer else "a positive number"
        raise _fail(oid, f"reward.{key} must be {what}, not {value!r}")
    return value if integer else float(value)


def parse_reward(raw: Any, oid: str) -> Reward:
    """Validate an offer's ``reward`` mapping; ``InvalidOffer`` names the field.

    Example:
        >>> parse_reward({"type": "buy_x_get_y", "buy": 2, "get": 1}, "b2g1").value
        100.0
        >>> parse_reward({"type": "bundle_price", "quantity": 3}, "b")
        Traceback (most recent call last):
        ...
        shelfwise.InvalidOffer: offer b: reward.price must be a positive number, not None
    """
    if not isinstance(raw, Mapping):
        raise _fail(oid, "reward must be a mapping like {type: percent, value: 10}")
    kind = raw.get("type")
    if kind not in _KEYS:
        raise _fail(oid, f"reward.type must be one of {', '.join(REWARD_TYPES)}")
    extra = sorted(set(raw) - _KEYS[kind] - {"type"})
    if extra:
        raise _fail(oid, f"unknown reward field(s) for a {kind} reward: {', '.join(extra)}")
    cap = raw.get("max_discount")
    if cap is not None:
        cap = _positive(raw, "max_discount", oid)
    if kind in {"percent", "amount"}:
        value = _positive(raw, "value", oid)
        if kind == "percent" and value > 100:
            raise _fail(oid, "reward.value must be between 0 and 100 for a percent reward")
        return Reward(kind, value, cap)
    if kind == "free_item":
        item = raw.get("item")
        if not isinstance(item, str) or not item.strip():
            raise _fail(oid, "reward.item must name the item given free")
        quantity = _positive(raw, "quantity", oid, integer=True) if "quantity" in raw else 1
        return Reward(kind, 100.0, item=item, quantity=quantity)
    if kind == "buy_x_get_y":
        buy, get = (
            _positive(raw, "buy", oid, integer=True),
            _positive(raw, "get", oid, integer=True),
        )
        percent = _positive(raw, "percent", oid) if "percent" in raw else 100.0
        if percent > 100:
            raise _fail(oid, "reward.percent must be at most 100")
        return Reward(kind, percent, cap, buy=buy, get=get)
    if kind == "bundle_price":
        size = _positive(raw, "quantity", oid, integer=True)
        if size < 2:
            raise _fail(oid, "reward.quantity of a bundle must be at least 2")
        return Reward(kind, _positive(raw, "price", oid), quantity=size)
    if kind == "tiered":
        return Reward(kind, 0.0, cap, tiers=_tiers(raw.get("tiers"), oid))
    return Reward(
        kind, _positive(raw, "points", oid), per=_positive(raw, "per", oid) if "per" in raw else 1.0
    )


def _tiers(raw: Any, oid: str) -> tuple[Tier, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise _fail(oid, "reward.tiers must be a list like [{spend: 50, amount: 5}]")
    tiers = []
    for entry in raw:
        if not isinstance(entry, Mapping) or set(entry) - {"spend", "amount", "percent"}:
            raise _fail(oid, "each tier is {spend: N, amount: X} or {spend: N, percent: P}")
        if ("amount" in entry) == ("percent" in entry):
            raise _fail(oid, "each tier gives either an amount or a percent off")
        spend = _positive(entry, "spend", oid)
        if "amount" in entry:
            tiers.append(Tier(spend, amount=_positive(entry, "amount", oid)))
        else:
            percent = _positive(entry, "percent", oid)
            if percent > 100:
                raise _fail(oid, "a tier's percent must be at most 100")
            tiers.append(Tier(spend, percent=percent))
    spends = [t.spend for t in tiers]
    if spends != sorted(spends) or len(set(spends)) != len(spends):
        raise _fail(oid, "reward.tiers must be in rising order of spend")
    return tuple(tiers)


# -- applying to a basket ------------------------------------------------------------------
def reward_lines(reward: Reward, basket: Basket, targeted: Sequence[int]) -> tuple[int, ...]:
    """The lines a reward takes money off: a free item's own lines, else the targeted ones."""
    if reward.type == "free_item":
        return tuple(i for i, item in enumerate(basket.items) if item == reward.item)
    return tuple(targeted)


def applications(reward: Reward, basket: Basket, lines: Sequence[int]) -> int:
    """How many times the reward can apply to these lines at most (before ``per_order``).

    Example:
        >>> basket = Basket(("tea",), ("drinks",), (7,), (14.0,))
        >>> applications(parse_reward({"type": "buy_x_get_y", "buy": 2, "get": 1}, "o"), basket, (0,))
        2
    """
    units = min(MAX_UNITS, sum(basket.quantities[i] for i in lines))
    if not lines or units == 0:
        return 0
    if reward.type == "buy_x_get_y":
        return units // (reward.buy + reward.get)
    if reward.type == "bundle_price":
        return units // reward.quantity
    if reward.type in {"amount", "free_item"}:
        return units if reward.type == "amount" else max(1, units // reward.quantity)
    return 1


def apply(
    reward: Reward, basket: Basket, lines: Sequence[int], remaining: Sequence[float], times: int
) -> list[float]:
    """Money off per basket line when the reward applies ``times`` times to ``lines``, given
    what is still to pay on each line (``remaining``); each entry is within [0, remaining].

    Example:
        >>> basket = Basket(("a", "b"), ("x", "x"), (1, 1), (3.0, 1.0))
        >>> apply(parse_reward({"type": "amount", "value": 2}, "o"), basket, (0, 1), [3.0, 1.0], 1)
        [1.5, 0.5]
    """
    off = [0.0] * len(remaining)
    for line, taken in zip(lines, take(reward, basket, lines, remaining, times), strict=True):
        off[line] = taken
    return off


def take(
    reward: Reward, basket: Basket, lines: Sequence[int], remaining: Sequence[float], times: int
) -> list[float]:
    """``apply`` for the reward's own lines only: the money off each of ``lines``, in order
    (what the search calls, thousands of times an order)."""
    left = [remaining[i] for i in lines]
    base = sum(left)
    if times <= 0 or base <= EPS or not reward.gives_money:
        return [0.0] * len(lines)
    kind = reward.type
    if kind in {"percent", "amount", "tiered"}:
        if kind == "percent":
            total = base * reward.value / 100
        elif kind == "amount":
            total = reward.value * times
        else:
            tier = reward.tier_for(sum(basket.amounts[i] for i in lines))
            total = 0.0 if tier is None else tier.amount or base * tier.percent / 100
        if reward.max_discount is not None:
            total = min(total, reward.max_discount)
        factor = min(1.0, max(0.0, total / base))
        return [value * factor for value in left]
    if kind == "free_item":  # units of one item are alike: each line gives the same share
        share = min(1.0, reward.quantity * times / sum(basket.quantities[i] for i in lines))
        return [value * share for value in left]
    off = [0.0] * len(lines)
    units = _units(basket, lines, left)
    if kind == "buy_x_get_y":
        block = reward.buy + reward.get
        full = min(times, len(units) // block)  # only whole blocks: buy 2 get 1 needs 3 units
        for position, (value, k) in enumerate(units[: block * full]):
            if position % block >= reward.buy:  # the cheapest of a block: units run dearest first
                off[k] += value * reward.value / 100
        if reward.max_discount is not None:
            _scale(off, reward.max_discount)
    else:  # bundle_price: each bundle of the dearest units costs the bundle's price
        size = reward.quantity
        for start in range(0, size * times, size):
            bundle = units[start : start + size]
            worth = sum(value for value, _ in bundle)
            if len(bundle) < size or worth <= reward.value + EPS:
                break  # dearest first: no later bundle saves anything either
            for value, k in bundle:
                off[k] += value * (worth - reward.value) / worth
    return [min(o, value) for o, value in zip(off, left, strict=True)]


def _units(basket: Basket, lines: Sequence[int], left: Sequence[float]) -> list[tuple[float, int]]:
    """Every unit of ``lines`` as (what is left to pay on it, its position in ``lines``),
    dearest first."""
    units: list[tuple[float, int]] = []
    for k, i in enumerate(lines):
        quantity = basket.quantities[i]
        if quantity > 0:
            units.extend([(left[k] / quantity, k)] * min(quantity, MAX_UNITS))
    units.sort(key=lambda unit: (-unit[0], unit[1]))
    return units[:MAX_UNITS]


def _scale(off: list[float], cap: float) -> None:
    total = sum(off)
    if total > cap:
        for i, value in enumerate(off):
            off[i] = value * cap / total


def points_earned(reward: Reward, paid: float, multiplier: float = 1.0) -> int:
    """Whole points a ``points`` reward earns on ``paid`` money (after discounts).

    Example:
        >>> points_earned(parse_reward({"type": "points", "points": 2, "per": 1}, "o"), 12.7)
        25
    """
    if reward.type != "points" or paid <= 0:
        return 0
    return math.floor(paid / reward.per * reward.value * multiplier + EPS)


__all__ = [
    "EPS",
    "MONOTONE",
    "REWARD_TYPES",
    "Basket",
    "Reward",
    "Tier",
    "applications",
    "apply",
    "parse_reward",
    "points_earned",
    "reward_lines",
    "take",
]
