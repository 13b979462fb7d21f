"""The durable sync outbox: summaries written with their events marked, deleted on ack.

``summarise`` turns unsummarised events into one release per batch: in ONE store
transaction it reads the batch, aggregates it (``shelfwise.sync.privacy``), inserts the
outbox row, records the release in the ledger and marks the events summarised. A crash at
any point leaves either all of that or none of it.

Who counts (decided at summarising time):

- loyalty members WITH the ``sync`` consent: counted, and in the per-segment counts;
- members WITHOUT it: left out entirely (their events are marked summarised, not counted);
- anonymous sessions (live, or ended and unlinked): counted in the aggregate cells only.

A withdrawn ``sync`` consent or an erased member marks every unsent release they were in
as dirty (SQLite triggers, same transaction); ``rebuild_dirty`` re-aggregates those
releases without them under the SAME idempotency key and a higher ``rev``, so the
collector replaces the old version even if it had already received it.

Closing a day (``_close_day``, once a UTC day has ended and all its hours are summarised):
events whose hourly cell was suppressed were marked ``carried``; they are counted again per
day with distinct contributors across the day (``aggregate_day``) in a day release, in one
transaction with the day marked closed. Session tokens live until the day closes.

The ledger (``sync_ledger`` per release, ``sync_released`` per cell) records exactly what
the device released, noise included: once everything is acknowledged, upstream holds
exactly the ``sync_released`` totals for this device.

Example:
    >>> import shelfwise
    >>> from shelfwise.sync.outbox import summarise, outbox_status
    >>> with shelfwise.open(":memory:", store_id="s1") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
    ...     _ = sw.start_session().view("tea")
    ...     releases = summarise(sw.store, device_id="kiosk-1", k=1, include_open_hour=True)
    ...     [r.cells for r in releases], outbox_status(sw.store).queued
    ([1], 1)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import sqlite_utils

from ..clock import DAY_MS, HOUR_MS, now_ms
from ..identity import get_shopper, segment_of
from ..store.connection import Store
from .privacy import Cell, PrivacyPolicy, Release, aggregate, aggregate_day
from .protocol import Envelope

logger = logging.getLogger(__name__)

DEFAULT_BATCH_EVENTS = 50_000

_SELECT = """
SELECT e.seq, e.shopper_id, e.contributor, e.type, e.item_id, e.quantity, e.store_id,
       e.ts_ms, e.payload, e.carried, s.kind AS kind, COALESCE(c.granted, 0) AS sync_ok
FROM events e
LEFT JOIN shoppers s ON s.shopper_id = e.shopper_id
LEFT JOIN consents c ON c.shopper_id = e.shopper_id AND c.purpose = 'sync'
"""


@dataclass(frozen=True)
class ReleaseInfo:
    """One release written to the outbox (or fully suppressed, then ``outbox_id`` is None)."""

    key: str
    outbox_id: int | None
    rev: int
    events: int
    withheld: int
    cells: int
    suppressed: int
    size: int
    epsilon: float | None
    granularity: str = "hour"  # or "day": a closed day's carried-over cells


@dataclass(frozen=True)
class OutboxStatus:
    """What is waiting to go upstream and how the last attempts went."""

    queued: int
    queued_bytes: int
    quarantined: int
    dirty: int
    unsummarised_events: int
    last_success_ms: int | None
    last_attempt_ms: int | None
    last_error: str | None
    next_attempt_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _classify(db: sqlite_utils.Database, store: Store, rows: list[dict[str, Any]]) -> None:
    """Mark each row counted or withheld and attach members' segments (see module doc)."""
    segments: dict[str, str] = {}
    for row in rows:
        shopper, kind = row["shopper_id"], row["kind"]
        if shopper is None or kind == "anonymous":
            row["counted"], row["segment"] = True, None
        elif kind == "member" and row["sync_ok"]:
            if shopper not in segments:
                segments[shopper] = segment_of(store, get_shopper(store, shopper))
            row["counted"], row["segment"] = True, segments[shopper]
        else:  # a member without sync consent, or a row whose shopper is gone
            row["counted"], row["segment"] = False, None


def _envelope(
    device_id: str,
    outbox_id: int,
    key: str,
    rev: int,
    release: Release,
    policy: PrivacyPolicy,
    model: Mapping[str, Any],
    stamp: int,
) -> Envelope:
    privacy = {**policy.to_dict(), "epsilon": release.epsilon, "suppressed": release.suppressed}
    return Envelope(device_id, outbox_id, key, rev, stamp, release.cells, dict(model), privacy)


def _add_released(db: sqlite_utils.Database, cells: Iterable[Cell], sign: int) -> None:
    db.conn.executemany(
        "INSERT INTO sync_released (metric, store_id, hour_ms, a, b, n, q) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(metric, store_id, hour_ms, a, b) "
        "DO UPDATE SET n = n + excluded.n, q = q + excluded.q",
        [[*cell[:5], sign * cell[5], sign * cell[6]] for cell in cells],
    )


def _next_batch(db: sqlite_utils.Database, until_ms: int, max_events: int) -> tuple[str, list[Any]]:
    """The WHERE clause of the next batch: whole hours where possible, oldest events first."""
    boundary = list(
        db.query(
            "SELECT seq, ts_ms FROM events WHERE summarised = 0 AND ts_ms < ? "
            "ORDER BY seq LIMIT 1 OFFSET ?",
            [until_ms, max_events - 1],
        )
    )
    if not boundary:
        return "e.summarised = 0 AND e.ts_ms < ?", [until_ms]
    # Complete the boundary event's hour so its cells are not split across two releases.
    hour_end = boundary[0]["ts_ms"] // HOUR_MS * HOUR_MS + HOUR_MS
    return (
        "e.summarised = 0 AND e.ts_ms < ? AND (e.seq <= ? OR e.ts_ms < ?)",
        [until_ms, boundary[0]["seq"], min(hour_end, until_ms)],
    )


def summarise(
    store: Store,
    *,
    device_id: str,
    policy: PrivacyPolicy | None = None,
    k: int | None = None,
    model: Mapping[str, Any] | None = None,
    max_events: int = DEFAULT_BATCH_EVENTS,
    include_open_hour: bool = False,
    now: int | None = None,
    max_releases: int | None = None,
) -> list[ReleaseInfo]:
    """Summarise every unsummarised event into outbox releases; return what was released.

    Only closed hours are summarised unless ``include_open_hour`` (so each hour's cells are
    complete before the k-anonymity threshold is applied). ``k`` overrides ``policy.k`` and
    ``policy.k_pairs``. Each batch is one transaction; a crash loses nothing and counts
    nothing twice.

    Example: see the module docstring.
    """
    policy = (policy or PrivacyPolicy()).with_k(k)
    stamp = now_ms() if now is None else now
    until = stamp + 1 if include_open_hour else stamp // HOUR_MS * HOUR_MS
    # A day closes once its last hour is summarised; "everything now" closes today too.
    close_until = (stamp // DAY_MS + 1) * DAY_MS if include_open_hour else until
    out: list[ReleaseInfo] = []
    while max_releases is None or len(out) < max_releases:
        info = _summarise_batch(store, device_id, policy, model or {}, until, max_events, stamp)
        if info is None:
            closed = _close_day(
                store, device_id, policy, model or {}, close_until, stamp, max_events
            )
            if closed is None:
                break
            if closed is not _NOTHING:
                out.append(closed)
            continue
        out.append(info)
    return out


def _summarise_batch(
    store: Store,
    device_id: str,
    policy: PrivacyPolicy,
    model: Mapping[str, Any],
    until: int,
    max_events: int,
    stamp: int,
) -> ReleaseInfo | None:
    with store.write() as db:
        where, params = _next_batch(db, until, max_events)
        rows = [dict(r) for r in db.query(f"{_SELECT} WHERE {where} ORDER BY e.seq", params)]
        if not rows:
            return None
        _classify(db, store, rows)
        release = aggregate(rows, policy)
        info = _write_release(db, device_id, policy, model, release, stamp, "hour")
        # The contributor token stays until the event's day closes (see _close_day).
        db.execute(
            f"UPDATE events AS e SET summarised = 1, summary_id = ? WHERE {where}",
            [info.outbox_id, *params],
        )
        withheld = [[r["seq"]] for r in rows if not r["counted"]]
        if withheld and info.outbox_id is not None:
            db.conn.executemany("UPDATE events SET summary_id = NULL WHERE seq = ?", withheld)
        db.conn.executemany(
            "UPDATE events SET carried = 1 WHERE seq = ?", [[seq] for seq in release.carried]
        )
    logger.info(
        "summarised %d events into %d cells (%d suppressed, %d withheld)",
        release.events,
        len(release.cells),
        release.suppressed,
        release.withheld,
    )
    return info


class _Nothing(ReleaseInfo):
    pass


# A day closed without anything to release or suppress (returned as a marker, not listed).
_NOTHING = _Nothing("", None, 0, 0, 0, 0, 0, 0, None, "day")


def _close_day(
    store: Store,
    device_id: str,
    policy: PrivacyPolicy,
    model: Mapping[str, Any],
    close_until: int,
    stamp: int,
    max_events: int = DEFAULT_BATCH_EVENTS,
) -> ReleaseInfo | None:
    """Close the open UTC days that ended before ``close_until``, oldest first, in ONE
    transaction and ONE release (up to ``max_events`` events; at least one day).

    Releases the days' distinct counts and carried-over cells (``aggregate_day``, keyed by
    day), marks every event of those days closed (``day_summary_id``: the release, or 0)
    and clears session tokens. Events arriving for a day already closed are marked closed
    at once: they count in their hourly cells only, so nothing is counted twice. Returns
    None when no day can close.
    """
    with store.write() as db:
        candidates = [
            int(r["day"])
            for r in db.query(
                "SELECT DISTINCT ts_ms / ? * ? AS day FROM events "
                "WHERE day_summary_id IS NULL AND ts_ms < ? ORDER BY day LIMIT 366",
                [DAY_MS, DAY_MS, close_until],
            )
        ]
        days: list[int] = []
        rows: list[dict[str, Any]] = []
        late = False
        for day in candidates:
            span = [day, day + DAY_MS]
            if day + DAY_MS > close_until or list(
                db.query(
                    "SELECT 1 FROM events WHERE summarised = 0 AND ts_ms >= ? AND ts_ms < ? "
                    "LIMIT 1",
                    span,
                )
            ):
                break  # still open, or hours waiting (clock skew): later days wait too
            if list(db.query("SELECT 1 FROM sync_days WHERE day_ms = ?", [day])):
                db.execute(
                    "UPDATE events SET day_summary_id = 0, contributor = NULL "
                    "WHERE day_summary_id IS NULL AND ts_ms >= ? AND ts_ms < ?",
                    span,
                )
                late = True
                continue
            more = [
                dict(r)
                for r in db.query(
                    f"{_SELECT} WHERE e.day_summary_id IS NULL AND e.ts_ms >= ? "
                    "AND e.ts_ms < ? ORDER BY e.seq",
                    span,
                )
            ]
            if days and len(rows) + len(more) > max_events:
                break
            days.append(day)
            rows += more
        if not days:
            return _NOTHING if late else None
        _classify(db, store, rows)
        release = aggregate_day(rows, policy)
        info: ReleaseInfo = _NOTHING
        if release.cells or release.suppressed:
            info = _write_release(db, device_id, policy, model, release, stamp, "day")
        db.execute(
            "UPDATE events SET day_summary_id = 0, contributor = NULL "
            "WHERE day_summary_id IS NULL AND ts_ms >= ? AND ts_ms < ?",
            [days[0], days[-1] + DAY_MS],
        )
        if info.outbox_id is not None:
            db.conn.executemany(
                "UPDATE events SET day_summary_id = ? WHERE seq = ?",
                [[info.outbox_id, r["seq"]] for r in rows if r["counted"]],
            )
        db.conn.executemany(
            "INSERT INTO sync_days (day_ms, closed_ms, outbox_id) VALUES (?, ?, ?)",
            [[day, stamp, info.outbox_id] for day in days],
        )
    if info is _NOTHING:
        return info
    logger.info("closed %d days: %d cells (%d suppressed)", len(days), info.cells, info.suppressed)
    return info


def _write_release(
    db: sqlite_utils.Database,
    device_id: str,
    policy: PrivacyPolicy,
    model: Mapping[str, Any],
    release: Release,
    stamp: int,
    granularity: str,
) -> ReleaseInfo:
    """Queue a release (if it has cells) with its ledger row and running totals."""
    key = f"{device_id}:{uuid.uuid4().hex}"
    outbox_id: int | None = None
    body = b""
    if release.cells:
        outbox_id = int(
            db.execute(
                "INSERT INTO sync_outbox (idempotency_key, rev, created_ms, body, size, cells, "
                "epsilon, granularity) VALUES (?, 1, ?, x'', 0, ?, ?, ?)",
                [key, stamp, len(release.cells), release.epsilon, granularity],
            ).lastrowid
            or 0
        )
        body = _envelope(device_id, outbox_id, key, 1, release, policy, model, stamp).pack()
        db.execute(
            "UPDATE sync_outbox SET body = ?, size = ? WHERE id = ?", [body, len(body), outbox_id]
        )
        _add_released(db, release.cells, +1)
    db.table("sync_ledger").insert(
        {
            "idempotency_key": key,
            "outbox_id": outbox_id or 0,
            "rev": 1,
            "created_ms": stamp,
            "cells": len(release.cells),
            "suppressed": release.suppressed,
            "events": release.events,
            "withheld": release.withheld,
            "epsilon": release.epsilon,
            # a fully suppressed release has nothing to send: settled at once
            "acked_ms": None if outbox_id else stamp,
            "granularity": granularity,
        }
    )
    return ReleaseInfo(
        key=key,
        outbox_id=outbox_id,
        rev=1,
        events=release.events,
        withheld=release.withheld,
        cells=len(release.cells),
        suppressed=release.suppressed,
        size=len(body),
        epsilon=release.epsilon,
        granularity=granularity,
    )


def rebuild_dirty(
    store: Store, *, policy: PrivacyPolicy | None = None, k: int | None = None
) -> int:
    """Re-aggregate every unsent release a withdrawn or erased member was in; return how many.

    The policy (k, noise) is the one each release was built with unless given.
    """
    rebuilt = 0
    for row in store.query("SELECT outbox_id FROM sync_dirty ORDER BY outbox_id"):
        _rebuild(store, int(row["outbox_id"]), policy, k)
        rebuilt += 1
    return rebuilt


def _rebuild(store: Store, outbox_id: int, policy: PrivacyPolicy | None, k: int | None) -> None:
    with store.write() as db:
        db.execute("DELETE FROM sync_dirty WHERE outbox_id = ?", [outbox_id])
        found = list(db.query("SELECT * FROM sync_outbox WHERE id = ?", [outbox_id]))
        if not found:
            return  # already acknowledged: nothing queued to purge
        old = found[0]
        previous = msgpack.unpackb(old["body"], raw=False)
        policy = (policy or PrivacyPolicy.from_dict(previous.get("privacy", {}))).with_k(k)
        day = old["granularity"] == "day"
        where = "e.day_summary_id = ? AND e.day_summary_id > 0" if day else "e.summary_id = ?"
        rows = [dict(r) for r in db.query(f"{_SELECT} WHERE {where} ORDER BY e.seq", [outbox_id])]
        _classify(db, store, rows)
        release = aggregate_day(rows, policy) if day else aggregate(rows, policy)
        rev = int(old["rev"]) + 1
        key = old["idempotency_key"]
        body = _envelope(
            previous["device"],
            outbox_id,
            key,
            rev,
            release,
            policy,
            previous.get("model", {}),
            int(old["created_ms"]),
        ).pack()
        db.execute(
            "UPDATE sync_outbox SET rev = ?, body = ?, size = ?, cells = ?, epsilon = ?, "
            "quarantined = 0, next_attempt_ms = 0 WHERE id = ?",
            [rev, body, len(body), len(release.cells), release.epsilon, outbox_id],
        )
        _add_released(db, previous["cells"], -1)
        _add_released(db, release.cells, +1)
        withheld = [[r["seq"]] for r in rows if not r["counted"]]
        if day:
            db.conn.executemany("UPDATE events SET day_summary_id = 0 WHERE seq = ?", withheld)
        else:
            db.conn.executemany("UPDATE events SET summary_id = NULL WHERE seq = ?", withheld)
            # A smaller cell may now fall below k: its events wait for their day instead.
            db.conn.executemany(
                "UPDATE events SET carried = ? WHERE seq = ?",
                [[int(r["seq"] in release.carried), r["seq"]] for r in rows],
            )
        db.execute(
            "UPDATE sync_ledger SET rev = ?, cells = ?, suppressed = ?, events = ?, "
            "withheld = withheld + ?, epsilon = ? WHERE idempotency_key = ?",
            [
                rev,
                len(release.cells),
                release.suppressed,
                release.events,
                release.withheld,
                release.epsilon,
                key,
            ],
        )
    logger.info("rebuilt a queued release without withdrawn members (rev %d)", rev)


@dataclass(frozen=True)
class QueuedRelease:
    """An outbox row ready to send."""

    outbox_id: int
    key: str
    rev: int
    body: bytes


def due(store: Store, *, now: int | None = None, limit: int = 1000) -> list[QueuedRelease]:
    """Unquarantined outbox rows due for sending, oldest first."""
    stamp = now_ms() if now is None else now
    return [
        QueuedRelease(r["id"], r["idempotency_key"], r["rev"], r["body"])
        for r in store.query(
            "SELECT id, idempotency_key, rev, body FROM sync_outbox "
            "WHERE quarantined = 0 AND next_attempt_ms <= ? ORDER BY id LIMIT ?",
            [stamp, limit],
        )
    ]


def make_due(store: Store, outbox_ids: Sequence[int]) -> None:
    """Make rows due now (the uploader slept their backoff itself, whatever the clock says)."""
    with store.write() as db:
        db.conn.executemany(
            "UPDATE sync_outbox SET next_attempt_ms = 0 WHERE id = ?", [[i] for i in outbox_ids]
        )


def queued_count(store: Store) -> int:
    """Releases waiting to be sent (quarantined ones excluded)."""
    rows = store.query("SELECT count(*) AS n FROM sync_outbox WHERE quarantined = 0")
    return int(rows[0]["n"])


def acknowledge(store: Store, acks: Sequence[tuple[str, int]], *, now: int | None = None) -> int:
    """Delete acknowledged releases (same key AND rev) in one transaction; return how many."""
    stamp = now_ms() if now is None else now
    removed = 0
    with store.write() as db:
        for key, rev in acks:
            gone = db.execute(
                "DELETE FROM sync_outbox WHERE idempotency_key = ? AND rev = ?", [key, rev]
            ).rowcount
            if gone:
                removed += gone
                db.execute(
                    "UPDATE sync_ledger SET acked_ms = ? WHERE idempotency_key = ?", [stamp, key]
                )
        store.set_meta("sync.last_success_ms", str(stamp))
    return removed


def quarantine(store: Store, outbox_ids: Sequence[int], reason: str) -> None:
    """Set rows aside that upstream will never accept (kept for an operator to inspect)."""
    with store.write() as db:
        for outbox_id in outbox_ids:
            db.execute(
                "UPDATE sync_outbox SET quarantined = 1, last_error = ? WHERE id = ?",
                [reason[:500], outbox_id],
            )
            db.execute("UPDATE sync_ledger SET quarantined = 1 WHERE outbox_id = ?", [outbox_id])


def record_failure(
    store: Store, outbox_ids: Sequence[int], error: str, *, next_attempt_ms: int, now: int
) -> None:
    """Count a failed attempt and when to try again (survives restarts)."""
    with store.write() as db:
        db.conn.executemany(
            "UPDATE sync_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? "
            "WHERE id = ?",
            [[error[:500], next_attempt_ms, i] for i in outbox_ids],
        )
        store.set_meta("sync.last_error", error[:500])
        store.set_meta("sync.last_error_ms", str(now))


def record_attempt(store: Store, now: int) -> None:
    store.set_meta("sync.last_attempt_ms", str(now))


def clear_error(store: Store) -> None:
    with store.write() as db:
        db.execute("DELETE FROM meta WHERE key IN ('sync.last_error', 'sync.last_error_ms')")


def outbox_status(store: Store) -> OutboxStatus:
    """Queued releases and bytes, quarantined rows, last success and last error.

    Reads only the local store, so it works with upstream unreachable.
    """
    row = store.query(
        "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes, "
        "coalesce(sum(quarantined), 0) AS q, min(CASE WHEN quarantined = 0 "
        "THEN next_attempt_ms END) AS next FROM sync_outbox"
    )[0]
    meta = {
        r["key"]: r["value"]
        for r in store.query("SELECT key, value FROM meta WHERE key LIKE 'sync.%'")
    }

    def _ms(name: str) -> int | None:
        return int(meta[name]) if name in meta else None

    return OutboxStatus(
        queued=int(row["n"]) - int(row["q"]),
        queued_bytes=int(row["bytes"]),
        quarantined=int(row["q"]),
        dirty=int(store.query("SELECT count(*) AS n FROM sync_dirty")[0]["n"]),
        unsummarised_events=int(
            store.query("SELECT count(*) AS n FROM events WHERE summarised = 0")[0]["n"]
        ),
        last_success_ms=_ms("sync.last_success_ms"),
        last_attempt_ms=_ms("sync.last_attempt_ms"),
        last_error=meta.get("sync.last_error"),
        next_attempt_ms=int(row["next"]) if row["next"] else None,
    )


def released_totals(store: Store) -> dict[tuple[str, str, int, str, str], tuple[int, int]]:
    """Every cell this device released, summed over releases (what upstream should hold)."""
    return {
        (r["metric"], r["store_id"], r["hour_ms"], r["a"], r["b"]): (r["n"], r["q"])
        for r in store.query("SELECT * FROM sync_released WHERE n != 0 OR q != 0")
    }


__all__ = [
    "OutboxStatus",
    "QueuedRelease",
    "ReleaseInfo",
    "acknowledge",
    "due",
    "make_due",
    "outbox_status",
    "queued_count",
    "rebuild_dirty",
    "released_totals",
    "summarise",
]
