"""The collector's side of members across the fleet: sealed copies and erasure tombstones.

Shared by both storage backends (a mixin over their transaction and SQL hooks, like
``_devices``). The collector never holds a member key: it files ciphertext under a blinded id
and learns only each copy's size and erasure epoch.

- ``member_copies``: every sealed copy of a member's profile, by the id the sealing device
  chose. An upload names the copies it merged (``supersedes``); only those are replaced, so
  two devices uploading at once both keep their copy (the next device that merges them
  replaces both). At most ``MAX_COPIES`` per member.
- ``fleet_members``: one row per member the collector has seen, with the latest erasure
  (``erased_ms``) and its place in the tombstone feed (``seq``). Every write about a member
  locks this row first, so an upload racing an erasure is ordered with it: a tombstone
  deletes every copy older than it, and a copy older than the tombstone is refused
  (``erased``), whichever process and whichever order.
- ``device_erasure_cursors``: how far each device has pulled the feed (its last ``since``),
  so operators see erasures still pending per device.

Tombstones are kept for good: a device back from a long offline spell must still hear of
every erasure (they are a blinded id and a time each).

Example:
    >>> from shelfwise.sync.protocol import Tombstone
    >>> from shelfwise.upstream import SqliteStorage
    >>> storage = SqliteStorage(":memory:")
    >>> _ = storage.add_device("kiosk-1")
    >>> [t.erased_ms for t in storage.add_tombstones("kiosk-1", [Tombstone("b" * 64, 5_000)])]
    [5000]
    >>> page = storage.tombstones_since("kiosk-1", 0)
    >>> [(t.blinded_id[:4], seq) for t, seq in page.tombstones], page.more
    ([('bbbb', 1)], False)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from shelfwise import InvalidInput
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.sync.protocol import (
    MAX_COPIES,
    MAX_TOMBSTONES,
    CopyOutcome,
    ErasureBacklog,
    MemberCopies,
    SealedCopy,
    Tombstone,
    TombstonePage,
)

MAX_AHEAD_MS = DAY_MS  # an epoch or erasure time this far past the collector's clock is refused

MEMBER_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_members (
    blinded_id TEXT PRIMARY KEY,
    erased_ms BIGINT NOT NULL DEFAULT 0,
    seq BIGINT,
    erased_by TEXT,
    received_ms BIGINT
);
CREATE UNIQUE INDEX IF NOT EXISTS fleet_members_seq ON fleet_members(seq);
CREATE TABLE IF NOT EXISTS member_copies (
    copy_id TEXT PRIMARY KEY,
    blinded_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    size BIGINT NOT NULL,
    sealed TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS member_copies_member ON member_copies(blinded_id);
CREATE TABLE IF NOT EXISTS device_erasure_cursors (
    device_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL
);
"""


class MemberStore:
    """Sealed copies, tombstones and the feed's cursors (see the module docstring)."""

    lock_suffix = ""

    # provided by the backend
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _serialize_erasures(self, cur: Any) -> None:
        """Make tombstone writers take turns (their ``seq`` is the feed's order)."""

    # -- the member row every write locks first ------------------------------------------------
    def _lock_member(self, cur: Any, blinded_id: str) -> int:
        """Lock the member's row (created if new) for this transaction; return ``erased_ms``."""
        cur.execute(
            self._sql("INSERT INTO fleet_members (blinded_id) VALUES (?) ON CONFLICT DO NOTHING"),
            [blinded_id],
        )
        rows = self._rows(
            cur,
            "SELECT erased_ms FROM fleet_members WHERE blinded_id = ?" + self.lock_suffix,
            [blinded_id],
        )
        return int(rows[0][0])

    # -- sealed copies -------------------------------------------------------------------------
    def store_copies(
        self, device_id: str, copies: Sequence[SealedCopy], *, now: int | None = None
    ) -> list[CopyOutcome]:
        """File sealed copies, each replacing the copies it supersedes; one outcome each.

        A copy id already filed for the same member is acknowledged again (a retry); one
        filed for another member is a ``copy_conflict``. All in one transaction, members
        locked in one order (no deadlock between collector processes).
        """
        stamp = now_ms() if now is None else now
        outcomes: dict[str, CopyOutcome] = {}
        with self._tx() as cur:
            for copy in sorted(copies, key=lambda c: (c.blinded_id, c.copy_id)):
                outcomes[copy.copy_id] = self._store_one(cur, device_id, copy, stamp)
        return [outcomes[copy.copy_id] for copy in copies]

    def _store_one(self, cur: Any, device_id: str, copy: SealedCopy, stamp: int) -> CopyOutcome:
        if copy.epoch > stamp + MAX_AHEAD_MS:
            return CopyOutcome(copy.copy_id, "bad_epoch")
        erased = self._lock_member(cur, copy.blinded_id)
        if copy.epoch < erased:
            # An old copy coming back online: the erasure wins, and the device learns of it.
            return CopyOutcome(copy.copy_id, "erased", erased)
        owner = self._rows(
            cur, "SELECT blinded_id FROM member_copies WHERE copy_id = ?", [copy.copy_id]
        )
        if owner:
            outcome = "stored" if owner[0][0] == copy.blinded_id else "copy_conflict"
            return CopyOutcome(copy.copy_id, outcome, erased)
        held = {
            row[0]
            for row in self._rows(
                cur, "SELECT copy_id FROM member_copies WHERE blinded_id = ?", [copy.blinded_id]
            )
        }
        replaced = sorted(held & set(copy.supersedes))
        if len(held) - len(replaced) >= MAX_COPIES:
            return CopyOutcome(copy.copy_id, "too_many_copies", erased)
        if replaced:
            marks = ", ".join("?" * len(replaced))
            cur.execute(
                self._sql(
                    f"DELETE FROM member_copies WHERE blinded_id = ? AND copy_id IN ({marks})"
                ),
                [copy.blinded_id, *replaced],
            )
        cur.execute(
            self._sql(
                "INSERT INTO member_copies (copy_id, blinded_id, epoch, device_id, received_ms, "
                "size, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            [
                copy.copy_id,
                copy.blinded_id,
                copy.epoch,
                device_id,
                stamp,
                len(copy.sealed),
                base64.b64encode(copy.sealed).decode(),
            ],
        )
        return CopyOutcome(copy.copy_id, "stored", erased)

    def member_copies(self, blinded_id: str) -> MemberCopies:
        """Every copy held for a member (oldest first) and the member's latest erasure."""
        with self._tx() as cur:
            erased = self._rows(
                cur, "SELECT erased_ms FROM fleet_members WHERE blinded_id = ?", [blinded_id]
            )
            rows = self._rows(
                cur,
                "SELECT copy_id, epoch, sealed FROM member_copies WHERE blinded_id = ? "
                "ORDER BY received_ms, copy_id",
                [blinded_id],
            )
        copies = [(r[0], int(r[1]), base64.b64decode(r[2])) for r in rows]
        return MemberCopies(blinded_id, int(erased[0][0]) if erased else 0, copies)

    # -- tombstones ----------------------------------------------------------------------------
    def add_tombstones(
        self, device_id: str, tombstones: Iterable[Tombstone], *, now: int | None = None
    ) -> list[Tombstone]:
        """Record erasures (the later time wins) and delete every older copy; return the acks.

        An erasure that is news gets the next place in the feed. Tombstone writers take turns
        (``_serialize_erasures``): a reader of the feed never sees place n+1 before place n.
        """
        stamp = now_ms() if now is None else now
        latest: dict[str, int] = {}
        for tombstone in tombstones:
            if tombstone.erased_ms > stamp + MAX_AHEAD_MS:
                raise InvalidInput("an erasure time is more than a day past the collector's clock")
            latest[tombstone.blinded_id] = max(
                latest.get(tombstone.blinded_id, 0), tombstone.erased_ms
            )
        with self._tx() as cur:
            self._serialize_erasures(cur)
            seq = int(self._rows(cur, "SELECT coalesce(max(seq), 0) FROM fleet_members")[0][0])
            for blinded_id, erased_ms in sorted(latest.items()):
                if erased_ms <= self._lock_member(cur, blinded_id):
                    continue  # already known (a retry, or an older erasure arriving late)
                seq += 1
                cur.execute(
                    self._sql(
                        "UPDATE fleet_members SET erased_ms = ?, seq = ?, erased_by = ?, "
                        "received_ms = ? WHERE blinded_id = ?"
                    ),
                    [erased_ms, seq, device_id, stamp, blinded_id],
                )
                cur.execute(
                    self._sql("DELETE FROM member_copies WHERE blinded_id = ? AND epoch < ?"),
                    [blinded_id, erased_ms],
                )
                cur.execute(  # the member's uses counted centrally go with them
                    self._sql("DELETE FROM member_uses WHERE blinded_id = ? AND ts_ms < ?"),
                    [blinded_id, erased_ms],
                )
        return [Tombstone(b, ms) for b, ms in sorted(latest.items())]

    def tombstones_since(
        self, device_id: str, since: int, limit: int = MAX_TOMBSTONES, *, now: int | None = None
    ) -> TombstonePage:
        """The feed after ``since``; remembers that ``device_id`` holds everything up to it."""
        limit = max(1, min(limit, MAX_TOMBSTONES))
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT blinded_id, erased_ms, seq FROM fleet_members WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                [since, limit + 1],
            )
            cur.execute(
                self._sql(
                    "INSERT INTO device_erasure_cursors (device_id, seq, seen_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, "
                    "seen_ms = excluded.seen_ms"
                ),
                [device_id, since, now_ms() if now is None else now],
            )
        page = [(Tombstone(r[0], int(r[1])), int(r[2])) for r in rows[:limit]]
        return TombstonePage(page, page[-1][1] if page else since, len(rows) > limit)

    def erasure_backlog(self) -> ErasureBacklog:
        """How many erasures each registered device has yet to pull (0: it holds them all)."""
        with self._tx() as cur:
            total = self._rows(cur, "SELECT count(*) FROM fleet_members WHERE seq IS NOT NULL")
            rows = self._rows(
                cur,
                "SELECT d.device_id, coalesce(c.seq, 0), coalesce(c.seen_ms, 0), "
                "(SELECT count(*) FROM fleet_members m WHERE m.seq > coalesce(c.seq, 0)) "
                "FROM devices d LEFT JOIN device_erasure_cursors c ON c.device_id = d.device_id "
                "ORDER BY d.device_id",
            )
        return ErasureBacklog(
            int(total[0][0]), [(r[0], int(r[3]), int(r[1]), int(r[2])) for r in rows]
        )

    def member_stats(self) -> dict[str, int]:
        """Members, copies, sealed bytes and tombstones held (no member is named)."""
        with self._tx() as cur:
            copies = self._rows(cur, "SELECT count(*), coalesce(sum(size), 0) FROM member_copies")
            members = self._rows(cur, "SELECT count(DISTINCT blinded_id) FROM member_copies")
            tombstones = self._rows(cur, "SELECT count(*) FROM fleet_members WHERE seq > 0")
        return {
            "members_with_copies": int(members[0][0]),
            "copies": int(copies[0][0]),
            "sealed_bytes": int(copies[0][1]),
            "tombstones": int(tombstones[0][0]),
        }


__all__ = ["MAX_AHEAD_MS", "MEMBER_SCHEMA", "MemberStore"]
