"""Members across the fleet, the device's side: erasures and sealed profiles via the collector.

``sw.fleet`` (a ``Fleet``) is what a device knows of the chain's members beyond itself. It
needs the retailer's chain secret (``shelfwise.open(..., chain_secret=...)``): the collector
knows a member only by a blinded id, ``HMAC-SHA256(chain secret, loyalty id)``.

- ``exchange`` (run by ``sw.sync``): erasures made here go up (``POST /v1/tombstones``); the
  erasure feed comes down from this device's place in it and every member it names is erased
  here at once (matched by blinded id); then the sealed copies queued by
  ``Shopper.seal_profile`` go up, each replacing the collector's copies it merged. Every step
  is idempotent and offline-safe: nothing leaves a queue before the collector acknowledged
  it, a page of the feed and this device's place in it are applied in one transaction.
- ``pull`` (``Shopper.pull_profile``): a signed-in member's copies come down, open with the
  member's key and merge into this store; unreachable, the device serves what it holds.
- ``copies``: the same, read-only (the phone app's view of a member's profile).

A remote erasure at time T forgets what this device held of the member up to T; when the
member did nothing here since (the usual case), every row about them goes, as with
``forget_shopper``. Nothing readable about a member leaves the device: copies are sealed for
the member (``shelfwise.profile.sealing``), tombstones are a blinded id and a time.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:", chain_secret=b"c" * 32) as sw:
    ...     _ = sw.member("L-1")
    ...     _ = sw.forget_shopper("L-1")
    ...     status = sw.fleet.status()
    ...     report = sw.fleet.exchange("http://127.0.0.1:9", shelfwise.Credentials("k1", b"s" * 16))
    >>> status.pending_erasures, report.erasures_sent, report.error is not None  # offline: kept
    (1, 0, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import identity
from .._errors import InvalidInput, ProfileSealError, ShelfwiseError, UnknownShopper
from ..clock import now_ms
from ..identity import get_shopper
from ..offers.redemption import release_holds_of
from ..profile import MemberProfile, blind_member_id, derive_member_key, merge_all, unseal
from ..profile.local import (
    QueuedCopy,
    apply_profile,
    copy_stored,
    drop_queued,
    forget_before,
    mark_tombstone_uploaded,
    pending_tombstones,
    queued_copies,
    read_profile,
    record_tombstone,
    remember_copies,
    tombstone_of,
)
from ..profile.sealing import RFC9106_MEMORY_CONSTRAINED, KdfCost
from ..store.connection import Store
from .protocol import (
    ERASURES_PATH,
    MAX_COPIES,
    MAX_COPIES_PER_REQUEST,
    MAX_SEALED,
    MAX_TOMBSTONES,
    PROFILES_PATH,
    TOMBSTONES_PATH,
    Credentials,
    ErasureBacklog,
    MemberCopies,
    ProfileAnswer,
    ProfileUpload,
    SealedCopy,
    Tombstone,
    TombstoneAcks,
    TombstonePage,
    TombstoneUpload,
    pack_wire,
    unpack_wire,
)
from .transport import HttpTransport, SignedClient, transport_for

logger = logging.getLogger(__name__)

CURSOR_KEY = "fleet.tombstone_cursor"  # this device's place in the collector's erasure feed
LAST_EXCHANGE_KEY = "fleet.last_exchange_ms"
LAST_ERROR_KEY = "fleet.last_error"
BACKLOG_KEY = "fleet.erasure_backlog"  # the collector's last answer: pending per device (JSON)
BATCH_BYTES = 1 << 20
MAX_COPIES_ANSWER = MAX_COPIES * MAX_SEALED * 2  # a member's copies, msgpack overhead included
_COUNTS = (
    "erasures_sent",
    "erasures_received",
    "members_erased",
    "copies_sent",
    "copies_stored",
    "copies_refused",
    "bytes_received",
)


@dataclass(frozen=True)
class FleetReport:
    """What one exchange with the collector did."""

    erasures_sent: int = 0
    erasures_received: int = 0
    members_erased: int = 0
    copies_sent: int = 0
    copies_stored: int = 0
    copies_refused: int = 0
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FleetStatus:
    """What waits for the collector and how far this device has heard of erasures."""

    enabled: bool
    pending_erasures: int
    pending_copies: int
    known_erasures: int
    feed_position: int
    last_exchange_ms: int | None
    last_error: str
    erasures_pending_per_device: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FleetCopies:
    """A member's copies as the collector holds them, opened and merged (nothing stored)."""

    profile: MemberProfile
    copy_ids: tuple[str, ...]
    unreadable: int  # copies sealed under another key (an earlier PIN)
    erased_ms: int
    bytes_received: int = 0


@dataclass(frozen=True)
class ProfilePull:
    """What ``Shopper.pull_profile`` merged: ``online`` False means the collector could not be
    reached and the device serves what it holds (``error`` says why)."""

    profile: MemberProfile
    copies: int = 0
    unreadable: int = 0
    erased_ms: int = 0
    online: bool = True
    error: str | None = None
    bytes_received: int = 0


class Fleet:
    """A device's part in the chain's fleet of devices (``sw.fleet``). See the module docstring."""

    def __init__(self, store: Store, chain_secret: bytes | None) -> None:
        self.store = store
        self._chain_secret = chain_secret
        # Argon2id cost of member keys; tests and benchmarks may lower it (never in production).
        self.kdf_cost: KdfCost = RFC9106_MEMORY_CONSTRAINED

    @property
    def enabled(self) -> bool:
        """Whether this device takes part (it was opened with a chain secret)."""
        return self._chain_secret is not None

    @property
    def chain_secret(self) -> bytes | None:
        """The retailer's chain secret (None: this device takes no part in a fleet)."""
        return self._chain_secret

    def blinded_id(self, loyalty_id: str) -> str:
        """The id the collector knows a member by (see ``Shelfwise.blinded_id``)."""
        if self._chain_secret is None:
            raise InvalidInput("open the store with chain_secret=... to take part in a fleet")
        return blind_member_id(self._chain_secret, loyalty_id)

    def member_key(self, loyalty_id: str, pin: str) -> bytes:
        """The member's key from their card and PIN (Argon2id, about a second: call it once per
        visit, after the PIN was checked, and keep it in memory only).

        Example:
            >>> import shelfwise
            >>> from shelfwise.profile.sealing import TEST_COST
            >>> with shelfwise.open(":memory:", chain_secret=b"c" * 32) as sw:
            ...     sw.fleet.kdf_cost = TEST_COST
            ...     len(sw.fleet.member_key("L-1", "7391"))
            32
        """
        return derive_member_key(
            loyalty_id, pin, blinded_id=self.blinded_id(loyalty_id), cost=self.kdf_cost
        )

    def erased_at(self, loyalty_id: str) -> int:
        """When this device last heard the member was erased, here or elsewhere (0: never)."""
        return tombstone_of(self.store, self.blinded_id(loyalty_id))

    def status(self) -> FleetStatus:
        """Pending erasures and copies, the feed position, the last exchange (local reads only)."""
        counts = self.store.query(
            "SELECT (SELECT count(*) FROM erasure_tombstones WHERE uploaded = 0) AS pending, "
            "(SELECT count(*) FROM erasure_tombstones) AS known, "
            "(SELECT count(*) FROM profile_outbox) AS copies"
        )[0]
        last = self.store.get_meta(LAST_EXCHANGE_KEY)
        backlog = json.loads(self.store.get_meta(BACKLOG_KEY) or "{}")
        return FleetStatus(
            enabled=self.enabled,
            pending_erasures=counts["pending"],
            pending_copies=counts["copies"],
            known_erasures=counts["known"],
            feed_position=int(self.store.get_meta(CURSOR_KEY) or 0),
            last_exchange_ms=int(last) if last else None,
            last_error=self.store.get_meta(LAST_ERROR_KEY) or "",
            erasures_pending_per_device={str(k): int(v) for k, v in backlog.items()},
        )

    # -- the exchange sw.sync runs ------------------------------------------------------------
    def exchange(
        self,
        url: str | HttpTransport,
        credentials: Credentials,
        *,
        timeout_s: float = 30.0,
        clock: Callable[[], int] = now_ms,
    ) -> FleetReport:
        """Erasures up, the erasure feed down (erasing here at once), sealed copies up.

        Never raises because the collector is unreachable or refuses: ``error`` says so and
        every queue keeps what was not acknowledged, for the next run.
        """
        if not self.enabled:
            return FleetReport()
        client = SignedClient(self.store, transport_for(url, timeout_s), credentials, clock=clock)
        counts = dict.fromkeys(_COUNTS, 0)
        error = None
        try:
            self._send_erasures(client, credentials, counts)
            self._pull_feed(client, counts)
            self._send_copies(client, credentials, counts)
            self._pull_backlog(client, counts)
        except ShelfwiseError as exc:  # offline or refused: everything stays queued
            error = f"members: {exc}"
            logger.info("fleet exchange stopped: %s", exc)
        stamp = clock()
        self.store.set_meta(LAST_EXCHANGE_KEY, str(stamp))
        self.store.set_meta(LAST_ERROR_KEY, error or "")
        logger.info(
            "fleet: %d erasures sent, %d received, %d copies stored",
            counts["erasures_sent"],
            counts["erasures_received"],
            counts["copies_stored"],
        )
        return FleetReport(
            **counts, requests=client.requests, bytes_sent=client.bytes_sent, error=error
        )

    def _send_erasures(
        self, client: SignedClient, credentials: Credentials, counts: dict[str, int]
    ) -> None:
        pending = pending_tombstones(self.store)
        for start in range(0, len(pending), MAX_TOMBSTONES):
            batch = [Tombstone(b, ms) for b, ms in pending[start : start + MAX_TOMBSTONES]]
            body = pack_wire(TombstoneUpload(1, credentials.device_id, batch))
            reply = client.request("POST", TOMBSTONES_PATH, body)
            counts["bytes_received"] += len(reply.body)
            sent = {(t.blinded_id, t.erased_ms) for t in batch}
            for ack in unpack_wire(reply.body, TombstoneAcks).acked:
                if (ack.blinded_id, ack.erased_ms) in sent:
                    mark_tombstone_uploaded(self.store, ack.blinded_id, ack.erased_ms)
                    counts["erasures_sent"] += 1

    def _pull_feed(self, client: SignedClient, counts: dict[str, int]) -> None:
        members: dict[str, str] | None = None
        cursor = int(self.store.get_meta(CURSOR_KEY) or 0)
        while True:  # until an empty page: the collector then knows this device holds it all
            reply = client.request("GET", f"{TOMBSTONES_PATH}?since={cursor}")
            counts["bytes_received"] += len(reply.body)
            page = unpack_wire(reply.body, TombstonePage)
            if not page.tombstones or page.next <= cursor:
                return
            members = members if members is not None else self._members_by_blinded_id()
            with self.store.write() as db:
                for tombstone, _ in page.tombstones:
                    if not record_tombstone(
                        db, tombstone.blinded_id, tombstone.erased_ms, uploaded=True
                    ):
                        continue  # known already (our own, or pulled before a crash)
                    counts["erasures_received"] += 1
                    shopper_id = members.get(tombstone.blinded_id)
                    if shopper_id is not None:
                        erase_member(db, self.store, shopper_id, tombstone.erased_ms)
                        counts["members_erased"] += 1
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [CURSOR_KEY, str(page.next)],
                )
            cursor = page.next

    def _members_by_blinded_id(self) -> dict[str, str]:
        rows = self.store.query("SELECT shopper_id FROM shoppers WHERE kind = 'member'")
        return {self.blinded_id(row["shopper_id"]): row["shopper_id"] for row in rows}

    def _send_copies(
        self, client: SignedClient, credentials: Credentials, counts: dict[str, int]
    ) -> None:
        batch: list[QueuedCopy] = []
        size = 0
        for copy in queued_copies(self.store):
            if batch and (
                len(batch) >= MAX_COPIES_PER_REQUEST or size + len(copy.sealed) > BATCH_BYTES
            ):
                self._send_batch(client, credentials, batch, counts)
                batch, size = [], 0
            batch.append(copy)
            size += len(copy.sealed)
        if batch:
            self._send_batch(client, credentials, batch, counts)

    def _send_batch(
        self,
        client: SignedClient,
        credentials: Credentials,
        batch: Sequence[QueuedCopy],
        counts: dict[str, int],
    ) -> None:
        wire = [
            SealedCopy(c.blinded_id, c.copy_id, c.epoch, c.sealed, c.supersedes[:MAX_COPIES])
            for c in batch
        ]
        reply = client.request(
            "POST", PROFILES_PATH, pack_wire(ProfileUpload(1, credentials.device_id, wire))
        )
        counts["bytes_received"] += len(reply.body)
        counts["copies_sent"] += len(batch)
        by_id = {c.copy_id: c for c in batch}
        for outcome in unpack_wire(reply.body, ProfileAnswer).outcomes:
            copy = by_id.get(outcome.copy_id)
            if copy is None:
                continue
            if outcome.outcome == "stored":
                copy_stored(self.store, copy)
                counts["copies_stored"] += 1
                continue
            counts["copies_refused"] += 1
            if outcome.outcome == "erased":  # erased elsewhere: it wins here too, at once
                with self.store.write() as db:
                    record_tombstone(db, copy.blinded_id, outcome.erased_ms, uploaded=True)
                    shopper_id = self._members_by_blinded_id().get(copy.blinded_id)
                    if shopper_id is not None:
                        erase_member(db, self.store, shopper_id, outcome.erased_ms)
                        counts["members_erased"] += 1
            elif outcome.outcome == "copy_conflict":
                drop_queued(self.store, copy, new_id=True)
            elif outcome.outcome == "bad_epoch":
                drop_queued(self.store, copy)
                logger.warning("the collector refused a sealed copy from this device's future")
            # too_many_copies: kept queued until a device merges the member's copies

    def _pull_backlog(self, client: SignedClient, counts: dict[str, int]) -> None:
        reply = client.request("GET", ERASURES_PATH)
        counts["bytes_received"] += len(reply.body)
        backlog = unpack_wire(reply.body, ErasureBacklog)
        pending = {device: n for device, n, _, _ in backlog.devices}
        self.store.set_meta(BACKLOG_KEY, json.dumps(pending, sort_keys=True))

    # -- a signed-in member's copies ----------------------------------------------------------
    def copies(
        self,
        loyalty_id: str,
        key: bytes,
        url: str | HttpTransport,
        credentials: Credentials,
        *,
        timeout_s: float = 10.0,
    ) -> FleetCopies:
        """The member's copies at the collector, opened with their key and merged (read-only).

        Raises ``ProfileSealError`` when copies exist and none opens (a wrong PIN), and the
        sync errors (``SyncRetryable``...) when the collector cannot be reached.
        """
        blinded = self.blinded_id(loyalty_id)
        client = SignedClient(self.store, transport_for(url, timeout_s), credentials)
        reply = client.request("GET", f"{PROFILES_PATH}/{blinded}", max_bytes=MAX_COPIES_ANSWER)
        held = unpack_wire(reply.body, MemberCopies, max_len=MAX_COPIES_ANSWER)
        if held.blinded_id != blinded:
            raise InvalidInput("the collector answered with another member's copies")
        erased = max(held.erased_ms, tombstone_of(self.store, blinded))
        opened: list[tuple[str, MemberProfile]] = []
        for copy_id, _, sealed in held.copies:
            try:
                opened.append(
                    (copy_id, MemberProfile.from_dict(unseal(sealed, key, blinded_id=blinded)))
                )
            except ProfileSealError:
                continue  # sealed under another key: an earlier PIN, or not this member's
        if held.copies and not opened:
            raise ProfileSealError(
                "no copy of this member's profile opens with this key (wrong PIN?)"
            )
        merged = merge_all(profile for _, profile in opened).erase(erased)
        return FleetCopies(
            merged,
            tuple(c for c, _ in opened),
            len(held.copies) - len(opened),
            erased,
            len(reply.body),
        )

    def pull(
        self,
        loyalty_id: str,
        key: bytes,
        url: str | HttpTransport,
        credentials: Credentials,
        *,
        timeout_s: float = 10.0,
    ) -> ProfilePull:
        """Merge the member's copies into this store (see ``Shopper.pull_profile``)."""
        get_shopper(self.store, loyalty_id)
        try:
            fleet = self.copies(loyalty_id, key, url, credentials, timeout_s=timeout_s)
        except ProfileSealError:
            raise
        except ShelfwiseError as exc:  # unreachable or refusing: serve what this device holds
            logger.info("serving the member's local profile: %s", exc)
            return ProfilePull(read_profile(self.store, loyalty_id), online=False, error=str(exc))
        blinded = self.blinded_id(loyalty_id)
        if fleet.erased_ms > tombstone_of(self.store, blinded):
            with self.store.write() as db:
                record_tombstone(db, blinded, fleet.erased_ms, uploaded=True)
                erase_member(db, self.store, loyalty_id, fleet.erased_ms)
        try:
            get_shopper(self.store, loyalty_id)
        except UnknownShopper:  # erased whole just now: the caller signs them up again
            return ProfilePull(MemberProfile(epoch=fleet.erased_ms), erased_ms=fleet.erased_ms)
        apply_profile(self.store, loyalty_id, fleet.profile)
        remember_copies(self.store, blinded, fleet.copy_ids)
        return ProfilePull(
            read_profile(self.store, loyalty_id),
            copies=len(fleet.copy_ids),
            unreadable=fleet.unreadable,
            erased_ms=fleet.erased_ms,
            bytes_received=fleet.bytes_received,
        )


def erase_member(db: Any, store: Store, shopper_id: str, erased_ms: int) -> int:
    """A member erased elsewhere at ``erased_ms``, in the caller's transaction; rows removed.

    What this device held up to then goes. If the member did nothing here since, every row
    about them goes (as ``forget_shopper``); otherwise what they did after stays.
    """
    later = list(
        db.query(
            "SELECT 1 FROM events WHERE shopper_id = ? AND ts_ms > ? UNION ALL "
            "SELECT 1 FROM consents WHERE shopper_id = ? AND updated_ms > ? LIMIT 1",
            [shopper_id, erased_ms, shopper_id, erased_ms],
        )
    )
    if later:
        return forget_before(db, shopper_id, erased_ms)
    release_holds_of(db, shopper_id)
    return identity.delete_rows(db, identity.shopper_tables(store), shopper_id)


__all__ = [
    "Fleet",
    "FleetCopies",
    "FleetReport",
    "FleetStatus",
    "ProfilePull",
    "erase_member",
]
