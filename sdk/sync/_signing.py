"""Device identity and request signing: the part of the wire every ``/v1`` call passes.

A device holds its own id and HMAC secret (``Credentials``, never fleet-wide); every request
but health carries ``X-Shelfwise-Device``, ``X-Shelfwise-Time`` and ``X-Shelfwise-Signature``,
an HMAC-SHA256 over method, path, time and the body's sha256 (``sign_request``), which the
collector checks in constant time (``check_signature``). Import these names from
``shelfwise.sync.protocol``, the one wire module shared with upstream.

Example:
    >>> creds = Credentials("kiosk-1", b"s" * 32)
    >>> headers = sign_request(creds, "GET", "/v1/health", b"", 1_700_000_000_000)
    >>> auth = parse_auth_headers(headers)
    >>> check_signature(creds.secret, "GET", "/v1/health", b"", auth.ts_ms, auth.signature)
    True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import EnvelopeError, InvalidInput

HEADER_DEVICE = "X-Shelfwise-Device"
HEADER_TIME = "X-Shelfwise-Time"
HEADER_SIGNATURE = "X-Shelfwise-Signature"
HEADER_SERVER_TIME = "X-Shelfwise-Server-Time"
DEVICE_RE = r"\A[A-Za-z0-9._\-]{1,64}\Z"


# -- device identity and request signing ----------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """One device's identity upstream: its id and its own HMAC secret (never fleet-wide).

    Example:
        >>> from shelfwise.sync.protocol import sign_request
        >>> creds = Credentials("kiosk-1", b"s" * 32)
        >>> sorted(sign_request(creds, "POST", "/v1/summaries", b"x", 1_700_000_000_000))
        ['X-Shelfwise-Device', 'X-Shelfwise-Signature', 'X-Shelfwise-Time']
    """

    device_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,64}", self.device_id):
            raise InvalidInput("a device id is 1-64 characters of [A-Za-z0-9._-]")
        if len(self.secret) < 16:
            raise InvalidInput("a device secret must be at least 16 bytes")

    @classmethod
    def from_file(cls, path: str | Path, device_id: str | None = None) -> Credentials:
        """Read a key file: JSON ``{"device_id": ..., "secret": hex}`` or one hex line."""
        text = Path(path).read_text().strip()
        try:
            data = json.loads(text) if text.startswith("{") else {"secret": text}
            secret = bytes.fromhex(str(data["secret"]))
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"{path} is not a shelfwise device key file: {exc}") from exc
        device = device_id or data.get("device_id")
        if not device:
            raise InvalidInput(f"{path} names no device; pass a device id")
        return cls(str(device), secret)


def signing_message(method: str, path: str, ts_ms: int, body: bytes) -> bytes:
    """What the HMAC covers: method, path, timestamp and the body's sha256."""
    return f"{method.upper()}\n{path}\n{ts_ms}\n{hashlib.sha256(body).hexdigest()}".encode()


def sign_request(
    credentials: Credentials, method: str, path: str, body: bytes, ts_ms: int
) -> dict[str, str]:
    """The authentication headers of one request."""
    mac = hmac.new(credentials.secret, signing_message(method, path, ts_ms, body), "sha256")
    return {
        HEADER_DEVICE: credentials.device_id,
        HEADER_TIME: str(ts_ms),
        HEADER_SIGNATURE: mac.hexdigest(),
    }


def check_signature(
    secret: bytes, method: str, path: str, body: bytes, ts_ms: int, signature: str
) -> bool:
    """Constant-time check of a request signature (used by the collector)."""
    expected = hmac.new(secret, signing_message(method, path, ts_ms, body), "sha256").digest()
    try:
        given = bytes.fromhex(signature)
    except ValueError:  # not hex (non-ASCII included): cannot match
        return False
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class AuthHeaders:
    """The authentication headers of a request, parsed (see ``parse_auth_headers``)."""

    device_id: str
    ts_ms: int
    signature: str


_TIME_RE = re.compile(r"[0-9]{1,15}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")


def parse_auth_headers(headers: Mapping[str, str]) -> AuthHeaders:
    """Read the device, time and signature headers; ``EnvelopeError`` if any is malformed.

    Strict ASCII forms only (``str.isdigit`` also accepts "²", which ``int`` refuses).

    Example:
        >>> parse_auth_headers({HEADER_DEVICE: "k1", HEADER_TIME: "²", HEADER_SIGNATURE: ""})
        Traceback (most recent call last):
        ...
        shelfwise.EnvelopeError: missing or malformed authentication headers
    """
    lower = {k.lower(): v for k, v in headers.items()}
    device = lower.get(HEADER_DEVICE.lower(), "")
    stamp = lower.get(HEADER_TIME.lower(), "")
    signature = lower.get(HEADER_SIGNATURE.lower(), "")
    if not (
        re.match(DEVICE_RE, device)
        and _TIME_RE.fullmatch(stamp)
        and _SIGNATURE_RE.fullmatch(signature)
    ):
        raise EnvelopeError("missing or malformed authentication headers")
    return AuthHeaders(device, int(stamp), signature)


__all__ = [
    "DEVICE_RE",
    "HEADER_DEVICE",
    "HEADER_SERVER_TIME",
    "HEADER_SIGNATURE",
    "HEADER_TIME",
    "AuthHeaders",
    "Credentials",
    "check_signature",
    "parse_auth_headers",
    "sign_request",
    "signing_message",
]
