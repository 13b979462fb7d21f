"""Loyalty points: earned and spent with orders, kept in the member's travelling profile.

The balance lives in the member's profile counters (``shelfwise.profile``: per-device
PN-counters merged as a CRDT), so it follows the member from device to device:

- ``points@YYYY-MM``: points earned in that UTC month, less what was spent from them;
- ``points.earned``: every point ever earned (the tier reads it; a voided order takes its
  points back).

Earn rules are offers with a ``points`` reward (``{type: points, points: 1, per: 1.00}``: a
point per 1.00 paid on the lines the offer targets, after discounts); a burn is any offer with
a ``points_cost``, which the member names on an order. The store's program (a setting in the
store, like its time zone) gives tiers (reached by points earned, each multiplying what is
earned) and an expiry: points earned in a month can be spent for ``expiry_months`` more
months. A burn takes the oldest live points first and never more than the balance the device
holds; two devices offline can still together spend more than the member had (the merge then
shows a debt that later earnings repay), which only a lease or a central check prevents.

Example:
    >>> program = parse_program({"tiers": [{"name": "silver", "points": 1000, "multiplier": 1.5}],
    ...                          "expiry_months": 12})
    >>> counters = {"points@2024-01": 300, "points@2025-05": 500, "points.earned": 1200}
    >>> june = month_start("2025-06")
    >>> points = points_of(counters, program, june)
    >>> points.balance, points.tier, points.multiplier
    (500, 'silver', 1.5)
    >>> burn_moves(points, 200)
    [('points@2025-05', -200)]
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidInput
from ..profile.local import read_profile
from ..store.connection import Store

PROGRAM_KEY = "offers.loyalty"
EARNED = "points.earned"
BUCKET = "points@"  # + YYYY-MM (UTC): one counter per month of earning


@dataclass(frozen=True)
class LoyaltyTier:
    """A tier reached with ``points`` earned in all; it multiplies points earned."""

    name: str
    points: int
    multiplier: float = 1.0


@dataclass(frozen=True)
class LoyaltyProgram:
    """The store's points program: tiers (lowest first) and months before points expire."""

    tiers: tuple[LoyaltyTier, ...] = ()
    expiry_months: int | None = None

    def tier_for(self, earned: int) -> LoyaltyTier | None:
        """The highest tier ``earned`` points reach (None below the first)."""
        reached = [t for t in self.tiers if earned >= t.points]
        return reached[-1] if reached else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": [{"name": t.name, "points": t.points, "multiplier": t.multiplier} for t in self.tiers],
            "expiry_months": self.expiry_months,
        }  # fmt: skip


@dataclass(frozen=True)
class Points:
    """A member's points as this device holds them at one moment."""

    balance: int  # spendable now: live months only, never below zero
    earned: int  # ever earned (the tier)
    tier: str | None = None
    multiplier: float = 1.0
    live: Mapping[str, int] = field(default_factory=dict)  # month -> points, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "balance": self.balance,
            "earned": self.earned,
            "tier": self.tier,
            "multiplier": self.multiplier,
            "live": dict(self.live),
        }


def parse_program(raw: Any) -> LoyaltyProgram:
    """Validate a points program; ``InvalidInput`` says what is wrong.

    Example:
        >>> parse_program({"tiers": [{"name": "gold", "points": -1}]})
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: loyalty tier points must be a non-negative integer
    """
    if raw is None:
        return LoyaltyProgram()
    if not isinstance(raw, Mapping) or set(raw) - {"tiers", "expiry_months"}:
        raise InvalidInput("a loyalty program is {tiers: [...], expiry_months: N}")
    tiers = []
    for entry in raw.get("tiers") or ():
        if not isinstance(entry, Mapping) or set(entry) - {"name", "points", "multiplier"}:
            raise InvalidInput("a loyalty tier is {name, points, multiplier}")
        name, points = entry.get("name"), entry.get("points")
        multiplier = entry.get("multiplier", 1.0)
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("a loyalty tier needs a name")
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise InvalidInput("loyalty tier points must be a non-negative integer")
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, int | float)
            or not 0 < multiplier <= 10
        ):
            raise InvalidInput("a loyalty tier's multiplier must be above 0 and at most 10")  # fmt: skip
        tiers.append(LoyaltyTier(name.strip(), points, float(multiplier)))
    if [t.points for t in tiers] != sorted({t.points for t in tiers}):
        raise InvalidInput("loyalty tiers must be in rising order of points")
    months = raw.get("expiry_months")
    if months is not None and (
        isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 120
    ):
        raise InvalidInput("expiry_months must be a whole number of months from 1 to 120")  # fmt: skip
    return LoyaltyProgram(tuple(tiers), months)


def program(store: Store) -> LoyaltyProgram:
    """The store's points program (no tiers, no expiry until one is set)."""
    raw = store.get_meta(PROGRAM_KEY)
    return parse_program(json.loads(raw)) if raw else LoyaltyProgram()


def set_program(store: Store, raw: Mapping[str, Any] | None) -> LoyaltyProgram:
    """Validate and keep the store's points program (None: none)."""
    parsed = parse_program(raw)
    store.set_meta(PROGRAM_KEY, json.dumps(parsed.to_dict()))
    return parsed


def month_of(now: int) -> str:
    """The UTC month of a time, as its bucket names it ('2025-06')."""
    return dt.datetime.fromtimestamp(now / 1000, tz=dt.UTC).strftime("%Y-%m")


def month_start(month: str) -> int:
    """UTC ms of the first moment of a 'YYYY-MM' month."""
    return int(dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC).timestamp() * 1000)


def _index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def points_of(counters: Mapping[str, int], plan: LoyaltyProgram, now: int) -> Points:
    """A member's points from their counter values (name -> value), pure."""
    current = _index(month_of(now))
    live = {
        name[len(BUCKET) :]: value
        for name, value in sorted(counters.items())
        if name.startswith(BUCKET)
        and (plan.expiry_months is None or _index(name[len(BUCKET) :]) + plan.expiry_months >= current)
    }  # fmt: skip
    earned = max(0, counters.get(EARNED, 0))
    tier = plan.tier_for(earned)
    return Points(
        max(0, sum(live.values())),
        earned,
        tier.name if tier else None,
        tier.multiplier if tier else 1.0,
        live,
    )


def read_points(store: Store, shopper_id: str, now: int) -> Points:
    """The member's points as this device holds them (their merged profile counters)."""
    profile = read_profile(store, shopper_id)
    names = [n for n in profile.counters if n.startswith(BUCKET) or n == EARNED]
    return points_of({n: profile.counter(n) for n in names}, program(store), now)


def earn_moves(points: int, now: int) -> list[tuple[str, int]]:
    """The counter changes that earn ``points`` now."""
    return [(BUCKET + month_of(now), points), (EARNED, points)] if points > 0 else []


def burn_moves(held: Points, points: int) -> list[tuple[str, int]]:
    """The counter changes that spend ``points``: the oldest live months first, none taken
    below zero; ``InvalidInput`` when the balance is short (nothing moves).

    Example:
        >>> held = Points(80, 80, live={"2025-01": 50, "2025-02": -20, "2025-03": 50})
        >>> burn_moves(held, 70)
        [('points@2025-01', -50), ('points@2025-03', -20)]
    """
    if points > held.balance:
        raise InvalidInput(f"{points} points asked, {held.balance} held")
    moves, left = [], points
    for month, value in held.live.items():
        if left <= 0:
            break
        taken = min(left, max(0, value))
        if taken:
            moves.append((BUCKET + month, -taken))
            left -= taken
    return moves


__all__ = [
    "BUCKET",
    "EARNED",
    "PROGRAM_KEY",
    "LoyaltyProgram",
    "LoyaltyTier",
    "Points",
    "burn_moves",
    "earn_moves",
    "month_of",
    "month_start",
    "parse_program",
    "points_of",
    "program",
    "read_points",
    "set_program",
]
