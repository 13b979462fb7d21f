"""Notifications POSTed as JSON to the retailer's app backend, signed, retried with stamina.

``WebhookSender(url, secret)`` is a ``shelfwise.notifications.Sender``: one POST per
notification with its ``payload()`` as JSON and three headers:

- ``Idempotency-Key``: the notification id, the same on every resend (the receiver keeps
  the ids it has seen and answers 2xx to a repeat without acting on it again);
- ``X-Shelfwise-Timestamp``: milliseconds since the epoch when the request was signed;
- ``X-Shelfwise-Signature``: ``v1=`` + hex HMAC-SHA256 over ``"<timestamp>." + body`` with
  the shared secret (``verify_signature`` checks it on the receiving side, within 5 minutes).

Network errors, 408, 429 and 5xx are retried inside ``send`` by stamina (exponential backoff
with jitter, a Retry-After header honoured up to ``wait_max_s``) and raise ``SyncRetryable``
when the attempts run out; 401/403 raise ``SyncUnauthorized`` and any other 4xx
``SyncRejected``, at once. HTTP goes through
the sync transport's standard-library client (``shelfwise.sync.transport.HttpTransport``).

Example:
    >>> body = b'{"notification_id": "n1"}'
    >>> headers = signed_headers(b"s" * 32, "n1", body, timestamp_ms=1_700_000_000_000)
    >>> headers["Idempotency-Key"], headers["X-Shelfwise-Signature"][:3]
    ('n1', 'v1=')
    >>> verify_signature(b"s" * 32, body, headers, now=1_700_000_060_000)
    True
    >>> verify_signature(b"x" * 32, body, headers, now=1_700_000_060_000)
    False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Callable, Mapping

import stamina

from ._errors import InvalidInput, SyncRetryable
from .clock import now_ms
from .notifications import Notification
from .sync.transport import HttpTransport, Response, raise_for_status, shown_url

IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-Shelfwise-Timestamp"
SIGNATURE_HEADER = "X-Shelfwise-Signature"
MIN_SECRET_BYTES = 16
SIGNATURE_TOLERANCE_MS = 300_000


def _secret_bytes(secret: bytes | str) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not isinstance(raw, bytes) or len(raw) < MIN_SECRET_BYTES:
        raise InvalidInput(f"a webhook secret is at least {MIN_SECRET_BYTES} bytes")
    return raw


def sign(secret: bytes, timestamp_ms: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp_ms``."""
    mac = hmac.new(secret, f"{timestamp_ms}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(
    secret: bytes | str, notification_id: str, body: bytes, *, timestamp_ms: int
) -> dict[str, str]:
    """The headers of one webhook request (see the module docstring)."""
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: notification_id,
        TIMESTAMP_HEADER: str(timestamp_ms),
        SIGNATURE_HEADER: sign(_secret_bytes(secret), timestamp_ms, body),
    }


def verify_signature(
    secret: bytes | str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: int | None = None,
    tolerance_ms: int = SIGNATURE_TOLERANCE_MS,
) -> bool:
    """Whether a received webhook request was signed with ``secret`` within the tolerance
    (for the receiving side; header names in any case). Example: see the module docstring."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 15:
        return False
    if abs((now_ms() if now is None else now) - int(stamp)) > tolerance_ms:
        return False
    return hmac.compare_digest(sign(_secret_bytes(secret), int(stamp), body), given)


def check_response(response: Response) -> None:
    """2xx passes; 408, 429 and 5xx raise ``SyncRetryable``; 401 and 403 (a wrong secret)
    ``SyncUnauthorized``; other statuses ``SyncRejected`` (the sync transport's mapping)."""
    raise_for_status(
        response,
        peer="the webhook",
        refused="refused the signature",
        hint="check the shared secret; ",
        rejected="refused the notification",
    )


def check_webhook_url(url: object) -> tuple[str, str]:
    """``InvalidInput`` unless ``url`` is an http(s) URL with a host and no user info or
    fragment; returns the url without its query, and the query (sent with every POST).

    The message never quotes a url with an ``@`` in it (``shown_url``): it may hold a password.

    Example:
        >>> check_webhook_url("https://app.example/hooks?tenant=7")
        ('https://app.example/hooks', 'tenant=7')
    """
    wrong = f"a webhook url is http(s)://host[:port][/path][?query], not {shown_url(url)}"
    if not isinstance(url, str):
        raise InvalidInput(wrong)
    parts: urllib.parse.SplitResult | None
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # a port that is not a number in 0-65535 raises here
    except ValueError:
        # Not chained: the ValueError quotes the url's pieces, a password's among them.
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(wrong)
    if "@" in parts.netloc or "#" in url:
        raise InvalidInput(
            f"{wrong}: user info (user:password@) and a fragment ('#...') are not allowed, "
            "neither would be sent; the shared secret signs each request"
        )
    return urllib.parse.urlunsplit(parts._replace(query="")), parts.query


class WebhookSender:
    """POST each notification to ``url`` as signed JSON (see the module docstring).

    ``attempts``, ``wait_initial_s``, ``wait_max_s`` and ``deadline_s`` bound stamina's
    retries of one notification; ``timeout_s`` bounds each request.

    Example:
        >>> WebhookSender("ftp://example.com/hook", b"s" * 32)
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: a webhook url is http(s)://host[:port][/path][?query], not 'ftp://example.com/hook'
    """

    def __init__(
        self,
        url: str,
        secret: bytes | str,
        *,
        timeout_s: float = 10.0,
        attempts: int = 5,
        wait_initial_s: float = 0.5,
        wait_max_s: float = 30.0,
        deadline_s: float = 120.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._secret = _secret_bytes(secret)
        without_query, query = check_webhook_url(url)
        self.transport = HttpTransport(without_query, timeout_s=timeout_s)
        self._path = ("" if self.transport.prefix else "/") + (f"?{query}" if query else "")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
            raise InvalidInput("attempts must be an integer between 1 and 100")
        self.attempts = attempts
        self.wait_initial_s = wait_initial_s
        self.wait_max_s = wait_max_s
        self.deadline_s = deadline_s
        self.clock = clock
        self.requests = 0

    def send(self, notification: Notification) -> None:
        """POST one notification until a 2xx (retrying what may pass later), or raise."""
        body = json.dumps(notification.payload(), sort_keys=True, separators=(",", ":")).encode()
        for attempt in stamina.retry_context(
            on=self._retry_after,
            attempts=self.attempts,
            timeout=self.deadline_s,
            wait_initial=self.wait_initial_s,
            wait_max=self.wait_max_s,
            wait_jitter=self.wait_initial_s,
        ):
            with attempt:
                self._post(notification.notification_id, body)

    def _post(self, notification_id: str, body: bytes) -> None:
        # Signed again on every attempt: a retry minutes later still passes the receiver's
        # freshness check, and the idempotency key stays the notification id.
        headers = signed_headers(self._secret, notification_id, body, timestamp_ms=self.clock())
        self.requests += 1
        try:
            response = self.transport.request("POST", self._path, body, headers)
        except SyncRetryable as exc:  # the transport speaks of "upstream": this is the webhook
            raise SyncRetryable(f"network error talking to the webhook: {exc.__cause__!r}") from exc
        check_response(response)

    def _retry_after(self, exc: Exception) -> bool | float:
        """stamina's hook: retry transient failures, after Retry-After when one was sent."""
        if not isinstance(exc, SyncRetryable):
            return False
        if exc.retry_after is None:
            return True
        return min(exc.retry_after, self.wait_max_s)


__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "check_response",
    "check_webhook_url",
    "sign",
    "signed_headers",
    "verify_signature",
]
