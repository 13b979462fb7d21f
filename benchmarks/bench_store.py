"""Event ingest throughput through the public API, durable (one event per transaction).

``Shopper.track`` commits each accepted event on its own, so an acknowledged event survives
kill -9; with ``synchronous="FULL"`` (the default) it also survives a power cut, because the
WAL is fsynced at every commit. This measures what that costs, in the same run:

- ``track FULL``: the default, one fsync per event;
- ``track NORMAL``: ``shelfwise.open(..., synchronous="NORMAL")``: survives a killed process,
  not a power cut (the WAL is fsynced at checkpoints only);
- ``raw insert FULL`` / ``raw insert NORMAL``: the same row through a bare sqlite3 connection,
  one transaction per row: the floor the API's validation and bookkeeping sit on;
- ``batched (baseline)``: 1,000 rows per transaction, which the API does not do on purpose.

Also two processes tracking into one file at once (the kiosk web app and a sync job).
Events are real: item ids follow the real Amazon Beauty sequences when the data is present.

    python benchmarks/bench_store.py        # prints a table, adds "store" to results/runtime.json
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import shelfwise

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BEAUTY = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def item_stream(limit: int) -> list[str]:
    """Item ids in the order real shoppers met them (Beauty sequences), or a fixed cycle."""
    if BEAUTY.is_file():
        out: list[str] = []
        for line in BEAUTY.read_text().splitlines():
            out += [f"b{i}" for i in line.split()[1:]]
            if len(out) >= limit:
                break
        return out[:limit]
    return [f"b{n % 500 + 1}" for n in range(limit)]


def new_store(path: Path, items: list[str], synchronous: str = "FULL") -> shelfwise.Shelfwise:
    sw = shelfwise.open(path, store_id="bench", synchronous=synchronous)
    sw.catalog.import_rows({"item_id": i, "name": f"Product {i}"} for i in sorted(set(items)))
    return sw


def track_rate(path: Path, items: list[str], synchronous: str, seconds: float) -> dict[str, Any]:
    sw = new_store(path, items, synchronous)
    shopper = sw.member("bench", consents={"personalization": True})
    latencies = []
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        shopper.track("view", items[n % len(items)])
        latencies.append(time.perf_counter() - t)
        n += 1
    elapsed = time.perf_counter() - started
    sw.close()
    latencies.sort()
    return {
        "events_per_s": round(n / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "events": n,
    }


def raw_rate(path: Path, synchronous: str, seconds: float, batch: int = 1) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT UNIQUE, shopper_id TEXT, "
        "type TEXT, item_id TEXT, ts_ms INTEGER, payload TEXT)"
    )
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(batch):
            conn.execute(
                "INSERT INTO events (event_id, shopper_id, type, item_id, ts_ms, payload) "
                "VALUES (?, 'bench', 'view', 'b1', ?, '{}')",
                [uuid.uuid4().hex, int(time.time() * 1000)],
            )
        conn.execute("COMMIT")
        n += batch
    elapsed = time.perf_counter() - started
    conn.close()
    return {"events_per_s": round(n / elapsed, 1), "events": n}


_WRITER = """
import sys, time, shelfwise
sw = shelfwise.open(sys.argv[1], store_id="bench")
shopper = sw.member(sys.argv[2], consents={"personalization": True})
items = sys.argv[4].split(",")
n = int(sys.argv[3])
t = time.perf_counter()
for i in range(n):
    shopper.track("view", items[i % len(items)])
print(n / (time.perf_counter() - t))
"""


def two_process_rate(path: Path, items: list[str], per_process: int) -> dict[str, Any]:
    new_store(path, items).close()
    sample = ",".join(items[:200])
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), f"p{n}", str(per_process), sample],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    elapsed = time.perf_counter() - started
    assert all(p.returncode == 0 for p in procs), "a writer failed (StoreBusy?)"
    with shelfwise.open(path) as sw:
        stored = sw.store.query("SELECT count(*) AS n FROM events")[0]["n"]
    return {
        "events_per_s_total": round(2 * per_process / elapsed, 1),
        "per_process_events_per_s": [round(float(o), 1) for o in outs],
        "events_stored": stored,
        "events_sent": 2 * per_process,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per case")
    parser.add_argument("--dir", help="where to put the store files (default: a temp dir)")
    parser.add_argument("--out", default=str(RESULTS / "runtime.json"))
    args = parser.parse_args()
    items = item_stream(20_000)
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-store-"))
    base.mkdir(parents=True, exist_ok=True)
    cases = {
        "track FULL (default)": lambda: track_rate(base / "full.db", items, "FULL", args.seconds),
        "track NORMAL": lambda: track_rate(base / "normal.db", items, "NORMAL", args.seconds),
        "raw insert FULL": lambda: raw_rate(base / "raw-full.db", "FULL", args.seconds),
        "raw insert NORMAL": lambda: raw_rate(base / "raw-normal.db", "NORMAL", args.seconds),
        "batched 1000/txn (baseline)": lambda: raw_rate(
            base / "raw-batch.db", "FULL", args.seconds, batch=1000
        ),
    }
    report: dict[str, Any] = {
        "filesystem_dir": str(base),
        "note": "2 shared cores, one disk shared with other work: compare ratios within a run",
        "ingest": {name: run() for name, run in cases.items()},
    }
    report["two_processes"] = two_process_rate(base / "two.db", items, 1500)

    full = report["ingest"]["track FULL (default)"]["events_per_s"]
    print("\nevent ingest, one event per transaction unless stated (durable when acknowledged)")
    print(f"{'case':<30} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs FULL':>8}")
    for name, row in report["ingest"].items():
        p50 = f"{row['p50_ms']:8.3f}" if "p50_ms" in row else f"{'':>8}"
        p99 = f"{row['p99_ms']:8.3f}" if "p99_ms" in row else f"{'':>8}"
        print(
            f"{name:<30} {row['events_per_s']:>10.0f} {p50} {p99} {row['events_per_s'] / full:>7.2f}x"
        )
    two = report["two_processes"]
    print(
        f"{'two processes, one file':<30} {two['events_per_s_total']:>10.0f}   "
        f"stored {two['events_stored']}/{two['events_sent']} events"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(out.read_text()) if out.is_file() else {}
    merged["store"] = report
    out.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")
    if not args.dir:
        for leftover in base.iterdir():
            leftover.unlink()
        os.rmdir(base)


if __name__ == "__main__":
    main()
