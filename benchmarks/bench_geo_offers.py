"""Geofence and offer evaluation throughput against naive baselines measured in the same run.

Geofences: 10,000 circular fences (100-1000 m) scattered over a metro area; each location
update asks "which fences contain this fix" through the STRtree index and through a loop over
every fence. Offers: a shopper context is evaluated against 200 offers with the pure rules
engine, against a naive engine that re-parses every definition from JSON per request, and
end to end through ``Shopper.offers`` (store reads included).

    python benchmarks/bench_geo_offers.py            # prints a table, writes results/geo_offers.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import tempfile
import time
from pathlib import Path

import shelfwise
from shelfwise._geo import EARTH_RADIUS_M, FenceIndex, circle, inside_brute_force
from shelfwise._offers import OfferContext, evaluate, parse_offer

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


def bench_offers(n_offers: int, repeat: int) -> dict[str, float]:
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
        end_to_end = timed(lambda: shopper.offers(record=False), max(5, repeat // 10))
    return {
        "offers": n_offers,
        "rules_us_per_offer": engine / n_offers * 1e6,
        "rules_offers_per_s": n_offers / engine,
        "naive_reparse_us_per_offer": naive / n_offers * 1e6,
        "speedup_vs_naive": naive / engine,
        "shopper_offers_ms_per_request": end_to_end * 1000,
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
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": platform.processor() or platform.machine(),
        "geofences": geo,
        "offers": offers,
    }
    (RESULTS / "geo_offers.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
