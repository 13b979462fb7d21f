"""Sync: summary bytes vs raw event bytes, and collector ingest throughput vs one-per-event.

The event stream is the real groceries-dated file (38,765 purchase lines of 3,898 loyalty
members over two years), replayed through the SDK: members are spread over ``--devices``
simulated kiosks (their own store files), each line becomes a ``cart_add`` and a
``purchase`` tracked at its real date. Every device summarises (k=15 and k=1) and the
summaries are uploaded concurrently to a real collector process (uvicorn, SQLite; and
PostgreSQL when SHELFWISE_PG_DSN is set). The baseline sends each raw event as its own
request, the way an analytics tracker without aggregation would.

    python benchmarks/bench_sync.py                 # prints a table, writes results/sync.json
    python benchmarks/bench_sync.py --devices 50 --naive-events 3000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack

import shelfwise
from shelfwise.model.encoding import item_id_from_name
from shelfwise.sync.outbox import summarise
from shelfwise.sync.protocol import Credentials, Envelope, pack_upload, sign_request
from shelfwise.sync.transport import HttpTransport
from shelfwise.sync.upload import Uploader

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "groceries-dated" / "Groceries_dataset.csv"
RESULTS = Path(__file__).parent / "results"
RUN = os.urandom(4).hex()  # fresh baseline keys per run (a re-run must not hit duplicates)
sys.path.insert(0, str(ROOT / "tests"))

from sync_helpers import collector, register  # noqa: E402


def load_lines() -> list[tuple[str, int, str]]:
    """(member, ts_ms at 10:00 UTC that day, item id), in file order."""
    rows = []
    with open(DATA, newline="") as handle:
        for row in csv.DictReader(handle):
            day = dt.datetime.strptime(row["Date"], "%d-%m-%Y").replace(hour=10, tzinfo=dt.UTC)
            rows.append((row["Member_number"], int(day.timestamp() * 1000), row["itemDescription"]))
    return rows


def replay(
    folder: Path, lines: list[tuple[str, int, str]], devices: int
) -> tuple[list[Path], int, int]:
    """Track every line through the SDK on its device; return stores, events and raw bytes."""
    names = sorted({name for _, _, name in lines})
    catalog = [{"item_id": item_id_from_name(n), "name": n} for n in names]
    paths = [folder / f"device-{d}.db" for d in range(devices)]
    events = raw_bytes = 0
    for d, path in enumerate(paths):
        mine = [line for line in lines if int(line[0]) % devices == d]
        with shelfwise.open(path, store_id=f"store-{d}", synchronous="NORMAL") as sw:
            sw.catalog.import_rows(catalog)
            members = {}
            for member, ts, name in mine:
                shopper = members.get(member)
                if shopper is None:
                    shopper = members[member] = sw.member(member, consents={"sync": True})
                item = item_id_from_name(name)
                for kind in ("cart_add", "purchase"):
                    event = shopper.track(kind, item, ts_ms=ts)
                    events += 1
                    raw_bytes += len(
                        msgpack.packb(
                            {
                                "event_id": event.event_id,
                                "shopper_id": member,
                                "type": kind,
                                "item_id": item,
                                "quantity": 1,
                                "store_id": f"store-{d}",
                                "ts_ms": ts,
                            }
                        )
                    )
    return paths, events, raw_bytes


def clone(path: Path, suffix: str) -> Path:
    """A consistent copy of a store file (VACUUM INTO), so each measurement starts equal."""
    copy = path.with_name(f"{path.stem}-{suffix}.db")
    with shelfwise.open(path) as sw:
        sw.store.db.execute(f"VACUUM INTO '{copy}'")
    return copy


def summary_bytes(paths: list[Path], k: int) -> tuple[int, int, int, dict[str, int]]:
    """Summarise copies of every device store with threshold k.

    Returns (bytes, releases, cells, events released): how many purchase/cart_add events
    the released cells count, hourly and as day carry-over (``*_day_rest``).
    """
    total = releases = cells = 0
    released = {"hourly": 0, "day_rest": 0}
    for d, path in enumerate(paths):
        copy = clone(path, f"k{k}")
        with shelfwise.open(copy, synchronous="NORMAL") as sw:
            for info in summarise(sw.store, device_id=f"bench-{d}", k=k):
                total += info.size
                releases += 1 if info.outbox_id else 0
                cells += info.cells
            for row in sw.store.query("SELECT metric, sum(n) AS n FROM sync_released GROUP BY 1"):
                metric = row["metric"]
                if metric in ("purchase", "cart_add"):
                    released["hourly"] += row["n"]
                elif metric in ("purchase_day_rest", "cart_add_day_rest"):
                    released["day_rest"] += row["n"]
    return total, releases, cells, released


def upload_all(url: str, stores: list[Path], creds: list[Credentials], threads: int) -> dict:
    """Upload every device's outbox at once; cells and requests per second."""

    def one(args: tuple[Path, Credentials]) -> tuple[int, int]:
        path, cred = args
        with shelfwise.open(path, synchronous="NORMAL") as sw:
            cells = sum(r["cells"] for r in sw.store.query("SELECT cells FROM sync_outbox"))
            report = Uploader(sw.store, HttpTransport(url), cred).run()
            assert report.complete, report
            return cells, report.requests

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, zip(stores, creds, strict=True)))
    seconds = time.perf_counter() - start
    cells = sum(c for c, _ in results)
    requests = sum(r for _, r in results)
    return {"seconds": seconds, "cells": cells, "requests": requests}


def naive(url: str, creds: list[Credentials], events: int, threads: int) -> dict:
    """Baseline: one signed request per raw event (a one-cell release each)."""
    hour = int(time.time() * 1000) // 3_600_000 * 3_600_000

    def one(index: int) -> None:
        d = index % len(creds)
        cred = creds[d]
        env = Envelope(
            cred.device_id,
            index + 1,
            f"{cred.device_id}:naive{RUN}{index:08d}",
            1,
            hour,
            [["purchase", f"store-{d}", hour, f"i{index % 167}", "", 1, 1]],
        )
        body = pack_upload(cred.device_id, [env.pack()])
        transport = HttpTransport(url)
        headers = sign_request(cred, "POST", "/v1/summaries", body, int(time.time() * 1000))
        assert transport.request("POST", "/v1/summaries", body, headers).status == 200

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(events)))
    return {"seconds": time.perf_counter() - start, "events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--naive-events", type=int, default=2000)
    args = parser.parse_args()
    lines = load_lines()
    out: dict = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "devices": args.devices,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        paths, events, raw = replay(folder, lines, args.devices)
        out["replay_s"] = round(time.perf_counter() - start, 1)
        out["events"] = events
        out["raw_event_bytes"] = raw
        sizes = {}
        for k in (15, 5, 1):
            size, releases, cells, released = summary_bytes(paths, k)
            sizes[k] = {
                "bytes": size,
                "releases": releases,
                "cells": cells,
                "ratio": raw / max(size, 1),
                "events_released_hourly": released["hourly"],
                "events_released_day_rest": released["day_rest"],
                "events_released_share": sum(released.values()) / max(events, 1),
            }
        out["summaries"] = sizes
        backends = [("sqlite", ["--db", str(folder / "collector.db")])]
        if os.environ.get("SHELFWISE_PG_DSN"):
            pg = ["--pg", os.environ["SHELFWISE_PG_DSN"], "--server-key", str(folder / "pg.key")]
            backends.append(("postgres", pg))
        # The groceries data is from 2014-2015: accept buckets that old, and no rate limit
        # (the baseline sends thousands of requests per device as fast as it can).
        serve_args = ["--max-age-days", "10000", "--rate", "0"]
        out["ingest"] = {}
        for name, backend in backends:
            creds = [
                register(backend, f"bench-{d}", stores=(f"store-{d}",)) for d in range(args.devices)
            ]
            stores = [clone(p.with_name(f"{p.stem}-k1.db"), name) for p in paths]
            with collector(backend, *serve_args) as url:
                ours = upload_all(url, stores, creds, args.threads)
                base = naive(url, creds, args.naive_events, args.threads)
            ours_events_s = events / ours["seconds"]
            base_events_s = base["events"] / base["seconds"]
            out["ingest"][name] = {
                "summaries": ours,
                "cells_per_s": ours["cells"] / ours["seconds"],
                "events_represented_per_s": ours_events_s,
                "naive_one_request_per_event": base,
                "naive_events_per_s": base_events_s,
                "speedup": ours_events_s / base_events_s,
            }
    print(f"\nsync benchmark: {events:,} real events (groceries-dated) on {args.devices} devices")
    print(f"{'what':<44}{'bytes':>12}{'x smaller':>11}")
    print(f"{'raw events (msgpack, one per event)':<44}{raw:>12,}{1:>11.1f}")
    for k, s in sizes.items():
        label = f"summaries k={k} ({s['releases']} releases, {s['cells']:,} cells)"
        print(f"{label:<44}{s['bytes']:>12,}{s['ratio']:>11.1f}")
    print(f"\n{'events counted in released cells':<44}{'hourly':>10}{'+day rest':>11}{'share':>8}")
    for k, s in sizes.items():
        print(
            f"{'k=' + str(k):<44}{s['events_released_hourly']:>10,}"
            f"{s['events_released_day_rest']:>11,}{s['events_released_share']:>8.1%}"
        )
    print(
        f"\n{'collector ingest':<24}{'events/s':>14}{'cells/s':>12}{'requests':>10}{'speedup':>9}"
    )
    for name, r in out["ingest"].items():
        print(
            f"{name + ' summaries':<24}{r['events_represented_per_s']:>14,.0f}{r['cells_per_s']:>12,.0f}{r['summaries']['requests']:>10}{r['speedup']:>9.1f}"
        )
        print(
            f"{name + ' naive/event':<24}{r['naive_events_per_s']:>14,.0f}{'':>12}{r['naive_one_request_per_event']['events']:>10}{1:>9.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync.json").write_text(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
