"""Bounded decoding of untrusted msgpack: what every side of the wire reads first.

Anything that crossed the network is decoded here, with sizes bounded and string map keys
only, into an ``EnvelopeError`` when it is hostile (``shelfwise.sync.protocol`` re-exports
``safe_unpack``).

Example:
    >>> safe_unpack(b"\\x81\\xa1v\\x01")
    {'v': 1}
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec

from .._errors import EnvelopeError


def safe_unpack(raw: bytes, *, max_len: int = 64 << 20) -> Any:
    """msgpack decode with string keys only and bounded sizes; ``EnvelopeError`` if hostile."""
    if not isinstance(raw, bytes | bytearray) or len(raw) > max_len:
        raise EnvelopeError(f"a msgpack document must be bytes of at most {max_len}")
    try:
        return msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=1 << 16,
            max_bin_len=max_len,
            max_array_len=1 << 20,
            max_map_len=1 << 16,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise EnvelopeError(f"not a valid msgpack document: {type(exc).__name__}") from exc


def decode(raw: Any, schema: type[Any], what: str, max_len: int) -> Any:
    """Decode msgpack bytes straight into a msgspec schema; ``EnvelopeError`` says why not."""
    if not isinstance(raw, bytes | bytearray) or len(raw) > max_len:
        raise EnvelopeError(f"{what} must be msgpack bytes of at most {max_len}")
    try:
        return msgspec.msgpack.decode(raw, type=schema)
    except msgspec.ValidationError as exc:
        raise EnvelopeError(f"malformed {what}: {exc}") from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise EnvelopeError(f"{what} is not a valid msgpack document: {exc}") from exc


__all__ = ["decode", "safe_unpack"]
