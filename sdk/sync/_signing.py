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
        """Read a key file: JSON ``{"device_id": ..., "secret": hex}`` or one hex line.

        A missing, unreadable or malformed file raises ``InvalidInput`` naming the file and
        what is wrong with it (never the secret).

        Example:
            >>> Credentials.from_file("/nonexistent/kiosk-7.key")
            Traceback (most recent call last):
            ...
            shelfwise.InvalidInput: device key file '/nonexistent/kiosk-7.key': no such file ...
        """
        data = _key_file_fields(path, _read_key_file(path))
        secret = _key_file_secret(path, data.get("secret"))
        device = device_id or data.get("device_id")
        if not device:
            raise _key_file_error(path, "it names no device; pass a device id")
        if not isinstance(device, str):
            raise _key_file_error(path, "its device id is not text")
        try:
            return cls(device, secret)
        except InvalidInput as exc:  # a bad device id or a short secret, said with the file
            raise _key_file_error(path, str(exc)) from exc


def _key_file_secret(path: str | Path, secret: object) -> bytes:
    if secret is None or secret == "":
        raise _key_file_error(path, "it holds no secret")
    not_hex = _key_file_error(path, "its secret is not hex digits")
    if not isinstance(secret, str):
        raise not_hex
    try:
        return bytes.fromhex(secret)
    except ValueError as exc:
        raise not_hex from exc


_KEY_FILE_FORMS = 'JSON {"device_id": ..., "secret": hex} or one line of hex'


def _key_file_error(path: str | Path, problem: str) -> InvalidInput:
    return InvalidInput(f"device key file {str(path)!r}: {problem} (expected {_KEY_FILE_FORMS})")


def _read_key_file(path: str | Path) -> str:
    """The key file's text, stripped; ``InvalidInput`` if it cannot be read as UTF-8 text."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise _key_file_error(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise _key_file_error(path, "it is a folder, not a file") from exc
    except OSError as exc:
        raise _key_file_error(path, f"it cannot be read ({exc.strerror or exc})") from exc
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise _key_file_error(path, "it is not UTF-8 text") from exc


def _key_file_fields(path: str | Path, text: str) -> dict[str, object]:
    """The key file's fields: its JSON object, or ``{"secret": line}`` for a bare hex line."""
    if not text.startswith(("{", "[")):
        return {"secret": text}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # nesting too deep raises RecursionError
        # Said by position only: the message must not quote the secret.
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise _key_file_error(path, f"it is not valid JSON{where}") from exc
    if not isinstance(data, dict):
        raise _key_file_error(path, "it is not valid JSON for a key file: not an object")
    return data


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
