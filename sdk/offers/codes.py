"""One-time offer codes: cryptographically random, unambiguous, with a check character.

This module owns the ``offer_codes`` table: a code is ``available``, ``reserved`` by one
checkout, or ``redeemed`` for good; the state changes inside the redemption's transaction.

Codes use a 30-symbol alphabet without the look-alikes 0/O, 1/I/L and U, so a shopper can
read one off a receipt and type it. The last character is a Luhn mod N check character
(python-stdnum's ``luhn`` with our alphabet): it catches every single mistyped character and
most swaps of neighbours before the store is asked. Random parts come from ``secrets``.

Example:
    >>> code = new_code()
    >>> len(code), check_code(code) == code
    (13, True)
    >>> check_code(code[:-1] + ("2" if code[-1] != "2" else "3"))
    Traceback (most recent call last):
    ...
    shelfwise.OfferRejected: ... is not a valid code (its check character is wrong): check the spelling
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from stdnum import luhn
from stdnum.exceptions import ValidationError

from .._errors import OfferRejected

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_LENGTH = 12  # 30**12 ~ 5e17: guessing one of a million live codes takes ~2.6e11 tries


def new_code(length: int = RANDOM_LENGTH) -> str:
    """A fresh random code: ``length`` random symbols plus one check character.

    Example:
        >>> all(c in ALPHABET for c in new_code())
        True
    """
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return body + luhn.calc_check_digit(body, alphabet=ALPHABET)


def canonical_code(text: str) -> str:
    """Upper-case, drop spaces and dashes (``ABCD-EFGH`` as printed on a receipt)."""
    return "".join(ch for ch in str(text).upper() if ch not in " -\t")


def check_code(text: str) -> str:
    """The canonical form of a typed code, or ``OfferRejected(reason="code_invalid")``.

    Example: see the module docstring.
    """
    code = canonical_code(text)
    if not code or any(ch not in ALPHABET for ch in code):
        bad = sorted({ch for ch in code if ch not in ALPHABET})
        hint = f" (it contains {''.join(bad)!r}; codes never use 0, O, 1, I, L or U)" if bad else ""
        raise OfferRejected(f"{text!r} is not a valid code{hint}", reason="code_invalid")
    try:
        luhn.validate(code, alphabet=ALPHABET)
    except ValidationError as exc:
        raise OfferRejected(
            f"{code} is not a valid code (its check character is wrong): check the spelling",
            reason="code_invalid",
        ) from exc
    return code


def looks_like_code(text: str) -> bool:
    """True when ``text`` is spelled with code symbols only (not necessarily valid)."""
    code = canonical_code(text)
    return len(code) >= 6 and all(ch in ALPHABET for ch in code)


def insert_codes(
    db: Any,
    offer_id: str,
    codes: Sequence[str],
    *,
    shopper_id: str | None,
    expires_ms: int | None,
    stamp: int,
) -> None:
    """Store freshly drawn codes as ``available`` (optionally bound to one member), in the
    caller's transaction (``Offers.issue_codes`` is the public way)."""
    db.table("offer_codes").insert_all(
        [
            {
                "code": c,
                "offer_id": offer_id,
                "shopper_id": shopper_id,
                "state": "available",
                "issued_ms": stamp,
                "expires_ms": expires_ms,
            }
            for c in codes
        ]
    )


def code_row(db: Any, code: str) -> dict[str, Any] | None:
    """The stored row of a canonical code, or None when no such code was issued."""
    found = list(db.query("SELECT * FROM offer_codes WHERE code = ?", [code]))
    return found[0] if found else None


def offer_of_code(store: Any, text: str) -> str | None:
    """The offer a typed code belongs to, or None (used to file a rejection under its offer)."""
    rows = store.query("SELECT offer_id FROM offer_codes WHERE code = ?", [canonical_code(text)])
    return rows[0]["offer_id"] if rows else None


def hold_code(db: Any, code: str) -> bool:
    """Mark an available code reserved; False if it was not available."""
    moved: int = db.execute(
        "UPDATE offer_codes SET state = 'reserved' WHERE code = ? AND state = 'available'", [code]
    ).rowcount
    return moved == 1


def redeem_code(db: Any, code: str, stamp: int) -> None:
    """The code is used for good (its reservation was committed at ``stamp``)."""
    db.execute(
        "UPDATE offer_codes SET state = 'redeemed', redeemed_ms = ? WHERE code = ?",
        [stamp, code],
    )


def unredeem_code(db: Any, code: str) -> None:
    """A redeemed code comes back (the order it paid for was voided)."""
    db.execute(
        "UPDATE offer_codes SET state = 'available', redeemed_ms = NULL "
        "WHERE code = ? AND state = 'redeemed'",
        [code],
    )


def free_code(db: Any, code: str) -> None:
    """Give a reserved code back (its reservation was released or expired)."""
    db.execute(
        "UPDATE offer_codes SET state = 'available' WHERE code = ? AND state = 'reserved'",
        [code],
    )


def unlink_used_codes(db: Any, shopper_id: str) -> None:
    """Keep an ended session's redeemed codes bound to nobody (caller's transaction).

    A redeemed code belongs to a kept sale: typed again it must still say ``code_used``, and
    a till voiding the sale later gives it back (``unredeem_code``) as for a member, to
    whoever holds it, since the guest can only come back as a new session. The guest's other
    codes stay bound to them and are deleted with the session: nobody could ever use them,
    and unbinding them would hand out bearer codes nobody was given.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     _ = sw.offers.define({"offer_id": "o", "title": "O", "codes": "unique",
        ...                            "reward": {"type": "amount", "value": 1}})
        ...     guest = sw.start_session()
        ...     used, spare = sw.offers.issue_codes("o", 2, shopper_id=guest.shopper_id)
        ...     _ = guest.redeem(used, cart_total=5)
        ...     guest.end()
        ...     code_row(sw.store.read(), used)["shopper_id"], code_row(sw.store.read(), spare)
        (None, None)
    """
    db.execute(
        "UPDATE offer_codes SET shopper_id = NULL WHERE shopper_id = ? AND state = 'redeemed'",
        [shopper_id],
    )


__all__ = [
    "ALPHABET",
    "canonical_code",
    "check_code",
    "code_row",
    "free_code",
    "hold_code",
    "insert_codes",
    "looks_like_code",
    "new_code",
    "offer_of_code",
    "redeem_code",
    "unlink_used_codes",
    "unredeem_code",
]
