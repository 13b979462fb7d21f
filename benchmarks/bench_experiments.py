"""What a recommender experiment costs a shopper's request, against no experiment, one run.

On a copy of the demo store (real members' baskets, the committed trained bundle), members
with a history ask ``Shopper.recommend("for-you", limit=10)``:

- ``no experiment``: the baseline (the lookup for a running experiment finds none);
- ``split, same bundle``: a split whose arms are the served model and ``trending``;
- ``split, second bundle``: the served bundle against a copy loaded side by side;
- ``interleaved``: the model and ``trending`` merged by team draft (both arms run);
- ``split, recorded``: as the kiosk runs it, each list recorded as shown (one write);
- ``no experiment, again``: the baseline once more, last (the noise between two runs).

Purchases: ``Shopper.track("purchase")`` with no experiment against one whose conversions are
looked up in the same transaction (``record_purchase``).

    python benchmarks/bench_experiments.py          # ~1 minute; writes results/experiments.json
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import shelfwise
from shelfwise.kiosk_demo.__main__ import open_store
from shelfwise.kiosk_demo.seed import BUNDLE_DIR

RESULTS = Path(__file__).parent / "results" / "experiments.json"
ROUNDS = 400


def timed(call: Callable[[], object], rounds: int = ROUNDS) -> dict[str, float]:
    """Median and p99 of ``rounds`` calls, in milliseconds (after 20 warm-up calls)."""
    for _ in range(20):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(0.99 * len(samples))]}


def members_with_history(sw: shelfwise.Shelfwise, count: int) -> list[shelfwise.Shopper]:
    rows = sw.store.query(
        "SELECT shopper_id FROM events WHERE type = 'purchase' AND shopper_id IS NOT NULL "
        "GROUP BY shopper_id ORDER BY count(*) DESC LIMIT ?",
        [count],
    )
    members = [sw.shopper(row["shopper_id"]) for row in rows]
    for member in members:
        member.set_consent("personalization", True)
    return members


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-experiments-"))
    copy = shutil.copytree(BUNDLE_DIR, work / "bundle-copy")
    sw, _ = open_store(work / "store.db", BUNDLE_DIR)
    members = members_with_history(sw, 20)
    turn = iter(range(10**9))

    def ask(record: bool = False) -> Callable[[], object]:
        return lambda: members[next(turn) % len(members)].recommend(
            "for-you", limit=10, record=record
        )

    experiments = {
        "split, same bundle": {
            "arms": [{"name": "model"}, {"name": "trending", "surface": "trending"}]
        },
        "split, second bundle": {"arms": [{"name": "v1"}, {"name": "v2", "bundle": str(copy)}]},
        "interleaved": {
            "mode": "interleave",
            "arms": [{"name": "model"}, {"name": "trending", "surface": "trending"}],
        },
    }
    rows = {"no experiment": timed(ask())}
    for n, (case, definition) in enumerate(experiments.items()):
        experiment_id = f"bench-{n}"
        sw.recommend_experiments.define(
            {"experiment_id": experiment_id, "surface": "for-you", **definition}
        )
        rows[case] = timed(ask())
        if n == 0:
            rows["split, recorded"] = timed(ask(record=True))
        sw.recommend_experiments.stop(experiment_id)
    # The baseline again, last: how far apart two runs of the same case are on this machine.
    rows["no experiment, again"] = timed(ask())

    item = sw.catalog.all()[0].item_id
    buyer = members[0]
    purchases = {"purchase, no experiment": timed(lambda: buyer.track("purchase", item), 200)}
    sw.recommend_experiments.define(
        {"experiment_id": "bench-buy", "surface": "for-you", **experiments["split, same bundle"]}
    )
    for _ in range(5):
        buyer.recommend("for-you", limit=10, record=True)
    purchases["purchase, experiment running"] = timed(lambda: buyer.track("purchase", item), 200)
    sw.close()

    base = rows["no experiment"]["p50_ms"]
    print(f"{'case':<28}{'p50 ms':>10}{'p99 ms':>10}{'x baseline':>12}")
    for case, row in rows.items():
        print(
            f"{case:<28}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}{row['p50_ms'] / base:>12.2f}"
        )
    buy_base = purchases["purchase, no experiment"]["p50_ms"]
    for case, row in purchases.items():
        ratio = row["p50_ms"] / buy_base
        print(f"{case:<28}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}{ratio:>12.2f}")
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "rounds": ROUNDS,
                "members": len(members),
                "recommend": rows,
                "purchase": purchases,
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
