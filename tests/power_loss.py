"""Simulated power loss for SQLite files: a recording apsw VFS and the files a cut leaves.

A ``kill -9`` proves little about a power cut: the operating system's page cache survives
the killed process, so even ``PRAGMA synchronous=OFF`` passes such a test. What survives a
power cut is only what was synced to the disk. This module makes that testable:

- ``PowerLossVFS`` (an ``apsw.VFS`` over the platform's own VFS) lets every read and write
  reach the real files, so the code under test runs exactly as usual, and records each
  write, truncate, ``xSync`` and delete per file in one ordered log (``Recorder.ops``). A
  sync is recorded, not performed: the log, not this machine's disk, says what survives.
- The test marks each acknowledgement in the same log (``Recorder.ack``) the moment the API
  call that made it returned.
- ``Recorder.power_cuts()`` replays the log and yields, for every cut point, the files as
  the disk would hold them after losing power there: each file as of its last ``xSync``;
  everything written after it is gone (main database, WAL and journal alike); a file's
  creation or deletion counts only once its folder was synced. With ``seed`` some unsynced
  changes reach the disk anyway, sector by sector, which a real drive may also do.

Why the shipped code runs over apsw's connection (``through_vfs``): Python's ``sqlite3``
module cannot host a VFS written in Python, and apsw's wheel carries its own SQLite library,
so a VFS registered by apsw is invisible to ``sqlite3.connect``. ``through_vfs`` therefore
swaps ``sqlite3.connect`` (only while the workload runs) for a small adapter that opens an
apsw connection on this VFS and offers the handful of ``sqlite3.Connection`` members the
store, the collector and sqlite-utils use. Everything above the driver is the shipped code:
its ``PRAGMA`` statements (recorded in ``Recorder.pragmas`` so a test can show them), its
``BEGIN IMMEDIATE``/``COMMIT`` transactions and sqlite-utils' SQL. The cut files are then
opened with the normal stack (Python's ``sqlite3``) to check them. The one deliberate
change is ``force_synchronous``, which rewrites ``PRAGMA synchronous`` so a test can show
what a weaker setting loses (the store itself refuses ``OFF``).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

SECTOR = 512  # the unit a drive writes atomically (the smallest SQLite assumes)


@dataclass(frozen=True)
class Op:
    """One recorded step: create, write, truncate, sync, dirsync, delete or ack."""

    kind: str
    path: str = ""
    offset: int = 0  # write: where; truncate: the new size
    data: bytes = b""
    label: tuple[str, str] = ("", "")  # ack: (what, id)


@dataclass
class _Inode:
    current: bytearray  # what the OS shows (page cache)
    durable: bytearray | None  # what is on the disk (None: never synced)
    pending: list[Op] = field(default_factory=list)  # since the last sync


@dataclass
class _Disk:
    inodes: list[_Inode]
    now: dict[str, int]  # name -> inode, as the OS shows the folder
    durable: dict[str, int]  # name -> inode, as the folder is on the disk


class Recorder:
    """The ordered log of one workload's file operations and acknowledgements.

    The model is POSIX's: ``fsync`` of a file makes its content durable, not its name; a
    file's creation or deletion is durable once the folder is synced. SQLite's unix VFS
    syncs the folder on the first ``xSync`` of each journal or WAL handle it opens and on a
    delete asked with ``syncdir`` (``os_unix.c``: ``UNIXFILE_DIRSYNC``); the VFS records
    those as ``dirsync``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = os.path.realpath(directory)
        self.ops: list[Op] = []
        self.pragmas: list[str] = []
        # Files already there when first opened were durable before the recording began.
        self._initial: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def tracks(self, path: str) -> bool:
        return os.path.dirname(os.path.realpath(path)) == self.directory

    def _note(self, *ops: Op) -> None:
        with self._lock:
            self.ops.extend(ops)

    def _opening(self, path: str) -> None:
        with self._lock:
            if Path(path).exists():
                if path not in self._initial and not any(op.path == path for op in self.ops):
                    self._initial[path] = Path(path).read_bytes()
            else:
                self.ops.append(Op("create", path))

    def ack(self, what: str, ident: str) -> None:
        """Mark that the API acknowledged ``ident`` (call right after the call returned)."""
        self._note(Op("ack", label=(what, ident)))

    def cut_points(self) -> list[int]:
        """Every distinct moment worth a cut: just before each (folder) sync, and the end.

        Between two of these the disk does not change while acknowledgements only grow, so
        cutting just before the next sync is the hardest cut of its interval: together they
        cover every cut point of the run.
        """
        syncs = [i for i, op in enumerate(self.ops) if op.kind in {"sync", "dirsync"}]
        return [*syncs, len(self.ops)]

    def acknowledged(self, cut: int, what: str) -> set[str]:
        """The ids of kind ``what`` acknowledged before ``cut``."""
        return {op.label[1] for op in self.ops[:cut] if op.kind == "ack" and op.label[0] == what}

    def _replay(self, cut: int, disk: _Disk | None = None, done: int = 0) -> _Disk:
        """The disk after ops ``[:cut]``, going on from ``disk`` (after ``[:done]``) if given."""
        if disk is None:
            disk, done = _Disk([], {}, {}), 0
            for path, data in self._initial.items():
                disk.inodes.append(_Inode(bytearray(data), bytearray(data)))
                disk.now[path] = disk.durable[path] = len(disk.inodes) - 1
        for op in self.ops[done:cut]:
            if op.kind == "create":
                disk.inodes.append(_Inode(bytearray(), None))
                disk.now[op.path] = len(disk.inodes) - 1
            elif op.kind == "delete":
                disk.now.pop(op.path, None)
            elif op.kind == "dirsync":
                disk.durable = dict(disk.now)
            elif op.kind in {"write", "truncate", "sync"}:
                inode = disk.inodes[disk.now[op.path]]
                if op.kind == "sync":
                    inode.durable = bytearray(inode.current)
                    inode.pending.clear()
                else:
                    _apply(inode.current, op)
                    inode.pending.append(op)
        return disk

    def files_now(self) -> dict[str, bytes]:
        """The files as the OS shows them after the whole log (checks the recorder itself)."""
        disk = self._replay(len(self.ops))
        return {os.path.basename(p): bytes(disk.inodes[i].current) for p, i in disk.now.items()}

    def power_cuts(self, *, seed: int | None = None) -> Iterator[tuple[int, dict[str, bytes]]]:
        """Each cut point, in order, with the files a power cut there leaves on the disk.

        Without ``seed`` exactly what was synced survives. With it, each unsynced change
        (a file's creation or deletion, a truncate, each sector of a write) may also have
        reached the disk, drawn from ``random.Random`` seeded per cut; changes to one
        sector land in the order they were made.
        """
        disk, done = None, 0
        for cut in self.cut_points():
            disk, done = self._replay(cut, disk, done), cut
            rng = None if seed is None else random.Random(seed * 1_000_003 + cut)
            yield cut, _survivors(disk, rng)


def _survivors(disk: _Disk, rng: random.Random | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for path in sorted(disk.durable.keys() | disk.now.keys()):
        number = disk.durable.get(path)
        if rng is not None and disk.now.get(path) != number and rng.random() < 0.5:
            number = disk.now.get(path)  # the unsynced create or delete made it
        if number is None:
            continue
        inode = disk.inodes[number]
        image = bytearray(inode.durable or b"")
        for op in inode.pending if rng is not None else []:
            assert rng is not None
            if op.kind == "truncate":
                if rng.random() < 0.5:
                    _apply(image, op)
                continue
            for start in range(0, len(op.data), SECTOR):
                if rng.random() < 0.5:
                    sector = op.data[start : start + SECTOR]
                    _apply(image, Op("write", op.path, op.offset + start, sector))
        out[os.path.basename(path)] = bytes(image)
    return out


def _apply(image: bytearray, op: Op) -> None:
    if op.kind == "write":
        end = op.offset + len(op.data)
        if len(image) < end:
            image.extend(bytes(end - len(image)))
        image[op.offset : end] = op.data
    elif op.offset < len(image):  # truncate
        del image[op.offset :]
    else:
        image.extend(bytes(op.offset - len(image)))


def write_files(files: dict[str, bytes], directory: Path) -> None:
    """Put the files a cut left into ``directory`` (no ``-shm``: it is rebuilt on open)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if not name.endswith("-shm"):
            (directory / name).write_bytes(data)


# -- the VFS --------------------------------------------------------------------------------
# The unix VFS syncs the folder too on the first sync of these (os_unix.c, UNIXFILE_DIRSYNC).
_DIRSYNC_TYPES = (
    apsw.SQLITE_OPEN_MAIN_JOURNAL | apsw.SQLITE_OPEN_WAL | apsw.SQLITE_OPEN_SUPER_JOURNAL
)


class _RecordingFile(apsw.VFSFile):  # type: ignore[misc]
    def __init__(self, recorder: Recorder, path: str, name: Any, flags: list[int]) -> None:
        self._recorder = recorder
        self._path = path
        self._dirsync = bool(flags[0] & apsw.SQLITE_OPEN_CREATE and flags[0] & _DIRSYNC_TYPES)
        recorder._opening(path)
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        super().xWrite(data, offset)
        self._recorder._note(Op("write", self._path, offset, bytes(data)))

    def xTruncate(self, newsize: int) -> None:
        super().xTruncate(newsize)
        self._recorder._note(Op("truncate", self._path, newsize))

    def xSync(self, flags: int) -> None:
        # No real fsync: the recording, not this disk, decides what a cut keeps (and the
        # workload runs many times faster without waiting for the disk).
        if self._dirsync:
            self._dirsync = False
            self._recorder._note(Op("sync", self._path), Op("dirsync", self._path))
        else:
            self._recorder._note(Op("sync", self._path))


class PowerLossVFS(apsw.VFS):  # type: ignore[misc]
    """The platform's VFS, recording each write and sync to files in the recorder's folder."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.vfs_name = f"powerloss-{uuid.uuid4().hex[:8]}"
        super().__init__(self.vfs_name, "")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        path = name.filename() if isinstance(name, apsw.URIFilename) else name
        if isinstance(path, str) and self.recorder.tracks(path):
            return _RecordingFile(self.recorder, path, name, flags)
        return apsw.VFSFile("", name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        super().xDelete(filename, syncdir)
        if self.recorder.tracks(filename):
            ops = [Op("delete", filename)] + ([Op("dirsync", filename)] if syncdir else [])
            self.recorder._note(*ops)


# -- sqlite3.connect over the VFS ------------------------------------------------------------
_DML = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_SYNCHRONOUS = re.compile(r"^\s*PRAGMA\s+synchronous\s*=\s*\w+", re.IGNORECASE)
_ERRORS: list[tuple[type[BaseException], type[sqlite3.Error]]] = [
    (apsw.ConstraintError, sqlite3.IntegrityError),
    (apsw.MismatchError, sqlite3.IntegrityError),
    (apsw.TooBigError, sqlite3.DataError),
    (apsw.CorruptError, sqlite3.DatabaseError),
    (apsw.NotADBError, sqlite3.DatabaseError),
    (apsw.BindingsError, sqlite3.ProgrammingError),
    (apsw.Error, sqlite3.OperationalError),
]


@contextlib.contextmanager
def _as_sqlite3_errors() -> Iterator[None]:
    try:
        yield
    except apsw.Error as exc:
        kind = next(ours for theirs, ours in _ERRORS if isinstance(exc, theirs))
        raise kind(str(exc)) from exc


class _Cursor:
    """The ``sqlite3.Cursor`` members the store, the collector and sqlite-utils use."""

    arraysize = 1

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self._cursor = connection.apsw.cursor()
        # Not a bound method: a cycle would keep a finished statement open (and busy) until
        # the garbage collector ran, where sqlite3 resets it as soon as the cursor is dropped.
        columns: list[tuple[Any, ...]] = []
        self._columns = columns

        def trace(cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
            # The one moment apsw knows the columns of a statement that returns no row.
            columns[:] = [(c[0], None, None, None, None, None, None) for c in cursor.description]
            return True

        self._cursor.exec_trace = trace
        self._rows: Iterator[tuple[Any, ...]] = iter(())
        self.rowcount = -1
        self.lastrowid: int | None = None

    @property
    def description(self) -> tuple[tuple[Any, ...], ...] | None:
        return tuple(self._columns) or None

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> _Cursor:
        sql = self.connection.rewrite(sql)
        self._columns.clear()
        with _as_sqlite3_errors():
            self._rows = self._cursor.execute(sql, parameters if parameters else None)
        self.lastrowid = self.connection.apsw.last_insert_rowid()
        self.rowcount = self.connection.apsw.changes() if _DML.match(sql) else -1
        return self

    def executemany(self, sql: str, seq: Any) -> _Cursor:
        total = 0
        for parameters in seq:
            self.execute(sql, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return self

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self

    def __next__(self) -> tuple[Any, ...]:
        with _as_sqlite3_errors():
            return next(self._rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return next(self, None)

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return [row for _, row in zip(range(size or self.arraysize), self, strict=False)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)

    def close(self) -> None:
        self._cursor.close()


class _Connection:
    """An apsw connection on the recording VFS, shaped like ``sqlite3.Connection``."""

    def __init__(self, path: str, vfs: PowerLossVFS, timeout: float, force: str | None) -> None:
        self._recorder = vfs.recorder
        self._force = force
        self.isolation_level: str | None = None
        with _as_sqlite3_errors():
            self.apsw = apsw.Connection(path, vfs=vfs.vfs_name)
            self.apsw.set_busy_timeout(int(timeout * 1000))

    def rewrite(self, sql: str) -> str:
        if sql.lstrip().upper().startswith("PRAGMA"):
            if self._force is not None:
                sql = _SYNCHRONOUS.sub(f"PRAGMA synchronous = {self._force}", sql)
            self._recorder.pragmas.append(" ".join(sql.split()))
        return sql

    @property
    def in_transaction(self) -> bool:
        return not self.apsw.get_autocommit()

    @property
    def total_changes(self) -> int:
        return int(self.apsw.total_changes())

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> _Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any) -> _Cursor:
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str) -> _Cursor:
        if self.in_transaction:  # what sqlite3 does too
            self.execute("COMMIT")
        return self.execute(script)

    def create_function(
        self, name: str, narg: int, func: Any, *, deterministic: bool = False
    ) -> None:
        self.apsw.create_scalar_function(name, func, narg, deterministic=deterministic)

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        self.apsw.close()


@contextlib.contextmanager
def through_vfs(recorder: Recorder, *, force_synchronous: str | None = None) -> Iterator[None]:
    """While inside, ``sqlite3.connect`` on a file in the recorder's folder runs over the VFS."""
    vfs = PowerLossVFS(recorder)
    real_connect = sqlite3.connect

    def connect(database: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
        path = os.fspath(database)
        if path == ":memory:" or kwargs.get("uri") or not recorder.tracks(path):
            return real_connect(database, timeout, **kwargs)
        if kwargs.get("isolation_level", "") is not None:
            raise NotImplementedError("the adapter speaks only isolation_level=None (autocommit)")
        return _Connection(path, vfs, timeout, force_synchronous)

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = real_connect
        vfs.unregister()
