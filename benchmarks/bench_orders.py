"""Order pricing: the best allowed combination of 50 eligible offers on a 40-line order.

Offers are a grocery's mix: percent and amount offers on the whole order, a category or a few
items, and buy-X-get-Y / bundle prices on small item groups; some are exclusive, some in an
exclusive category (coupons) or a joint one, some cap the offers per order. Three timings:

- the search (``shelfwise.offers.stacking.best_combination``) at 50 offers x 40 lines,
  p50/p99, search nodes and how often it finished (``exhaustive``);
- the search against brute force (every subset, every multiplicity) on 10-offer orders, where
  brute force is still feasible: both timings and whether they agree;
- ``shopper.price_order`` end to end through a store with the 50 offers defined.

    python benchmarks/bench_orders.py            # prints a table, writes results/orders.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import shelfwise
from shelfwise import parse_offer
from shelfwise.offers.rewards import Basket
from shelfwise.offers.stacking import Candidate, best_combination, combination

RESULTS = Path(__file__).parent / "results"
ITEMS = [f"i{n:02d}" for n in range(60)]
CATEGORY = {item: f"c{n % 8}" for n, item in enumerate(ITEMS)}


def definitions(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for k in range(n):
        kind = rng.choice(["percent", "amount", "amount", "amount", "bxgy", "bundle"])
        if kind == "percent":
            reward: dict[str, Any] = {"type": "percent", "value": rng.choice([5, 10, 20])}
        elif kind == "amount":
            reward = {"type": "amount", "value": rng.choice([0.5, 1, 2])}
        elif kind == "bxgy":
            reward = {"type": "buy_x_get_y", "buy": 2, "get": 1}
        else:
            reward = {"type": "bundle_price", "quantity": 3, "price": rng.choice([3, 5, 8])}
        if kind in {"bxgy", "bundle"}:
            targeting: dict[str, Any] = {"items": rng.sample(ITEMS, rng.randint(1, 4))}
        else:
            targeting = rng.choice(
                [{}, {"items": rng.sample(ITEMS, 5)}, {"categories": [rng.choice(list(CATEGORY.values()))]}]
            )  # fmt: skip
        stacking: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.06:
            stacking["exclusive"] = True
        elif roll < 0.2:
            stacking = {"category": "coupons", "category_mode": "exclusive"}
        elif roll < 0.3:
            stacking = {"category": "loyalty", "category_mode": "joint"}
        if rng.random() < 0.1:
            stacking["max_offers"] = rng.choice([3, 5])
        out.append(
            {"offer_id": f"o{k:02d}", "title": f"offer {k}", "reward": reward,
             "targeting": targeting, "stacking": stacking}
        )  # fmt: skip
    return out


def basket(rng: random.Random, lines: int) -> Basket:
    chosen = rng.sample(ITEMS, lines)
    quantities = tuple(rng.randint(1, 4) for _ in chosen)
    prices = [round(rng.uniform(0.5, 12), 2) for _ in chosen]
    return Basket(
        tuple(chosen),
        tuple(CATEGORY[i] for i in chosen),
        quantities,
        tuple(round(q * p, 2) for q, p in zip(quantities, prices, strict=True)),
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": samples[len(samples) // 2] * 1000,
        "p99_ms": samples[min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)] * 1000,
    }


def brute_force(order: Basket, candidates: list[Candidate]) -> float:
    best = 0.0
    for times in itertools.product(*[range(c.offer.stacking.per_order + 1) for c in candidates]):
        picks = [(c, t) for c, t in zip(candidates, times, strict=True) if t]
        refused, value = combination(order, picks)
        if refused is None:
            best = max(best, value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--offers", type=int, default=50)
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args()
    rng = random.Random(7)
    times, finished = [], 0
    for _ in range(args.orders):
        order = basket(rng, args.lines)
        offers = [Candidate(parse_offer(d)) for d in definitions(rng, args.offers)]
        start = time.perf_counter()
        found = best_combination(order, offers)
        times.append(time.perf_counter() - start)
        finished += found.exhaustive
    search = {**percentiles(times), "exhaustive_share": finished / args.orders}
    small_search, small_brute, agree = [], [], 0
    for _ in range(max(10, args.orders // 5)):
        order = basket(rng, 8)
        offers = [Candidate(parse_offer(d)) for d in definitions(rng, 10)]
        start = time.perf_counter()
        found = best_combination(order, offers)
        small_search.append(time.perf_counter() - start)
        start = time.perf_counter()
        best = brute_force(order, offers)
        small_brute.append(time.perf_counter() - start)
        agree += abs(found.discount - best) < 1e-6
    small = {
        "search": percentiles(small_search),
        "brute_force": percentiles(small_brute),
        "agree": f"{agree}/{len(small_search)}",
    }
    with tempfile.TemporaryDirectory() as folder, shelfwise.open(Path(folder) / "o.db") as sw:
        sw.catalog.import_rows(
            [{"item_id": i, "name": i, "category": CATEGORY[i], "price": 2.5} for i in ITEMS]
        )
        for d in definitions(rng, args.offers):
            sw.offers.define(d)
        shopper = sw.member("L-1", consents={"offers": True})
        cart = [(i, rng.randint(1, 4)) for i in rng.sample(ITEMS, args.lines)]
        samples = []
        for n in range(max(20, args.orders // 2)):
            start = time.perf_counter()
            shopper.price_order(f"t-{n}", cart=cart)
            samples.append(time.perf_counter() - start)
        end_to_end = percentiles(samples)
    print(f"order pricing: {args.offers} eligible offers, {args.lines} lines, {args.orders} orders")
    print(f"  {'what':<44}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"  {'search (best_combination)':<44}{search['p50_ms']:>10.1f}{search['p99_ms']:>10.1f}")
    print(f"  {'shopper.price_order (store, 50 offers)':<44}"
          f"{end_to_end['p50_ms']:>10.1f}{end_to_end['p99_ms']:>10.1f}")  # fmt: skip
    print(f"  search finished (exhaustive): {search['exhaustive_share']:.0%}")
    print("10 offers, 8 lines: search against brute force")
    for label in ("search", "brute_force"):
        row = small[label]
        print(f"  {label:<44}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")  # type: ignore[index]
    print(f"  same discount: {small['agree']}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": platform.processor() or platform.machine(),
        "offers": args.offers,
        "lines": args.lines,
        "search": search,
        "end_to_end": end_to_end,
        "small_orders": small,
    }
    (RESULTS / "orders.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
