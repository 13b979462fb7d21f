"""Centrally issued codes on the device: claimed from the collector the first time they are
typed here, then redeemed like the device's own (see ``shelfwise.upstream`` ``_codes``).

A code this store does not know, typed while ``sw.offers`` has a code authority (the
collector: ``shelfwise.sync.leasing.CollectorAuthority``), is claimed before the redemption: the
collector gives it to the first device that asks, so it is stored here as this device's own
code and redeemed in the same transaction as any other. A redemption that fails afterwards
gives the claim back (best effort: if the collector cannot be reached, the code stays with
this device, which is safe). Without a network, a central code is refused with
``code_unconfirmed``; a sandbox never claims.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     claim_unknown_codes(sw.store, None, ["ABC"], lambda offer_id: True)
    []
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from .._errors import OfferRejected, ShelfwiseError
from ..clock import now_ms
from ..store.connection import Store
from .codes import canonical_code, check_code, code_row, insert_codes
from .definitions import Offer
from .rules import OfferContext, within_central_limit

if TYPE_CHECKING:
    from .orders import OrderPrice

CHECK_ROUNDS = 3  # rounds of questions to the collector before an order is redeemed


class AuthorityLike(Protocol):
    """What the engine needs of the chain's authority (``CollectorAuthority`` is the
    collector's): central codes and members' uses of per-customer-limited offers."""

    def claim(self, store: Store, code: str, claim_id: str) -> tuple[str, str | None]: ...

    def release(self, store: Store, code: str, claim_id: str) -> bool: ...

    def peek(self, store: Store, code: str) -> tuple[str, str | None]: ...

    def claim_use(
        self, store: Store, shopper_id: str, offer_id: str, limit: int, use_id: str
    ) -> tuple[str, int]: ...

    def release_use(self, store: Store, shopper_id: str, offer_id: str, use_id: str) -> bool: ...


@dataclass(frozen=True)
class Claim:
    """A central code claimed for one redemption here."""

    code: str
    claim_id: str


def _unknown_here(store: Store, text: str) -> str | None:
    code = canonical_code(text)
    try:
        check_code(code)
    except OfferRejected:
        return None  # the ordinary path reports a mistyped code
    return code if code_row(store.read(), code) is None else None


def claim_unknown_codes(
    store: Store,
    authority: AuthorityLike | None,
    texts: Sequence[str],
    offer_exists: Callable[[str], bool],
) -> list[Claim]:
    """Claim every well-formed code in ``texts`` this store does not know; store each here.

    Raises ``OfferRejected`` (``code_unconfirmed`` when the collector cannot be reached,
    ``code_used`` / ``code_unknown`` as it answers) after giving back what it claimed.
    """
    claims: list[Claim] = []
    for text in texts:
        code = _unknown_here(store, text) if authority is not None else None
        if code is None or authority is None:
            continue
        claim = Claim(code, uuid.uuid4().hex)
        try:
            status, offer_id = authority.claim(store, code, claim.claim_id)
        except ShelfwiseError as exc:
            give_back(store, authority, claims)
            raise OfferRejected(
                f"the chain's server cannot be reached to check this code: {exc}",
                reason="code_unconfirmed",
            ) from exc
        if status != "claimed" or offer_id is None or not offer_exists(offer_id):
            if status == "claimed":
                authority.release(store, code, claim.claim_id)
            give_back(store, authority, claims)
            reason = status if status in {"code_used", "code_unknown"} else "unknown_offer"
            raise OfferRejected(f"the code cannot be redeemed here ({reason})", reason=reason)
        with store.write() as db:
            insert_codes(db, offer_id, [code], shopper_id=None, expires_ms=None, stamp=now_ms())
        claims.append(claim)
    return claims


def peek_unknown_codes(
    store: Store, authority: AuthorityLike | None, texts: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """What the collector says of each well-formed code this store does not know, claiming
    nothing: code -> (``available`` | ``code_used``, offer id). Unreachable: nothing."""
    seen: dict[str, tuple[str, str]] = {}
    for text in texts if authority is not None else ():
        code = _unknown_here(store, text)
        if code is None or authority is None:
            continue
        try:
            status, offer_id = authority.peek(store, code)
        except ShelfwiseError:
            continue
        if offer_id is not None and status in {"available", "code_used"}:
            seen[code] = (status, offer_id)
    return seen


def stage_codes(
    db: Any, seen: Mapping[str, tuple[str, str]], offer_exists: Callable[[str], bool]
) -> None:
    """Store peeked codes as the collector sees them, in a transaction the caller rolls back
    (an order priced with them: the combination they would make, or ``code_used``)."""
    for code, (status, offer_id) in seen.items():
        if offer_exists(offer_id):
            insert_codes(db, offer_id, [code], shopper_id=None, expires_ms=None, stamp=now_ms())
            if status != "available":
                db.execute("UPDATE offer_codes SET state = 'redeemed' WHERE code = ?", [code])


def give_back(store: Store, authority: AuthorityLike | None, claims: Sequence[Claim]) -> None:
    """Return claims whose redemption failed; a code the collector took back leaves this store."""
    for claim in claims:
        if authority is not None and authority.release(store, claim.code, claim.claim_id):
            with store.write() as db:
                db.execute(
                    "DELETE FROM offer_codes WHERE code = ? AND state = 'available'", [claim.code]
                )


def use_id(key: str, offer_id: str) -> str:
    """The id one redemption's use of an offer is counted under centrally (a retry of the
    same order counts once).

    Example:
        >>> len(use_id("till-7-0042", "once"))
        64
    """
    return hashlib.sha256(f"{key}\x00{offer_id}".encode()).hexdigest()


def check_member_uses(
    store: Store,
    authority: AuthorityLike | None,
    shopper_id: str,
    offers: Sequence[Offer],
    key: str,
) -> tuple[dict[str, int], list[str]]:
    """The central check: count one use of each per-customer-limited offer in ``offers`` for
    the member. Returns the member's uses elsewhere per offer (for ``OfferContext.central_uses``;
    at the limit when refused) and the offers whose use was counted (give back the ones the
    redemption did not apply). Offline, an offer is simply not in the answer: its offline
    policy applies."""
    counts: dict[str, int] = {}
    granted: list[str] = []
    for offer in offers:
        limit = offer.limits.per_customer
        if authority is None or limit is None:
            continue
        try:
            status, uses = authority.claim_use(
                store, shopper_id, offer.offer_id, limit, use_id(key, offer.offer_id)
            )
        except ShelfwiseError:
            continue
        counts[offer.offer_id] = uses if status == "granted" else max(uses, limit)
        if status == "granted":
            granted.append(offer.offer_id)
    return counts, granted


def check_order_uses(
    store: Store,
    authority: AuthorityLike,
    ctx: OfferContext,
    order_id: str,
    price: Callable[[OfferContext], OrderPrice],
    offer_of: Callable[[str], Offer],
) -> tuple[OfferContext, list[str]]:
    """The central check of a member's per-customer limits before an order is redeemed.

    Price the order, count a use of each per-customer-limited offer it applies (or would,
    once confirmed) with the collector, and price again only when the answers change which
    offers qualify: one refused there may make room for another, one unconfirmed here may
    apply now. When every answer confirms the pricing, pricing again would ask nothing new,
    so the order is priced once. Returns ``ctx`` with the answers and the offers counted
    (give back the ones the redemption does not apply).
    """
    counted: list[str] = []
    priced = price(ctx)
    for round_ in range(CHECK_ROUNDS):
        applied = {a.offer_id for a in priced.applied}
        unsure = {x.offer_id for x in priced.left_out if x.reason == "customer_unconfirmed"}
        ids = (applied | unsure) - set(ctx.central_uses)
        todo = [o for o in map(offer_of, sorted(ids)) if o.limits.per_customer is not None]
        if not todo:
            break
        found, granted = check_member_uses(store, authority, ctx.shopper_id, todo, order_id)
        counted += granted
        ctx = replace(ctx, central_uses={**ctx.central_uses, **found})
        if len(found) < len(todo):  # offline: the offline policies decide the rest
            break
        confirmed = all(
            (o.offer_id in applied) == within_central_limit(o, found[o.offer_id]) for o in todo
        )
        if confirmed or round_ == CHECK_ROUNDS - 1:
            break
        priced = price(ctx)
    return ctx, counted


def release_uses(
    store: Store, authority: AuthorityLike | None, shopper_id: str, offer_ids: Sequence[str],
    key: str,
) -> None:  # fmt: skip
    """Give back central uses a redemption did not take (best effort: a use that stays
    counted only ever refuses, never over-redeems)."""
    if authority is None:
        return
    for offer_id in offer_ids:
        authority.release_use(store, shopper_id, offer_id, use_id(key, offer_id))


__all__ = [
    "AuthorityLike",
    "CHECK_ROUNDS",
    "Claim",
    "check_member_uses",
    "check_order_uses",
    "claim_unknown_codes",
    "give_back",
    "peek_unknown_codes",
    "release_uses",
    "stage_codes",
    "use_id",
]
