"""Sending the outbox upstream, and the one ``sync`` call the facade and the CLI make.

``upload`` rebuilds releases a withdrawn member was in, then sends the outbox in batches
(<= 100 releases, <= 256 KB), each request HMAC-signed with the device's own secret
(``shelfwise.sync.transport.SignedClient``). The collector upserts by idempotency key, so a
retry, a duplicate or a device killed mid-sync never counts twice; a release is deleted
only after the collector acknowledged that exact key and revision.

Failures: network errors, 5xx, 408 and 429 back off (1 s x 2^n, full jitter, cap 300 s,
Retry-After honoured; ``shelfwise.sync.transport.Backoff``) and never give up while the
data is kept; 413 splits the batch; any other 4xx bisects the batch down to the release
upstream refuses and quarantines it; 401/403 re-signs once with the collector's clock
(a kiosk with a wrong clock), then stops.

``sync_store`` summarises, uploads, then pulls what comes down (``shelfwise.sync.
downstream``): fleet tables, signed catalog/offers documents, a bundle.

Example:
    >>> import shelfwise
    >>> creds = Credentials("kiosk-1", b"0" * 32)
    >>> with shelfwise.open(":memory:") as sw:
    ...     upload(sw.store, "http://127.0.0.1:9", creds, deadline_s=0).remaining
    0
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import (
    EnvelopeError,
    ShelfwiseError,
    SyncRejected,
    SyncRetryable,
    SyncUnauthorized,
    UpdateRefused,
)
from ..catalog import Catalog
from ..clock import now_ms
from ..model.runtime import ModelHandle
from ..offers import Offers
from ..store.connection import Store
from .downstream import KINDS, pull_bundle, pull_document, pull_fleet
from .fleet import Fleet
from .leasing import exchange_offers
from .outbox import (
    QueuedRelease,
    ReleaseInfo,
    acknowledge,
    clear_error,
    due,
    make_due,
    quarantine,
    queued_count,
    rebuild_dirty,
    record_attempt,
    record_failure,
    summarise,
)
from .privacy import PrivacyPolicy
from .protocol import SUMMARIES_PATH, Credentials, pack_upload, unpack_acks
from .transport import Backoff, HttpTransport, SignedClient, transport_for

logger = logging.getLogger(__name__)

BATCH_RECORDS = 100
BATCH_BYTES = 256 * 1024


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
    erasures_sent: int = 0  # members across the fleet (shelfwise.sync.fleet)
    erasures_received: int = 0
    members_erased: int = 0
    profiles_sent: int = 0
    ledger_sent: int = 0  # offers across the fleet (shelfwise.sync.leasing)
    shares_granted: int = 0

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
        self.client = SignedClient(store, transport, credentials, clock=clock)
        self.credentials = credentials
        self.clock = clock
        self.sleep = sleep
        self.backoff = Backoff(rng=rng)
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.counts = {"sent": 0, "acked": 0, "quarantined": 0}

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
        body = pack_upload(self.credentials.device_id, [r.body for r in batch])
        try:
            response = self.client.request("POST", SUMMARIES_PATH, body)
        except UpdateRefused as exc:  # an absurd answer: the release may still have landed
            raise SyncRetryable(f"upstream sent an unreadable acknowledgement: {exc}") from exc
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
            acks = unpack_acks(response.body)
        except EnvelopeError as exc:
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
        total = queued_count(self.store)
        while True:
            rows = due(self.store, now=self.clock(), limit=self.batch_records * 10)
            if not rows:
                break
            try:
                for batch in self._batches(rows):
                    self.send(batch)
                    if progress:
                        progress(total - queued_count(self.store), total)
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
                # We slept the backoff ourselves: the rows are due now whatever our clock says.
                make_due(self.store, ids)
        if error is None:
            clear_error(self.store)
        report = SyncReport(
            retries=retries,
            remaining=queued_count(self.store),
            error=error,
            requests=self.client.requests,
            bytes_sent=self.client.bytes_sent,
            **self.counts,
        )
        logger.info("sync: %d acked, %d remaining", report.acked, report.remaining)
        return report


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

    Example: see the module docstring.
    """
    transport = transport_for(url, timeout_s)
    rebuilt = rebuild_dirty(store)
    uploader = Uploader(store, transport, credentials, clock=clock, sleep=sleep, rng=rng)
    report = uploader.run(deadline_s=deadline_s, progress=progress)
    return SyncReport(**{**report.__dict__, "rebuilt": rebuilt})


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
    """Summarise the store's unsummarised events into the outbox (see ``outbox.summarise``)."""
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
    members: Fleet | None = None,
) -> SyncReport:
    """Exchange members' erasures and sealed profiles (with ``members``), summarise,
    upload, then pull fleet tables, signed catalog/offers documents (when a public key is
    pinned) and (with ``bundles_dir``) a new bundle.

    Never raises because upstream is unreachable or misbehaving: the report's ``error``
    says so and the kiosk keeps serving what it has.
    """
    # Erasures first: small, and the most urgent thing a device has to say or hear.
    exchanged = members.exchange(url, credentials, timeout_s=timeout_s) if members else None
    if summarise_first:
        summarise_store(store, handle, device_id=credentials.device_id, k=k, policy=policy)
    report = upload(
        store, url, credentials, deadline_s=deadline_s, progress=progress, timeout_s=timeout_s
    )
    if exchanged is not None:
        report = SyncReport(
            **{
                **report.__dict__,
                "erasures_sent": exchanged.erasures_sent,
                "erasures_received": exchanged.erasures_received,
                "members_erased": exchanged.members_erased,
                "profiles_sent": exchanged.copies_stored,
                "requests": report.requests + exchanged.requests,
                "bytes_sent": report.bytes_sent + exchanged.bytes_sent,
                "error": report.error or exchanged.error,
            }
        )
    # Everything below is input from upstream: any refusal or failure lands in the report
    # (the upload is already acknowledged) and the device keeps serving what it has.
    error = report.error
    if error is None and fleet:
        try:
            pull_fleet(store, url, credentials, timeout_s=timeout_s)
        except ShelfwiseError as exc:
            error = f"fleet tables: {exc}"
            logger.warning("kept the fleet tables: %s", exc)
    key = public_key or handle.public_key
    for kind in documents if error is None else ():
        if key is None:
            logger.info("no pinned public key: not pulling %s documents", kind)
            break
        try:
            pull_document(
                store, url, credentials, kind, public_key=key, catalog=catalog, offers=offers
            )
        except ShelfwiseError as exc:
            error = f"{kind}: {exc}"
            logger.warning("kept the applied %s: %s", kind, exc)
            break
    offered = None
    if report.error is None and offers is not None:
        # Shares and the ledger for the offers this device holds, even when a document was
        # refused (the collector was reached; a refused document leaves the offers as they were).
        offered = exchange_offers(
            store, offers, url, credentials, members=members, timeout_s=timeout_s
        )
        error = error or offered.error
    if error is None and bundles_dir is not None:
        try:
            pull_bundle(handle, url, credentials, bundles_dir, store=store, public_key=public_key)
        except ShelfwiseError as exc:
            error = f"bundle: {exc}"
            logger.warning("kept the served bundle: %s", exc)
    if error != report.error:
        store.set_meta("sync.last_error", error or "")
    if offered is not None:
        report = SyncReport(
            **{
                **report.__dict__,
                "ledger_sent": offered.ledger_sent,
                "shares_granted": offered.shares_granted,
                "requests": report.requests + offered.requests,
            }
        )
    return SyncReport(**{**report.__dict__, "error": error})


__all__ = [
    "Credentials",  # also here: shelfwise.cli and the kiosk import it from this module
    "SyncReport",
    "Uploader",
    "summarise_store",
    "sync_store",
    "upload",
]
