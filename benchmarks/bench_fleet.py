"""Members across a fleet: profiles and erasures between many devices through one collector.

The real groceries-dated baskets (3,898 loyalty members, 14,963 member-day baskets over two
years) are replayed on ``--devices`` simulated devices (threads, each its own store file),
members roaming: each basket happens at the member's home device with probability
``--home``, else at a random other device. Time runs in rounds of ``--round-days``; in each
round every device serves its baskets (the member signs in: their sealed copies are pulled
and merged when the device is online, the purchases are tracked, the profile is sealed
again) and then every online device exchanges with the collector (``sw.fleet.exchange``:
erasures up, the erasure feed down, sealed copies up). Devices drop offline on a random
schedule (``--offline``: the chance to go down in a round, ``--outage`` rounds on average)
and keep serving from what they hold. A share of members (``--forget``) ask to be forgotten
on the device they are at.

Measured: how long a profile change takes to reach the collector (in rounds: the device's
offline spell) and every device (a probe with every device online: change on one, all pull);
erasure propagation (rounds until every device erased the member; a probe in wall time) and
how many devices still hold an erased member at the end (must be 0); bytes per member per
sync; the collector's throughput on SQLite and on PostgreSQL (``SHELFWISE_PG_DSN``, e.g.
``eval "$(bash scripts/postgres.sh start)"``) against its own health endpoint; and the same
member's recommendations on device B against device A (overlap@10) after B pulled the
profile, against B without the fleet.

    python benchmarks/bench_fleet.py              # --small (default): 50 devices, ~2 min
    python benchmarks/bench_fleet.py --full       # 100 devices, every member, weekly rounds

Members use the phone app's random key (no Argon2id per sign-in: that cost is a kiosk's,
about a second, and is not what is measured here); stores run ``synchronous=NORMAL``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import shelfwise
from shelfwise.model.encoding import item_id_from_name
from shelfwise.sync.protocol import (
    PROFILES_PATH,
    Credentials,
    ProfileAnswer,
    ProfileUpload,
    SealedCopy,
    pack_wire,
    sign_request,
    unpack_wire,
)
from shelfwise.sync.transport import HttpTransport

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "groceries-dated" / "Groceries_dataset.csv"
BUNDLE = ROOT / "kiosk_demo" / "store" / "bundle"
RESULTS = Path(__file__).parent / "results"
SECRET = b"the-benchmark-chain-secret-000000"
OFFLINE_URL = "http://127.0.0.1:9"  # connection refused at once: a device with no network
CONSENTS = {"personalization": True, "profile_sync": True}
sys.path.insert(0, str(ROOT / "tests"))

from sync_helpers import collector, open_backend  # noqa: E402


def load_baskets() -> list[tuple[str, dt.date, list[str]]]:
    """(member, day, item ids) per member-day basket, in date order."""
    grouped: dict[tuple[str, dt.date], list[str]] = defaultdict(list)
    with open(DATA, newline="") as handle:
        for row in csv.DictReader(handle):
            day = dt.datetime.strptime(row["Date"], "%d-%m-%Y").date()
            grouped[(row["Member_number"], day)].append(item_id_from_name(row["itemDescription"]))
    return sorted(((m, d, items) for (m, d), items in grouped.items()), key=lambda b: (b[1], b[0]))


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Device:
    """One simulated device: its store, credentials, and whether its network is up."""

    def __init__(self, index: int, folder: Path, creds: Credentials, catalog: list[dict]) -> None:
        self.index = index
        self.creds = creds
        self.sw = shelfwise.open(
            folder / f"device-{index:03d}.db",
            store_id=f"store-{index:03d}",
            chain_secret=SECRET,
            synchronous="NORMAL",
        )
        self.sw.catalog.import_rows(catalog)
        self.online = True
        self.down_rounds = 0
        self.unsent: list[tuple[str, int]] = []  # (member, round sealed), not yet acknowledged
        self.bytes = {"exchange": 0, "pull": 0}
        self.lock = threading.Lock()

    def url(self, upstream: str) -> str:
        return upstream if self.online else OFFLINE_URL


class Fleet:
    """The simulation: devices, members' keys, what happened and when."""

    def __init__(
        self, args: argparse.Namespace, folder: Path, upstream: str, creds: list, items: set[str]
    ) -> None:
        self.args = args
        self.upstream = upstream
        self.rng = random.Random(args.seed)
        catalog = [{"item_id": i, "name": i.replace("-", " ")} for i in sorted(items)]
        self.devices = [Device(d, folder, creds[d], catalog) for d in range(args.devices)]
        self.keys: dict[str, bytes] = {}
        self.home: dict[str, int] = {}
        self.erased: dict[str, tuple[int, int]] = {}  # member -> (round, erased_ms)
        self.erasure_done: dict[str, int] = {}  # member -> round every device had erased
        self.delays: list[int] = []  # rounds from a seal to the collector's acknowledgement
        self.copies = 0
        self.copy_bytes: list[int] = []
        self.pull_bytes: list[int] = []
        self.pulls = {"online": 0, "offline": 0}
        self.visits_per_member = 1
        self.lock = threading.Lock()

    # -- one basket: sign in, pull, buy, seal -----------------------------------------------
    def visit(self, device: Device, member: str, day: dt.date, items: list[str], rnd: int) -> None:
        sw = device.sw
        shopper = sw.member(member, consents=CONSENTS)
        pulled = shopper.pull_profile(
            self.keys[member], device.url(self.upstream), device.creds, timeout_s=30
        )
        if not pulled.online:
            self.pulls["offline"] += 1
        else:
            self.pulls["online"] += 1
            self.pull_bytes.append(pulled.bytes_received)
        try:
            shopper = sw.shopper(member)
        except shelfwise.UnknownShopper:  # erased elsewhere: the pull applied it
            return
        stamp = int(dt.datetime(day.year, day.month, day.day, 10, tzinfo=dt.UTC).timestamp())
        for n, item in enumerate(items):
            shopper.track("purchase", item, ts_ms=stamp * 1000 + n, event_id=f"{member}-{day}-{n}")
        self.copy_bytes.append(len(shopper.seal_profile(self.keys[member])))
        device.unsent.append((member, rnd))

    def serve(self, device: Device, baskets: list, rnd: int) -> None:
        with device.lock:
            for member, day, items in baskets:
                if member in self.erased:
                    continue  # they asked to be forgotten and shop elsewhere now
                self.visit(device, member, day, items, rnd)
                if self.rng.random() < self.args.forget / max(1, self.visits_per_member):
                    device.sw.forget_shopper(member)
                    self.erased[member] = (rnd, device.sw.fleet.erased_at(member))

    def exchange(self, device: Device, rnd: int) -> None:
        with device.lock:
            before = device.sw.fleet.status().pending_copies
            report = device.sw.fleet.exchange(self.upstream, device.creds, timeout_s=60)
            device.bytes["exchange"] += report.bytes_sent + report.bytes_received
            if report.error is None:
                with self.lock:
                    self.copies += report.copies_stored if before else 0
                    self.delays.extend(rnd - sealed for _, sealed in device.unsent)
                device.unsent = []

    # -- the schedule --------------------------------------------------------------------------
    def network(self) -> None:
        for device in self.devices:
            if device.down_rounds > 0:
                device.down_rounds -= 1
                device.online = device.down_rounds == 0
            elif self.rng.random() < self.args.offline:
                device.online = False
                device.down_rounds = max(1, round(self.rng.expovariate(1 / self.args.outage)))

    def check_erasures(self, rnd: int) -> None:
        pending = [m for m in self.erased if m not in self.erasure_done]
        if not pending:
            return
        for member in pending:
            _, erased_ms = self.erased[member]
            if all(d.sw.fleet.erased_at(member) >= erased_ms for d in self.devices):
                self.erasure_done[member] = rnd

    def run(self, baskets: list, pool: ThreadPoolExecutor) -> dict[str, Any]:
        members = sorted({m for m, _, _ in baskets})
        for member in members:
            self.keys[member] = os.urandom(32)  # the phone app's key
            self.home[member] = self.rng.randrange(len(self.devices))
        self.visits_per_member = max(1, len(baskets) // max(1, len(members)))
        start_day = baskets[0][1]
        rounds: dict[int, list] = defaultdict(list)
        for basket in baskets:
            rounds[(basket[1] - start_day).days // self.args.round_days].append(basket)
        last = max(rounds)
        started = time.perf_counter()
        round_s: list[float] = []
        for rnd in range(last + 1):
            began = time.perf_counter()
            self.network()
            by_device: dict[int, list] = defaultdict(list)
            for basket in rounds.get(rnd, []):
                member = basket[0]
                roam = self.rng.random() >= self.args.home
                where = self.rng.randrange(len(self.devices)) if roam else self.home[member]
                by_device[where].append(basket)
            list(
                pool.map(
                    lambda d, b=by_device, r=rnd: self.serve(self.devices[d], b[d], r), by_device
                )
            )
            online = [d for d in self.devices if d.online]
            list(pool.map(lambda d, r=rnd: self.exchange(d, r), online))
            self.check_erasures(rnd)
            round_s.append(time.perf_counter() - began)
        # Everyone back online: two exchange rounds deliver whatever waited.
        for device in self.devices:
            device.online, device.down_rounds = True, 0
        for extra in (1, 2):
            list(pool.map(lambda d, r=last + extra: self.exchange(d, r), self.devices))
            self.check_erasures(last + extra)
        return {
            "rounds": last + 1,
            "simulate_s": time.perf_counter() - started,
            "round_s_median": statistics.median(round_s),
            "members": len(members),
            "baskets": len(baskets),
        }

    def still_holding(self) -> int:
        """(device, erased member) pairs where the device still holds anything of them."""
        held = 0
        for device in self.devices:
            for member in self.erased:
                rows = device.sw.store.query(
                    "SELECT (SELECT count(*) FROM shoppers WHERE shopper_id = ?) + "
                    "(SELECT count(*) FROM events WHERE shopper_id = ?) AS n",
                    [member, member],
                )
                held += bool(rows[0]["n"])
        return held

    # -- probes with every device online ----------------------------------------------------------
    def probe_profiles(self, pool: ThreadPoolExecutor, count: int) -> list[float]:
        """Change a member on one device; wall time until every device holds the change."""
        times = []
        live = [m for m in self.keys if m not in self.erased]
        for member in self.rng.sample(live, min(count, len(live))):
            origin = self.devices[self.home[member]]
            event_id = f"probe-{member}-{os.urandom(4).hex()}"
            began = time.perf_counter()
            with origin.lock:
                shopper = origin.sw.member(member, consents=CONSENTS)
                shopper.track("purchase", "whole-milk", event_id=event_id)
                shopper.seal_profile(self.keys[member])
            self.exchange(origin, -1)

            def pull(device: Device, member: str = member, event_id: str = event_id) -> bool:
                with device.lock:
                    on = device.sw.member(member, consents=CONSENTS)
                    on.pull_profile(self.keys[member], self.upstream, device.creds, timeout_s=60)
                    got = device.sw.store.query(
                        "SELECT 1 FROM events WHERE event_id = ?", [event_id]
                    )
                    return bool(got)

            assert all(pool.map(pull, self.devices)), "a device missed the change"
            times.append(time.perf_counter() - began)
        return times

    def probe_erasures(self, pool: ThreadPoolExecutor, count: int) -> list[float]:
        """Forget a member on one device; wall time until every device erased them."""
        times = []
        live = [m for m in self.keys if m not in self.erased]
        for member in self.rng.sample(live, min(count, len(live))):
            origin = self.devices[self.rng.randrange(len(self.devices))]
            began = time.perf_counter()
            with origin.lock:
                origin.sw.member(member)
                origin.sw.forget_shopper(member)
                erased_ms = origin.sw.fleet.erased_at(member)
            self.erased[member] = (-1, erased_ms)
            self.exchange(origin, -1)
            list(pool.map(lambda d: self.exchange(d, -1), self.devices))
            assert all(d.sw.fleet.erased_at(member) >= erased_ms for d in self.devices)
            times.append(time.perf_counter() - began)
        return times

    # -- recommendations on device B against device A ---------------------------------------------
    def overlap(self, count: int) -> dict[str, float]:
        """overlap@10 of for-you on the member's home device A and on a device B they never
        visited: with B's pull of their profile, and without (B alone)."""
        visited: dict[str, set[int]] = defaultdict(set)
        for d in self.devices:
            for row in d.sw.store.query("SELECT shopper_id FROM shoppers WHERE kind = 'member'"):
                visited[row["shopper_id"]].add(d.index)
        live = [
            m for m in self.keys if m not in self.erased and len(visited[m]) < len(self.devices)
        ]
        sample = self.rng.sample(live, min(count, len(live)))
        with_fleet, without = [], []
        loaded: set[int] = set()
        for member in sample:
            a = self.devices[self.home[member]]
            b = self.devices[self.rng.choice(
                [d for d in range(len(self.devices)) if d not in visited[member]]
            )]  # fmt: skip
            for device in (a, b):
                if device.index not in loaded:
                    device.sw.load_bundle(BUNDLE)
                    loaded.add(device.index)
            on_a = a.sw.member(member, consents=CONSENTS)
            on_a.pull_profile(self.keys[member], self.upstream, a.creds)
            top_a = {r.item.item_id for r in on_a.recommend("for-you", limit=10)}
            on_b = b.sw.member(member, consents=CONSENTS)
            alone = {r.item.item_id for r in on_b.recommend("for-you", limit=10)}
            on_b.pull_profile(self.keys[member], self.upstream, b.creds)
            top_b = {r.item.item_id for r in on_b.recommend("for-you", limit=10)}
            with_fleet.append(len(top_a & top_b) / 10)
            without.append(len(top_a & alone) / 10)
        return {
            "members": len(sample),
            "with_fleet": statistics.mean(with_fleet) if with_fleet else 0.0,
            "without_fleet": statistics.mean(without) if without else 0.0,
        }


def register(backend: list[str], count: int, prefix: str) -> list[Credentials]:
    """Register devices straight in the collector's database (quicker than the CLI)."""
    storage = open_backend(backend)
    try:
        return [
            Credentials(f"{prefix}-{d:03d}", storage.add_device(f"{prefix}-{d:03d}"))
            for d in range(count)
        ]
    finally:
        storage.close()


def throughput(backend: list[str], devices: int, ops: int) -> dict[str, float]:
    """Copies stored and fetched per second with ``devices`` devices at once, against the
    same collector's health endpoint (no storage: the HTTP ceiling)."""
    creds = register(backend, devices, f"tp{os.urandom(2).hex()}")
    sealed = os.urandom(6_000)

    def work(index: int) -> tuple[int, int]:
        cred = creds[index]
        transport = HttpTransport(url, timeout_s=60)
        previous: dict[str, str] = {}
        stored = fetched = 0
        for n in range(ops):
            member = f"{index:032x}{n % 8:032x}"
            copy = SealedCopy(member, os.urandom(16).hex(), 0, sealed,
                              (previous[member],) if member in previous else ())  # fmt: skip
            body = pack_wire(ProfileUpload(1, cred.device_id, [copy]))
            headers = sign_request(cred, "POST", PROFILES_PATH, body, int(time.time() * 1000))
            reply = transport.request("POST", PROFILES_PATH, body, headers)
            assert unpack_wire(reply.body, ProfileAnswer).outcomes[0].outcome == "stored"
            previous[member] = copy.copy_id
            stored += 1
            path = f"{PROFILES_PATH}/{member}"
            headers = sign_request(cred, "GET", path, b"", int(time.time() * 1000))
            assert transport.request("GET", path, b"", headers, max_bytes=1 << 24).status == 200
            fetched += 1
        return stored, fetched

    def health(index: int) -> int:
        transport = HttpTransport(url, timeout_s=60)
        for _ in range(ops * 2):
            assert transport.request("GET", "/v1/health").status == 200
        return ops * 2

    with collector(backend, "--rate", "0") as url, ThreadPoolExecutor(devices) as pool:
        began = time.perf_counter()
        results = list(pool.map(work, range(devices)))
        seconds = time.perf_counter() - began
        began = time.perf_counter()
        baseline = sum(pool.map(health, range(devices)))
        base_s = time.perf_counter() - began
    requests = sum(s + f for s, f in results)
    return {
        "requests_per_s": requests / seconds,
        "copies_stored_per_s": sum(s for s, _ in results) / seconds,
        "health_per_s": baseline / base_s,
        "share_of_health": (requests / seconds) / (baseline / base_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="the quick default (~2 minutes)")
    size.add_argument("--full", action="store_true", help="100 devices, every member, weekly")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--members", type=int, help="members replayed (default: small 2,000)")
    parser.add_argument("--round-days", type=int)
    parser.add_argument("--home", type=float, default=0.6, help="share of visits at home")
    parser.add_argument("--offline", type=float, default=0.15, help="chance to go down a round")
    parser.add_argument("--outage", type=float, default=2.0, help="mean rounds a device is down")
    parser.add_argument("--forget", type=float, default=0.03, help="share of members erased")
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tp-ops", type=int, default=20, help="throughput ops per device")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.devices = args.devices or (100 if args.full else 50)
    args.round_days = args.round_days or (7 if args.full else 28)
    baskets = load_baskets()
    members = sorted({m for m, _, _ in baskets})
    wanted = args.members or (len(members) if args.full else 2000)
    chosen = set(random.Random(args.seed).sample(members, min(wanted, len(members))))
    baskets = [b for b in baskets if b[0] in chosen]
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "args": {k: v for k, v in vars(args).items() if k not in ("small", "full")},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backend = ["--db", str(folder / "collector.db")]
        creds = register(backend, args.devices, "device")
        with collector(backend, "--rate", "0") as url, ThreadPoolExecutor(args.threads) as pool:
            items = {i for _, _, basket in baskets for i in basket}
            fleet = Fleet(args, folder, url, creds, items)
            out["simulation"] = fleet.run(baskets, pool)
            out["held_after"] = fleet.still_holding()
            rounds = list(fleet.erasure_done.values())
            erasure_delays = [
                fleet.erasure_done[m] - r
                for m, (r, _) in fleet.erased.items()
                if m in fleet.erasure_done
            ]
            out["profile_to_collector_rounds"] = {
                "p50": pct(fleet.delays, 0.5), "p95": pct(fleet.delays, 0.95), "max": max(fleet.delays, default=0),
                "copies": fleet.copies,
            }  # fmt: skip
            out["erasure_rounds"] = {
                "erased": len(fleet.erased), "propagated": len(rounds),
                "p50": pct(erasure_delays, 0.5), "p95": pct(erasure_delays, 0.95),
                "max": max(erasure_delays, default=0),
            }  # fmt: skip
            profile_probe = fleet.probe_profiles(pool, args.probes)
            erasure_probe = fleet.probe_erasures(pool, args.probes)
            out["probe_profile_s"] = {
                "median": statistics.median(profile_probe),
                "max": max(profile_probe),
            }
            out["probe_erasure_s"] = {
                "median": statistics.median(erasure_probe),
                "max": max(erasure_probe),
            }
            out["held_at_end"] = fleet.still_holding()
            exchange_bytes = sum(d.bytes["exchange"] for d in fleet.devices)
            member_syncs = max(1, len(fleet.copy_bytes))
            out["bytes"] = {
                "sealed_copy_mean": statistics.mean(fleet.copy_bytes),
                "sealed_copy_p95": pct([float(b) for b in fleet.copy_bytes], 0.95),
                "pull_mean": statistics.mean(fleet.pull_bytes) if fleet.pull_bytes else 0,
                "exchange_per_member_sync": exchange_bytes / member_syncs,
                "pulls_online": fleet.pulls["online"],
                "pulls_offline_served_locally": fleet.pulls["offline"],
            }
            out["overlap_at_10"] = fleet.overlap(min(100, len(chosen)))
            for device in fleet.devices:
                device.sw.close()
        out["throughput"] = {"sqlite": throughput(["--db", str(folder / "tp.db")], 50, args.tp_ops)}
        if os.environ.get("SHELFWISE_PG_DSN"):
            pg = ["--pg", os.environ["SHELFWISE_PG_DSN"], "--server-key", str(folder / "pg.key")]
            out["throughput"]["postgres"] = throughput(pg, 50, args.tp_ops)
    report(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("fleet_full.json" if args.full else "fleet.json")).write_text(
        json.dumps(out, indent=2, sort_keys=True)
    )


def report(out: dict[str, Any]) -> None:
    sim, args = out["simulation"], out["args"]
    print(
        f"\nfleet benchmark: {sim['members']:,} members, {sim['baskets']:,} real baskets "
        f"(groceries-dated), {args['devices']} devices, {sim['rounds']} rounds of "
        f"{args['round_days']} days, {sim['simulate_s']:.0f} s"
    )
    p, e = out["profile_to_collector_rounds"], out["erasure_rounds"]
    b, o = out["bytes"], out["overlap_at_10"]
    rows = [
        ("profile change at the collector (rounds)", f"p50 {p['p50']}, p95 {p['p95']}, max {p['max']}"),
        ("profile change on every device (probe, s)", f"median {out['probe_profile_s']['median']:.2f}, max {out['probe_profile_s']['max']:.2f}"),
        ("erasure on every device (rounds)", f"p50 {e['p50']}, p95 {e['p95']}, max {e['max']} ({e['propagated']}/{e['erased']})"),
        ("erasure on every device (probe, s)", f"median {out['probe_erasure_s']['median']:.2f}, max {out['probe_erasure_s']['max']:.2f}"),
        ("devices holding an erased member at the end", str(out["held_at_end"])),
        ("sealed copy (bytes)", f"mean {b['sealed_copy_mean']:,.0f}, p95 {b['sealed_copy_p95']:,.0f}"),
        ("pull at sign-in (bytes)", f"mean {b['pull_mean']:,.0f}"),
        ("exchange bytes per member per sync", f"{b['exchange_per_member_sync']:,.0f}"),
        ("sign-ins served offline from the store", f"{b['pulls_offline_served_locally']:,} of {b['pulls_offline_served_locally'] + b['pulls_online']:,}"),
        ("overlap@10 B vs A, B pulled the profile", f"{o['with_fleet']:.2f} ({o['members']} members)"),
        ("overlap@10 B vs A, B alone (baseline)", f"{o['without_fleet']:.2f}"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:<46}{value}")
    print(
        f"\n{'collector (50 devices at once)':<32}{'requests/s':>12}{'copies/s':>10}{'health/s':>10}{'share':>7}"
    )
    for name, t in out["throughput"].items():
        print(
            f"{name:<32}{t['requests_per_s']:>12,.0f}{t['copies_stored_per_s']:>10,.0f}"
            f"{t['health_per_s']:>10,.0f}{t['share_of_health']:>7.0%}"
        )


if __name__ == "__main__":
    main()
