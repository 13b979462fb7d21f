"""Geofence and offer evaluation throughput against naive baselines measured in the same run.

Geofences: 10,000 circular fences (100-1000 m) scattered over a metro area; each location
update asks "which fences contain this fix" through the STRtree index and through a loop over
every fence. Offers: a shopper context is evaluated against 200 offers with the pure rules
engine, against a naive engine that re-parses every definition from JSON per request, and
end to end through ``Shopper.offers`` (store reads included) against the naive request kept
here as the baseline: every definition re-parsed and six small counter queries per offer
(what ``shopper.offers()`` did before ``usage_snapshot`` batched them).

    python benchmarks/bench_geo_offers.py            # prints a table, writes results/geo_offers.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import random
import tempfile
import time
from pathlib import Path

import shelfwise
from shelfwise import parse_offer
from shelfwise.geo.shapes import EARTH_RADIUS_M, FenceIndex, circle, inside_brute_force
from shelfwise.offers.engine import PRIOR_REDEEMED, PRIOR_SHOWN
from shelfwise.offers.rules import OfferContext, OfferUsage, evaluate, period_starts

RESULTS = Path(__file__).parent / "results"


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds per call over ``repeat`` calls (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


def percentiles(fn, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """p50 and p99 milliseconds per call over ``repeat`` calls (after two warm-up calls)."""
    fn()
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)],
        "requests": repeat,
    }


def naive_usage(db, offer_id: str, shopper_id: str, ctx: OfferContext) -> OfferUsage:  # type: ignore[no-untyped-def]
    """The baseline: six small queries for one offer's counters (the pre-snapshot code)."""
    counters = list(db.query("SELECT * FROM offer_counters WHERE offer_id = ?", [offer_id]))
    c = (
        counters[0]
        if counters
        else {"redemptions": 0, "spent": 0.0, "reserved": 0, "reserved_amount": 0.0}
    )
    day_start, week_start = period_starts(ctx)
    live = ctx.now_ms

    def count(sql: str, params: list[object]) -> int:
        return int(next(iter(db.query(sql, params)))["n"])

    used = (
        "SELECT count(*) AS n FROM ("
        "SELECT ts_ms FROM redemptions WHERE offer_id = ? AND shopper_id = ? "
        "UNION ALL SELECT created_ms FROM reservations WHERE offer_id = ? AND shopper_id = ? "
        "AND state = 'held' AND expires_ms > ?) WHERE ts_ms >= ?"
    )
    mine = [offer_id, shopper_id, offer_id, shopper_id, live]
    shown = (
        "SELECT count(*) AS n FROM impressions WHERE offer_id = ? AND shopper_id = ? AND ts_ms >= ?"
    )
    return OfferUsage(
        redemptions=int(c["redemptions"] + c["reserved"]),
        spent=float(c["spent"] + c["reserved_amount"]),
        today=count(
            "SELECT count(*) AS n FROM (SELECT ts_ms FROM redemptions WHERE offer_id = ? UNION ALL "
            "SELECT created_ms FROM reservations WHERE offer_id = ? AND state = 'held' AND expires_ms > ?) "
            "WHERE ts_ms >= ?",
            [offer_id, offer_id, live, day_start],
        ),
        customer_total=count(used, [*mine, 0]),
        customer_today=count(used, [*mine, day_start]),
        customer_week=count(used, [*mine, week_start]),
        shown_today=count(shown, [offer_id, shopper_id, day_start]),
        shown_week=count(shown, [offer_id, shopper_id, week_start]),
    )


def naive_shopper_offers(sw: shelfwise.Shelfwise, shopper: shelfwise.Shopper) -> list[str]:
    """The baseline request: re-parse every definition, count usage offer by offer, rank."""
    ctx = shopper.offer_context(channel="kiosk")
    db = sw.store.read()
    rows = sw.store.query("SELECT definition, active FROM offers ORDER BY offer_id")
    offers = [parse_offer(json.loads(r["definition"])) for r in rows if r["active"]]
    rates = {
        r["offer_id"]: (r["redemptions"], r["impressions"])
        for r in db.query("SELECT offer_id, redemptions, impressions FROM offer_counters")
    }
    ranked = []
    for offer in offers:
        decision = evaluate(offer, ctx, naive_usage(db, offer.offer_id, ctx.shopper_id, ctx))
        if decision.eligible:
            redeemed, shown = rates.get(offer.offer_id, (0, 0))
            p = (redeemed + PRIOR_REDEEMED) / (shown + PRIOR_SHOWN)
            ranked.append((-p * (decision.amount or offer.reward.value), offer.offer_id))
    return [offer_id for _, offer_id in sorted(ranked)[:5]]


def bench_geofences(n_fences: int, n_fixes: int, seed: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    lat0, lon0 = 45.4642, 9.1900  # a 40 km x 40 km metro area

    def point() -> tuple[float, float]:
        east, north = rng.uniform(-20_000, 20_000), rng.uniform(-20_000, 20_000)
        return (
            lat0 + math.degrees(north / EARTH_RADIUS_M),
            lon0 + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat0)))),
        )

    fences = [circle(f"f{i}", *point(), radius_m=rng.uniform(100, 1000)) for i in range(n_fences)]
    fixes = [point() for _ in range(n_fixes)]
    build_start = time.perf_counter()
    index = FenceIndex(fences)
    build_s = time.perf_counter() - build_start
    hits = sum(len(index.inside(*fix)) for fix in fixes)
    assert all(index.inside(*f) == inside_brute_force(fences, *f) for f in fixes[:50])
    it = iter(fixes * 1000)
    indexed = timed(lambda: index.inside(*next(it)), n_fixes)
    brute = timed(lambda: inside_brute_force(fences, *next(it)), max(20, n_fixes // 20))
    return {
        "fences": n_fences,
        "index_build_ms": build_s * 1000,
        "indexed_us_per_update": indexed * 1e6,
        "brute_force_us_per_update": brute * 1e6,
        "speedup": brute / indexed,
        "mean_hits_per_fix": hits / n_fixes,
    }


def offer_definitions(n: int, seed: int = 2) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        targeting: dict[str, object] = {}
        if rng.random() < 0.5:
            targeting["segments"] = rng.sample(list(shelfwise.SEGMENTS), 2)
        if rng.random() < 0.5:
            targeting["cart_total_min"] = rng.choice([10, 20, 50])
        if rng.random() < 0.3:
            targeting["channels"] = ["kiosk"]
        out.append(
            {
                "offer_id": f"o{i}",
                "title": f"offer {i}",
                "reward": {"type": "percent", "value": rng.choice([5, 10, 20])},
                "targeting": targeting,
                "schedule": {"days": ["weekdays"]} if rng.random() < 0.3 else {},
                "limits": {"impressions_per_day": 3} if rng.random() < 0.3 else {},
            }
        )
    return out


def bench_offers(n_offers: int, repeat: int) -> dict[str, object]:
    import datetime as dt

    definitions = offer_definitions(n_offers)
    offers = [parse_offer(d) for d in definitions]
    texts = [json.dumps(d) for d in definitions]
    local = dt.datetime(2025, 6, 2, 12, tzinfo=dt.UTC)
    ctx = OfferContext(
        now_ms=int(local.timestamp() * 1000),
        local=local,
        shopper_id="L-1",
        is_member=True,
        consented=True,
        segment="returning",
        cart_total=35.0,
        channel="kiosk",
    )
    engine = timed(lambda: [evaluate(o, ctx) for o in offers], repeat)
    naive = timed(lambda: [evaluate(parse_offer(json.loads(t)), ctx) for t in texts], repeat)
    with tempfile.TemporaryDirectory() as folder, shelfwise.open(Path(folder) / "b.db") as sw:
        sw.catalog.import_rows([{"item_id": "x", "name": "X", "price": 35.0}])
        for d in definitions:
            sw.offers.define(d)
        shopper = sw.member("L-1", consents={"offers": True})
        shopper.add_to_cart("x")
        # A shopper with history: redemptions and impressions the limits have to count.
        for d in definitions[:40]:
            with contextlib.suppress(shelfwise.OfferRejected):  # e.g. a weekday-only offer
                shopper.redeem(str(d["offer_id"]), cart_total=35.0)
        for _ in range(3):
            shopper.offers()
        now_ids = [o.offer.offer_id for o in shopper.offers(record=False)]
        assert naive_shopper_offers(sw, shopper) == now_ids, "the baseline must agree"
        end_to_end = timed(lambda: shopper.offers(record=False), max(5, repeat // 10))
        e2e_now = percentiles(lambda: shopper.offers(record=False), repeat)
        e2e_naive = percentiles(lambda: naive_shopper_offers(sw, shopper), max(20, repeat // 4))
        e2e_recorded = percentiles(lambda: shopper.offers(), max(20, repeat // 4))
    return {
        "offers": n_offers,
        "rules_us_per_offer": engine / n_offers * 1e6,
        "rules_offers_per_s": n_offers / engine,
        "naive_reparse_us_per_offer": naive / n_offers * 1e6,
        "speedup_vs_naive": naive / engine,
        "shopper_offers_ms_per_request": end_to_end * 1000,
        "end_to_end": {
            "naive_per_offer_queries": e2e_naive,
            "batched_snapshot": e2e_now,
            "batched_snapshot_recording_impressions": e2e_recorded,
            "speedup_p50": e2e_naive["p50_ms"] / e2e_now["p50_ms"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--fixes", type=int, default=2000)
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    geo = bench_geofences(args.fences, args.fixes)
    offers = bench_offers(args.offers, args.repeat)
    print(f"geofences: {geo['fences']} fences, index built in {geo['index_build_ms']:.0f} ms")
    print(f"  {'method':<24}{'us / update':>14}")
    print(f"  {'STRtree index':<24}{geo['indexed_us_per_update']:>14.1f}")
    print(f"  {'brute-force loop':<24}{geo['brute_force_us_per_update']:>14.1f}")
    print(f"  speedup {geo['speedup']:.0f}x, {geo['mean_hits_per_fix']:.2f} fences hit per fix")
    print(f"offers: {offers['offers']} offers per request")
    print(f"  {'method':<24}{'us / offer':>14}")
    print(f"  {'rules engine':<24}{offers['rules_us_per_offer']:>14.2f}")
    print(f"  {'naive (re-parse JSON)':<24}{offers['naive_reparse_us_per_offer']:>14.2f}")
    print(f"  speedup {offers['speedup_vs_naive']:.1f}x; shopper.offers() end to end "
          f"{offers['shopper_offers_ms_per_request']:.1f} ms / request")  # fmt: skip
    e2e = offers["end_to_end"]
    print(f"shopper.offers() end to end, {offers['offers']} offers (ms per request)")
    print(f"  {'method':<44}{'p50':>8}{'p99':>8}")
    for label, key in [
        ("before: naive, 6 queries per offer", "naive_per_offer_queries"),
        ("now: one grouped query per counter kind", "batched_snapshot"),
        ("now, recording impressions (a commit)", "batched_snapshot_recording_impressions"),
    ]:
        print(f"  {label:<44}{e2e[key]['p50_ms']:>8.2f}{e2e[key]['p99_ms']:>8.2f}")
    print(f"  speedup at p50: {e2e['speedup_p50']:.1f}x")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": platform.processor() or platform.machine(),
        "geofences": geo,
        "offers": offers,
    }
    text = json.dumps(out, indent=2) + "\n"
    (RESULTS / "geo_offers.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
