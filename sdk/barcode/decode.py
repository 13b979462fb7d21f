"""Reading retail barcodes (EAN/UPC) from camera images (optional ``scan`` extra: zxing-cpp).

Example:
    >>> from shelfwise.barcode.decode import decode_image
    >>> callable(decode_image)
    True
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from .._errors import InvalidBarcode

_RETAIL_FORMATS = ("EAN13", "EAN8", "UPCA", "UPCE")


def decode_image(image: str | Path | bytes) -> list[str]:
    """Decode the retail barcodes (EAN/UPC) in a camera image; needs ``shelfwise[scan]``.

    Returns the decoded digits, best first (often one code, sometimes none). Decoders may
    report a UPC-A as a 13-digit EAN-13 with a leading 0: both normalise to the same GTIN.

    Example:
        >>> decode_image(b"not an image")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        shelfwise.InvalidBarcode: the image could not be read: ...
    """
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "decoding barcodes from images needs the 'scan' extra: "
            f"pip install 'shelfwise[scan]' ({exc.name or exc} is missing)"
        ) from exc
    source: Any = io.BytesIO(image) if isinstance(image, bytes | bytearray) else Path(image)
    try:
        with warnings.catch_warnings():
            # PIL warns about palette transparency in some PNGs; converting to grey drops it.
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(source) as opened:
                grey = opened.convert("L")
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidBarcode(f"the image could not be read: {exc}", reason="image") from exc
    formats = tuple(getattr(zxingcpp.BarcodeFormat, name) for name in _RETAIL_FORMATS)
    results = zxingcpp.read_barcodes(grey, formats=formats)  # type: ignore[arg-type]
    return list(dict.fromkeys(r.text for r in results if r.valid and r.text))
