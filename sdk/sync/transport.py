"""HTTP to the collector: signed requests, the status -> error mapping, and the retry policy.

``HttpTransport`` speaks plain ``http.client`` (no extra dependency, so the base install
syncs); ``SignedClient`` signs every request with the device's own secret and, on a 401/403
that carries the collector's clock, stores the offset and signs once more (a kiosk with a
wrong clock). ``raise_for_status`` splits failures the way the upload loop needs them:
network errors, 5xx, 408 and 429 are ``SyncRetryable`` (with the server's Retry-After),
401/403 ``SyncUnauthorized``, any other 4xx ``SyncRejected``.

The retry policy (``Backoff``) is full jitter: wait ``uniform(0, min(300 s, 1 s x 2^n))``
before retry ``n``, or exactly what Retry-After asked (at most an hour). It stays a few
lines of our own: retry libraries (stamina, tenacity) add jitter on top of the exponential
wait instead of drawing the whole wait at random, and the upload loop needs each wait
before it sleeps, to persist it in the outbox.

Example:
    >>> backoff = Backoff(rng=random.Random(7))
    >>> [round(backoff.delay(n), 2) for n in range(4)]
    [0.32, 0.3, 2.6, 0.58]
    >>> backoff.delay(0, retry_after=30.0)
    30.0
"""

from __future__ import annotations

import email.utils
import http.client
import math
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .._errors import (
    InvalidInput,
    SyncRejected,
    SyncRetryable,
    SyncUnauthorized,
    UpdateRefused,
)
from ..clock import now_ms
from ..store.connection import Store
from .protocol import HEADER_SERVER_TIME, Credentials, sign_request

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
MAX_RETRY_AFTER_S = 3600.0
MAX_RESPONSE = 16 << 20  # bytes of an answer read by default (documents and bundles say more)
_MS = re.compile(r"[0-9]{1,15}")
CLOCK_OFFSET_KEY = "sync.clock_offset_ms"


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def shown_url(url: object) -> str:
    """A url as an error or log message may quote it: never a password, never a query's token.

    Any text with an ``@`` is withheld whole: a password may hold ``/``, ``?`` or ``#``, so
    no parse of a malformed url can tell which part of it is the secret. A query or
    fragment is cut off, as it often carries an access token.

    Example:
        >>> shown_url("https://collector.example:8443/fleet")
        "'https://collector.example:8443/fleet'"
        >>> shown_url("https://kiosk:hunter2@collector.example")
        "the url (withheld: it has an '@', so it may carry a password)"
        >>> shown_url("https://collector.example/?token=abc")
        "'https://collector.example/' (query and fragment not shown)"
    """
    text = url if isinstance(url, str) else repr(url)
    if "@" in text:
        return "the url (withheld: it has an '@', so it may carry a password)"
    if not isinstance(url, str):
        return text
    before_query = re.match(r"[^?#]*", url)
    head = before_query.group() if before_query else ""
    return repr(head) + ("" if head == url else " (query and fragment not shown)")


def _bad_url(url: object, problem: str) -> InvalidInput:
    return InvalidInput(
        f"upstream url must be http(s)://host[:port][/path], not {shown_url(url)}: {problem}"
    )


def _split_upstream_url(url: object) -> tuple[str, str, int | None, str]:
    """An upstream url's scheme, host, port and path, or ``InvalidInput`` saying what is wrong.

    Checked here, not on the first request: a url that cannot work would otherwise come
    back as a raw ``ValueError`` or, from ``http.client``, as a network error retried forever.
    User info, a query and a fragment are refused rather than dropped: ``http.client`` would
    send none of them, so a url that carries them does not mean what it says.
    """
    if not isinstance(url, str):
        raise _bad_url(url, f"it must be text, not {type(url).__name__}")
    # urlsplit silently drops tabs and line breaks; http.client refuses spaces later.
    unsafe = next((char for char in url if char.isspace() or not char.isprintable()), None)
    if unsafe is not None:
        raise _bad_url(url, f"U+{ord(unsafe):04X} must be percent-encoded")
    # A ValueError's words quote the url's pieces, a password's among them when the url has
    # an '@': then we say it in our own words and keep the ValueError out of the chain.
    may_hold_secret = "@" in url
    unparsable: ValueError | None = None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket, a host that NFKC changes
        unparsable = exc
    if unparsable is not None:
        if may_hold_secret:
            raise _bad_url(url, "it does not parse as a url")
        raise _bad_url(url, str(unparsable)) from unparsable
    if parts.scheme not in {"http", "https"}:
        raise _bad_url(url, "the scheme must be http or https")
    if "@" in parts.netloc:
        raise _bad_url(
            url,
            "user info (user:password@) is not allowed in the url; the device signs its "
            "requests with the credentials of its key file",
        )
    # Tested on the text: urlsplit reports an empty query for "http://host/?" too.
    not_allowed = [
        part
        for part, present in (
            ("a query ('?...')", "?" in url.partition("#")[0]),
            ("a fragment ('#...')", "#" in url),
        )
        if present
    ]
    if not_allowed:
        verb = "is" if len(not_allowed) == 1 else "are"
        raise _bad_url(url, f"{' and '.join(not_allowed)} {verb} not allowed in the url")
    bad_port: ValueError | None = None
    try:
        port = parts.port
    except ValueError as exc:
        bad_port = exc
    if bad_port is not None:
        if may_hold_secret:
            raise _bad_url(url, "the port is not a number in 1-65535")
        raise _bad_url(url, str(bad_port)) from bad_port
    if not parts.hostname:
        raise _bad_url(url, "it names no host")
    if port == 0:
        raise _bad_url(url, "port 0 cannot be connected to (use 1-65535)")
    return parts.scheme, parts.hostname, port, parts.path


def _check_timeout(timeout_s: object) -> float:
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, (int, float))
        or not 0 < timeout_s < math.inf
    ):
        raise InvalidInput(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
    return float(timeout_s)


class HttpTransport:
    """HTTP(S) to the collector with the standard library only, so the base install syncs.

    Network failures raise ``SyncRetryable``; statuses come back as ``Response``. The url is
    ``http(s)://host[:port][/path]``; user info, a query or a fragment is refused with
    ``InvalidInput`` (whose message never quotes a url with an ``@`` in it): the device signs
    its requests with its key file's credentials, not with a password in the url.

    Example:
        >>> transport = HttpTransport("https://collector.example:8443/fleet/")
        >>> transport.host, transport.port, transport.prefix
        ('collector.example', 8443, '/fleet')
        >>> HttpTransport("https://kiosk:hunter2@collector.example")
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: upstream url ... not the url (withheld: ...): user info
        (user:password@) is not allowed in the url; the device signs its requests ...
    """

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.scheme, self.host, self.port, path = _split_upstream_url(url)
        self.prefix = path.rstrip("/")
        self.timeout_s = _check_timeout(timeout_s)

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        max_bytes: int = MAX_RESPONSE,
    ) -> Response:
        """One request; ``UpdateRefused(reason="too_large")`` past ``max_bytes`` of answer."""
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(
                method,
                self.prefix + path,
                body=body or None,
                headers={"Content-Type": "application/msgpack", **(headers or {})},
            )
            reply = conn.getresponse()
            data = reply.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise UpdateRefused(
                    f"upstream answered {method} {path} with more than {max_bytes} bytes",
                    reason="too_large",
                )
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise SyncRetryable(f"network error talking to upstream: {exc!r}") from exc
        finally:
            conn.close()


def transport_for(url: str | HttpTransport, timeout_s: float = 30.0) -> HttpTransport:
    """The given transport, or a new one for ``url``."""
    return url if isinstance(url, HttpTransport) else HttpTransport(url, timeout_s=timeout_s)


def retry_after_s(value: str | None, *, now_s: float | None = None) -> float | None:
    """Parse a Retry-After header (seconds or an HTTP date) into seconds to wait.

    Example:
        >>> retry_after_s("120")
        120.0
        >>> retry_after_s("soon") is None
        True
    """
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):  # ASCII only: "²".isdigit() is True
        return MAX_RETRY_AFTER_S if len(value) > 8 else min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    wait = when - (time.time() if now_s is None else now_s)
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def raise_for_status(
    response: Response,
    *,
    peer: str = "upstream",
    refused: str = "refused the credentials",
    hint: str = "",
    rejected: str = "rejected the payload",
) -> None:
    """Map an HTTP status to the sync error family (2xx passes): 408, 429 and 5xx raise
    ``SyncRetryable``, 401 and 403 ``SyncUnauthorized``, others ``SyncRejected``; the words
    name the ``peer`` (the collector, or a webhook) and what it did."""
    status = response.status
    if 200 <= status < 300:
        return
    detail = response.body[:200].decode("utf-8", "replace")
    if status in (408, 429) or status >= 500:
        raise SyncRetryable(
            f"{peer} answered {status}: {detail}",
            retry_after=retry_after_s(response.headers.get("retry-after")),
        )
    if status in (401, 403):
        raise SyncUnauthorized(f"{peer} {refused} ({status}): {hint}{detail}", status=status)
    raise SyncRejected(f"{peer} {rejected} ({status}): {detail}", status=status)


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base x 2^attempt))."""

    def __init__(
        self,
        *,
        base_s: float = BACKOFF_BASE_S,
        cap_s: float = BACKOFF_CAP_S,
        rng: random.Random | None = None,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); Retry-After wins."""
        if retry_after is not None:
            return float(retry_after)
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** min(attempt, 30)))


class SignedClient:
    """Signed requests for one device; remembers the collector's clock offset in the store."""

    def __init__(
        self,
        store: Store,
        transport: HttpTransport,
        credentials: Credentials,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.transport = transport
        self.credentials = credentials
        self.clock = clock
        self.requests = 0
        self.bytes_sent = 0

    def offset(self) -> int:
        """Milliseconds to add to our clock to match the collector's (0 until a 401 said)."""
        return int(self.store.get_meta(CLOCK_OFFSET_KEY, "0") or 0)

    def request(
        self, method: str, path: str, body: bytes = b"", *, max_bytes: int = MAX_RESPONSE
    ) -> Response:
        """A signed request; on 401/403 re-sign once with the collector's clock."""
        for attempt in (0, 1):
            ts = self.clock() + self.offset()
            headers = sign_request(self.credentials, method, path, body, ts)
            self.requests += 1
            self.bytes_sent += len(body)
            response = self.transport.request(method, path, body, headers, max_bytes=max_bytes)
            server_time = response.headers.get(HEADER_SERVER_TIME.lower(), "")
            if response.status in (401, 403) and attempt == 0 and _MS.fullmatch(server_time):
                # Re-authenticate: our clock may be off; sign again on the collector's time.
                self.store.set_meta(CLOCK_OFFSET_KEY, str(int(server_time) - self.clock()))
                continue
            raise_for_status(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str, *, max_bytes: int = MAX_RESPONSE) -> Response | None:
        """A signed GET; None when upstream has nothing there (404)."""
        try:
            return self.request("GET", path, max_bytes=max_bytes)
        except SyncRejected as exc:
            if exc.status == 404:
                return None
            raise


__all__ = [
    "Backoff",
    "HttpTransport",
    "Response",
    "SignedClient",
    "raise_for_status",
    "retry_after_s",
    "shown_url",
    "transport_for",
]
