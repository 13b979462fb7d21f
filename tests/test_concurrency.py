"""Concurrency: a web server's worker threads on one Shelfwise, and two processes on one file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import CATALOG

import shelfwise

WRITER = Path(__file__).parent / "store_writer.py"
ITEMS = ["milk", "cereal", "yogurt", "coffee", "juice", "sausages", "buns", "charcoal"]


def test_eight_threads_tracking_and_recommending_lose_nothing(sw: shelfwise.Shelfwise) -> None:
    per_thread = 40
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> str:
        shopper = sw.member(f"L-{n}", consents={"personalization": True})
        start.wait(10)
        for i in range(per_thread):
            item = ITEMS[(n + i) % len(ITEMS)]
            shopper.track("cart_add" if i % 4 == 0 else "view", item)
            results = shopper.recommend("for-you", limit=3)
            assert all(r.item.item_id not in {c.item_id for c in shopper.cart()} for r in results)
            sw.recommend(history=[item], limit=3)
        return shopper.shopper_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(worker, n) for n in range(8)]
        ids = []
        for future in futures:
            try:
                ids.append(future.result(timeout=120))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
    assert errors == []
    assert sw.store.query("SELECT count(*) AS n FROM events")[0]["n"] == 8 * per_thread
    for shopper_id in ids:
        rows = sw.store.query(
            "SELECT type, count(*) AS n FROM events WHERE shopper_id = ? GROUP BY type ORDER BY type",
            [shopper_id],
        )
        assert [(r["type"], r["n"]) for r in rows] == [("cart_add", 10), ("view", 30)]
        cart = sw.shopper(shopper_id).cart()
        assert sum(line.quantity for line in cart) == 10


def test_concurrent_checkouts_of_one_cart_record_the_purchase_once(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.member("L-1", consents={"personalization": True})
    shopper.add_to_cart("milk", 2)
    shopper.add_to_cart("buns")
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def pay() -> None:
        start.wait(10)
        try:
            shopper.checkout()
            outcomes.append("paid")
        except shelfwise.InvalidEvent:
            outcomes.append("empty")

    threads = [threading.Thread(target=pay) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["empty"] * 5 + ["paid"]
    purchases = sw.store.query("SELECT item_id, quantity FROM events WHERE type = 'purchase'")
    assert sorted((r["item_id"], r["quantity"]) for r in purchases) == [("buns", 1), ("milk", 2)]


def test_sessions_ending_while_others_track_leave_no_orphans(sw: shelfwise.Shelfwise) -> None:
    def visit(n: int) -> None:
        shopper = sw.start_session()
        for item in ITEMS[: 3 + n % 4]:
            shopper.view(item)
        shopper.add_to_cart(ITEMS[n % len(ITEMS)])
        shopper.end()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(visit, range(30)))
    assert sw.store.query("SELECT count(*) AS n FROM shoppers")[0]["n"] == 0
    assert sw.store.query("SELECT count(*) AS n FROM carts")[0]["n"] == 0
    assert sw.store.query("SELECT count(*) AS n FROM events WHERE shopper_id IS NOT NULL") == [
        {"n": 0}
    ]
    expected = sum(3 + n % 4 + 1 for n in range(30))
    assert sw.store.query("SELECT count(*) AS n FROM events")[0]["n"] == expected


def test_a_catalog_import_under_load_is_seen_whole_by_readers(sw: shelfwise.Shelfwise) -> None:
    new_rows = [{"item_id": f"new-{n}", "name": f"New {n}", "category": "new"} for n in range(500)]
    counts: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            counts.append(sw.catalog.count())

    reader = threading.Thread(target=read)
    reader.start()
    sw.catalog.import_rows(new_rows)
    done.set()
    reader.join(30)
    assert set(counts) <= {len(CATALOG), len(CATALOG) + 500}, "never a half-imported catalog"


@pytest.mark.parametrize("per_process", [150])
def test_two_processes_writing_one_store_file_lose_nothing(
    tmp_path: Path, per_process: int
) -> None:
    db = tmp_path / "shared.db"
    with shelfwise.open(db, store_id="store-1") as sw:
        sw.catalog.import_rows(CATALOG)
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(db), prefix, str(per_process)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b")
    ]
    with shelfwise.open(db) as sw:  # and this process reads while they write
        while any(w.poll() is None for w in writers):
            sw.recommend(history=["milk"], limit=3)
            sw.store.query("SELECT count(*) AS n FROM events")
    outputs = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err  # StoreBusy would have failed the writer
        assert out.splitlines()[-1] == "done"
    with shelfwise.open(db) as sw:
        ids = {r["event_id"] for r in sw.store.query("SELECT event_id FROM events")}
        assert ids == {f"{p}-{n}" for p in ("a", "b") for n in range(per_process)}
        for prefix in ("a", "b"):
            cart = sw.shopper(f"member-{prefix}").cart()
            assert sum(line.quantity for line in cart) == per_process // 5


# -- catalog changes under load: a read that starts after a change is acknowledged sees it ----
CATALOG_WRITER = Path(__file__).parent / "catalog_writer.py"
TRACKED = ["milk", "cereal", "juice"]  # flipped in and out of stock, repriced, removed
Seen = tuple[float | None, bool] | None  # (price, in stock), None: not in the catalog


def _changes(steps: int) -> tuple[list[dict[str, Any]], list[dict[str, Seen]]]:
    """The catalog changes a writer makes, and the tracked items as they are after each."""
    rows = {row["item_id"]: dict(row) for row in CATALOG}
    changes: list[dict[str, Any]] = []
    states = [_tracked(rows)]
    for step in range(1, steps + 1):
        if step % 3 == 0:  # flip milk's stock
            in_stock = not rows["milk"].get("in_stock", True)
            rows["milk"]["in_stock"] = in_stock
            changes.append({"stock": "milk", "in_stock": in_stock})
        elif step % 3 == 1:  # reprice cereal
            rows["cereal"]["price"] = 10.0 + step
            changes.append({"import": [dict(rows["cereal"])], "replace": False})
        else:  # the whole catalog again, juice in one time and out the next
            rows["cereal"]["price"] = 10.0 + step
            if step // 3 % 2:
                rows.pop("juice", None)
            else:
                rows["juice"] = dict(next(r for r in CATALOG if r["item_id"] == "juice"))
            changes.append({"import": [dict(row) for row in rows.values()], "replace": True})
        states.append(_tracked(rows))
    return changes, states


def _tracked(rows: dict[str, dict[str, Any]]) -> dict[str, Seen]:
    return {
        item_id: (float(rows[item_id]["price"]), rows[item_id].get("in_stock", True) is True)
        if item_id in rows
        else None
        for item_id in TRACKED
    }


def _seen(item: shelfwise.Item | None) -> Seen:
    return None if item is None else (item.price, item.in_stock)


def _reads_follow_acknowledged_changes(
    sw: shelfwise.Shelfwise, apply: Callable[[dict[str, Any]], str], steps: int = 45
) -> None:
    """Four threads read the catalog (by id, by name, its revision, for-you pages) while
    ``apply`` makes each change and returns the revision after it. Every read must show each
    tracked item as it was at some step from the last one acknowledged when the read started
    to the last one begun when it ended: never older, whatever thread or process wrote."""
    changes, states = _changes(steps)
    revisions = [sw.catalog.revision()]
    lock = threading.Lock()
    progress = {"acked": 0, "begun": 0}
    done = threading.Event()
    observed: list[tuple[int, int, str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def reader(n: int) -> None:
        shopper = sw.member(f"L-reader-{n}", consents={"personalization": True})
        for item in ("yogurt", "coffee", "cereal"):
            shopper.view(item)
        start.wait(10)
        turn = n
        while True:
            finishing = done.is_set()  # one more round after the last change
            with lock:
                acked = progress["acked"]
            turn += 1
            try:
                if turn % 4 == 0:
                    got: Any = {i: _seen(it) for i, it in sw.catalog.get_many(TRACKED).items()}
                elif turn % 4 == 1:
                    got = ("names", sorted(sw.catalog.names(TRACKED)))
                elif turn % 4 == 2:
                    got = ("revision", sw.catalog.revision())
                else:
                    page = shopper.recommend("for-you", limit=6)
                    got = ("page", [(r.item.item_id, _seen(r.item)) for r in page])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            with lock:
                observed.append((acked, progress["begun"], f"reader-{n}", got))
            if finishing:
                return

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for thread in readers:
        thread.start()
    start.wait(10)
    try:
        for step, change in enumerate(changes, 1):
            with lock:
                progress["begun"] = step
            revisions.append(apply(change))
            with lock:
                progress["acked"] = step
    finally:
        done.set()
        for thread in readers:
            thread.join(30)
    assert errors == []
    assert not any(thread.is_alive() for thread in readers)
    assert sum(1 for acked, *_ in observed if acked == steps) >= 4, "a last read each"
    for acked, begun, who, got in observed:
        possible = range(acked, begun + 1)
        if isinstance(got, dict):  # get_many
            for item_id in TRACKED:
                assert got.get(item_id) in [states[s][item_id] for s in possible], (who, acked)
        elif got[0] == "names":
            present = [sorted(i for i in TRACKED if states[s][i] is not None) for s in possible]
            assert got[1] in present, (who, acked)
        elif got[0] == "revision":
            assert got[1] in [revisions[s] for s in possible], (who, acked)
        else:
            for item_id, seen in got[1]:
                assert seen is not None and seen[1], "a page shows items in stock only"
                if item_id in TRACKED:
                    assert seen in [states[s][item_id] for s in possible], (who, acked, item_id)


@pytest.mark.parametrize("cache_cap", [20_000, 4], ids=["cache", "cache-cleared-on-most-reads"])
def test_catalog_reads_in_many_threads_see_each_change_another_thread_committed(
    sw: shelfwise.Shelfwise, monkeypatch: pytest.MonkeyPatch, cache_cap: int
) -> None:
    from shelfwise import catalog

    monkeypatch.setattr(catalog, "MAX_CACHED_ITEMS", cache_cap)  # 4: cleared under the readers

    def apply(change: dict[str, Any]) -> str:
        if "import" in change:
            sw.catalog.import_rows(change["import"], replace=change["replace"])
        else:
            sw.catalog.set_stock(change["stock"], change["in_stock"])
        return sw.store.get_meta("catalog.revision") or ""

    _reads_follow_acknowledged_changes(sw, apply)


def test_catalog_reads_in_many_threads_see_each_change_another_process_committed(
    sw: shelfwise.Shelfwise,
) -> None:
    writer = subprocess.Popen(
        [sys.executable, str(CATALOG_WRITER), sw.store.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None

    def apply(change: dict[str, Any]) -> str:
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write(json.dumps(change) + "\n")
        writer.stdin.flush()
        answer = writer.stdout.readline().split()
        assert answer[:1] == ["ok"], writer.stderr.read() if writer.stderr else ""
        return answer[1]

    try:
        _reads_follow_acknowledged_changes(sw, apply)
    finally:
        writer.stdin.close()  # the writer's loop ends with its input
        writer.wait(30)
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    writer.stdout.close()
    if writer.stderr:
        writer.stderr.close()
