"""Centrally issued codes on the device: claimed from the collector the first time they are
typed here, then redeemed like the device's own (see ``shelfwise.upstream`` ``_codes``).

A code this store does not know, typed while ``sw.offers`` has a code authority (the
collector: ``shelfwise.sync.leasing.CodeAuthority``), is claimed before the redemption: the
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

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._errors import OfferRejected, ShelfwiseError
from .._time import now_ms
from ..store.connection import Store
from .codes import canonical_code, check_code, code_row, insert_codes


class CodeAuthorityLike(Protocol):
    """What the engine needs of a code authority (``CodeAuthority`` is the collector's)."""

    def claim(self, store: Store, code: str, claim_id: str) -> tuple[str, str | None]: ...

    def release(self, store: Store, code: str, claim_id: str) -> bool: ...


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
    authority: CodeAuthorityLike | None,
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


def give_back(store: Store, authority: CodeAuthorityLike | None, claims: Sequence[Claim]) -> None:
    """Return claims whose redemption failed; a code the collector took back leaves this store."""
    for claim in claims:
        if authority is not None and authority.release(store, claim.code, claim.claim_id):
            with store.write() as db:
                db.execute(
                    "DELETE FROM offer_codes WHERE code = ? AND state = 'available'", [claim.code]
                )


__all__ = ["Claim", "CodeAuthorityLike", "claim_unknown_codes", "give_back"]
