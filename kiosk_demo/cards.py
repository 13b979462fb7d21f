"""Loyalty card numbers of the demo store: EAN-13 ``299`` + 9-digit member number + check digit.

Both the offline store builder (``build_store``) and the kiosk use these, so a card printed by
one is read by the other. The check digit comes from python-stdnum.

Example:
    >>> card_code("1808")
    '2990000018083'
    >>> member_of_card(card_code("1808"))
    '1808'
"""

from __future__ import annotations

from stdnum import ean

CARD_PREFIX = "299"  # GS1 prefix 29x: restricted circulation, ours to use inside the store


def ean13(body: str) -> str:
    """A 12-digit body plus its EAN-13 check digit.

    Example:
        >>> ean13("200000100000")
        '2000001000009'
    """
    if len(body) != 12 or not body.isdigit():
        raise ValueError(f"an EAN-13 body is 12 digits, not {body!r}")
    return body + ean.calc_check_digit(body)


def card_code(member: str) -> str:
    """The loyalty card barcode of a member number.

    Example:
        >>> card_code("1808")
        '2990000018083'
    """
    return ean13(CARD_PREFIX + f"{int(member):09d}")


def member_of_card(code: str) -> str | None:
    """The member number a loyalty card code carries, or None when it is not a card.

    Example:
        >>> member_of_card("2990000018083")
        '1808'
        >>> member_of_card("2990000018084") is None
        True
    """
    code = code.strip()
    if len(code) != 13 or not code.startswith(CARD_PREFIX) or not ean.is_valid(code):
        return None
    return str(int(code[3:12]))
