"""Concurrency: a web server's worker threads on one Shelfwise, and two processes on one file."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
