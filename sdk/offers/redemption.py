"""Redemption: reserve-with-expiry -> commit -> release, each step one transaction.

A reservation holds a code (or a code-less offer) for one checkout until it expires; while
held it counts against the offer's limits and budget. ``reserve`` checks the code's state,
evaluates the offer with counters read inside the same ``BEGIN IMMEDIATE`` transaction and
moves the code, the reservation and the counters together, so two checkouts (threads or
processes) can never spend one single-use code or one budget twice. ``commit`` spends a hold,
``release`` gives it back, ``expire`` releases every hold past its time (``reserve`` runs it
first), ``release_holds_of`` releases a forgotten shopper's holds. An order's offers go into
the same ledger at once (``record``, tagged with the order id) and come out when the order is
voided (``undo_order``).

Each function works inside the caller's transaction (``db``) and returns an ``OfferRejected``
instead of raising it, so what it changed before refusing (an expired hold released, the
rejection logged) commits; the ``Offers`` engine raises it afterwards. This module owns the
``reservations`` and ``redemptions`` tables.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
    ...                            "reward": {"type": "amount", "value": 1}})
    ...     _ = sw.member("L-1")
    ...     held = sw.offers.reserve("o", shopper_id="L-1", cart_total=5)
    ...     with sw.store.write() as db:
    ...         release(db, held.reservation_id), release(db, held.reservation_id).reason
    (None, 'reservation_closed')
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import OfferRejected
from . import usage
from .codes import code_row, free_code, hold_code, redeem_code, unredeem_code
from .definitions import Offer
from .rules import OfferContext, day_bounds, evaluate

# The ledger's columns, shared by ``redemptions`` and the report's voided and sandbox tables.
LEDGER_COLUMNS = (
    "redemption_id, offer_id, code, shopper_id, amount, ts_ms, order_id, store_id, "
    "points_earned, points_spent"
)
# Every table that holds ledger rows: the live one, voided orders' and sandbox runs'.
LEDGER_TABLES = ("redemptions", "voided_redemptions", "sandbox_redemptions")


@dataclass(frozen=True)
class Reservation:
    """A code (or offer) held for one checkout until ``expires_ms``; commit or release it."""

    reservation_id: str
    offer_id: str
    code: str | None
    shopper_id: str
    amount: float
    expires_ms: int
    sandbox: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Redemption:
    """A committed redemption: the money off and the offer it came from."""

    redemption_id: str
    offer_id: str
    code: str | None
    shopper_id: str
    amount: float
    ts_ms: int
    sandbox: bool = False
    order_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def code_refusal(
    row: Mapping[str, Any], code: str, shopper_id: str, stamp: int
) -> OfferRejected | None:
    """Why a stored code cannot be reserved by this shopper now (None: it can)."""
    if row["state"] == "redeemed":
        return OfferRejected(f"code {code} was already redeemed", reason="code_used")
    if row["state"] == "reserved":
        return OfferRejected(f"code {code} is held by another checkout", reason="code_reserved")
    if row["expires_ms"] is not None and row["expires_ms"] <= stamp:
        return OfferRejected(f"code {code} expired", reason="code_expired")
    if row["shopper_id"] and row["shopper_id"] != shopper_id:
        return OfferRejected(f"code {code} belongs to another member", reason="code_other_shopper")
    return None


def reserve(
    db: Any,
    *,
    code: str | None,
    offer_id: str,
    shopper_id: str,
    ctx: OfferContext,
    ttl_ms: int,
    offer_of: Callable[[str], Offer],
    sandbox: bool = False,
) -> Reservation | OfferRejected:
    """Hold ``code`` (a checked, canonical code) or, when it is None, the code-less offer
    ``offer_id`` for ``shopper_id``; ``offer_of`` reads an offer by id (the engine's cache)."""
    stamp = ctx.now_ms
    expire(db, stamp)
    if code is None:
        offer = offer_of(offer_id)
        if offer.codes == "unique":
            return OfferRejected(f"offer {offer.offer_id} needs a code", reason="code_required")
    else:
        row = code_row(db, code)
        if row is None:
            return OfferRejected(f"code {code} does not exist", reason="code_unknown")
        refusal = code_refusal(row, code, shopper_id, stamp)
        if refusal is not None:
            return refusal
        offer = offer_of(row["offer_id"])
    snapshot = usage.usage_snapshot(
        db, [offer.offer_id], shopper_id, ctx, per_day=usage.per_day_limited([offer])
    )
    counters = snapshot.usage(offer.offer_id)
    decision = evaluate(offer, ctx, counters)
    if not decision.eligible:
        return OfferRejected(decision.message, reason=decision.reason)
    if code is not None and not hold_code(db, code):  # pragma: no cover - the write lock
        return OfferRejected(f"code {code} is held by another checkout", reason="code_reserved")
    reservation = Reservation(
        uuid.uuid4().hex,
        offer.offer_id,
        code,
        shopper_id,
        decision.amount,
        stamp + ttl_ms,
        sandbox,
    )
    db.execute(
        "INSERT INTO reservations (reservation_id, offer_id, code, shopper_id, amount, created_ms, "
        "expires_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'held')",
        [
            reservation.reservation_id,
            offer.offer_id,
            code,
            shopper_id,
            decision.amount,
            stamp,
            reservation.expires_ms,
        ],
    )
    usage.hold(db, offer.offer_id, decision.amount)
    return reservation


def commit(
    db: Any,
    reservation_id: str,
    *,
    stamp: int,
    store_id: str,
    local_time: Callable[[int], dt.datetime | None],
    sandbox: bool = False,
) -> Redemption | OfferRejected:
    """Spend a held reservation at ``stamp``: the code is used for good, the hold becomes a
    redemption. An expired hold is released instead and the rejection logged (on the store-local
    day ``local_time`` gives)."""
    row = _held(db, reservation_id)
    if isinstance(row, OfferRejected):
        return row
    if row["expires_ms"] <= stamp:
        _release(db, row, "expired")
        day = day_bounds(OfferContext(now_ms=stamp, local=local_time(stamp)))
        usage.record_rejection(
            db, row["shopper_id"], row["offer_id"], "reservation_expired", stamp, store_id, day
        )
        return OfferRejected(
            "the reservation expired and was released: reserve again",
            reason="reservation_expired",
        )
    db.execute(
        "UPDATE reservations SET state = 'committed' WHERE reservation_id = ?", [reservation_id]
    )
    if row["code"]:
        redeem_code(db, row["code"], stamp)
    usage.spend(db, row["offer_id"], row["amount"])
    redemption = Redemption(
        uuid.uuid4().hex,
        row["offer_id"],
        row["code"],
        row["shopper_id"],
        row["amount"],
        stamp,
        sandbox,
    )
    db.execute(
        "INSERT INTO redemptions (redemption_id, offer_id, code, shopper_id, amount, ts_ms, "
        "store_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            redemption.redemption_id,
            row["offer_id"],
            row["code"],
            row["shopper_id"],
            row["amount"],
            stamp,
            store_id,
        ],
    )
    usage.log_event(
        db,
        row["shopper_id"],
        "offer_redeemed",
        {"offer_id": row["offer_id"]},
        stamp,
        store_id,
        row["amount"],
    )
    return redemption


def record(
    db: Any,
    *,
    offer_id: str,
    code: str | None,
    shopper_id: str,
    amount: float,
    stamp: int,
    order_id: str,
    store_id: str,
    points_earned: int = 0,
    points_spent: int = 0,
) -> Redemption:
    """Write one offer of an order into the ledger at once (an order is priced and redeemed in
    one transaction, so there is no hold): the row (with the points the offer earned or
    spent, for the report), the counters, the code, the funnel event."""
    redemption = Redemption(
        uuid.uuid4().hex, offer_id, code, shopper_id, amount, stamp, order_id=order_id
    )
    db.execute(
        "INSERT INTO redemptions (redemption_id, offer_id, code, shopper_id, amount, ts_ms, "
        "order_id, store_id, points_earned, points_spent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            redemption.redemption_id,
            offer_id,
            code,
            shopper_id,
            amount,
            stamp,
            order_id,
            store_id,
            points_earned,
            points_spent,
        ],
    )
    if code:
        redeem_code(db, code, stamp)
    usage.count_spent(db, offer_id, amount, 1)
    payload = {"offer_id": offer_id, "order_id": order_id}
    usage.log_event(db, shopper_id, "offer_redeemed", payload, stamp, store_id, amount)
    return redemption


def undo_order(db: Any, order_id: str, *, stamp: int, store_id: str = "") -> list[Redemption]:
    """Give back every redemption of a voided order: counters, codes, limits. The rows leave
    the live ledger (which the limits count) for ``voided_redemptions`` (which the report
    shows), and each gets an ``offer_voided`` funnel event. Returns what was given back."""
    rows = list(db.query("SELECT * FROM redemptions WHERE order_id = ?", [order_id]))
    for row in rows:
        usage.count_spent(db, row["offer_id"], -row["amount"], -1)
        if row["code"]:
            unredeem_code(db, row["code"])
        payload = {"offer_id": row["offer_id"], "order_id": order_id}
        usage.log_event(
            db, row["shopper_id"], "offer_voided", payload, stamp, store_id, row["amount"]
        )
    db.execute(
        f"INSERT INTO voided_redemptions ({LEDGER_COLUMNS}, voided_ms) "
        f"SELECT {LEDGER_COLUMNS}, ? FROM redemptions WHERE order_id = ?",
        [stamp, order_id],
    )
    db.execute("DELETE FROM redemptions WHERE order_id = ?", [order_id])
    return [
        Redemption(
            r["redemption_id"],
            r["offer_id"],
            r["code"],
            r["shopper_id"],
            r["amount"],
            r["ts_ms"],
            order_id=order_id,
        )
        for r in rows
    ]


def release(db: Any, reservation_id: str) -> OfferRejected | None:
    """Give a held code back (payment failed or the cart changed)."""
    row = _held(db, reservation_id)
    if isinstance(row, OfferRejected):
        return row
    _release(db, row, "released")
    return None


def _held(db: Any, reservation_id: str) -> dict[str, Any] | OfferRejected:
    rows = list(db.query("SELECT * FROM reservations WHERE reservation_id = ?", [reservation_id]))
    if not rows:
        return OfferRejected(f"no reservation {reservation_id!r}", reason="reservation_unknown")
    row: dict[str, Any] = rows[0]
    if row["state"] == "expired":
        return OfferRejected(
            "the reservation expired and was released: reserve again", reason="reservation_expired"
        )
    if row["state"] != "held":
        return OfferRejected(
            f"the reservation was already {row['state']}", reason="reservation_closed"
        )
    return row


def _release(db: Any, row: Mapping[str, Any], state: str) -> None:
    db.execute(
        "UPDATE reservations SET state = ? WHERE reservation_id = ?", [state, row["reservation_id"]]
    )
    if row["code"]:
        free_code(db, row["code"])
    usage.unhold(db, row["offer_id"], row["amount"])


def release_holds_of(db: Any, shopper_id: str) -> int:
    """Release every live hold of a shopper who is being forgotten; return how many.

    Deleting the rows instead would leave the offer's reserved counters and codes stuck.
    """
    rows = list(
        db.query("SELECT * FROM reservations WHERE shopper_id = ? AND state = 'held'", [shopper_id])
    )
    for row in rows:
        _release(db, row, "released")
    return len(rows)


def unlink_ledger(db: Any, shopper_id: str) -> None:
    """Keep an ended session's ledger rows with the shopper id blanked (caller's transaction).

    The offer's counters still count them, so the report must too; deleting them would also
    tell the collector they were voided.
    """
    for table in LEDGER_TABLES:
        db.execute(f"UPDATE {table} SET shopper_id = '' WHERE shopper_id = ?", [shopper_id])


def expire(db: Any, stamp: int) -> int:
    """Release every hold whose time ran out by ``stamp``; return how many."""
    rows = list(
        db.query("SELECT * FROM reservations WHERE state = 'held' AND expires_ms <= ?", [stamp])
    )
    for row in rows:
        _release(db, row, "expired")
    return len(rows)


__all__ = [
    "LEDGER_COLUMNS",
    "LEDGER_TABLES",
    "Redemption",
    "Reservation",
    "code_refusal",
    "commit",
    "expire",
    "record",
    "release",
    "release_holds_of",
    "reserve",
    "undo_order",
    "unlink_ledger",
]
