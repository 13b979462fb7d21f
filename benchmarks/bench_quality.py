"""Quality benchmark on Amazon Beauty: our model vs baselines vs published anchors.

Full ranking over all 12,101 items, leave-one-out, the user's seen items masked, ties counted
against the model. Trains a run unless ``--run`` points at an existing one, evaluates it and
every baseline in the same run, prints the table and writes
``benchmarks/results/quality_beauty.json``; copies the validation curve to docs/.

    python benchmarks/bench_quality.py                      # train (minutes) + evaluate
    python benchmarks/bench_quality.py --run runs/beauty    # evaluate an existing run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
RESULTS = ROOT / "benchmarks" / "results" / "quality_beauty.json"


def main(argv: list[str] | None = None) -> int:
    from shelfwise.training.cli import evaluate_run
    from shelfwise.training.evaluate import format_table
    from shelfwise.training.train import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--run", help="evaluate this run folder instead of training")
    parser.add_argument("--out", default=str(ROOT / "runs" / "beauty"))
    parser.add_argument("--json", default=str(RESULTS))
    parser.add_argument("--sampled", action="store_true", help="also sampled-100 negatives")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"skipped: {args.data} not found (the shared data sits beside the project)")
        return 0
    run = Path(args.run) if args.run else None
    if run is None:
        result = train(TrainConfig(data=args.data, out=args.out))
        run = result.out
    results = evaluate_run(run, args.data, sampled=args.sampled)
    ours = results["metrics"]["shelfwise SeqRec"]
    rows = {**results["metrics"]}
    baselines = {k: v for k, v in rows.items() if k != "shelfwise SeqRec"}
    anchors = results["published"]
    results["verdict"] = {
        "beats_every_baseline_ndcg@10": all(
            ours["ndcg@10"] > b["ndcg@10"] for b in baselines.values()
        ),
        "beats_every_baseline_hr@10": all(ours["hr@10"] > b["hr@10"] for b in baselines.values()),
        "beats_published_ndcg@10": all(
            ours["ndcg@10"] > a["ndcg@10"] for a in anchors.values() if "ndcg@10" in a
        ),
        "beats_published_hr@10": all(
            ours["hr@10"] > a["hr@10"] for a in anchors.values() if "hr@10" in a
        ),
        "ratio_ndcg@10_vs_best_baseline": round(
            ours["ndcg@10"] / max(b["ndcg@10"] for b in baselines.values()), 3
        ),
        "model_under_5_mb": results["model"]["fp32_megabytes"] < 5,
    }
    print(results["protocol"])
    print(format_table(rows, anchors))
    print(json.dumps(results["verdict"], indent=1))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot = run / "validation.png"
    if plot.is_file():
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(plot, ROOT / "docs" / "training_beauty_validation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
