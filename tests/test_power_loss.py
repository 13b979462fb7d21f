"""Power loss: what the store and the collector acknowledged survives losing power.

``kill -9`` leaves the operating system's page cache behind, so it cannot tell a synced
write from one still in memory (those tests pass even with ``PRAGMA synchronous=OFF``).
Here the real write paths (``track``, ``redeem``, ``summarise``; the collector's ``apply``)
run over a VFS that records every write and every ``xSync`` per file; then, for every cut
point of the run, the files are rebuilt as a power cut there leaves them on the disk (only
what was synced), opened with the normal stack, and checked: every acknowledged event,
outbox row, redemption and collector summary is there, and nothing is half-written.

How and why the shipped code runs over apsw is in ``tests/power_loss.py``: everything above
the driver (PRAGMAs, ``BEGIN IMMEDIATE``/``COMMIT``, sqlite-utils' SQL) is the shipped code,
and each test asserts which ``PRAGMA synchronous`` actually ran.

Cut points: the disk changes only at a sync or a delete, and acknowledgements only grow
between two of them, so cutting just before each sync or delete (and at the end) covers
every cut point of the run; each run checks them all. The slow test also lets a random part
of the unsynced writes reach the disk, sector by sector, as a drive's cache may.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CATALOG
from power_loss import Recorder, through_vfs, write_files

import shelfwise
from shelfwise.sync.protocol import Envelope
from shelfwise.upstream import SqliteStorage

# The collector's server key file is not SQLite and is written once, before any summary:
# kept outside the recorded folder, so the cut copies are only what SQLite wrote.
SERVER_KEY = Path(tempfile.mkdtemp(prefix="shelfwise-power-loss-")) / "collector.key"

DEVICE = "kiosk-1"
ITEMS = ["milk", "cereal", "yogurt", "coffee", "juice", "sausages", "buns", "charcoal"]
OFFER = {
    "offer_id": "o1",
    "title": "2.00 off",
    "reward": {"type": "amount", "value": 2},
    "codes": "unique",
}

# (synchronous the run uses, whether a power cut may lose an acknowledged write).
# FULL is the store's default and the collector's setting; NORMAL syncs the WAL only at a
# checkpoint (the store documents it as surviving a killed process only); OFF never syncs
# (the store refuses it: the test forces it under the PRAGMA the shipped code issues).
SETTINGS = [
    pytest.param("FULL", False, id="FULL-shipped-keeps-everything"),
    pytest.param("EXTRA", False, id="EXTRA-keeps-everything", marks=pytest.mark.slow),
    pytest.param("NORMAL", True, id="NORMAL-loses"),
    pytest.param("OFF", True, id="OFF-loses"),
]


def _record(
    live: Path, synchronous: str, workload: Callable[[Path, Recorder, dict[str, Any]], None]
) -> Recorder:
    """Run ``workload`` in ``live`` over the recording VFS; return the recording."""
    live.mkdir()
    recorder = Recorder(live)
    open_kwargs: dict[str, Any] = {}
    if synchronous in {"NORMAL", "EXTRA"}:
        open_kwargs["synchronous"] = synchronous  # the store's own option
    with through_vfs(recorder, force_synchronous="OFF" if synchronous == "OFF" else None):
        workload(live, recorder, open_kwargs)
    on_disk = {p.name: p.read_bytes() for p in live.iterdir() if not p.name.endswith("-shm")}
    assert recorder.files_now() == on_disk, "the recorder saw every write the files got"
    assert f"PRAGMA synchronous = {synchronous}" in recorder.pragmas, recorder.pragmas
    assert "PRAGMA journal_mode = WAL" in recorder.pragmas
    return recorder


def _sweep(
    recorder: Recorder,
    work: Path,
    check: Callable[[Path, Recorder, int], list[str]],
    *,
    seed: int | None = None,
) -> dict[int, list[str]]:
    """Cut power at every cut point; return the acknowledged writes lost, by cut point."""
    losses: dict[int, list[str]] = {}
    for cut, files in recorder.power_cuts(seed=seed):
        where = work / f"cut-{cut}"
        write_files(files, where)
        lost = check(where, recorder, cut)
        if lost:
            losses[cut] = lost
        shutil.rmtree(where)
    return losses


def _sound(db: Path) -> None:
    """The file a cut left opens with the normal stack, whole and consistent."""
    raw = sqlite3.connect(db)  # recovers the WAL (or rolls back a hot journal) first
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        raw.close()


# -- the device store --------------------------------------------------------------------
def _device_workload(rounds: int, bulk_items: int = 0) -> Callable[..., None]:
    def run(live: Path, recorder: Recorder, open_kwargs: dict[str, Any]) -> None:
        db = live / "store.db"
        sw = shelfwise.open(db, store_id="store-1", **open_kwargs)
        try:
            sw.catalog.import_rows(CATALOG)
            if bulk_items:  # enough pages that the WAL checkpoints by itself mid-run
                sw.catalog.import_rows(
                    {"item_id": f"bulk-{n}", "name": f"Bulk item number {n}"}
                    for n in range(bulk_items)
                )
            sw.offers.define(OFFER)
            codes = sw.offers.issue_codes("o1", rounds)
            for member in range(3):  # consenting to sync: their events are summarised
                sw.member(f"L-{member}", consents={"sync": True})
            for n in range(rounds):
                if n == rounds // 2:  # a kiosk restart: checkpoint on close, then a new WAL
                    sw.close()
                    sw = shelfwise.open(db, store_id="store-1", **open_kwargs)
                shopper = sw.member(f"L-{n % 3}")
                kind = "cart_add" if n % 2 else "view"
                event = shopper.track(kind, ITEMS[n % len(ITEMS)], event_id=f"e{n}")
                recorder.ack("event", event.event_id)
                if n % 3 == 1:
                    redemption = shopper.redeem(codes[n], cart_total=10)
                    recorder.ack("redemption", redemption.redemption_id)
                if n % 4 == 3:
                    for info in sw.summarise(device_id=DEVICE, k=1, include_open_hour=True):
                        if info.outbox_id is not None:
                            recorder.ack("outbox", info.key)
        finally:
            sw.close()

    return run


def _one(sw: shelfwise.Shelfwise, sql: str) -> Any:
    return sw.store.rows(sql)[0][0]


def _check_device(where: Path, recorder: Recorder, cut: int) -> list[str]:
    db = where / "store.db"
    _sound(db)
    with shelfwise.open(db) as sw:  # the shipped stack, as a rebooted kiosk opens it
        lost = []
        for what, sql in [
            ("event", "SELECT event_id FROM events"),
            ("redemption", "SELECT redemption_id FROM redemptions"),
            ("outbox", "SELECT idempotency_key FROM sync_outbox"),
        ]:
            stored = {row[0] for row in sw.store.rows(sql)}
            lost += [f"{what} {i}" for i in sorted(recorder.acknowledged(cut, what) - stored)]
        # Nothing half-written: each transaction's rows are all there or none.
        carts = sw.store.rows(
            "SELECT e.shopper_id, e.item_id, sum(e.quantity), c.quantity FROM events e "
            "LEFT JOIN carts c USING (shopper_id, item_id) WHERE e.type = 'cart_add' "
            "GROUP BY e.shopper_id, e.item_id"
        )
        assert all(row[2] == row[3] for row in carts), carts
        redeemed = _one(sw, "SELECT count(*) FROM redemptions")
        assert _one(sw, "SELECT count(*) FROM offer_codes WHERE state = 'redeemed'") == redeemed
        assert _one(sw, "SELECT count(*) FROM events WHERE type = 'offer_redeemed'") == redeemed
        assert _one(sw, "SELECT count(*) FROM reservations WHERE state = 'committed'") == redeemed
        if redeemed:
            assert _one(sw, "SELECT redemptions FROM offer_counters") == redeemed
        assert not sw.store.rows(
            "SELECT id FROM sync_outbox o WHERE size = 0 OR size != length(body) OR NOT EXISTS "
            "(SELECT 1 FROM sync_ledger l WHERE l.idempotency_key = o.idempotency_key)"
        )
        assert not sw.store.rows(
            "SELECT seq FROM events WHERE summary_id IS NOT NULL AND summary_id NOT IN "
            "(SELECT id FROM sync_outbox)"
        )
        assert _one(sw, "SELECT count(*) FROM events WHERE summarised = 1") == _one(
            sw, "SELECT coalesce(sum(events), 0) FROM sync_ledger"
        )
    return lost


@pytest.mark.parametrize(("synchronous", "loses"), SETTINGS)
def test_acknowledged_device_writes_survive_power_loss_only_when_synced(
    tmp_path: Path, synchronous: str, loses: bool
) -> None:
    recorder = _record(tmp_path / "live", synchronous, _device_workload(rounds=16))
    acked = {w: recorder.acknowledged(len(recorder.ops), w) for w in ("event", "redemption")}
    assert len(acked["event"]) == 16 and len(acked["redemption"]) == 5
    assert recorder.acknowledged(len(recorder.ops), "outbox"), "summaries were queued"
    losses = _sweep(recorder, tmp_path, _check_device)
    if loses:
        assert losses, f"synchronous={synchronous} lost nothing: the test cannot see power loss"
    else:
        assert not losses, f"acknowledged writes lost at {len(losses)} cut points: {losses}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_device_survives_power_loss_with_part_of_the_unsynced_data_written(
    tmp_path: Path, seed: int
) -> None:
    # Bigger: the bulk import overflows the WAL's autocheckpoint, so cuts land mid-checkpoint.
    recorder = _record(
        tmp_path / "live", "FULL", _device_workload(rounds=40, bulk_items=15000 if seed else 0)
    )
    assert not _sweep(recorder, tmp_path, _check_device, seed=seed)


# -- the collector's SQLite default ------------------------------------------------------
def _cells(n: int) -> list[list[Any]]:
    bucket = int(time.time() * 1000) // 3_600_000 * 3_600_000
    return [
        ["view", "s1", bucket, ITEMS[n % len(ITEMS)], "", 1 + n % 5, 1 + n % 5],
        ["purchase", "s1", bucket, ITEMS[(n + 3) % len(ITEMS)], "", 1, 2],
    ]


def _collector_workload(rounds: int) -> Callable[..., None]:
    def run(live: Path, recorder: Recorder, open_kwargs: dict[str, Any]) -> None:
        storage = SqliteStorage(str(live / "collector.db"), key_file=SERVER_KEY)
        try:
            storage.add_device(DEVICE, region="north", stores=["s1"])
            for n in range(rounds):
                if n == rounds // 2:  # a collector restart
                    storage.close()
                    storage = SqliteStorage(str(live / "collector.db"), key_file=SERVER_KEY)
                stamp = int(time.time() * 1000)
                envelopes = [Envelope(DEVICE, n + 1, f"{DEVICE}:r{n}", 1, stamp, _cells(n))]
                if n % 4 == 3:  # a rebuilt earlier release (its new revision) in the same batch
                    envelopes.append(
                        Envelope(DEVICE, n - 2, f"{DEVICE}:r{n - 3}", 2, stamp, _cells(n))
                    )
                for key, rev in storage.apply(DEVICE, envelopes):
                    recorder.ack("release", f"{key}@{rev}")
        finally:
            storage.close()

    return run


def _check_collector(where: Path, recorder: Recorder, cut: int) -> list[str]:
    db = where / "collector.db"
    _sound(db)
    # the shipped stack, as a restarted collector opens it
    storage = SqliteStorage(str(db), key_file=SERVER_KEY)
    try:
        totals, from_cells = storage.totals(), storage.totals(DEVICE)
    finally:
        storage.close()
    raw = sqlite3.connect(db)
    try:
        stored = dict(raw.execute("SELECT key, rev FROM releases").fetchall())
    finally:
        raw.close()
    # Nothing half-written: the totals are exactly the sum of the releases held.
    assert totals == from_cells
    lost = []
    for acked in sorted(recorder.acknowledged(cut, "release")):
        key, rev = acked.rsplit("@", 1)
        if stored.get(key, 0) < int(rev):
            lost.append(acked)
    return lost


@pytest.mark.parametrize(
    ("synchronous", "loses"),
    [
        pytest.param("FULL", False, id="FULL-shipped-keeps-everything"),
        pytest.param("OFF", True, id="OFF-loses"),
    ],
)
def test_acknowledged_collector_summaries_survive_power_loss_only_when_synced(
    tmp_path: Path, synchronous: str, loses: bool
) -> None:
    recorder = _record(tmp_path / "live", synchronous, _collector_workload(rounds=12))
    assert len(recorder.acknowledged(len(recorder.ops), "release")) == 15
    losses = _sweep(recorder, tmp_path, _check_collector)
    if loses:
        assert losses, f"synchronous={synchronous} lost nothing: the test cannot see power loss"
    else:
        assert not losses, f"acknowledged summaries lost at {len(losses)} cut points: {losses}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_collector_survives_power_loss_with_part_of_the_unsynced_data_written(
    tmp_path: Path, seed: int
) -> None:
    recorder = _record(tmp_path / "live", "FULL", _collector_workload(rounds=40))
    assert not _sweep(recorder, tmp_path, _check_collector, seed=seed)
