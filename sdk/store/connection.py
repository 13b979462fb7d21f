"""The SQLite history store: one file per device, WAL, numbered migrations, one writer.

The store is the single source of truth. Every multi-step change runs inside
``store.write()``, a ``BEGIN IMMEDIATE`` transaction on the one writer connection, so a
change is either all there or not there at all, across threads and processes.
Reads use a connection per thread, which in WAL mode never blocks the writer.

Example:
    >>> from shelfwise.store.connection import Store
    >>> with Store(":memory:") as store:
    ...     with store.write() as db:
    ...         _ = db.table("meta").upsert({"key": "hello", "value": "world"}, pk="key")
    ...     store.read()["meta"].get("hello")["value"]
    'world'
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from .._errors import InvalidInput, StoreBusy, StoreClosed, StoreError
from .migrations import MIGRATIONS

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_S = 10.0


def _connect(path: str, timeout_s: float, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout_s, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def translate(exc: sqlite3.Error) -> StoreError:
    """Turn a sqlite3 error into ours, keeping the original as ``__cause__`` at the raise site."""
    message = str(exc)
    if "locked" in message or "busy" in message:
        return StoreBusy(f"the store is busy (another writer holds it): {message}; retry")
    return StoreError(f"store operation failed: {message}")


class Store:
    """An open shelfwise store file.

    ``synchronous="FULL"`` (the default) makes every acknowledged write survive a power cut
    as well as a killed process; ``"NORMAL"`` survives a killed process only and is faster.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise InvalidInput(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = str(path)
        self._timeout = busy_timeout_s
        self._synchronous = synchronous
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._memory = self.path == ":memory:"
        try:
            self._writer = _connect(self.path, busy_timeout_s, synchronous)
            self.db = sqlite_utils.Database(self._writer)
            if not self._memory:
                self._writer.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _migrate(self) -> None:
        with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS.apply(self.db)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed; open it again with shelfwise.open(...)")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction: all of the block's changes commit together or not at all.

        Nested calls join the outer transaction (through a savepoint).

        Example:
            >>> with Store(":memory:") as store, store.write() as db:
            ...     _ = db.table("meta").insert({"key": "k", "value": "v"})
        """
        self._check_open()
        with self._lock:
            self._check_open()  # close() may have run while this thread waited for the lock
            if self._writer.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            try:
                yield self.db
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc) from exc
            except BaseException:
                self._rollback()
                raise
            try:
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(exc) from exc

    def _rollback(self) -> None:
        # Some errors (disk full, RAISE(ROLLBACK) in a trigger) already ended the transaction;
        # a second ROLLBACK would raise and hide the error that matters.
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    def reads_committed_only(self) -> bool:
        """Whether a read in this thread now sees committed changes only: not inside
        ``write()`` (reads there go to the writer and see the open transaction), and not a
        ``:memory:`` store (its one connection serves every thread, so another thread's open
        transaction shows). What is kept between reads must only be what this allows.

        Example:
            >>> with Store(":memory:") as memory:
            ...     memory.reads_committed_only()
            False
        """
        self._check_open()
        return not self._reads_through_writer()

    def _reads_through_writer(self) -> bool:
        """A ``:memory:`` store, or this thread is inside ``write()``: reads use the writer."""
        return self._memory or (self._writer.in_transaction and self._lock._is_owned())  # type: ignore[attr-defined]

    def read(self) -> sqlite_utils.Database:
        """A read-only view for this thread (its own connection; WAL readers never block).

        In a thread that is inside ``write()``, returns the writer so it sees its own changes.
        """
        self._check_open()
        if self._reads_through_writer():
            return self.db
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            try:
                conn = _connect(self.path, self._timeout, self._synchronous)
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            conn.execute("PRAGMA query_only = ON")
            # Not self._lock: a thread opening its reader must not wait for a write to finish.
            with self._readers_lock:
                self._readers.append(conn)
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Run a read query and return all rows as dicts.

        Example:
            >>> with Store(":memory:") as store:
            ...     store.query("SELECT 1 + 1 AS two")
            [{'two': 2}]
        """
        try:
            # Straight on the connection: sqlite-utils' query() wraps every read in a
            # savepoint (three statements for one), which the hot paths pay on every request.
            cursor = self.read().execute(sql, params)
            if cursor.description is None:
                return []
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            self._check_open()  # closed by another thread mid-query: say so, not "failed"
            raise translate(exc) from exc

    def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run a read query and return plain tuples (cheaper than dicts on hot paths).

        Example:
            >>> with Store(":memory:") as store:
            ...     store.rows("SELECT 1, 'a'")
            [(1, 'a')]
        """
        try:
            return list(self.read().execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            self._check_open()
            raise translate(exc) from exc

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Read one value from the store's key/value ``meta`` table."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", [key])
        return rows[0]["value"] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        """Write one value to the ``meta`` table (in its own transaction, or the caller's)."""
        with self.write() as db:
            db.table("meta").upsert({"key": key, "value": value}, pk="key")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every connection. Idempotent; later use raises ``StoreClosed``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._writer.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
