"""Talking to upstream: signed uploads from the outbox, and verified updates coming down.

Up: ``sync`` summarises, rebuilds releases a withdrawn member was in, then sends the outbox
in batches (<= 100 releases, <= 256 KB) over plain ``http.client`` (no extra dependency),
each request HMAC-signed with the device's own secret. The collector upserts by idempotency
key, so a retry, a duplicate or a device killed mid-sync never counts twice; a release is
deleted only after the collector acknowledged that exact key and revision.

Failures: network errors, 5xx, 408 and 429 back off (1 s x 2^n, full jitter, cap 300 s,
Retry-After honoured) and never give up while the data is kept; 413 splits the batch; any
other 4xx bisects the batch down to the release upstream refuses and quarantines it;
401/403 re-signs once with the collector's clock (a kiosk with a wrong clock), then stops.

Down: ``pull_bundle`` stages a bundle in a temp folder, verifies sha256 and the ed25519
signature against the pinned key and its expiry, installs it beside the previous one and
hot-swaps (health check first); on any failure the old bundle keeps serving.
``pull_fleet`` stores fleet tables (trending in this region) for the trending surface.
``pull_document`` fetches the signed catalog or offers document and applies it through
``shelfwise.sync.downstream`` (verified, version-checked, one transaction).

Example:
    >>> backoff = Backoff(rng=random.Random(7))
    >>> [round(backoff.delay(n), 2) for n in range(4)]
    [0.32, 0.3, 2.6, 0.58]
    >>> backoff.delay(0, retry_after=30.0)
    30.0
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.client
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from .._errors import (
    BundleError,
    BundleVerificationError,
    InvalidInput,
    SyncError,
    SyncRejected,
    SyncRetryable,
    SyncUnauthorized,
)
from .._time import now_ms
from ..catalog import Catalog
from ..model.bundle import read_bundle
from ..model.runtime import LoadedModel, ModelHandle
from ..offers.engine import Offers
from ..store.connection import Store
from .downstream import KINDS, PATHS, AppliedDocument, apply_document
from .outbox import (
    QueuedRelease,
    ReleaseInfo,
    acknowledge,
    clear_error,
    due,
    quarantine,
    rebuild_dirty,
    record_attempt,
    record_failure,
    summarise,
)
from .privacy import EnvelopeError, PrivacyPolicy, safe_unpack

logger = logging.getLogger(__name__)

PROTOCOL = 1
BATCH_RECORDS = 100
BATCH_BYTES = 256 * 1024
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
MAX_RETRY_AFTER_S = 3600.0
HEADER_DEVICE = "X-Shelfwise-Device"
HEADER_TIME = "X-Shelfwise-Time"
HEADER_SIGNATURE = "X-Shelfwise-Signature"
HEADER_SERVER_TIME = "X-Shelfwise-Server-Time"
SUMMARIES_PATH = "/v1/summaries"
FLEET_PATH = "/v1/fleet/trending"
BUNDLE_PATH = "/v1/bundle"


# -- credentials and request signing ------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """One device's identity upstream: its id and its own HMAC secret (never fleet-wide).

    Example:
        >>> from shelfwise.sync.upload import sign_request
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
    expected = hmac.new(secret, signing_message(method, path, ts_ms, body), "sha256").hexdigest()
    return hmac.compare_digest(expected, signature)


# -- transport -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpTransport:
    """HTTP(S) to the collector with the standard library only, so the base install syncs.

    Network failures raise ``SyncRetryable``; statuses come back as ``Response``.
    """

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidInput(f"upstream url must be http(s)://host[:port], not {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
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
            data = reply.read()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise SyncRetryable(f"network error talking to upstream: {exc!r}") from exc
        finally:
            conn.close()


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
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    wait = when - (time.time() if now_s is None else now_s)
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def raise_for_status(response: Response) -> None:
    """Map an HTTP status to the sync error family (2xx passes)."""
    status = response.status
    if 200 <= status < 300:
        return
    detail = response.body[:200].decode("utf-8", "replace")
    if status in (408, 429) or status >= 500:
        raise SyncRetryable(
            f"upstream answered {status}: {detail}",
            retry_after=retry_after_s(response.headers.get("retry-after")),
        )
    if status in (401, 403):
        raise SyncUnauthorized(
            f"upstream refused the credentials ({status}): {detail}", status=status
        )
    raise SyncRejected(f"upstream rejected the payload ({status}): {detail}", status=status)


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


# -- the upload loop -----------------------------------------------------------------------


@dataclass(frozen=True)
class SyncReport:
    """What one ``sync`` run did."""

    sent: int = 0
    acked: int = 0
    quarantined: int = 0
    requests: int = 0
    bytes_sent: int = 0
    retries: int = 0
    remaining: int = 0
    rebuilt: int = 0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "complete": self.complete}


class Uploader:
    """Sends the outbox to one collector. ``clock``, ``sleep`` and ``rng`` are injectable."""

    def __init__(
        self,
        store: Store,
        transport: HttpTransport,
        credentials: Credentials,
        *,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        batch_records: int = BATCH_RECORDS,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.store = store
        self.transport = transport
        self.credentials = credentials
        self.clock = clock
        self.sleep = sleep
        self.backoff = Backoff(rng=rng)
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.counts = {"sent": 0, "acked": 0, "quarantined": 0, "requests": 0, "bytes_sent": 0}

    # -- signed requests ---------------------------------------------------------------
    def _offset(self) -> int:
        return int(self.store.get_meta("sync.clock_offset_ms", "0") or 0)

    def request(self, method: str, path: str, body: bytes = b"") -> Response:
        """A signed request; on 401/403 re-sign once with the collector's clock."""
        for attempt in (0, 1):
            ts = self.clock() + self._offset()
            headers = sign_request(self.credentials, method, path, body, ts)
            self.counts["requests"] += 1
            self.counts["bytes_sent"] += len(body)
            response = self.transport.request(method, path, body, headers)
            server_time = response.headers.get(HEADER_SERVER_TIME.lower(), "")
            if response.status in (401, 403) and attempt == 0 and server_time.isdigit():
                # Re-authenticate: our clock may be off; sign again on the collector's time.
                self.store.set_meta("sync.clock_offset_ms", str(int(server_time) - self.clock()))
                continue
            raise_for_status(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    # -- batches -----------------------------------------------------------------------
    def _batches(self, rows: Sequence[QueuedRelease]) -> list[list[QueuedRelease]]:
        batches: list[list[QueuedRelease]] = []
        current: list[QueuedRelease] = []
        size = 0
        for row in rows:
            if current and (
                len(current) >= self.batch_records or size + len(row.body) > self.batch_bytes
            ):
                batches.append(current)
                current, size = [], 0
            current.append(row)
            size += len(row.body)
        if current:
            batches.append(current)
        return batches

    def send(self, batch: Sequence[QueuedRelease]) -> None:
        """Send one batch; split on 413, bisect other 4xx down to the refused release."""
        body = msgpack.packb(
            {
                "v": PROTOCOL,
                "device": self.credentials.device_id,
                "summaries": [r.body for r in batch],
            },
            use_bin_type=True,
        )
        try:
            response = self.request("POST", SUMMARIES_PATH, body)
        except SyncUnauthorized:
            raise
        except SyncRejected as exc:
            if len(batch) > 1:
                half = len(batch) // 2
                self.send(batch[:half])
                self.send(batch[half:])
                return
            quarantine(self.store, [batch[0].outbox_id], str(exc))
            self.counts["quarantined"] += 1
            logger.warning("quarantined a release upstream refused (%s)", exc.status)
            return
        self.counts["sent"] += len(batch)
        try:
            reply = safe_unpack(response.body)
            acks = [(str(k), int(r)) for k, r in reply["acked"]]
        except (EnvelopeError, KeyError, TypeError, ValueError) as exc:
            raise SyncRetryable(f"upstream sent an unreadable acknowledgement: {exc}") from exc
        sent = {(r.key, r.rev) for r in batch}
        acks = [ack for ack in acks if ack in sent]
        if not acks:
            raise SyncRetryable("upstream acknowledged none of the batch")
        self.counts["acked"] += acknowledge(self.store, acks, now=self.clock())

    def run(
        self,
        *,
        deadline_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncReport:
        """Send everything due; back off on transient failures until done or the deadline."""
        start = time.monotonic()
        slept = 0.0  # counted, not measured: an injected sleep may not really wait
        attempt = retries = 0
        error: str | None = None
        record_attempt(self.store, self.clock())
        total = self._remaining()
        while True:
            rows = due(self.store, now=self.clock(), limit=self.batch_records * 10)
            if not rows:
                break
            try:
                for batch in self._batches(rows):
                    self.send(batch)
                    if progress:
                        progress(total - self._remaining(), total)
                attempt = 0
                error = None
            except SyncUnauthorized as exc:
                error = str(exc)
                record_failure(self.store, [], error, next_attempt_ms=0, now=self.clock())
                break
            except SyncRetryable as exc:
                error = str(exc)
                delay = self.backoff.delay(attempt, exc.retry_after)
                attempt += 1
                retries += 1
                ids = [r.outbox_id for r in rows]
                next_at = self.clock() + int(delay * 1000)
                record_failure(self.store, ids, error, next_attempt_ms=next_at, now=self.clock())
                logger.info("sync failed (%s); retrying in %.1f s", exc, delay)
                elapsed = max(time.monotonic() - start, slept)
                if deadline_s is not None and elapsed + delay > deadline_s:
                    break
                self.sleep(delay)
                slept += delay
                self._make_due(ids)
        if error is None:
            clear_error(self.store)
        report = SyncReport(
            retries=retries, remaining=self._remaining(), error=error, **self.counts
        )
        logger.info("sync: %d acked, %d remaining", report.acked, report.remaining)
        return report

    def _make_due(self, ids: Sequence[int]) -> None:
        # We slept the backoff ourselves: the rows are due now whatever our clock says.
        with self.store.write() as db:
            db.conn.executemany(
                "UPDATE sync_outbox SET next_attempt_ms = 0 WHERE id = ?", [[i] for i in ids]
            )

    def _remaining(self) -> int:
        return int(
            self.store.query("SELECT count(*) AS n FROM sync_outbox WHERE quarantined = 0")[0]["n"]
        )


def upload(
    store: Store,
    url: str | HttpTransport,
    credentials: Credentials,
    *,
    deadline_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], int] = now_ms,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    timeout_s: float = 30.0,
) -> SyncReport:
    """Rebuild dirty releases, then send the outbox until empty or ``deadline_s`` passes.

    Never raises for an unreachable upstream: the report's ``error`` says what happened and
    the outbox keeps everything for the next run.
    """
    transport = url if isinstance(url, HttpTransport) else HttpTransport(url, timeout_s=timeout_s)
    rebuilt = rebuild_dirty(store)
    uploader = Uploader(store, transport, credentials, clock=clock, sleep=sleep, rng=rng)
    report = uploader.run(deadline_s=deadline_s, progress=progress)
    return SyncReport(**{**report.__dict__, "rebuilt": rebuilt})


# -- downstream: fleet tables and bundles ------------------------------------------------------


def _get(
    transport: HttpTransport, credentials: Credentials, path: str, store: Store
) -> Response | None:
    uploader = Uploader(store, transport, credentials)
    try:
        return uploader.request("GET", path)
    except SyncRejected as exc:
        if exc.status == 404:
            return None
        raise


def pull_fleet(
    store: Store, url: str | HttpTransport, credentials: Credentials, *, timeout_s: float = 30.0
) -> int:
    """Fetch trending-in-this-region from upstream into ``fleet_trending``; return rows kept.

    Raises ``SyncError`` when upstream is unreachable; what was stored before stays.
    """
    transport = url if isinstance(url, HttpTransport) else HttpTransport(url, timeout_s=timeout_s)
    response = _get(transport, credentials, FLEET_PATH, store)
    if response is None:
        return 0
    try:
        data = safe_unpack(response.body)
        scope = str(data["scope"])[:100]
        items = [(str(i)[:200], float(s)) for i, s in data["items"]][:1000]
    except (EnvelopeError, KeyError, TypeError, ValueError) as exc:
        raise SyncRetryable(f"upstream sent a malformed fleet table: {exc}") from exc
    stamp = now_ms()
    with store.write() as db:
        db.execute("DELETE FROM fleet_trending WHERE scope = ?", [scope])
        db.table("fleet_trending").insert_all(
            [{"scope": scope, "item_id": i, "score": s, "updated_ms": stamp} for i, s in items]
        )
    return len(items)


_NAME = re.compile(r"[^A-Za-z0-9._@\-]+")


def install_bundle(
    handle: ModelHandle,
    staged: str | Path,
    bundles_dir: str | Path,
    *,
    public_key: bytes,
    store: Store | None = None,
    now: int | None = None,
) -> LoadedModel:
    """Verify a staged bundle against the pinned key, install it and hot-swap to it.

    Refuses (``BundleVerificationError``) a bad checksum, a bad or missing signature and an
    expired manifest; a bundle failing its health check is removed again. In every failure
    the bundle served before keeps serving.
    """
    files = read_bundle(staged, public_key=public_key, now_ms=now)
    name = _NAME.sub("_", f"{files.manifest.model_name}@{files.manifest.model_version}")
    target = Path(bundles_dir) / name
    previous = handle.current
    if previous is not None and previous.files.path.resolve() == target.resolve():
        return previous
    if Path(staged).resolve() != target.resolve():
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    try:
        model = handle.swap(target)
    except BundleError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if store is not None:
        with store.write() as db:
            for key, value in (
                ("sync.bundle.previous", str(previous.files.path) if previous else ""),
                ("sync.bundle.current", str(target)),
            ):
                db.table("meta").upsert({"key": key, "value": value}, pk="key")
    _prune(Path(bundles_dir), keep={target, previous.files.path if previous else target})
    return model


def _prune(folder: Path, keep: set[Path]) -> None:
    kept = {p.resolve() for p in keep}
    for child in folder.iterdir():
        if child.is_dir() and child.resolve() not in kept and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)


def pull_bundle(
    handle: ModelHandle,
    url: str | HttpTransport,
    credentials: Credentials,
    bundles_dir: str | Path,
    *,
    store: Store,
    public_key: bytes | None = None,
    now: int | None = None,
    timeout_s: float = 60.0,
) -> LoadedModel | None:
    """Download the collector's current bundle, stage, verify and swap to it.

    Returns the new model, or None when upstream has none or it is already served.
    """
    key = public_key or handle.public_key
    if key is None:
        raise BundleVerificationError("bundles from upstream need a pinned public key")
    transport = url if isinstance(url, HttpTransport) else HttpTransport(url, timeout_s=timeout_s)
    response = _get(transport, credentials, BUNDLE_PATH, store)
    if response is None:
        return None
    try:
        data = safe_unpack(response.body, max_len=2 << 30)
        files = {str(k): bytes(v) for k, v in data["files"].items()}
    except (EnvelopeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleVerificationError(f"upstream sent a malformed bundle: {exc}") from exc
    folder = Path(bundles_dir)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        for name, content in files.items():
            if Path(name).name != name or name.startswith("."):
                raise BundleVerificationError(f"bundle file name {name!r} is not a plain name")
            (staging / name).write_bytes(content)
        current = handle.current
        staged = read_bundle(staging, public_key=key, now_ms=now)
        if current is not None and current.manifest.to_json() == staged.manifest.to_json():
            return None
        return install_bundle(handle, staging, folder, public_key=key, store=store, now=now)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull_document(
    store: Store,
    url: str | HttpTransport,
    credentials: Credentials,
    kind: str,
    *,
    public_key: bytes,
    catalog: Catalog | None = None,
    offers: Offers | None = None,
    now: int | None = None,
    timeout_s: float = 60.0,
) -> AppliedDocument | None:
    """Fetch upstream's signed ``catalog`` or ``offers`` document and apply it.

    Returns None when upstream publishes none. Raises ``UpdateRefused`` (tampered, wrong
    key, expired, older or replayed) or ``SyncError``; either way nothing changed. The
    expiry check uses the kiosk's clock corrected by the collector's (see ``Uploader``).
    """
    if kind not in KINDS:
        raise InvalidInput(f"document kind must be one of {KINDS}")
    transport = url if isinstance(url, HttpTransport) else HttpTransport(url, timeout_s=timeout_s)
    response = _get(transport, credentials, PATHS[kind], store)
    if response is None:
        return None
    if now is None:
        now = now_ms() + int(store.get_meta("sync.clock_offset_ms", "0") or 0)
    return apply_document(
        store,
        response.body,
        kind=kind,
        public_key=public_key,
        catalog=catalog,
        offers=offers,
        now=now,
    )


def rollback_bundle(handle: ModelHandle, store: Store) -> LoadedModel:
    """Swap back to the bundle served before the last install."""
    previous = store.get_meta("sync.bundle.previous")
    if not previous:
        raise BundleError("there is no previous bundle to roll back to")
    model = handle.swap(previous)
    current = store.get_meta("sync.bundle.current") or ""
    store.set_meta("sync.bundle.current", previous)
    store.set_meta("sync.bundle.previous", current)
    return model


# -- one call for the facade and the CLI -------------------------------------------------------


def device_id_for(store: Store, given: str | None = None) -> str:
    """The device id summaries carry: the given one (remembered), else the remembered one."""
    if given:
        if store.get_meta("sync.device_id") != given:
            store.set_meta("sync.device_id", given)
        return given
    return store.get_meta("sync.device_id") or "unregistered"


def model_info(handle: ModelHandle) -> dict[str, Any]:
    """Model version and health for the envelope (no shopper data)."""
    return {"version": handle.version, "healthy": handle.current is not None}


def summarise_store(
    store: Store,
    handle: ModelHandle,
    *,
    device_id: str | None = None,
    k: int | None = None,
    policy: PrivacyPolicy | None = None,
    include_open_hour: bool = False,
) -> list[ReleaseInfo]:
    """Summarise the store's unsummarised events into the outbox (see ``_outbox.summarise``)."""
    return summarise(
        store,
        device_id=device_id_for(store, device_id),
        k=k,
        policy=policy,
        model=model_info(handle),
        include_open_hour=include_open_hour,
    )


def sync_store(
    store: Store,
    handle: ModelHandle,
    url: str,
    credentials: Credentials,
    *,
    summarise_first: bool = True,
    k: int | None = None,
    policy: PrivacyPolicy | None = None,
    fleet: bool = True,
    bundles_dir: str | Path | None = None,
    public_key: bytes | None = None,
    deadline_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 30.0,
    documents: Sequence[str] = KINDS,
    catalog: Catalog | None = None,
    offers: Offers | None = None,
) -> SyncReport:
    """Summarise, upload, then pull fleet tables, signed catalog/offers documents (when a
    public key is pinned) and (with ``bundles_dir``) a new bundle.

    Never raises because upstream is unreachable or misbehaving: the report's ``error``
    says so and the kiosk keeps serving what it has.
    """
    if summarise_first:
        summarise_store(store, handle, device_id=credentials.device_id, k=k, policy=policy)
    report = upload(
        store, url, credentials, deadline_s=deadline_s, progress=progress, timeout_s=timeout_s
    )
    error = report.error
    if error is None and fleet:
        try:
            pull_fleet(store, url, credentials, timeout_s=timeout_s)
        except SyncError as exc:
            error = f"fleet tables: {exc}"
    key = public_key or handle.public_key
    for kind in documents if error is None else ():
        if key is None:
            logger.info("no pinned public key: not pulling %s documents", kind)
            break
        try:
            pull_document(
                store, url, credentials, kind, public_key=key, catalog=catalog, offers=offers
            )
        except (SyncError, BundleError) as exc:
            error = f"{kind}: {exc}"
            logger.warning("kept the applied %s: %s", kind, exc)
            break
    if error is None and bundles_dir is not None:
        try:
            pull_bundle(handle, url, credentials, bundles_dir, store=store, public_key=public_key)
        except (SyncError, BundleError) as exc:
            error = f"bundle: {exc}"
            logger.warning("kept the served bundle: %s", exc)
    if error != report.error:
        store.set_meta("sync.last_error", error or "")
    return SyncReport(**{**report.__dict__, "error": error})


__all__ = [
    "Backoff",
    "Credentials",
    "HttpTransport",
    "SyncError",
    "SyncReport",
    "Uploader",
    "install_bundle",
    "pull_bundle",
    "pull_document",
    "pull_fleet",
    "rollback_bundle",
    "summarise_store",
    "sync_store",
    "upload",
]
