"""Promotions a till can trust, across a partitioned fleet: fleet-wide caps, single-use codes
and per-customer limits, measured on simulated devices against a real collector.

``--devices`` devices (each a real ``shelfwise.open`` store file) share one collector process
(uvicorn, SQLite, over HTTP on localhost). Time runs in ``--rounds`` rounds; each round a
random subset of devices cannot reach the collector (each device is cut off with probability
``--offline``, for ``--outage`` rounds on average) and keeps serving from its store. Each round
``--visits`` shoppers per device arrive (a member drawn from ``--members``, at most one visit
per member a round, at a random device); at each visit:

- an online device pulls the member's sealed profile from the collector (``pull_profile``: their
  uses of per-customer offers on other devices travel in it, and it confirms them);
- the shopper tries the two fleet-wide offers (a total cap and a money budget, both shared out
  as leases) and the three once-per-member offers (offline policy ``deny``, ``allow`` and
  ``{allow_up_to: 1}`` on a 3-per-member offer); then the profile is sealed again;
- a shopper tries a single-use code (issued by one device, only it knows it) on this device.

At the end of a round every online device syncs (``sw.sync``: sealed copies, the redemption
ledger, then lease asks). Demand exceeds the caps: ``--total`` and ``--budget`` default to the
demand of the partitioned rounds less 10%. After them every device comes back online for
``--settle`` rounds (unused shares return, the fleet keeps redeeming). Leases last ``--ttl``
seconds (60 at least); ``--round-s`` pads each round so that an outage outlives a lease.

Measured, from every device's store (the ground truth) and from the collector's ``reconcile()``:
over-redemption of the caps (must be 0) and how much of each cap was redeemed while partitioned
and by the end, with the refusals by reason; redemptions per code (at most 1); per-customer uses
beyond the limit, online and offline per policy; and the collector's lease requests per second
with ``--threads`` device threads at once, on SQLite and on PostgreSQL (``SHELFWISE_PG_DSN``,
e.g. ``eval "$(bash scripts/postgres.sh start)"``), against ``/v1/health`` in the same run.

    python benchmarks/bench_fleet_offers.py                  # 50 devices, ~3 minutes
    python benchmarks/bench_fleet_offers.py --devices 100 --rounds 20 --visits 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import shelfwise
from shelfwise.sync.leasing import (
    LEASES_PATH,
    CollectorAuthority,
    LeaseAnswer,
    LeaseRequest,
    WireAsk,
)
from shelfwise.sync.protocol import (
    Credentials,
    generate_signing_key,
    pack_wire,
    sign_document,
    sign_request,
    unpack_wire,
)
from shelfwise.sync.transport import HttpTransport

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SECRET = b"the-benchmark-chain-secret-000000"
OFFLINE_URL = "http://127.0.0.1:9"  # connection refused at once: a device with no network
CONSENTS = {"offers": True, "profile_sync": True}
CATALOG = [{"item_id": "milk", "name": "Milk", "price": 10.0}]
BUDGET_REWARD = 2.5  # money per redemption of the budget-capped offer
FLEET_OFFERS = ("fleet-total", "fleet-budget")
ONCE_OFFERS = {"once-deny": 1, "once-allow": 1, "once-upto": 3}  # offer -> uses per member
sys.path.insert(0, str(ROOT / "tests"))

from sync_helpers import collector, open_backend  # noqa: E402


def offers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The chain's offers document: two fleet-wide caps, a code offer, three per-member ones."""

    def amount(offer_id: str, value: float, **extra: Any) -> dict[str, Any]:
        return {"offer_id": offer_id, "title": offer_id, "reward": {"type": "amount", "value": value}, **extra}  # fmt: skip

    def once(offline: Any, uses: int) -> dict[str, Any]:
        return {"per_customer": uses, "offline": offline, "confirm_within_s": args.confirm_s}

    lease = {"redemptions": args.lease, "ttl_s": args.ttl}
    money = {"budget": args.lease * BUDGET_REWARD, "ttl_s": args.ttl}
    return [
        amount("fleet-total", 1, limits={"scope": "fleet", "total_redemptions": args.total, "lease": lease}),
        amount("fleet-budget", BUDGET_REWARD, limits={"scope": "fleet", "budget": args.budget, "lease": money}),
        amount("code-once", 1, codes="unique"),
        amount("once-deny", 1, limits=once("deny", 1)),
        amount("once-allow", 1, limits=once("allow", 1)),
        amount("once-upto", 1, limits=once({"allow_up_to": 1}, 3)),
    ]  # fmt: skip


def publish_offers(backend: list[str], rows: list[dict[str, Any]], private: bytes) -> None:
    for row in rows:
        shelfwise.parse_offer(row)  # a bad row would be refused by every device
    storage = open_backend(backend)
    try:
        version = storage.latest_version("offers") + 1
        storage.publish(sign_document("offers", {"offers": rows}, version=version, private_key=private))  # fmt: skip
    finally:
        storage.close()


@contextmanager
def fresh_pg_database(dsn: str) -> Iterator[str]:
    """A new empty database on the server of ``dsn`` (dropped afterwards): the benchmark
    never writes into a database someone else uses."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"sw_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def register(backend: list[str], count: int, prefix: str) -> list[Credentials]:
    """Register devices straight in the collector's database (quicker than the CLI)."""
    storage = open_backend(backend)
    try:
        return [
            Credentials(f"{prefix}-{d:03d}", storage.add_device(f"{prefix}-{d:03d}", stores=(f"s{d}",)))
            for d in range(count)
        ]  # fmt: skip
    finally:
        storage.close()


@dataclass
class Device:
    """One simulated device: its store, credentials, network state, last good sync."""

    index: int
    sw: shelfwise.Shelfwise
    creds: Credentials
    online: bool = True
    down_rounds: int = 0
    synced_round: int = -1  # the last round its sync reached the collector
    codes: list[str] = field(default_factory=list)


@dataclass
class Use:
    """One per-customer redemption: where, when, whether the device was online."""

    device: int
    rnd: int
    online: bool
    earlier_reported: bool  # every earlier use had reached the collector before this visit


class Simulation:
    """The partitioned fleet and what happened in it (the ground truth)."""

    def __init__(self, args: argparse.Namespace, folder: Path, url: str, creds: list[Credentials], public: bytes) -> None:  # fmt: skip
        self.args, self.url = args, url
        self.rng = random.Random(args.seed)
        self.devices = []
        for d, cred in enumerate(creds):
            sw = shelfwise.open(folder / f"device-{d:03d}.db", store_id=f"s{d}", chain_secret=SECRET, synchronous="NORMAL")  # fmt: skip
            sw.catalog.import_rows(CATALOG)
            self.devices.append(Device(d, sw, cred))
        for device in self.devices:  # the offers document comes down once, then shares
            report = device.sw.sync(url, device.creds, public_key=public, k=1, fleet=False, documents=("offers",))  # fmt: skip
            assert report.error is None, report.error
            device.codes = device.sw.offers.issue_codes("code-once", args.codes)
        self.keys = {f"M{m:05d}": os.urandom(32) for m in range(args.members)}  # phone-app keys
        self.refusals: dict[str, Counter[str]] = defaultdict(Counter)
        self.redeemed: dict[str, list[int]] = defaultdict(list)  # fleet offer -> redemptions a round
        self.uses: dict[tuple[str, str], list[Use]] = defaultdict(list)
        self.code_tries: Counter[str] = Counter()
        self.code_redeemed: Counter[str] = Counter()
        self.online_unconfirmed = 0
        self.partitioned = 0

    # -- the network -----------------------------------------------------------------------
    def network(self) -> None:
        for device in self.devices:
            if device.down_rounds > 0:
                device.down_rounds -= 1
                device.online = device.down_rounds == 0
            elif self.rng.random() < self.args.offline:
                device.online = False
                device.down_rounds = max(1, round(self.rng.expovariate(1 / self.args.outage)))

    # -- one visit -------------------------------------------------------------------------
    def try_offer(self, device: Device, member: str, offer_id: str) -> str | None:
        """Redeem an offer (or a code) for the member; the refusal's reason, None if redeemed."""
        try:
            device.sw.offers.redeem(offer_id, shopper_id=member, cart_total=10.0)
        except shelfwise.OfferRejected as refused:
            key = "code-once" if offer_id not in ONCE_OFFERS and offer_id not in FLEET_OFFERS else offer_id
            self.refusals[key][refused.reason] += 1
            return refused.reason
        return None

    def visit(self, device: Device, member: str, rnd: int, counts: Counter[str]) -> None:
        sw = device.sw
        shopper = sw.member(member, consents=CONSENTS)
        online = device.online
        if self.args.central:  # the collector counts members' uses while the device reaches it
            where = self.url if online else "http://127.0.0.1:9"
            sw.offers.use_collector(CollectorAuthority(where, device.creds, timeout_s=60, blind=sw.fleet.blinded_id))  # fmt: skip
        if online:
            online = shopper.pull_profile(self.keys[member], self.url, device.creds, timeout_s=60).online
        for offer_id in FLEET_OFFERS:
            counts[offer_id] += self.try_offer(device, member, offer_id) is None
        for offer_id in ONCE_OFFERS:
            reason = self.try_offer(device, member, offer_id)
            if reason is None:
                earlier = self.uses[(member, offer_id)]
                reported = all(self.devices[u.device].synced_round >= u.rnd for u in earlier)
                earlier.append(Use(device.index, rnd, online, reported))
            elif online and reason == "customer_unconfirmed":
                self.online_unconfirmed += 1  # pulled just now, yet not confirmed
        shopper.seal_profile(self.keys[member])
        owner = self.rng.choice(self.devices)
        if owner.codes:
            code = self.rng.choice(owner.codes)
            self.code_tries[code] += 1
            if self.try_offer(device, member, code) is None:
                self.code_redeemed[code] += 1

    def round(self, rnd: int, partitions: bool) -> None:
        if partitions:
            self.network()
        else:
            for device in self.devices:
                device.online, device.down_rounds = True, 0
        self.partitioned += sum(not d.online for d in self.devices)
        members = self.rng.sample(sorted(self.keys), min(len(self.keys), self.args.visits * len(self.devices)))  # fmt: skip
        counts: Counter[str] = Counter()
        for member in members:
            self.visit(self.rng.choice(self.devices), member, rnd, counts)
        for offer_id in FLEET_OFFERS:
            self.redeemed[offer_id].append(counts[offer_id])
        for device in self.devices:
            if device.online:
                report = device.sw.sync(self.url, device.creds, k=1, fleet=False, documents=())
                if report.error is None:
                    device.synced_round = rnd

    # -- what the stores say ---------------------------------------------------------------------
    def fleet_counts(self, offer_id: str) -> tuple[int, float]:
        """Redemptions and money of an offer committed on every device (the ground truth)."""
        n, spent = 0, 0.0
        for device in self.devices:
            stats = device.sw.offers.stats(offer_id)
            n += int(stats["redemptions"])
            spent += float(stats["spent"])
        return n, round(spent, 2)

    def stranded(self) -> dict[str, dict[str, float]]:
        """Per fleet offer: the unused part of the shares offline devices hold (nobody else can
        redeem it until they report), and how many of those shares already lapsed."""
        out = {o: {"redemptions": 0.0, "budget": 0.0, "lapsed": 0.0} for o in FLEET_OFFERS}
        for device in self.devices:
            if device.online:
                continue
            for share in device.sw.offers.leases():
                held = out[share.offer_id]
                held["lapsed"] += not share.live
                if share.live:
                    held["redemptions"] += max(0, (share.redemptions or 0) - share.used_redemptions)
                    held["budget"] += max(0.0, (share.budget or 0.0) - share.used_budget)
        return out

    def beyond_limit(self) -> dict[str, dict[str, int]]:
        """Per offer: uses beyond each member's limit, made online and offline, and the online
        ones whose earlier uses had all reached the collector (a real miss: must be 0)."""
        out: dict[str, dict[str, int]] = {}
        for offer_id, limit in ONCE_OFFERS.items():
            row = Counter(uses=0, members=0, online_beyond=0, offline_beyond=0, online_beyond_all_reported=0, max_offline_uses_per_device=0)  # fmt: skip
            for (_, oid), uses in self.uses.items():
                if oid != offer_id:
                    continue
                row["members"] += 1
                row["uses"] += len(uses)
                per_device: Counter[int] = Counter(u.device for u in uses if not u.online)
                row["max_offline_uses_per_device"] = max(row["max_offline_uses_per_device"], *per_device.values(), 0)  # fmt: skip
                for n, use in enumerate(uses):
                    if n < limit:
                        continue
                    row["online_beyond" if use.online else "offline_beyond"] += 1
                    row["online_beyond_all_reported"] += use.online and use.earlier_reported
            out[offer_id] = dict(row)
        return out

    def close(self) -> None:
        for device in self.devices:
            device.sw.close()


def run_simulation(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    backend = ["--db", str(folder / "collector.db")]
    private, public = generate_signing_key()
    publish_offers(backend, offers(args), private)
    creds = register(backend, args.devices, "device")
    began = time.perf_counter()
    with collector(backend, "--rate", "0") as url:
        sim = Simulation(args, folder, url, creds, public)
        rounds = args.rounds + args.settle
        for rnd in tqdm(range(rounds), desc="rounds", leave=False):
            started = time.monotonic()
            sim.round(rnd, partitions=rnd < args.rounds)
            time.sleep(max(0.0, args.round_s - (time.monotonic() - started)))
            if rnd == args.rounds - 1:
                partitioned = {o: sim.fleet_counts(o) for o in FLEET_OFFERS}
                stranded = sim.stranded()
        final = {o: sim.fleet_counts(o) for o in FLEET_OFFERS}
        storage = open_backend(backend)
        try:
            over = [o.to_dict() for o in storage.reconcile()]
            shares = {s.offer_id: s.to_dict() for s in storage.shares()}
            reported = dict(storage.db.execute("SELECT offer_id, count(*) FROM fleet_redemptions WHERE voided = 0 GROUP BY 1").fetchall())  # fmt: skip
        finally:
            storage.close()
        out = summarise(sim, args, partitioned, stranded, final, over, shares, reported)
        sim.close()
    out["simulate_s"] = time.perf_counter() - began
    return out


def summarise(sim: Simulation, args: argparse.Namespace, partitioned: dict, stranded: dict, final: dict, over: list, shares: dict, reported: dict) -> dict[str, Any]:  # fmt: skip
    caps = {"fleet-total": (args.total, 0), "fleet-budget": (args.budget, 1)}
    fleet = {}
    for offer_id, (cap, which) in caps.items():
        used_p, used_f = partitioned[offer_id][which], final[offer_id][which]
        fleet[offer_id] = {
            "cap": cap,
            "unit": "redemptions" if which == 0 else "money",
            "demand": args.visits * args.devices * (args.rounds + args.settle) * (1 if which == 0 else BUDGET_REWARD),
            "used_partitioned": used_p,
            "stranded_partitioned": stranded[offer_id],
            "used_final": used_f,
            "share_partitioned": used_p / cap,
            "share_final": used_f / cap,
            "over_redeemed": max(0.0, used_f - cap),
            "collector_heard": reported.get(offer_id, 0),
            "collector_used": shares.get(offer_id, {}).get("used_redemptions"),
            "refusals": dict(sim.refusals[offer_id]),
            "redeemed_per_round": sim.redeemed[offer_id],
        }
    return {
        "fleet": fleet,
        "codes": {
            "issued": args.codes * args.devices,
            "tried": sum(sim.code_tries.values()),
            "distinct_tried": len(sim.code_tries),
            "redeemed": sum(sim.code_redeemed.values()),
            "max_redemptions_per_code": max(sim.code_redeemed.values(), default=0),
            "refusals": dict(sim.refusals["code-once"]),
            "collector_heard": reported.get("code-once", 0),
        },
        "per_customer": sim.beyond_limit(),
        "per_customer_refusals": {o: dict(sim.refusals[o]) for o in ONCE_OFFERS},
        "online_unconfirmed": sim.online_unconfirmed,
        "reconcile": over,
        "reconcile_vs_stores": agreement(sim, over, final, caps),
        "reconcile_kinds": _kinds(over),
        "device_rounds_partitioned": sim.partitioned,
        "device_rounds": args.devices * args.rounds,
    }


def agreement(sim: Simulation, over: list[dict[str, Any]], final: dict, caps: dict) -> dict[str, Any]:
    """What reconcile() reported against what the stores hold: members over each per-customer
    limit and their uses beyond it, codes redeemed twice, caps gone past."""
    out: dict[str, Any] = {}
    for offer_id, limit in ONCE_OFFERS.items():
        counts = [len(u) for (_, o), u in sim.uses.items() if o == offer_id]
        found = [o for o in over if o["kind"] == "customer" and o["offer_id"] == offer_id]
        out[offer_id] = {
            "stores_members_over": sum(n > limit for n in counts),
            "stores_uses_beyond": sum(max(0, n - limit) for n in counts),
            "reconcile_members_over": len(found),
            "reconcile_uses_beyond": int(sum(o["used"] - o["limit"] for o in found)),
        }
    out["codes"] = {"stores_over": sum(n > 1 for n in sim.code_redeemed.values()),
                    "reconcile_over": sum(o["kind"] == "code" for o in over)}  # fmt: skip
    for offer_id, (cap, which) in caps.items():
        out[offer_id] = {"stores_over": final[offer_id][which] > cap + 1e-6,
                         "reconcile_over": any(o["offer_id"] == offer_id for o in over)}  # fmt: skip
    out["agree"] = all(
        (v["stores_members_over"], v["stores_uses_beyond"]) == (v["reconcile_members_over"], v["reconcile_uses_beyond"])
        if "stores_members_over" in v else v["stores_over"] == v["reconcile_over"]
        for v in out.values()
    )  # fmt: skip
    return out


def _kinds(over: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(f"{o['kind']}:{o['offer_id']}" for o in over))


# -- the collector's lease throughput ----------------------------------------------------------
def lease_throughput(backend: list[str], folder: Path, threads: int, ops: int) -> dict[str, float]:
    """Lease requests answered per second with ``threads`` devices asking at once (each a
    fresh slice of one shared offer: every grant takes the offer's lock), against the same
    collector's ``/v1/health`` (no storage: the HTTP ceiling)."""
    private, _ = generate_signing_key()
    rows = [{"offer_id": "tp", "title": "tp", "reward": {"type": "amount", "value": 1},
             "limits": {"scope": "fleet", "total_redemptions": 10**9, "lease": {"redemptions": 1, "ttl_s": 3600}}}]  # fmt: skip
    publish_offers(backend, rows, private)
    creds = register(backend, threads, f"tp{os.urandom(2).hex()}")

    def asks(index: int) -> int:
        cred, transport = creds[index], HttpTransport(url, timeout_s=60)
        seq = used = 0
        for _ in range(ops):
            body = pack_wire(LeaseRequest(1, cred.device_id, [WireAsk("tp", seq, used, 0.0, True, 1, 0.0)]))  # fmt: skip
            headers = sign_request(cred, "POST", LEASES_PATH, body, int(time.time() * 1000))
            grant = unpack_wire(transport.request("POST", LEASES_PATH, body, headers).body, LeaseAnswer).grants[0]  # fmt: skip
            assert grant.status == "granted", grant
            seq, used = grant.seq, used + 1  # the device redeemed its slice
        return ops

    def health(index: int) -> int:
        transport = HttpTransport(url, timeout_s=60)
        for _ in range(ops):
            assert transport.request("GET", "/v1/health").status == 200
        return ops

    with collector(backend, "--rate", "0") as url, ThreadPoolExecutor(threads) as pool:
        rates = {}
        for name, work in (("health", health), ("leases", asks), ("health_again", health)):
            began = time.perf_counter()
            done = sum(pool.map(work, range(threads)))
            rates[name] = done / (time.perf_counter() - began)
    ceiling = (rates["health"] + rates["health_again"]) / 2
    storage = open_backend(backend)
    try:
        (status,) = [s for s in storage.shares() if s.offer_id == "tp"]
        granted = status.shared_redemptions
    finally:
        storage.close()
    assert granted == threads * ops, (granted, threads * ops)
    return {"leases_per_s": rates["leases"], "health_per_s": ceiling, "share_of_health": rates["leases"] / ceiling}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=12, help="rounds with partitions")
    parser.add_argument(
        "--no-central", dest="central", action="store_false",
        help="no central check of per-customer limits (profiles and offline policies only)",
    )  # fmt: skip
    parser.add_argument("--settle", type=int, default=3, help="rounds with every device online")
    parser.add_argument("--visits", type=int, default=2, help="visits per device a round")
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--offline", type=float, default=0.25, help="chance to go down a round")
    parser.add_argument("--outage", type=float, default=2.0, help="mean rounds a device is down")
    parser.add_argument("--total", type=int, help="the total cap (default: half the demand)")
    parser.add_argument("--budget", type=float, help="the budget (default: half the demand)")
    parser.add_argument("--lease", type=int, default=4, help="redemptions in a lease slice")
    parser.add_argument("--round-s", type=float, default=0.0, help="pad each round to this many seconds (longer outages let leases lapse)")  # fmt: skip
    parser.add_argument("--ttl", type=int, default=60, help="lease lifetime, seconds (>= 60)")
    parser.add_argument("--confirm-s", type=int, default=2, help="confirm_within_s of the once offers")  # fmt: skip
    parser.add_argument("--codes", type=int, default=4, help="single-use codes each device issues")
    parser.add_argument("--threads", type=int, default=8, help="device threads for throughput")
    parser.add_argument("--tp-ops", type=int, default=100, help="lease requests per thread (0: no throughput)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "fleet_offers.json")
    args = parser.parse_args()
    # Demand while partitioned is 10% over the caps (and the online rounds add more): a fleet
    # that strands no share redeems the whole cap before the partitions end.
    partitioned = args.visits * args.devices * args.rounds
    args.total = args.total or int(partitioned / 1.1)
    args.budget = args.budget or round(int(partitioned / 1.1) * BUDGET_REWARD, 2)
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out["simulation"] = run_simulation(args, folder)
        out["throughput"] = {}
        if args.tp_ops:
            out["throughput"]["sqlite"] = lease_throughput(["--db", str(folder / "tp.db")], folder, args.threads, args.tp_ops)  # fmt: skip
        if args.tp_ops and os.environ.get("SHELFWISE_PG_DSN"):
            with fresh_pg_database(os.environ["SHELFWISE_PG_DSN"]) as dsn:
                pg = ["--pg", dsn, "--server-key", str(folder / "pg.key")]
                out["throughput"]["postgres"] = lease_throughput(pg, folder, args.threads, args.tp_ops)  # fmt: skip
    report(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, sort_keys=True))


def report(out: dict[str, Any]) -> None:
    sim, args = out["simulation"], out["args"]
    print(
        f"\nfleet offers: {args['devices']} devices, {args['rounds']} partitioned rounds "
        f"({sim['device_rounds_partitioned']} of {sim['device_rounds']} device-rounds cut off) "
        f"+ {args['settle']} online, {sim['simulate_s']:.0f} s"
    )
    print(f"\n{'fleet-wide cap':<14}{'cap':>9}{'demand':>8}{'partitioned':>13}{'stranded':>10}{'lapsed':>8}{'end':>6}{'over':>6}  refusals")  # fmt: skip
    for offer_id, f in sim["fleet"].items():
        refusals = ", ".join(f"{k} {v}" for k, v in sorted(f["refusals"].items()))
        held = f["stranded_partitioned"]
        stuck = held["redemptions"] if f["unit"] == "redemptions" else held["budget"]
        print(f"{offer_id:<14}{f['cap']:>9,.0f}{f['demand']:>8,.0f}{f['share_partitioned']:>13.0%}{stuck:>10,.1f}{held['lapsed']:>8.0f}{f['share_final']:>6.0%}{f['over_redeemed']:>6.0f}  {refusals}")  # fmt: skip
    c = sim["codes"]
    print(f"\nsingle-use codes: {c['issued']} issued, {c['tried']} tries ({c['distinct_tried']} codes), "
          f"{c['redeemed']} redeemed, max per code {c['max_redemptions_per_code']}; refused: {c['refusals']}")  # fmt: skip
    print(f"\n{'per member':<12}{'limit':>6}{'members':>8}{'uses':>6}{'beyond online':>15}{'(all reported)':>15}{'beyond offline':>16}{'max offline/device':>20}")  # fmt: skip
    for offer_id, p in sim["per_customer"].items():
        print(f"{offer_id:<12}{ONCE_OFFERS[offer_id]:>6}{p['members']:>8}{p['uses']:>6}{p['online_beyond']:>15}{p['online_beyond_all_reported']:>15}{p['offline_beyond']:>16}{p['max_offline_uses_per_device']:>20}")  # fmt: skip
    print(f"online visits refused as unconfirmed (after a pull): {sim['online_unconfirmed']}")
    agree = sim["reconcile_vs_stores"]
    print(f"\ncollector reconcile(): {len(sim['reconcile'])} findings {sim['reconcile_kinds']}; "
          f"agrees with the stores: {agree['agree']}")  # fmt: skip
    print(f"\n{'collector':<12}{'leases/s':>10}{'health/s':>10}{'share':>7}")
    for name, t in out["throughput"].items():
        print(f"{name:<12}{t['leases_per_s']:>10,.0f}{t['health_per_s']:>10,.0f}{t['share_of_health']:>7.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
