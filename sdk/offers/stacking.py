"""Stacking: which eligible offers an order applies together, as pure functions.

An offer's ``stacking`` block says how it combines with others on one order:

- ``priority`` (default 0): offers apply in priority order (highest first, then by id), each
  to what the ones before it left to pay, so no order is discounted beyond its lines' value;
- ``exclusive``: the offer is applied alone;
- ``category`` and ``category_mode`` (``normal``, ``joint``, ``exclusive``): an offer of an
  exclusive category combines only with offers of joint categories (one coupon per order, with
  loyalty rewards beside it); a normal offer combines with normal and joint ones;
- ``max_offers``: an order applying this offer applies at most this many offers in all;
- ``per_order`` (default 1): how many times the offer may apply to one order;
- ``max_order_discount``: the whole order's discount is capped when this offer is applied.

``best_combination`` searches the allowed combinations for the largest discount and says why
each eligible offer it left out was left out, with the same kind of stable reason codes as
``evaluate``. The search is a branch and bound: it splits the order into stacking modes (one
exclusive offer alone; one exclusive-category offer with the joint ones; normal and joint
offers) and, where no rule ties them, into groups of offers sharing no line; it decides the
offers with rules (or rewards that can lower another's share, bundles and buy X get Y) first
and takes every offer that can only add at once. A monotone reward (percent, amount, free
item, tiered) maps what is left on each line to less, so together with any others it never
takes less than without them; that gives both the shortcut and the bound (the monotone
rewards applied all together, the others alone). ``combination`` prices one given combination
(what a brute-force check compares against).

Example:
    >>> from shelfwise.offers.definitions import parse_offer
    >>> basket = Basket(("tea",), ("drinks",), (1,), (10.0,))
    >>> def offer(oid, value, **stacking):
    ...     return Candidate(parse_offer({"offer_id": oid, "title": oid, "stacking": stacking,
    ...                                   "reward": {"type": "amount", "value": value}}))
    >>> best = best_combination(basket, [offer("a", 2), offer("b", 3, exclusive=True), offer("c", 2)])
    >>> [a.candidate.offer.offer_id for a in best.applied], round(best.discount, 2)
    (['a', 'c'], 4.0)
    >>> [(x.candidate.offer.offer_id, x.reason) for x in best.left_out]
    [('b', 'stacking_exclusive')]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import InvalidOffer
from .rewards import EPS, MONOTONE, Basket, Reward, applications, apply, reward_lines, take

if TYPE_CHECKING:  # definitions imports this module for Stacking
    from .definitions import Offer

CATEGORY_MODES = ("normal", "joint", "exclusive")
# Search nodes per order before the best combination found so far is used (``exhaustive``
# False): a bound on latency for orders with many non-monotone offers (bundles, buy X get Y).
NODE_LIMIT = 4_000
INF = math.inf


@dataclass(frozen=True)
class Stacking:
    """How an offer combines with others on one order (see the module docstring)."""

    priority: int = 0
    exclusive: bool = False
    category: str = ""
    category_mode: str = "normal"
    max_offers: int | None = None
    per_order: int = 1
    max_order_discount: float | None = None


def parse_stacking(raw: Any, oid: str) -> Stacking:
    """Validate an offer's ``stacking`` mapping; ``InvalidOffer`` names the field.

    Example:
        >>> parse_stacking({"category": "coupons", "category_mode": "exclusive"}, "o").category_mode
        'exclusive'
        >>> parse_stacking({"per_order": 0}, "o")
        Traceback (most recent call last):
        ...
        shelfwise.InvalidOffer: offer o: stacking.per_order must be an integer from 1 to 1000
    """
    if raw is None:
        return Stacking()
    if not isinstance(raw, Mapping):
        raise InvalidOffer(f"offer {oid}: stacking must be a mapping")
    extra = sorted(set(raw) - set(Stacking.__dataclass_fields__))
    if extra:
        raise InvalidOffer(f"offer {oid}: unknown stacking field(s): {', '.join(extra)}")

    def integer(key: str, low: int, high: int, default: int | None) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidOffer(
                f"offer {oid}: stacking.{key} must be an integer from {low} to {high}"
            )
        return value

    exclusive = raw.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise InvalidOffer(f"offer {oid}: stacking.exclusive must be true or false")
    category = str(raw.get("category") or "").strip()
    mode = raw.get("category_mode", "normal")
    if mode not in CATEGORY_MODES:
        raise InvalidOffer(
            f"offer {oid}: stacking.category_mode must be normal, joint or exclusive"
        )
    if mode != "normal" and not category:
        raise InvalidOffer(f"offer {oid}: stacking.category_mode {mode} needs a stacking.category")
    cap = raw.get("max_order_discount")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 <= cap < INF
    ):
        raise InvalidOffer(
            f"offer {oid}: stacking.max_order_discount must be a non-negative number"
        )
    return Stacking(
        priority=integer("priority", -1_000_000, 1_000_000, 0) or 0,
        exclusive=exclusive,
        category=category,
        category_mode=mode,
        max_offers=integer("max_offers", 1, 1000, None),
        per_order=integer("per_order", 1, 1000, 1) or 1,
        max_order_discount=None if cap is None else float(cap),
    )


@dataclass(frozen=True)
class Candidate:
    """An eligible offer an order may apply, with the code it came with (if any)."""

    offer: Offer
    code: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.offer.offer_id, self.code or "")


@dataclass(frozen=True)
class Applied:
    """A candidate in the chosen combination: applied ``times``, ``amount`` off in all."""

    candidate: Candidate
    times: int
    amount: float
    line_discounts: tuple[float, ...]


@dataclass(frozen=True)
class LeftOut:
    """An eligible candidate the combination does not apply, and why (a reason code)."""

    candidate: Candidate
    reason: str
    message: str


@dataclass(frozen=True)
class Combination:
    """The chosen offers in the order they apply, those left out, the total discount.

    ``exhaustive`` is False when the search stopped at ``NODE_LIMIT`` nodes and used the best
    combination found by then."""

    applied: tuple[Applied, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    discount: float = 0.0
    exhaustive: bool = True


def targeted_lines(offer: Offer, basket: Basket) -> tuple[int, ...]:
    """Basket lines an offer applies to: its items and categories, or every line."""
    t = offer.targeting
    if not (t.items or t.categories):
        return tuple(range(len(basket.items)))
    return tuple(
        i
        for i, (item, category) in enumerate(zip(basket.items, basket.categories, strict=True))
        if item in t.items or category in t.categories
    )


@dataclass(frozen=True)
class _Prep:
    """A candidate prepared for one basket (fixed for the whole search)."""

    candidate: Candidate
    offer_id: str
    reward: Reward
    stacking: Stacking
    lines: tuple[int, ...]
    most: int  # applications allowed: min(per_order, what the lines hold)
    standalone: float  # money off alone: an upper bound on its share in any combination
    simple: bool  # monotone reward, no rule that could exclude another offer
    cost: int
    rules_free: bool = False  # no stacking rule, cost or shared offer: only its reward matters


@dataclass(frozen=True)
class _State:
    times: Mapping[str, int] = field(default_factory=dict)
    exclusive: str = ""  # the offer applied alone
    exclusive_category: tuple[str, str] = ("", "")  # (offer id, category) of an exclusive category
    normal: bool = False
    max_offers: float = INF
    cap: float = INF
    points: int = 0

    def add(self, p: _Prep, times: int) -> _State:
        s = p.stacking
        return _State(
            {**self.times, p.offer_id: self.times.get(p.offer_id, 0) + times},
            p.offer_id if s.exclusive else self.exclusive,
            (p.offer_id, s.category) if s.category_mode == "exclusive" else self.exclusive_category,
            self.normal or s.category_mode == "normal",
            min(self.max_offers, s.max_offers or INF),
            min(self.cap, INF if s.max_order_discount is None else s.max_order_discount),
            self.points + p.cost * times,
        )


def _order_key(candidate: Candidate) -> tuple[int, str, str]:
    return (-candidate.offer.stacking.priority, candidate.offer.offer_id, candidate.code or "")


def _prepare(candidates: Sequence[Candidate], basket: Basket) -> list[_Prep]:
    shared = {c.offer.offer_id for c in candidates}
    several = {oid for oid in shared if sum(c.offer.offer_id == oid for c in candidates) > 1}
    preps = []
    for c in sorted(candidates, key=_order_key):
        offer, s = c.offer, c.offer.stacking
        lines = reward_lines(offer.reward, basket, targeted_lines(offer, basket))
        most = min(s.per_order, applications(offer.reward, basket, lines))
        if c.code is not None:
            most = min(most, 1)  # a code is one application
        alone = sum(apply(offer.reward, basket, lines, basket.amounts, most)) if most else 0.0
        rules_free = (
            not s.exclusive
            and s.category_mode != "exclusive"
            and s.max_offers is None
            and s.max_order_discount is None
            and not offer.points_cost
            and offer.offer_id not in several
        )
        simple = rules_free and offer.reward.type in MONOTONE
        preps.append(
            _Prep(
                c,
                offer.offer_id,
                offer.reward,
                s,
                lines,
                most,
                alone,
                simple,
                offer.points_cost,
                rules_free,
            )
        )
    return preps


def _refusal(p: _Prep, state: _State, points_balance: int) -> tuple[str, str] | None:
    """Why ``p`` cannot join the offers ``state`` holds (None: it can)."""
    s, used = p.stacking, state.times.get(p.offer_id, 0)
    count = len(state.times)
    if state.exclusive and state.exclusive != p.offer_id:
        return "stacking_exclusive", f"offer {state.exclusive} is applied alone"
    if s.exclusive and count - (1 if used else 0) > 0:
        return "stacking_exclusive", "this offer is applied alone and the others are worth more"
    other, category = state.exclusive_category
    if s.category_mode == "exclusive" and other and other != p.offer_id:
        return (
            "stacking_category",
            f"one offer of an exclusive category per order ({other} applied)",
        )
    if s.category_mode == "exclusive" and state.normal:
        return "stacking_category", f"a {s.category} offer combines only with joint-category offers"
    if s.category_mode == "normal" and other:
        return "stacking_category", f"the {category} offer applied combines only with joint offers"
    limit = min(state.max_offers, s.max_offers or INF)
    if not used and count + 1 > limit:
        return "stacking_limit", f"at most {int(limit)} offers per order"
    if used + 1 > s.per_order:
        return "per_order_limit", f"the offer applies at most {s.per_order} time(s) per order"
    if p.cost and state.points + p.cost > points_balance:
        return (
            "points_insufficient",
            f"needs {p.cost} points ({points_balance - state.points} left)",
        )
    return None


Picks = tuple[tuple[_Prep, int], ...]


class _Search:
    """Branch and bound for the best combination: one stacking mode at a time, and within a
    mode one group of offers at a time when no rule ties the groups together."""

    def __init__(self, basket: Basket, points: int, limit: int) -> None:
        self.basket, self.points, self.limit = basket, points, limit
        self.nodes, self.exhaustive = 0, True
        self.preps: list[_Prep] = []
        self.safe: set[int] = set()
        self.free: set[int] = set()
        self.best_value = 0.0
        self.best: Picks | None = None

    def run(self, preps: Sequence[_Prep]) -> tuple[float, Picks]:
        """The modes an order can be in: one exclusive offer alone; one offer of an exclusive
        category with the joint offers; the normal and joint offers. Modes go from the most
        promising down and stop when none can beat the best found."""
        by_offer: dict[str, list[_Prep]] = {}
        for p in preps:
            by_offer.setdefault(p.offer_id, []).append(p)
        alone = [ps for ps in by_offer.values() if ps[0].stacking.exclusive]
        rest = [p for p in preps if not p.stacking.exclusive]
        joint = [p for p in rest if p.stacking.category_mode == "joint"]
        coupons = [
            ps
            for ps in by_offer.values()
            if not ps[0].stacking.exclusive and ps[0].stacking.category_mode == "exclusive"
        ]
        normal = [p for p in rest if p.stacking.category_mode == "normal"]
        modes = [*alone, *([*ps, *joint] for ps in coupons), [*normal, *joint]]
        ranked = sorted(
            ((self._bound((), pool, INF), n, pool) for n, pool in enumerate(modes) if pool),
            key=lambda mode: (-mode[0], mode[1]),
        )
        best: tuple[float, Picks] = (0.0, ())
        for bound, _, pool in ranked:
            if bound <= best[0] + EPS:
                break
            found = self._mode(pool, best[0])
            if found[0] > best[0] + EPS:
                best = found
        return best

    def _mode(self, pool: list[_Prep], floor: float) -> tuple[float, Picks]:
        """The best combination within one mode (nothing better than ``floor``: (0, ()))."""
        coupled = any(
            p.stacking.max_offers is not None or p.stacking.max_order_discount is not None or p.cost
            for p in pool
        )
        groups = [pool] if coupled else _groups(pool)
        total, picks = 0.0, list[tuple[_Prep, int]]()
        for group in groups:  # groups share no line and no rule: their best ones add up
            value, chosen = self._solve(group, floor if coupled else 0.0)
            total += value
            picks.extend(chosen)
        ordered = tuple(sorted(picks, key=lambda pick: _order_key(pick[0].candidate)))
        return (total, ordered) if total > floor + EPS else (0.0, ())

    def _solve(self, pool: list[_Prep], floor: float) -> tuple[float, Picks]:
        """Branch on the offers that can shut others out or lower the total (rules, bundles)
        first, then on the simple ones, dearest first, so a good combination is found early
        and the bounds cut the rest; every chosen set is priced in priority order."""
        ordered = sorted(pool, key=lambda p: _order_key(p.candidate))
        # An offer is safe to take whatever else is taken if its reward only ever maps what is
        # left to less (monotone), or if no offer applied after it touches its lines (a bundle
        # last on its lines only adds); with no rule on it, it is free: always take it.
        self.safe = {
            id(p)
            for n, p in enumerate(ordered)
            if p.reward.type in MONOTONE
            or not any(set(p.lines) & set(q.lines) for q in ordered[n + 1 :])
        }
        unruled = {id(p) for p in pool if p.simple or (p.rules_free and id(p) in self.safe)}
        self.free = {i for i in unruled if i in self.safe}
        hard = sorted(
            (p for p in ordered if id(p) not in self.free),
            key=lambda p: (-p.standalone, _order_key(p.candidate)),
        )
        easy = sorted(
            (p for p in ordered if id(p) in self.free),
            key=lambda p: (-p.standalone, _order_key(p.candidate)),
        )
        self.preps = [*hard, *easy]
        self.best_value, self.best = floor, None
        self._visit(0, _State(), ())
        return (self.best_value, self.best) if self.best is not None else (0.0, ())

    def _bound(self, picks: Picks, open_: Sequence[_Prep], slots: float) -> float:
        """The most ``picks`` plus any of ``open_`` could take off: the monotone rewards applied
        all together from the full prices (a subset, with anything between them, takes no
        more), each other one on its own; with room for ``slots`` more offers, no more than
        the picks and the best ``slots`` of the open ones alone."""
        alone: dict[str, float] = {}
        for p in open_:
            alone[p.offer_id] = alone.get(p.offer_id, 0.0) + p.standalone
        ranked = sorted(alone.values(), reverse=True)
        cheap = sum(p.standalone for p, _ in picks) + sum(ranked[: int(min(slots, len(ranked)))])
        if cheap <= self.best_value + EPS:
            return cheap
        left, gain = list(self.basket.amounts), 0.0
        chain = sorted([*(p for p, _ in picks), *open_], key=lambda p: _order_key(p.candidate))
        for p in chain:
            if p.reward.type in MONOTONE:
                off = take(p.reward, self.basket, p.lines, left, p.most)
                for line, o in zip(p.lines, off, strict=True):
                    left[line] -= o
                gain += sum(off)
            else:
                gain += p.standalone
        touched = {line for p in chain for line in p.lines}
        return min(cheap, gain, sum(self.basket.amounts[line] for line in touched))

    def _visit(self, i: int, state: _State, picks: Picks) -> None:
        self.nodes += 1
        if self.nodes > self.limit:
            self.exhaustive = False
            return
        ordered = sorted(picks, key=lambda pick: _order_key(pick[0].candidate))
        total = min(_raw(self.basket, ordered), state.cap)
        if total > self.best_value + EPS:
            self.best_value, self.best = total, tuple(ordered)
        if i == len(self.preps) or total >= state.cap - EPS:
            return
        open_ = [p for p in self.preps[i:] if _refusal(p, state, self.points) is None]
        if not open_:
            return
        slots = state.max_offers - len(state.times)
        if min(self._bound(picks, open_, slots), state.cap) <= self.best_value + EPS:
            return
        limits = [p.stacking.max_offers for p in open_ if p.stacking.max_offers is not None]
        fits = len({p.offer_id for p in open_}) <= min(
            [slots, *[n - len(state.times) for n in limits]]
        )
        monotone = all(id(p) in self.safe for p in open_)
        if fits and all(id(p) in self.free for p in open_):  # they only add: take them all
            self._visit(len(self.preps), state, (*picks, *((p, p.most) for p in open_)))
            return
        p = self.preps[i]
        if _refusal(p, state, self.points) is None:
            most = p.most if not p.cost else min(p.most, (self.points - state.points) // p.cost)
            free = id(p) in self.free
            for times in [most] if free else range(most, 0, -1):
                self._visit(i + 1, state.add(p, times), (*picks, (p, times)))
            if free and fits and monotone:
                return  # leaving out an offer that can only add, with room for all, never helps
        self._visit(i + 1, state, picks)


def _groups(pool: Sequence[_Prep]) -> list[list[_Prep]]:
    """Offers split into groups that share no basket line (union-find over lines)."""
    parent = list(range(len(pool)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[int, int] = {}
    for n, p in enumerate(pool):
        for line in p.lines:
            if line in owner:
                parent[root(n)] = root(owner[line])
            else:
                owner[line] = n
    groups: dict[int, list[_Prep]] = {}
    for n, p in enumerate(pool):
        groups.setdefault(root(n), []).append(p)
    return list(groups.values())


def _raw(basket: Basket, picks: Sequence[tuple[_Prep, int]]) -> float:
    """What ``picks`` take off in order, before any cap (the search's hot path)."""
    rest, total = list(basket.amounts), 0.0
    for p, times in picks:
        off = take(p.reward, basket, p.lines, rest, times)
        for line, o in zip(p.lines, off, strict=True):
            rest[line] -= o
        total += sum(off)
    return total


def _price(
    basket: Basket, picks: Sequence[tuple[_Prep, int]]
) -> tuple[list[Applied], float, float]:
    """Apply ``picks`` in order: (what each took off within the order's cap, total, raw total)."""
    rest, state, applied, total, raw = list(basket.amounts), _State(), [], 0.0, 0.0
    for p, times in picks:
        state = state.add(p, times)
    for p, times in picks:
        off = apply(p.reward, basket, p.lines, rest, times)
        gained = sum(off)
        raw += gained
        room = max(0.0, state.cap - total)
        if gained > room:
            off = [o * room / gained for o in off]
            gained = room
        rest = [r - o for r, o in zip(rest, off, strict=True)]
        total += gained
        applied.append(Applied(p.candidate, times, gained, tuple(off)))
    return applied, total, raw


def combination(
    basket: Basket, picks: Sequence[tuple[Candidate, int]], *, points_balance: int = 0
) -> tuple[str | None, float]:
    """Price one given combination ((candidate, times) pairs): (the first stacking rule it
    breaks or None, the order's discount when it breaks none).

    Example:
        >>> from shelfwise.offers.definitions import parse_offer
        >>> basket = Basket(("tea",), ("drinks",), (1,), (10.0,))
        >>> half = Candidate(parse_offer({"offer_id": "h", "title": "H",
        ...                               "reward": {"type": "percent", "value": 50}}))
        >>> combination(basket, [(half, 1)]), combination(basket, [(half, 2)])
        ((None, 5.0), ('per_order_limit', 0.0))
    """
    preps = {p.candidate.key: p for p in _prepare([c for c, _ in picks], basket)}
    state, ordered = _State(), []
    for c, times in sorted(picks, key=lambda pick: _order_key(pick[0])):
        p = preps[c.key]
        if times > p.stacking.per_order:
            return "per_order_limit", 0.0
        if times < 1 or times > p.most:
            return "nothing_to_discount", 0.0  # the lines do not hold that many applications
        for _ in range(times):
            refused = _refusal(p, state, points_balance)
            if refused is not None:
                return refused[0], 0.0
            state = state.add(p, 1)
        ordered.append((p, times))
    return None, _price(basket, ordered)[1]


def best_combination(
    basket: Basket,
    candidates: Sequence[Candidate],
    *,
    points_balance: int = 0,
    node_limit: int = NODE_LIMIT,
) -> Combination:
    """The allowed combination of ``candidates`` with the largest discount on ``basket``, in
    the order the offers apply, and why each other candidate was left out.

    ``points_balance``: the member's points; offers with a ``points_cost`` together cost at most
    this much. Example: see the module docstring.
    """
    preps = _prepare(candidates, basket)
    useful = [p for p in preps if p.standalone > EPS]
    search = _Search(basket, points_balance, node_limit)
    picks = list(search.run(useful)[1])
    while True:  # an offer the order's cap leaves with nothing is not applied
        applied, total, _ = _price(basket, picks)
        kept = [pick for pick, a in zip(picks, applied, strict=True) if a.amount > EPS]
        if len(kept) == len(picks):
            break
        picks = kept
    state = _State()
    for p, times in picks:
        state = state.add(p, times)
    chosen = {p.candidate.key for p, _ in picks}
    left: list[LeftOut] = []
    for p in preps:
        if p.candidate.key in chosen:
            continue
        if p.standalone <= EPS:
            reason = ("nothing_to_discount", "the order holds nothing this offer discounts")
        else:
            reason = _refusal(p, state, points_balance) or _why_not(basket, picks, p, total)
        left.append(LeftOut(p.candidate, *reason))
    return Combination(tuple(applied), tuple(left), total, search.exhaustive)


def _why_not(
    basket: Basket, picks: Sequence[tuple[_Prep, int]], p: _Prep, best: float
) -> tuple[str, str]:
    """Why an offer the rules would let in is not applied: the cap, nothing left, or less."""
    trial = sorted([*picks, (p, p.most)], key=lambda pick: _order_key(pick[0].candidate))
    applied, total, raw = _price(basket, trial)
    mine = next(a for a in applied if a.candidate is p.candidate)
    if raw > total + EPS and total <= best + EPS:
        return "order_discount_cap", "the order's discount is at its cap"
    if mine.amount <= EPS:
        return "nothing_to_discount", "offers applied before it leave nothing on its lines"
    return "stacking_better", f"a better combination for this order leaves it out ({best:.2f} off)"


__all__ = [
    "CATEGORY_MODES",
    "NODE_LIMIT",
    "Applied",
    "Candidate",
    "Combination",
    "LeftOut",
    "Stacking",
    "best_combination",
    "combination",
    "parse_stacking",
    "targeted_lines",
]
