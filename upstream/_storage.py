"""The collector's storage: SQLite (embedded default) or PostgreSQL, behind one interface.

Aggregation is idempotent and order-independent: every release is stored under its
idempotency key with its revision; a key seen again with the same or a lower revision
changes nothing, a higher revision replaces the old cells (subtracted from the totals, the
new ones added) in the same transaction. The totals are therefore always the sum of the
latest revision of every release, whatever order, however many times they arrived.

Example:
    >>> storage = SqliteStorage(":memory:")
    >>> secret = storage.add_device("kiosk-1", region="north")
    >>> storage.device("kiosk-1").region
    'north'
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from shelfwise import InvalidInput, KeyConflict, VersionConflict
from shelfwise.sync.leasing import LedgerEntry, WireAsk, WireGrant
from shelfwise.sync.protocol import (
    CopyOutcome,
    DocumentManifest,
    Envelope,
    ErasureBacklog,
    MemberCopies,
    SealedCopy,
    Tombstone,
    TombstonePage,
    document_manifest,
    rest_metric,
)

from ._codes import CODES_SCHEMA, CentralCodes
from ._devices import Device, DeviceRegistry, Quarantined
from ._keys import ServerKeys
from ._leases import LEASE_SCHEMA, OfferLedger, OverRedemption, ShareStatus
from ._members import MEMBER_SCHEMA, MemberStore

CellKey = tuple[str, str, int, str, str]

# How much each kind of event says about an item trending in a region; a day's carried-over
# events (cells suppressed hourly, released per day) weigh the same as hourly ones.
_EVENT_WEIGHTS = {"purchase": 3.0, "cart_add": 2.0, "scan": 1.0, "view": 0.5}
TRENDING_WEIGHTS = {
    **_EVENT_WEIGHTS,
    **{rest_metric(metric): weight for metric, weight in _EVENT_WEIGHTS.items()},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT,
    model_version TEXT,
    model_healthy INTEGER
);
CREATE TABLE IF NOT EXISTS releases (
    key TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    region TEXT NOT NULL,
    seq BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    cells BIGINT NOT NULL,
    epsilon DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS releases_device ON releases(device_id);
CREATE TABLE IF NOT EXISTS release_cells (
    key TEXT NOT NULL,
    metric TEXT NOT NULL,
    store_id TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    n BIGINT NOT NULL,
    q BIGINT NOT NULL,
    PRIMARY KEY (key, metric, store_id, bucket_ms, a, b)
);
CREATE TABLE IF NOT EXISTS totals (
    region TEXT NOT NULL,
    metric TEXT NOT NULL,
    store_id TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    n BIGINT NOT NULL,
    q BIGINT NOT NULL,
    PRIMARY KEY (region, metric, store_id, bucket_ms, a, b)
);
CREATE INDEX IF NOT EXISTS totals_trending ON totals(region, metric, bucket_ms);
CREATE TABLE IF NOT EXISTS device_stores (
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    store_id TEXT NOT NULL,
    PRIMARY KEY (device_id, store_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    device_id TEXT NOT NULL,
    key TEXT NOT NULL,
    rev BIGINT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    body TEXT,
    PRIMARY KEY (device_id, key, rev)
);
CREATE TABLE IF NOT EXISTS refusals (
    device_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    n BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, reason)
);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    issued_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    published_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);
"""

_ADD_TOTALS = (
    "INSERT INTO totals (region, metric, store_id, bucket_ms, a, b, n, q) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (region, metric, store_id, bucket_ms, a, b) "
    "DO UPDATE SET n = totals.n + excluded.n, q = totals.q + excluded.q"
)
_ADD_CELLS = (
    "INSERT INTO release_cells (key, metric, store_id, bucket_ms, a, b, n, q) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class Storage(Protocol):
    """What the collector needs from a database."""

    def add_device(
        self, device_id: str, *, region: str = "", stores: Iterable[str] = ()
    ) -> bytes: ...
    def set_stores(self, device_id: str, stores: Iterable[str]) -> None: ...
    def device(self, device_id: str) -> Device | None: ...
    def devices(self) -> list[Device]: ...
    def rotate_key(self) -> int: ...
    def quarantine(
        self, device_id: str, envelope: Envelope, raw: bytes, reason: str, detail: str
    ) -> bool: ...
    def quarantined(self, device_id: str | None = None, limit: int = 100) -> list[Quarantined]: ...
    def count_refusal(self, device_id: str, reason: str) -> None: ...
    def refusals(self, device_id: str | None = None) -> dict[str, dict[str, int]]: ...
    def apply(self, device_id: str, envelopes: Sequence[Envelope]) -> list[tuple[str, int]]: ...
    def totals(self, device_id: str | None = None) -> dict[CellKey, tuple[int, int]]: ...
    def trending(self, region: str, since_ms: int, limit: int) -> list[tuple[str, float]]: ...
    def stats(self) -> dict[str, int]: ...
    def publish(self, raw: bytes) -> DocumentManifest: ...
    def document(self, kind: str) -> bytes | None: ...
    def latest_version(self, kind: str) -> int: ...
    def store_copies(
        self, device_id: str, copies: Sequence[SealedCopy], *, now: int | None = None
    ) -> list[CopyOutcome]: ...
    def member_copies(self, blinded_id: str) -> MemberCopies: ...
    def add_tombstones(
        self, device_id: str, tombstones: Iterable[Tombstone], *, now: int | None = None
    ) -> list[Tombstone]: ...
    def tombstones_since(
        self, device_id: str, since: int, limit: int = ..., *, now: int | None = None
    ) -> TombstonePage: ...
    def erasure_backlog(self) -> ErasureBacklog: ...
    def member_stats(self) -> dict[str, int]: ...
    def grant_leases(
        self, device_id: str, asks: Sequence[WireAsk], *, now: int | None = None
    ) -> list[WireGrant]: ...
    def shares(self) -> list[ShareStatus]: ...
    def record_ledger(
        self, device_id: str, entries: Sequence[LedgerEntry], *, now: int | None = None
    ) -> int: ...
    def reconcile(self) -> list[OverRedemption]: ...
    def settle_shares(self, device_id: str) -> list[str]: ...
    def issue_codes(
        self, offer_id: str, count: int, *, progress: Any = None, now: int | None = None
    ) -> list[str]: ...
    def claim_code(
        self, device_id: str, code: str, claim_id: str, *, now: int | None = None
    ) -> tuple[str, str | None]: ...
    def release_code(self, device_id: str, code: str, claim_id: str) -> bool: ...
    def peek_code(self, code: str) -> tuple[str, str | None]: ...
    def code_stats(self) -> dict[str, dict[str, int]]: ...
    def claim_use(
        self,
        device_id: str,
        blinded_id: str,
        offer_id: str,
        limit: int,
        use_id: str,
        *,
        now: int | None = None,
    ) -> tuple[str, int]: ...
    def release_use(self, device_id: str, blinded_id: str, use_id: str) -> bool: ...
    def close(self) -> None: ...


class _SqlStorage(DeviceRegistry, MemberStore, OfferLedger, CentralCodes):
    """The shared logic; subclasses provide a connection, placeholders and row locking."""

    lock_suffix = ""

    def __init__(self, keys: ServerKeys) -> None:
        self._lock = threading.Lock()
        self.keys = keys

    # -- driver hooks ---------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur.execute(self._sql(sql), list(params))
        return list(cur.fetchall())

    def _lock_rows(self) -> str:
        return self.lock_suffix

    def _create(self, cur: Any) -> None:
        for statement in (SCHEMA + MEMBER_SCHEMA + LEASE_SCHEMA + CODES_SCHEMA).split(";"):
            if statement.strip():
                cur.execute(statement)

    # -- ingest ---------------------------------------------------------------------------
    def apply(self, device_id: str, envelopes: Sequence[Envelope]) -> list[tuple[str, int]]:
        """Upsert every release by idempotency key, all in one transaction; return the acks."""
        stamp = int(time.time() * 1000)
        acks: list[tuple[str, int]] = []
        with self._tx() as cur:
            region_rows = self._rows(
                cur, "SELECT region FROM devices WHERE device_id = ?", [device_id]
            )
            region = region_rows[0][0] if region_rows else ""
            for env in sorted(envelopes, key=lambda e: e.key):  # one lock order: no deadlocks
                self._apply_one(cur, device_id, region, env, stamp)
                acks.append((env.key, env.rev))
            if envelopes:
                last = envelopes[-1]
                cur.execute(
                    self._sql(
                        "UPDATE devices SET last_seen_ms = ?, model_version = ?, model_healthy = ? "
                        "WHERE device_id = ?"
                    ),
                    [
                        stamp,
                        str(last.model.get("version") or "")[:200] or None,
                        int(bool(last.model.get("healthy"))),
                        device_id,
                    ],
                )
        return acks

    def _apply_one(self, cur: Any, device_id: str, region: str, env: Envelope, stamp: int) -> None:
        cur.execute(
            self._sql(
                "INSERT INTO releases (key, device_id, region, seq, rev, created_ms, received_ms, "
                "cells, epsilon) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
            ),
            [
                env.key,
                device_id,
                region,
                env.seq,
                env.rev,
                env.created_ms,
                stamp,
                len(env.cells),
                _float(env.privacy.get("epsilon")),
            ],
        )
        cells = sorted(env.cells, key=lambda c: c[:5])
        if cur.rowcount == 1:
            self._add(cur, env.key, region, cells, +1, store_cells=True)
            return
        owner, rev, old_region = self._rows(
            cur,
            "SELECT device_id, rev, region FROM releases WHERE key = ?" + self.lock_suffix,
            [env.key],
        )[0]
        if owner != device_id:
            raise KeyConflict(f"idempotency key {env.key!r} belongs to another device")
        if env.rev <= rev:
            return  # a duplicate or an older revision: already counted
        old = [
            list(r)
            for r in self._rows(
                cur,
                "SELECT metric, store_id, bucket_ms, a, b, n, q FROM release_cells WHERE key = ? "
                "ORDER BY metric, store_id, bucket_ms, a, b",
                [env.key],
            )
        ]
        self._add(cur, env.key, old_region, old, -1, store_cells=False)
        cur.execute(self._sql("DELETE FROM release_cells WHERE key = ?"), [env.key])
        self._add(cur, env.key, old_region, cells, +1, store_cells=True)
        cur.execute(
            self._sql("UPDATE releases SET rev = ?, cells = ?, received_ms = ? WHERE key = ?"),
            [env.rev, len(cells), stamp, env.key],
        )

    def _add(
        self,
        cur: Any,
        key: str,
        region: str,
        cells: list[list[Any]],
        sign: int,
        *,
        store_cells: bool,
    ) -> None:
        if not cells:
            return
        if store_cells:
            cur.executemany(self._sql(_ADD_CELLS), [[key, *c] for c in cells])
        cur.executemany(
            self._sql(_ADD_TOTALS), [[region, *c[:5], sign * c[5], sign * c[6]] for c in cells]
        )

    # -- reading --------------------------------------------------------------------------
    def totals(self, device_id: str | None = None) -> dict[CellKey, tuple[int, int]]:
        """Cell totals for the whole fleet, or the cells one device contributed."""
        with self._tx() as cur:
            if device_id is None:
                rows = self._rows(
                    cur,
                    "SELECT metric, store_id, bucket_ms, a, b, sum(n), sum(q) FROM totals "
                    "GROUP BY metric, store_id, bucket_ms, a, b",
                )
            else:
                rows = self._rows(
                    cur,
                    "SELECT c.metric, c.store_id, c.bucket_ms, c.a, c.b, sum(c.n), sum(c.q) "
                    "FROM release_cells c JOIN releases r ON r.key = c.key WHERE r.device_id = ? "
                    "GROUP BY c.metric, c.store_id, c.bucket_ms, c.a, c.b",
                    [device_id],
                )
        return {
            (r[0], r[1], int(r[2]), r[3], r[4]): (int(r[5]), int(r[6]))
            for r in rows
            if int(r[5]) or int(r[6])
        }

    def trending(self, region: str, since_ms: int, limit: int = 50) -> list[tuple[str, float]]:
        """Items trending in a region: weighted event counts since ``since_ms``."""
        weight = " ".join(f"WHEN '{m}' THEN {w}" for m, w in TRENDING_WEIGHTS.items())
        marks = ", ".join("?" * len(TRENDING_WEIGHTS))
        with self._tx() as cur:
            rows = self._rows(
                cur,
                f"SELECT a, sum(n * CASE metric {weight} ELSE 0 END) AS score FROM totals "
                f"WHERE region = ? AND bucket_ms >= ? AND metric IN ({marks}) "
                "GROUP BY a ORDER BY score DESC, a LIMIT ?",
                [region, since_ms, *TRENDING_WEIGHTS, limit],
            )
        return [(r[0], float(r[1])) for r in rows if float(r[1]) > 0]

    # -- signed documents (catalog, offers) -----------------------------------------------
    def publish(self, raw: bytes) -> DocumentManifest:
        """Store a signed document for devices to pull; its version must be the highest.

        The collector never holds the signing key: the operator signs, devices verify.
        """
        manifest = document_manifest(raw)
        with self._tx() as cur:
            latest = self._rows(
                cur, "SELECT max(version) FROM documents WHERE kind = ?", [manifest.kind]
            )[0][0]
            if latest is not None and manifest.version <= int(latest):
                raise VersionConflict(
                    f"{manifest.kind} version {manifest.version} is not above the published "
                    f"version {latest}"
                )
            cur.execute(
                self._sql(
                    "INSERT INTO documents (kind, version, issued_ms, expires_ms, sha256, "
                    "published_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                [
                    manifest.kind,
                    manifest.version,
                    manifest.issued_ms,
                    manifest.expires_ms,
                    manifest.sha256,
                    int(time.time() * 1000),
                    base64.b64encode(raw).decode(),
                ],
            )
        return manifest

    def document(self, kind: str) -> bytes | None:
        """The latest published document of ``kind``, as signed, or None."""
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT body FROM documents WHERE kind = ? ORDER BY version DESC LIMIT 1",
                [kind],
            )
        return base64.b64decode(rows[0][0]) if rows else None

    def latest_version(self, kind: str) -> int:
        """The highest published version of ``kind`` (0 when none)."""
        with self._tx() as cur:
            value = self._rows(cur, "SELECT max(version) FROM documents WHERE kind = ?", [kind])
        return int(value[0][0] or 0)

    def close(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        with self._tx() as cur:
            out = {}
            for table in ("devices", "releases", "release_cells", "totals", "documents"):
                out[table] = int(self._rows(cur, f"SELECT count(*) FROM {table}")[0][0])
        return out


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class SqliteStorage(_SqlStorage):
    """SQLite through sqlite-utils: one connection, WAL, one writer at a time.

    Device secrets are sealed with the key file ``key_file`` (default: ``<path>.key``,
    created 0600 when missing; an in-memory key for ``:memory:``). A new database file is
    created 0600 too.
    """

    def __init__(self, path: str, *, key_file: str | Path | None = None) -> None:
        super().__init__(ServerKeys.ephemeral())
        if path != ":memory:" and not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(self._conn)
        self._conn.execute("PRAGMA busy_timeout = 10000")
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        with self._tx() as cur:
            self._create(cur)
        # The key file only once the database proved usable (no stray key on bad input).
        if path != ":memory:" or key_file is not None:
            self.keys = ServerKeys.open(key_file or f"{path}.key")
        self._seal_plaintext()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresStorage(_SqlStorage):
    """PostgreSQL through psycopg 3 (the ``upstream`` extra): the production backend.

    ``key_file`` (required) seals the device secrets, as for SQLite.
    """

    lock_suffix = " FOR UPDATE"

    def __init__(self, dsn: str, *, key_file: str | Path | None = None) -> None:
        if key_file is None:
            raise InvalidInput("a PostgreSQL collector needs a server key file (--server-key)")
        super().__init__(ServerKeys.open(key_file))
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "the PostgreSQL backend needs the 'upstream' extra: pip install 'shelfwise[upstream]'"
            ) from exc
        self._conn = psycopg.connect(dsn, autocommit=True)
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(84210001)")  # one schema creator at a time
            self._create(cur)
        self._seal_plaintext()

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _serialize_erasures(self, cur: Any) -> None:
        # Tombstone writers take turns across collector processes, so the feed's places
        # commit in order and no reader skips one (SQLite's writer lock already does this).
        cur.execute("SELECT pg_advisory_xact_lock(84210002)")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_storage(
    *, db: str | None = None, pg: str | None = None, key_file: str | Path | None = None
) -> Storage:
    """The storage named on the command line: ``--pg DSN`` wins over ``--db FILE``."""
    if pg:
        return PostgresStorage(pg, key_file=key_file)
    return SqliteStorage(db or "collector.db", key_file=key_file)


__all__ = [
    "Device",
    "Quarantined",
    "KeyConflict",
    "PostgresStorage",
    "SqliteStorage",
    "Storage",
    "VersionConflict",
    "open_storage",
]
