"""Orders: a cart snapshot with an order id, priced and redeemed as a whole.

``price`` gathers an order's candidates (the codes the shopper gave, the offers they named,
and every code-less offer that applies unasked: store deals, and personal ones when the
shopper consented), runs each through the rules, lets ``stacking.best_combination`` choose the
best allowed combination and says why every other candidate was left out. Earn rules (``points``
rewards) are not discounts: each one that applies earns on what is paid after the discounts.

``redeem`` prices the order inside the caller's ``BEGIN IMMEDIATE`` transaction and writes it:
one ``orders`` row (this module owns the table), one ledger row per applied offer tagged with
the order id, the member's profile counters it moves. It is idempotent on the order id: the
same order again returns the stored result, a different one under the same id is refused
(``order_conflict``). ``void`` gives everything back (counters, codes, per-customer uses,
points) and keeps the order's record.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 2.0}])
    ...     for oid, value in [("a", 0.975), ("b", 0.975), ("c", 0.975), ("d", 0.975)]:
    ...         _ = sw.offers.define({"offer_id": oid, "title": oid,
    ...                               "reward": {"type": "amount", "value": value}})
    ...     order = sw.start_session().price_order("till-1", cart=["tea"])
    ...     order.discount, [a.offer_id for a in order.applied], order.left_out[0].reason
    (2.0, ['a', 'b', 'c'], 'nothing_to_discount')
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .._errors import InvalidInput, OfferRejected
from . import redemption, usage
from .codes import canonical_code, check_code, code_row, unlink_used_codes
from .definitions import Offer
from .loyalty import Points, burn_moves, earn_moves
from .rewards import EPS, points_earned
from .rules import OfferContext, day_bounds, evaluate
from .stacking import Candidate, best_combination, targeted_lines

MAX_CODES, MAX_NAMED = 20, 50
# Every table that records a sale: an ended session's rows stay there, unlinked from it.
SALE_TABLES = ("orders", *redemption.LEDGER_TABLES)
# Why an offer that would apply unasked did not, worth telling the till ("spend 3.00 more");
# other refusals (wrong segment, another day) are not news about this order.
HINTS = frozenset(
    {
        "cart_total_below",
        "cart_items",
        "customer_limit",
        "customer_daily_limit",
        "customer_weekly_limit",
    }
)


@dataclass(frozen=True)
class OrderLine:
    """One line of a priced order: what it cost and the money off it."""

    item_id: str
    quantity: int
    amount: float
    discount: float


@dataclass(frozen=True)
class AppliedOffer:
    """An offer the order applies: money off (``amount``), times applied, points it earned."""

    offer_id: str
    title: str
    amount: float
    times: int = 1
    code: str | None = None
    points: int = 0
    points_cost: int = 0
    variant: str | None = None


@dataclass(frozen=True)
class LeftOutOffer:
    """An offer or code the order does not apply, and why (a stable reason code)."""

    offer_id: str
    reason: str
    message: str
    code: str | None = None


@dataclass(frozen=True)
class OrderPrice:
    """An order priced as a whole: lines, the combination applied, what was left out and why.

    ``exhaustive`` is False when the search hit its node limit and used the best combination
    found by then (only orders with many bundle / buy-X-get-Y offers get near it)."""

    order_id: str
    shopper_id: str
    subtotal: float
    discount: float
    lines: tuple[OrderLine, ...] = ()
    applied: tuple[AppliedOffer, ...] = ()
    left_out: tuple[LeftOutOffer, ...] = ()
    points_earned: int = 0
    points_spent: int = 0
    exhaustive: bool = True

    @property
    def total(self) -> float:
        """What the shopper pays."""
        return round(self.subtotal - self.discount, 2)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderPrice:
        """An ``OrderPrice`` from ``to_dict`` data (the stored order)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["lines"] = tuple(OrderLine(**x) for x in data["lines"])
        fields["applied"] = tuple(AppliedOffer(**x) for x in data["applied"])
        fields["left_out"] = tuple(LeftOutOffer(**x) for x in data["left_out"])
        return cls(**fields)


@dataclass(frozen=True)
class Order:
    """A redeemed (or voided) order: its price as redeemed and its state."""

    order_id: str
    shopper_id: str
    state: str  # redeemed | voided
    price: OrderPrice
    created_ms: int
    voided_ms: int | None = None
    sandbox: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "price": self.price.to_dict()}


@dataclass(frozen=True)
class Request:
    """What a till asked for, checked: the order id, the codes given, the offers named."""

    order_id: str
    codes: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()

    def fingerprint(self, ctx: OfferContext) -> str:
        """A digest of the order's contents: the same order retried has the same one."""
        body = {
            "shopper": ctx.shopper_id,
            "lines": sorted([line.item_id, line.quantity] for line in ctx.cart),
            "codes": sorted(canonical_code(c) for c in self.codes),
            "offers": sorted(self.offers),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_request(order_id: Any, codes: Sequence[Any], offers: Sequence[Any]) -> Request:
    """Validate an order's id, codes and named offers; ``InvalidInput`` says what is wrong.

    Example:
        >>> check_request("till 1", (), ())
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: order_id must be 1 to 64 characters without spaces, not 'till 1'
    """
    if (
        not isinstance(order_id, str)
        or not 1 <= len(order_id) <= 64
        or any(c.isspace() or ord(c) < 32 for c in order_id)
    ):
        raise InvalidInput(f"order_id must be 1 to 64 characters without spaces, not {order_id!r}")
    for name, values, most in (("codes", codes, MAX_CODES), ("offers", offers, MAX_NAMED)):
        if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
            raise InvalidInput(f"{name} must be a list of strings")
        if len(values) > most:
            raise InvalidInput(f"an order takes at most {most} {name}")
    return Request(order_id, tuple(dict.fromkeys(codes)), tuple(dict.fromkeys(offers)))


def _cents(values: Sequence[float], target: int, caps: Sequence[int] | None = None) -> list[int]:
    """Whole cents for exact amounts that add up to ``target`` (largest remainders round up)."""
    floors = [math.floor(v * 100 + EPS) for v in values]
    order = sorted(range(len(values)), key=lambda i: floors[i] - values[i] * 100)
    for i in order[: max(0, target - sum(floors))]:
        if caps is None or floors[i] < caps[i]:
            floors[i] += 1
    return floors


def price(
    db: Any,
    request: Request,
    ctx: OfferContext,
    *,
    active: Sequence[Offer],
    offer_of: Callable[[str], Offer],
    multiplier: float = 1.0,
) -> OrderPrice:
    """Price the order ``ctx`` holds (``purpose="order"``) with the counters ``db`` reads.

    ``active``: the store's active offers; ``offer_of``: an offer by id (``OfferRejected``
    when unknown); ``ctx.points``: the member's points (burns cost at most that many);
    ``multiplier``: the member's tier multiplies points earned.
    """
    left: list[LeftOutOffer] = []
    claimed: list[tuple[Offer, str | None]] = []
    for text in request.codes:
        try:
            code = check_code(text)
        except OfferRejected as exc:
            left.append(LeftOutOffer("?", exc.reason, str(exc), text))
            continue
        row = code_row(db, code)
        refusal = (
            OfferRejected(f"code {code} does not exist", reason="code_unknown")
            if row is None
            else redemption.code_refusal(row, code, ctx.shopper_id, ctx.now_ms)
        )
        if row is None or refusal is not None:
            offer_id = "?" if row is None else row["offer_id"]
            left.append(LeftOutOffer(offer_id, refusal.reason, str(refusal), code))  # type: ignore[union-attr]
            continue
        claimed.append((offer_of(row["offer_id"]), code))
    for offer_id in request.offers:
        try:
            offer = offer_of(offer_id)
        except OfferRejected as exc:
            left.append(LeftOutOffer(offer_id, exc.reason, str(exc)))
            continue
        if offer.codes == "unique":
            left.append(LeftOutOffer(offer_id, "code_required", f"offer {offer_id} needs a code"))
        else:
            claimed.append((offer, None))
    named = {o.offer_id for o, code in claimed if code is None}
    unasked = [
        o
        for o in active
        if o.codes == "none"
        and not o.targeting.geofences  # a geofence's offer is shown on the phone, then named
        and not o.points_cost  # spending a member's points needs their say
        and o.offer_id not in named
    ]
    everyone: list[tuple[Offer, str | None, bool]] = [(o, c, True) for o, c in claimed]
    everyone += [(o, None, False) for o in unasked]
    offers = [o for o, _, _ in everyone]
    snapshot = usage.usage_snapshot(
        db, [o.offer_id for o in offers], ctx.shopper_id, ctx, per_day=usage.per_day_limited(offers)
    )
    asked = replace(ctx, consented=True)  # a code in hand or an offer named needs no consent
    candidates: list[Candidate] = []
    earners: list[tuple[Offer, str | None]] = []
    variants: dict[tuple[str, str], str | None] = {}
    for offer, held, is_claimed in everyone:
        decision = evaluate(offer, asked if is_claimed else ctx, snapshot.usage(offer.offer_id))
        if not decision.eligible:
            if is_claimed or decision.reason in HINTS:
                left.append(LeftOutOffer(offer.offer_id, decision.reason, decision.message, held))
        elif offer.reward.gives_money:
            candidates.append(Candidate(offer, held))
            variants[(offer.offer_id, held or "")] = decision.variant
        else:
            earners.append((offer, decision.variant))
    basket = ctx.basket()
    best = best_combination(basket, candidates, points_balance=ctx.points or 0)
    target = math.floor(best.discount * 100 + 0.5)
    per_offer = _cents([a.amount for a in best.applied], target)
    exact = [sum(a.line_discounts[i] for a in best.applied) for i in range(len(basket.items))]
    caps = [math.floor(v * 100 + 0.5) for v in basket.amounts]
    per_line = _cents(exact, target, caps)
    applied = [
        AppliedOffer(
            a.candidate.offer.offer_id,
            a.candidate.offer.title,
            cents / 100,
            a.times,
            a.candidate.code,
            points_cost=a.candidate.offer.points_cost * a.times,
            variant=variants[a.candidate.key],
        )
        for a, cents in zip(best.applied, per_offer, strict=True)
    ]
    for offer, variant in earners:
        paid = sum(basket.amounts[i] - per_line[i] / 100 for i in targeted_lines(offer, basket))
        points = points_earned(offer.reward, paid, multiplier)
        if points > 0:
            applied.append(
                AppliedOffer(offer.offer_id, offer.title, 0.0, points=points, variant=variant)
            )
        else:
            left.append(
                LeftOutOffer(offer.offer_id, "nothing_to_discount", "nothing paid earns points")
            )
    left.extend(
        LeftOutOffer(x.candidate.offer.offer_id, x.reason, x.message, x.candidate.code)
        for x in best.left_out
    )
    lines = tuple(
        OrderLine(line.item_id, line.quantity, line.amount, cents / 100)
        for line, cents in zip(ctx.cart, per_line, strict=True)
    )
    return OrderPrice(
        order_id=request.order_id,
        shopper_id=ctx.shopper_id,
        subtotal=round(basket.value, 2),
        discount=target / 100,
        lines=lines,
        applied=tuple(applied),
        left_out=tuple(left),
        points_earned=sum(a.points for a in applied),
        points_spent=sum(a.points_cost for a in applied),
        exhaustive=best.exhaustive,
    )


def stored(db: Any, order_id: str) -> Order | None:
    """The order as redeemed (or voided), or None."""
    rows = list(db.query("SELECT * FROM orders WHERE order_id = ?", [order_id]))
    if not rows:
        return None
    row = rows[0]
    return Order(
        row["order_id"],
        row["shopper_id"],
        row["state"],
        OrderPrice.from_dict(json.loads(row["priced"])),
        row["created_ms"],
        row["voided_ms"],
    )


def redeem(
    db: Any,
    request: Request,
    ctx: OfferContext,
    *,
    active: Sequence[Offer],
    offer_of: Callable[[str], Offer],
    store_id: str,
    sandbox: bool = False,
    points: Callable[[], Points] | None = None,
    move: Callable[[str, Sequence[tuple[str, int]]], None] | None = None,
) -> Order | OfferRejected:
    """Price and redeem the order in the caller's transaction (see the module docstring).

    ``points`` reads the member's points inside the transaction (so two orders at once can
    never spend one balance twice on this device); ``move(shopper_id, changes)`` moves the
    member's profile counters (points earned and spent); a void moves them back."""
    fingerprint = request.fingerprint(ctx)
    rows = list(db.query("SELECT fingerprint FROM orders WHERE order_id = ?", [request.order_id]))
    if rows:
        if rows[0]["fingerprint"] != fingerprint:
            return OfferRejected(
                f"order {request.order_id} was already redeemed with other contents: "
                "use a new order id for a new order",
                reason="order_conflict",
            )
        return stored(db, request.order_id)  # type: ignore[return-value]
    redemption.expire(db, ctx.now_ms)  # holds past their time no longer count
    held = points() if points is not None else None
    if held is not None:
        ctx = replace(ctx, points=held.balance)
    multiplier = held.multiplier if held is not None else 1.0
    priced = price(db, request, ctx, active=active, offer_of=offer_of, multiplier=multiplier)
    for a in priced.applied:
        redemption.record(
            db,
            offer_id=a.offer_id,
            code=a.code,
            shopper_id=ctx.shopper_id,
            amount=a.amount,
            stamp=ctx.now_ms,
            order_id=request.order_id,
            store_id=store_id,
            points_earned=a.points,
            points_spent=a.points_cost,
        )
    moves: list[tuple[str, int]] = [
        (usage.USES + a.offer_id, 1)  # the member's uses, counted where every device sees them
        for a in priced.applied
        if offer_of(a.offer_id).limits.per_customer_limited
    ]
    if held is not None:
        moves += earn_moves(priced.points_earned, ctx.now_ms)
        moves += burn_moves(held, priced.points_spent)
    if moves and move is not None:
        move(ctx.shopper_id, moves)
    db.execute(
        "INSERT INTO orders (order_id, shopper_id, fingerprint, state, priced, discount, counters, "
        "created_ms) VALUES (?, ?, ?, 'redeemed', ?, ?, ?, ?)",
        [
            request.order_id,
            ctx.shopper_id,
            fingerprint,
            json.dumps(priced.to_dict()),
            priced.discount,
            json.dumps(moves),
            ctx.now_ms,
        ],
    )
    for x in priced.left_out:  # the funnel counts refusals of what the shopper asked for
        if x.offer_id != "?" and (x.code is not None or x.offer_id in request.offers):
            day = day_bounds(ctx)
            usage.record_rejection(
                db, ctx.shopper_id, x.offer_id, x.reason, ctx.now_ms, ctx.store_id, day
            )
    return Order(request.order_id, ctx.shopper_id, "redeemed", priced, ctx.now_ms, sandbox=sandbox)


def void(
    db: Any,
    order_id: str,
    *,
    stamp: int,
    move: Callable[[str, Sequence[tuple[str, int]]], None] | None = None,
    sandbox: bool = False,
    store_id: str = "",
) -> Order | OfferRejected:
    """Void (refund) a redeemed order in the caller's transaction: its ledger rows move to the
    voided ledger, their counters and codes come back, the profile counters it moved move back. Voiding twice
    changes nothing more."""
    order = stored(db, order_id)
    if order is None:
        return OfferRejected(f"no order {order_id!r}", reason="order_unknown")
    if order.state == "voided":
        return order
    redemption.undo_order(db, order_id, stamp=stamp, store_id=store_id)
    rows = list(db.query("SELECT counters FROM orders WHERE order_id = ?", [order_id]))
    moves = [(name, -change) for name, change in json.loads(rows[0]["counters"])]
    if moves and move is not None:
        move(order.shopper_id, moves)
    db.execute(
        "UPDATE orders SET state = 'voided', voided_ms = ? WHERE order_id = ?", [stamp, order_id]
    )
    return replace(order, state="voided", voided_ms=stamp, sandbox=sandbox)


def unlink_sales(db: Any, shopper_id: str) -> None:
    """Keep an ended session's orders, ledger rows and redeemed codes with no link to it
    (caller's transaction).

    A till must still void a guest's sale after the guest walked away, and the staff totals
    still count it. The shopper id goes from the row and from the stored price; the fingerprint
    (a digest of that id) goes too, so a reused order id is still refused. The counters go
    because the profile counters they would move back are deleted with the guest. The codes
    the sales used stay (bound to nobody) so the void gives them back as it does a member's.
    """
    redemption.unlink_ledger(db, shopper_id)
    unlink_used_codes(db, shopper_id)
    db.execute(
        "UPDATE orders SET shopper_id = '', fingerprint = '', counters = '[]', "
        "priced = json_set(priced, '$.shopper_id', '') WHERE shopper_id = ?",
        [shopper_id],
    )


__all__ = [
    "HINTS",
    "SALE_TABLES",
    "AppliedOffer",
    "LeftOutOffer",
    "Order",
    "OrderLine",
    "OrderPrice",
    "Request",
    "check_request",
    "price",
    "redeem",
    "stored",
    "unlink_sales",
    "void",
]
