"""A member's profile and this device's store: read it out, merge a copy from elsewhere in.

The store stays the truth on the device; the profile is how a member's state travels. Reading
builds the CRDT from the member's interest events, consents and counters; applying merges a
copy (from the member's other devices) back: missing interactions become events with their
original ids (so nothing is recorded twice), newer consent answers win, per-device counters
take the larger entry, and an erasure epoch newer than this device's forgets what came before.

Example:
    >>> import shelfwise
    >>> from shelfwise.profile import Interaction, MemberProfile
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.member("L-1", consents={"personalization": True})
    ...     elsewhere = MemberProfile().record(Interaction("e-1", "tea", "purchase", 1_750_000_000_000))
    ...     apply_profile(sw.store, "L-1", elsewhere)
    ...     [i.item_id for i in read_profile(sw.store, "L-1").interactions]
    1
    ['tea']
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import events, identity
from ..clock import now_ms
from ..events import INTEREST_EVENTS, Event
from ..store.connection import Store
from .crdt import ConsentRecord, Counter, Interaction, MemberProfile

DEVICE_KEY = "device.id"
MAX_SUPERSEDED = 64  # copies one sealed copy may replace (the collector keeps at most 64)


def device_id(store: Store) -> str:
    """This store file's stable device id, created on first use (stamps consents and counters).

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     device_id(sw.store) == device_id(sw.store)
        True
    """
    existing = store.get_meta(DEVICE_KEY)
    if existing:
        return existing
    with store.write() as db:
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            [DEVICE_KEY, "dev-" + secrets.token_hex(8)],
        )
    return str(store.get_meta(DEVICE_KEY))


def read_profile(store: Store, shopper_id: str) -> MemberProfile:
    """The member's profile as this device holds it."""
    device = device_id(store)
    marks = ",".join("?" * len(INTEREST_EVENTS))
    rows = store.rows(
        f"SELECT event_id, item_id, type, ts_ms, store_id, quantity FROM events "
        f"WHERE shopper_id = ? AND type IN ({marks}) AND item_id IS NOT NULL",
        [shopper_id, *INTEREST_EVENTS],
    )
    interactions = [Interaction(r[0], r[1], r[2], r[3], r[4] or "", r[5] or 1) for r in rows]
    consents = {
        purpose: ConsentRecord(*answer)
        for purpose, answer in identity.consent_records(store, shopper_id, device).items()
    }
    counters: dict[str, Counter] = {}
    for row in store.query(
        "SELECT name, device, up, down FROM profile_counters WHERE shopper_id = ?", [shopper_id]
    ):
        counter = counters.get(row["name"], Counter())
        counters[row["name"]] = Counter(
            {**counter.up, row["device"]: row["up"]}, {**counter.down, row["device"]: row["down"]}
        )
    epoch = store.query("SELECT epoch FROM profile_epochs WHERE shopper_id = ?", [shopper_id])
    return MemberProfile(epoch=epoch[0]["epoch"] if epoch else 0).merge(
        MemberProfile(tuple(interactions), consents, counters, epoch[0]["epoch"] if epoch else 0)
    )


def apply_profile(store: Store, shopper_id: str, profile: MemberProfile) -> int:
    """Merge a copy of the member's profile into this device's store; return rows changed."""
    local_epoch = read_profile(store, shopper_id).epoch
    here = device_id(store)
    changed = 0
    with store.write() as db:
        if profile.epoch > local_epoch:
            changed += forget_before(db, shopper_id, profile.epoch)
        for item in profile.interactions:
            if item.type not in INTEREST_EVENTS:
                continue
            record = Event(
                type=item.type,
                ts_ms=item.ts_ms,
                item_id=item.item_id,
                quantity=item.quantity,
                store_id=item.store_id,
                event_id=item.event_id,
            )
            if events.insert_event(db, shopper_id, record):
                # Recorded (and summarised upstream) by another device: never counted twice.
                db.execute(
                    "UPDATE events SET summarised = 1, day_summary_id = 0 WHERE event_id = ?",
                    [item.event_id],
                )
                changed += 1
        for purpose, answer in profile.consents.items():
            changed += identity.write_consent_if_newer(
                db, shopper_id, purpose, (answer.granted, answer.updated_ms, answer.device), here
            )
        for name, counter in profile.counters.items():
            for device in sorted({*counter.up, *counter.down}):
                changed += _merge_counter(
                    db,
                    shopper_id,
                    name,
                    device,
                    counter.up.get(device, 0),
                    counter.down.get(device, 0),
                )
        identity.touch(db, shopper_id, now_ms())
    return changed


def count(store: Store, shopper_id: str, name: str, amount: int = 1) -> None:
    """Change one of the member's travelling counters on behalf of this device."""
    device = device_id(store)
    up, down = (amount, 0) if amount >= 0 else (0, -amount)
    with store.write() as db:
        db.execute(
            "INSERT INTO profile_counters (shopper_id, name, device, up, down) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(shopper_id, name, device) DO UPDATE SET "
            "up = up + excluded.up, down = down + excluded.down",
            [shopper_id, name, device, up, down],
        )


def _merge_counter(db: object, shopper_id: str, name: str, device: str, up: int, down: int) -> int:
    return int(
        db.execute(  # type: ignore[attr-defined]
            "INSERT INTO profile_counters (shopper_id, name, device, up, down) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(shopper_id, name, device) DO UPDATE SET "
            "up = max(up, excluded.up), down = max(down, excluded.down) "
            "WHERE excluded.up > up OR excluded.down > down",
            [shopper_id, name, device, up, down],
        ).rowcount
    )


def forget_before(db: object, shopper_id: str, epoch: int) -> int:
    """A member erased elsewhere at ``epoch``: what this device held from before goes (events
    and consents stamped at or before it, every counter), in the caller's transaction."""
    removed = 0
    for sql in (
        "DELETE FROM events WHERE shopper_id = ? AND ts_ms <= ?",
        "DELETE FROM consents WHERE shopper_id = ? AND updated_ms <= ?",
    ):
        removed += db.execute(sql, [shopper_id, epoch]).rowcount  # type: ignore[attr-defined]
    removed += db.execute(  # type: ignore[attr-defined]
        "DELETE FROM profile_counters WHERE shopper_id = ?", [shopper_id]
    ).rowcount
    db.execute(  # type: ignore[attr-defined]
        "INSERT INTO profile_epochs (shopper_id, epoch) VALUES (?, ?) "
        "ON CONFLICT(shopper_id) DO UPDATE SET epoch = max(epoch, excluded.epoch)",
        [shopper_id, epoch],
    )
    return int(removed)


# -- what waits for the collector: erasure tombstones and sealed profiles ----------------------
def record_tombstone(db: Any, blinded_id: str, erased_ms: int, *, uploaded: bool) -> bool:
    """Remember that the member behind ``blinded_id`` was erased at ``erased_ms`` (the later
    time wins); ``uploaded=False`` queues it for the collector. True if it was news here.

    A queued copy sealed before the erasure is dropped (one sealed after it, by a member who
    came back, stays), and so is the list of the collector's copies held: they are gone."""
    changed = db.execute(
        "INSERT INTO erasure_tombstones (blinded_id, erased_ms, received_ms, uploaded) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(blinded_id) DO UPDATE SET "
        "erased_ms = excluded.erased_ms, received_ms = excluded.received_ms, "
        "uploaded = min(uploaded, excluded.uploaded) WHERE excluded.erased_ms > erased_ms",
        [blinded_id, erased_ms, now_ms(), int(uploaded)],
    ).rowcount
    db.execute(
        "DELETE FROM profile_outbox WHERE blinded_id = ? AND epoch < ?", [blinded_id, erased_ms]
    )
    db.execute("DELETE FROM profile_copies WHERE blinded_id = ?", [blinded_id])
    return bool(changed)


def tombstone_of(store: Store, blinded_id: str) -> int:
    """When the member behind ``blinded_id`` was last erased anywhere this device knows of (0: never)."""
    rows = store.query(
        "SELECT erased_ms FROM erasure_tombstones WHERE blinded_id = ?", [blinded_id]
    )
    return int(rows[0]["erased_ms"]) if rows else 0


def pending_tombstones(store: Store) -> list[tuple[str, int]]:
    """Erasures made here that the collector has not acknowledged: (blinded id, erased_ms)."""
    rows = store.query(
        "SELECT blinded_id, erased_ms FROM erasure_tombstones WHERE uploaded = 0 ORDER BY erased_ms"
    )
    return [(row["blinded_id"], row["erased_ms"]) for row in rows]


def mark_tombstone_uploaded(store: Store, blinded_id: str, erased_ms: int) -> None:
    """The collector acknowledged this erasure."""
    with store.write() as db:
        db.execute(
            "UPDATE erasure_tombstones SET uploaded = 1 WHERE blinded_id = ? AND erased_ms <= ?",
            [blinded_id, erased_ms],
        )


@dataclass(frozen=True)
class QueuedCopy:
    """A sealed copy waiting for the collector: ciphertext, its erasure epoch, the id it will
    be filed under and the collector's copies it merged (which it replaces there)."""

    blinded_id: str
    copy_id: str
    sealed: bytes
    epoch: int
    supersedes: tuple[str, ...]
    updated_ms: int


def queue_sealed(store: Store, blinded_id: str, sealed: bytes, epoch: int) -> str:
    """Keep the member's latest sealed profile until the collector takes it (ciphertext only);
    return the copy id it will be filed under.

    It supersedes every copy of the collector this store already merged, and the copy it
    replaces in the queue (which may have reached the collector without an answer)."""
    copy_id = secrets.token_hex(16)
    with store.write() as db:
        known = {
            row["copy_id"]
            for row in db.query(
                "SELECT copy_id FROM profile_copies WHERE blinded_id = ?", [blinded_id]
            )
        }
        for row in db.query(
            "SELECT copy_id, supersedes FROM profile_outbox WHERE blinded_id = ?", [blinded_id]
        ):
            known.update(json.loads(row["supersedes"]))
            if row["copy_id"]:
                known.add(row["copy_id"])
        db.execute(
            "INSERT INTO profile_outbox (blinded_id, sealed, epoch, updated_ms, copy_id, "
            "supersedes) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(blinded_id) DO UPDATE SET "
            "sealed = excluded.sealed, epoch = excluded.epoch, updated_ms = excluded.updated_ms, "
            "copy_id = excluded.copy_id, supersedes = excluded.supersedes",
            [
                blinded_id,
                sealed,
                epoch,
                now_ms(),
                copy_id,
                json.dumps(sorted(known)[:MAX_SUPERSEDED]),
            ],
        )
    return copy_id


def pending_profiles(store: Store) -> list[tuple[str, bytes, int, int]]:
    """Sealed profiles waiting for upload: (blinded id, sealed, epoch, updated_ms)."""
    return [(c.blinded_id, c.sealed, c.epoch, c.updated_ms) for c in queued_copies(store)]


def queued_copies(store: Store) -> list[QueuedCopy]:
    """Sealed copies waiting for upload, oldest first."""
    rows = store.query(
        "SELECT blinded_id, copy_id, sealed, epoch, supersedes, updated_ms FROM profile_outbox "
        "ORDER BY updated_ms, blinded_id"
    )
    return [
        QueuedCopy(
            r["blinded_id"],
            r["copy_id"] or "",
            bytes(r["sealed"]),
            r["epoch"],
            tuple(json.loads(r["supersedes"])),
            r["updated_ms"],
        )
        for r in rows
    ]


def copy_stored(store: Store, copy: QueuedCopy) -> None:
    """The collector filed ``copy``: it leaves the queue, and this store now holds exactly it
    in place of the copies it superseded (a copy queued since stays queued)."""
    with store.write() as db:
        db.execute("DELETE FROM profile_outbox WHERE copy_id = ?", [copy.copy_id])
        for superseded in copy.supersedes:
            db.execute(
                "DELETE FROM profile_copies WHERE blinded_id = ? AND copy_id = ?",
                [copy.blinded_id, superseded],
            )
        db.execute(
            "INSERT OR IGNORE INTO profile_copies (blinded_id, copy_id) VALUES (?, ?)",
            [copy.blinded_id, copy.copy_id],
        )


def drop_queued(store: Store, copy: QueuedCopy, *, new_id: bool = False) -> None:
    """Give up on a queued copy the collector refused for good, or (``new_id``) keep it under a
    fresh id (its id was taken)."""
    with store.write() as db:
        if new_id:
            db.execute(
                "UPDATE profile_outbox SET copy_id = ? WHERE copy_id = ?",
                [secrets.token_hex(16), copy.copy_id],
            )
        else:
            db.execute("DELETE FROM profile_outbox WHERE copy_id = ?", [copy.copy_id])


def remember_copies(store: Store, blinded_id: str, copy_ids: Iterable[str]) -> None:
    """This store merged these copies of the collector's: the next sealed copy replaces them."""
    with store.write() as db:
        for copy_id in copy_ids:
            db.execute(
                "INSERT OR IGNORE INTO profile_copies (blinded_id, copy_id) VALUES (?, ?)",
                [blinded_id, copy_id],
            )
