"""The SQLite store: atomic writes, typed errors, WAL readers, closing, reopening."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import shelfwise
from shelfwise.store.connection import Store


def _count(store: Store, table: str = "meta") -> int:
    return int(store.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def test_a_write_block_commits_all_of_its_changes_or_none(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(RuntimeError), store.write() as db:
            db.table("meta").insert({"key": "a", "value": "1"})
            db.table("meta").insert({"key": "b", "value": "2"})
            raise RuntimeError("the caller failed half way")
        assert _count(store) == 0
        with store.write() as db:
            db.table("meta").insert({"key": "a", "value": "1"})
            db.table("meta").insert({"key": "b", "value": "2"})
        assert _count(store) == 2


def test_a_failed_nested_write_rolls_back_only_its_own_changes(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        with store.write() as db:
            db.table("meta").insert({"key": "outer", "value": "1"})
            with pytest.raises(RuntimeError), store.write() as inner:
                inner.table("meta").insert({"key": "inner", "value": "2"})
                raise RuntimeError("inner step failed")
        assert [r["key"] for r in store.query("SELECT key FROM meta")] == ["outer"]


def test_sqlite_errors_inside_a_write_become_store_errors_and_change_nothing(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "s.db") as store:
        store.set_meta("k", "v")
        with pytest.raises(shelfwise.StoreError) as caught, store.write() as db:
            db.execute("UPDATE meta SET value = 'changed'")
            db.execute("INSERT INTO meta (key, value) VALUES ('k', 'duplicate')")
        assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
        assert store.get_meta("k") == "v"


def test_reopening_a_store_keeps_its_data_and_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.set_meta("hello", "world")
        applied = store.query("SELECT count(*) AS n FROM _sqlite_migrations")[0]["n"]
    with Store(path) as store:
        assert store.get_meta("hello") == "world"
        assert store.query("SELECT count(*) AS n FROM _sqlite_migrations")[0]["n"] == applied


def test_a_file_store_uses_wal_and_full_fsync_by_default(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with Store(tmp_path / "n.db", synchronous="NORMAL") as store:
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_an_unknown_synchronous_mode_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        Store(tmp_path / "s.db", synchronous="OFF")


def test_using_a_closed_store_raises_store_closed(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(shelfwise.StoreClosed):
        store.query("SELECT 1")
    with pytest.raises(shelfwise.StoreClosed), store.write():
        pass


def test_every_facade_call_after_close_raises_store_closed(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    sw.close()
    for call in [
        lambda: sw.catalog.get("milk"),
        lambda: sw.catalog.search("milk"),
        lambda: sw.start_session(),
        lambda: shopper.view("milk"),
        lambda: shopper.recommend("for-you"),
        lambda: sw.recommend(history=["milk"]),
        lambda: sw.forget_shopper(shopper.shopper_id),
    ]:
        with pytest.raises(shelfwise.StoreClosed):
            call()


def test_a_writer_blocked_past_the_busy_timeout_gets_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path, busy_timeout_s=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(shelfwise.StoreBusy), store.write() as db:
                db.table("meta").insert({"key": "k", "value": "v"})
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.set_meta("k", "v")  # and it works again once the lock is released
        assert store.get_meta("k") == "v"


def test_readers_in_other_threads_never_see_an_uncommitted_write(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        seen: list[int] = []
        inside = threading.Event()
        checked = threading.Event()

        def reader() -> None:
            inside.wait(5)
            seen.append(_count(store))
            checked.set()

        thread = threading.Thread(target=reader)
        thread.start()
        with store.write() as db:
            db.table("meta").insert({"key": "k", "value": "v"})
            assert _count(store) == 1, "the writing thread sees its own change"
            inside.set()
            checked.wait(5)
        thread.join(5)
        assert seen == [0]
        assert _count(store) == 1


def test_a_memory_store_works_for_examples_and_tests() -> None:
    with Store(":memory:") as store:
        store.set_meta("k", "v")
        assert store.get_meta("k") == "v"
        assert store.get_meta("missing", "default") == "default"
