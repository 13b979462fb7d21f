"""GTIN parsing and validation: every retail form normalised to one 14-digit key.

Check digits come from python-stdnum (``stdnum.ean``), not hand-written arithmetic.
UPC-A (12), EAN-13, EAN-8 and GTIN-14 are accepted; UPC-E (8 digits starting 0/1) is
expanded to UPC-A first when ``upc_e=True`` (stdnum has no UPC-E, so the expansion follows the
GS1 zero-suppression rules here and the check digit is still validated by stdnum).

In-store codes: GS1 reserves GTIN-13 prefixes 20-29 for restricted circulation inside a
company (GS1 General Specifications, "Restricted Circulation Numbers"); the layout of such a
code is the retailer's (or the local GS1 office's) choice. ``InStoreLayout`` describes one;
the default is the common "variable measure" layout::

    2 F IIIII VVVVV C      F = prefix digit, I = item reference, V = value, C = check digit
    20           a fixed in-store item (no value: the whole code is the key)
    21, 22       V is a weight in grams
    23 .. 29     V is a price in cents

The catalog stores a variable-measure item under its *base code*: the same code with the
value digits zeroed and the check digit recomputed, so any weighed pack of it finds the item.

Example:
    >>> normalize_gtin("036000291452")      # UPC-A
    '00036000291452'
    >>> normalize_gtin("0036000291452")     # the same product as EAN-13
    '00036000291452'
    >>> normalize_gtin("036000291453")
    Traceback (most recent call last):
    ...
    shelfwise.InvalidBarcode: 036000291453 has a wrong check digit (expected 2): rescan or type it again
    >>> expand_upce("04252614")             # UPC-E -> UPC-A
    '042100005264'
    >>> code = parse_barcode("2400123004998")  # 24: price-embedded, item 00123, 4.99
    >>> code.kind, code.item_reference, code.price, code.lookup_gtin
    ('variable_price', '00123', 4.99, '02400123000006')
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from stdnum import ean
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength

from .._errors import InvalidBarcode
from .layout import DEFAULT_LAYOUT, InStoreLayout

GTIN_LENGTHS = (8, 12, 13, 14)
FORMS = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13", 14: "GTIN-14"}


def _clean(code: str) -> str:
    cleaned = (code or "").strip().replace(" ", "").replace("-", "")
    if not cleaned:
        raise InvalidBarcode("the scanned code is empty", code=code, reason="empty")
    if not cleaned.isdigit() or not cleaned.isascii():
        raise InvalidBarcode(
            f"{cleaned!r} is not a barcode: a GTIN has digits only", code=code, reason="characters"
        )
    return cleaned


def _validate_check_digit(cleaned: str, code: str) -> None:
    try:
        ean.validate(cleaned)
    except InvalidChecksum as exc:
        expected = ean.calc_check_digit(cleaned[:-1])
        raise InvalidBarcode(
            f"{cleaned} has a wrong check digit (expected {expected}): rescan or type it again",
            code=code,
            reason="check_digit",
        ) from exc
    except (InvalidLength, InvalidFormat) as exc:  # pragma: no cover - guarded by the callers
        raise InvalidBarcode(f"{cleaned} is not a GTIN: {exc}", code=code, reason="length") from exc


def expand_upce(code: str) -> str:
    """Expand a UPC-E code (7 or 8 digits: number system 0/1, six digits, [check]) to UPC-A.

    The check digit of a UPC-E code is the check digit of its UPC-A expansion; when given it
    is validated (``InvalidBarcode(reason="check_digit")``), when missing it is computed.

    Example:
        >>> expand_upce("0425261")
        '042100005264'
    """
    cleaned = _clean(code)
    if len(cleaned) not in (7, 8):
        raise InvalidBarcode(
            f"{cleaned} has {len(cleaned)} digits; a UPC-E code has 7 or 8",
            code=code,
            reason="length",
        )
    if cleaned[0] not in "01":
        raise InvalidBarcode(
            f"{cleaned} is not UPC-E: its number system must be 0 or 1", code=code, reason="length"
        )
    system, d = cleaned[0], cleaned[1:7]
    last = d[5]
    # GS1 zero suppression: the last of the six digits says where the zeros were taken out.
    if last in "012":
        body = d[0:2] + last + "0000" + d[2:5]
    elif last == "3":
        body = d[0:3] + "00000" + d[3:5]
    elif last == "4":
        body = d[0:4] + "00000" + d[4]
    else:
        body = d[0:5] + "0000" + last
    upca = system + body
    upca += ean.calc_check_digit(upca)
    if len(cleaned) == 8 and cleaned[7] != upca[-1]:
        raise InvalidBarcode(
            f"{cleaned} has a wrong check digit (expected {upca[-1]}): rescan or type it again",
            code=code,
            reason="check_digit",
        )
    return upca


def normalize_gtin(code: str, *, upc_e: bool = False) -> str:
    """Validate a GTIN in any of its forms and return it as 14 zero-padded digits.

    Raises ``InvalidBarcode`` with ``reason`` ``"empty"``, ``"characters"``, ``"length"``
    or ``"check_digit"``. ``upc_e=True`` reads an 8-digit code as UPC-E instead of EAN-8
    (the scanner knows which symbology it saw; the digits alone do not say).

    Example:
        >>> normalize_gtin("04252614", upc_e=True)
        '00042100005264'
    """
    cleaned = _clean(code)
    if upc_e:
        return expand_upce(cleaned).zfill(14)
    if len(cleaned) not in GTIN_LENGTHS:
        raise InvalidBarcode(
            f"{cleaned} has {len(cleaned)} digits; a GTIN has 8, 12, 13 or 14",
            code=code,
            reason="length",
        )
    _validate_check_digit(cleaned, code)
    return cleaned.zfill(14)


def gtin_or_none(code: str | None) -> str | None:
    """``normalize_gtin`` for optional catalog fields: empty -> None, invalid -> error."""
    if code is None or not str(code).strip():
        return None
    return normalize_gtin(str(code))


@dataclass(frozen=True)
class ParsedBarcode:
    """A validated scan: its GTIN-14, its form, and what an in-store code carries.

    ``lookup_gtin`` is the key to find the item in the catalog (the base code for
    variable-measure items). ``alternatives`` are other keys the same digits may mean
    (an 8-digit code that is valid both as EAN-8 and as UPC-E).
    """

    code: str
    gtin: str
    form: str
    kind: str = "gtin"  # gtin | in_store | variable_weight | variable_price
    lookup_gtin: str = ""
    item_reference: str | None = None
    price: float | None = None
    weight_g: int | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def in_store(self) -> bool:
        return self.kind != "gtin"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "code": self.code,
            "gtin": self.gtin,
            "form": self.form,
            "kind": self.kind,
            "lookup_gtin": self.lookup_gtin,
            "item_reference": self.item_reference,
            "price": self.price,
            "weight_g": self.weight_g,
        }


def base_code(gtin13: str, layout: InStoreLayout = DEFAULT_LAYOUT) -> str:
    """The code of a variable-measure item with its value zeroed (what the catalog stores).

    Example:
        >>> base_code("2400123004998")
        '2400123000006'
    """
    digits = gtin13[-13:]
    body = (
        digits[: layout.value_start]
        + "0" * layout.value_length
        + digits[layout.value_start + layout.value_length : 12]
    )
    return body + ean.calc_check_digit(body)


def in_store_code(
    prefix: str, item_reference: str, value: int = 0, layout: InStoreLayout = DEFAULT_LAYOUT
) -> str:
    """Build a 13-digit in-store code (for labels, tests and the demo store).

    Example:
        >>> in_store_code("24", "00123", 499)
        '2400123004998'
    """
    if len(prefix) != 2 or prefix[0] != "2" or not prefix.isdigit():
        raise InvalidBarcode(f"in-store prefixes are 20-29, not {prefix!r}", reason="length")
    if len(item_reference) != layout.item_length or not item_reference.isdigit():
        raise InvalidBarcode(
            f"the item reference must be {layout.item_length} digits", reason="length"
        )
    if not 0 <= value < 10**layout.value_length:
        raise InvalidBarcode(f"value {value} does not fit the layout", reason="length")
    body = list(prefix + "0" * 10)
    body[layout.item_start : layout.item_start + layout.item_length] = item_reference
    body[layout.value_start : layout.value_start + layout.value_length] = str(value).zfill(
        layout.value_length
    )
    text = "".join(body)
    return text + ean.calc_check_digit(text)


def parse_barcode(
    code: str, *, symbology: str | None = None, layout: InStoreLayout = DEFAULT_LAYOUT
) -> ParsedBarcode:
    """Validate any retail barcode and say what it is; ``InvalidBarcode`` says why not.

    ``symbology`` is what the scanner reported ("UPC-E", "EAN-8", ...), when known. Without
    it, an 8-digit code is EAN-8 when its check digit fits and UPC-E otherwise.

    Example:
        >>> parse_barcode("2100042012509").weight_g   # 21: weight-embedded, 1.250 kg
        1250
        >>> parse_barcode("04252614", symbology="UPC-E").form
        'UPC-E'
    """
    cleaned = _clean(code)
    named = (symbology or "").upper().replace("_", "-").replace(" ", "")
    if named in {"UPC-E", "UPCE"} or (len(cleaned) == 7 and cleaned[0] in "01"):
        gtin = expand_upce(cleaned).zfill(14)
        return ParsedBarcode(code=cleaned, gtin=gtin, form="UPC-E", lookup_gtin=gtin)
    if len(cleaned) == 8 and named not in {"EAN-8", "EAN8"}:
        try:
            gtin = normalize_gtin(cleaned)
        except InvalidBarcode as ean8_error:
            if cleaned[0] not in "01":
                raise
            try:
                upce = expand_upce(cleaned).zfill(14)
            except InvalidBarcode:
                raise ean8_error from None
            return ParsedBarcode(code=cleaned, gtin=upce, form="UPC-E", lookup_gtin=upce)
        alternatives: tuple[str, ...] = ()
        if cleaned[0] in "01":
            with contextlib.suppress(InvalidBarcode):
                alternatives = (expand_upce(cleaned).zfill(14),)
        return ParsedBarcode(
            code=cleaned, gtin=gtin, form="EAN-8", lookup_gtin=gtin, alternatives=alternatives
        )
    gtin = normalize_gtin(cleaned)
    form = FORMS[len(cleaned)]
    gtin13 = gtin[1:]
    if gtin[0] != "0" or gtin13[0] != "2":
        return ParsedBarcode(code=cleaned, gtin=gtin, form=form, lookup_gtin=gtin)
    prefix = gtin13[:2]
    reference = gtin13[layout.item_start : layout.item_start + layout.item_length]
    value = int(gtin13[layout.value_start : layout.value_start + layout.value_length])
    lookup = base_code(gtin13, layout).zfill(14)
    if prefix in layout.weight_prefixes:
        return ParsedBarcode(
            code=cleaned,
            gtin=gtin,
            form=form,
            kind="variable_weight",
            lookup_gtin=lookup,
            item_reference=reference,
            weight_g=value,
        )
    if prefix in layout.price_prefixes:
        return ParsedBarcode(
            code=cleaned,
            gtin=gtin,
            form=form,
            kind="variable_price",
            lookup_gtin=lookup,
            item_reference=reference,
            price=value / 10**layout.price_decimals,
        )
    return ParsedBarcode(
        code=cleaned,
        gtin=gtin,
        form=form,
        kind="in_store",
        lookup_gtin=gtin,
        item_reference=reference,
    )
