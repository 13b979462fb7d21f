"""kill -9 a device while it summarises and while it syncs: totals upstream stay exact."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sync_helpers import backend_args, collector, open_backend, register

import shelfwise
from shelfwise.clock import DAY_MS, HOUR_MS, now_ms
from shelfwise.sync.outbox import outbox_status, released_totals

WORKER = str(Path(__file__).parent / "sync_worker.py")
BASE_MS = (now_ms() - 60 * DAY_MS) // HOUR_MS * HOUR_MS  # within the accepted backlog


def _fill(path: Path, events: int) -> dict[str, int]:
    """A device store with ``events`` raw events over many hours; returns counts by type."""
    rng = random.Random(5)
    counts: dict[str, int] = {}
    with shelfwise.open(path, store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": f"i{n}", "name": f"Item {n}"} for n in range(30)])
        with sw.store.write() as db:
            rows = []
            for n in range(events):
                kind = rng.choice(["view", "view", "cart_add", "purchase", "scan"])
                counts[kind] = counts.get(kind, 0) + 1
                rows.append(
                    {
                        "event_id": f"e{n}",
                        "shopper_id": None,
                        "type": kind,
                        "item_id": f"i{rng.randrange(30)}",
                        "quantity": 1,
                        "store_id": "s1",
                        "ts_ms": BASE_MS + n * 600_000,
                    }
                )
            db.table("events").insert_all(rows)
    return counts


def _run_killed(args: list[str], rng: random.Random, kills: int) -> int:
    """Start the worker again and again and SIGKILL it after a random number of its steps
    (so the kill lands mid-work, whatever the machine's speed); return the kills done."""
    done = 0
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 6)):
            if proc.stdout.readline().strip() != "step":
                break
        else:
            time.sleep(rng.uniform(0, 0.02))
            proc.send_signal(signal.SIGKILL)
            done += 1
        proc.wait()
        proc.stdout.close()
    return done


def _finish(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, WORKER, *args], capture_output=True, text=True, timeout=300
    )
    assert out.stdout.strip().endswith("done"), out.stderr


@pytest.mark.slow
def test_sigkill_while_summarising_and_while_syncing_still_gives_exact_totals(tmp_path):
    db = tmp_path / "device.db"
    counts = _fill(db, 6000)
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-k")
    rng = random.Random(9)

    kills = _run_killed(["summarise", str(db), "", "kiosk-k"], rng, kills=4)
    _finish(["summarise", str(db), "", "kiosk-k"])
    with shelfwise.open(db) as sw:
        released = released_totals(sw.store)
        assert outbox_status(sw.store).unsummarised_events == 0
        unmarked = sw.store.query("SELECT count(*) AS n FROM events WHERE summary_id IS NULL")
        assert unmarked[0]["n"] == 0
    for kind, n in counts.items():  # every event counted exactly once
        assert sum(v[0] for k, v in released.items() if k[0] == kind) == n

    with collector(backend) as url:
        sync_args = ["sync", str(db), url, "kiosk-k", creds.secret.hex()]
        kills += _run_killed(sync_args, rng, kills=4)
        _finish(sync_args)
    assert kills == 8  # every kill landed mid-work
    storage = open_backend(backend)
    assert storage.totals("kiosk-k") == released
    storage.close()
    with shelfwise.open(db) as sw:
        assert outbox_status(sw.store).queued == 0
