"""The kiosk's web defences, in front of every route: hosts, origins, CSRF, body limits, headers.

``Guard`` is plain ASGI middleware. For every request it checks the ``Host`` (a page served
under another name, DNS rebinding, is refused) and adds the security headers (a CSP with no
inline script, no framing, no MIME sniffing, no referrer). For every state-changing request
it also checks that the ``Origin`` (or ``Sec-Fetch-Site``) is the kiosk's own, that the body
is JSON (multipart only where a photo is uploaded), that the CSRF token in the
``X-CSRF-Token`` header matches the signed ``sw_csrf`` cookie (double submit), and it cuts
the body off at a size limit while it is read, so a 50 MB body is never held in memory.
Refusals are JSON: ``{"error", "message", "reason"}`` with 400, 403, 413 or 415.

Example:
    >>> token = new_csrf_token(b"k" * 32)
    >>> csrf_ok(b"k" * 32, token, token), csrf_ok(b"k" * 32, token, token + "x")
    (True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from .web import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "sw_csrf"
CSRF_HEADER = "x-csrf-token"
MAX_JSON_BYTES = 16 * 1024
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MULTIPART_PATHS = frozenset({"/api/scan/image"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def new_csrf_token(key: bytes) -> str:
    """A random token signed with the app's key (a cookie planted by another site fails)."""
    nonce = secrets.token_urlsafe(18)
    signature = hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{signature}"


def csrf_ok(key: bytes, cookie: str | None, header: str | None) -> bool:
    """Whether the header repeats the cookie and the cookie carries our signature."""
    if not cookie or not header or not hmac.compare_digest(cookie, header):
        return False
    nonce, _, signature = cookie.partition(".")
    expected = hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:32]
    return hmac.compare_digest(signature, expected)


class BodyTooLarge(ApiError):
    """The body went past its limit while it was read (nothing after the limit is kept)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "TooLarge", f"the request body is larger than {limit} bytes", "too_large"
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def host_name(host: str) -> str:
    """The name part of a Host header (``[::1]:8420`` -> ``[::1]``, ``a:1`` -> ``a``).

    Example:
        >>> host_name("127.0.0.1:8420"), host_name("[::1]:8420"), host_name("localhost")
        ('127.0.0.1', '[::1]', 'localhost')
    """
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: refuse what is not the kiosk's own page talking, bound every body."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: frozenset[str], csrf_key: bytes) -> None:
        self.app = app
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.csrf_key = csrf_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k.encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.encode() not in present
                ]
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            await self.refuse(refusal, send_secured)
            return
        limit = MAX_UPLOAD_BYTES + 64 * 1024 if scope["path"] in MULTIPART_PATHS else MAX_JSON_BYTES
        await self.app(scope, limited(receive, limit), send_secured)

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why this request is refused before it reaches a route (None: it may pass)."""
        headers = _headers(scope)
        host = headers.get("host", "")
        if host_name(host).lower() not in self.allowed_hosts:
            return ApiError(
                400, "BadHost", f"this kiosk does not answer to the name {host!r}", "bad_host"
            )
        if scope["method"] in SAFE_METHODS:
            return None
        scheme = scope.get("scheme", "http")
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scheme}://{host}".lower():
            return ApiError(403, "BadOrigin", "requests from other sites are refused", "bad_origin")
        if origin is None and headers.get("sec-fetch-site", "same-origin") not in {
            "same-origin",
            "none",
        }:
            return ApiError(403, "BadOrigin", "requests from other sites are refused", "bad_origin")
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return ApiError(400, "BadRequest", "a malformed Content-Length", "bad_request")
            limit = (
                MAX_UPLOAD_BYTES + 64 * 1024 if scope["path"] in MULTIPART_PATHS else MAX_JSON_BYTES
            )
            if int(declared) > limit:
                return BodyTooLarge(limit)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        wanted = "multipart/form-data" if scope["path"] in MULTIPART_PATHS else "application/json"
        if kind != wanted:
            return ApiError(
                415, "UnsupportedMediaType", f"send the body as {wanted}", "content_type"
            )
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is simply no cookie
            cookies = SimpleCookie()
        cookie = cookies[CSRF_COOKIE].value if CSRF_COOKIE in cookies else None
        if not csrf_ok(self.csrf_key, cookie, headers.get(CSRF_HEADER)):
            return ApiError(
                403, "CsrfFailed", "the page is out of date: reload it and try again", "csrf"
            )
        return None

    async def refuse(self, error: ApiError, send: Send) -> None:
        body = json.dumps(
            {"error": error.error, "message": str(error), "reason": error.reason}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises ``BodyTooLarge`` as soon as more than ``limit`` bytes came in."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped
