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
    parser.add_argument(
        "--bundle", help="also evaluate this exported bundle's ONNX graph (e.g. the int8 one)"
    )
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"skipped: {args.data} not found (the shared data sits beside the project)")
        return 0
    run = Path(args.run) if args.run else None
    if run is None:
        result = train(TrainConfig(data=args.data, out=args.out))
        run = result.out
    results = evaluate_run(run, args.data, sampled=args.sampled)
    if args.bundle:
        results["bundle"] = bundle_report(run, Path(args.bundle), args.data)
        results["metrics"]["shelfwise bundle (ONNX, " + results["bundle"]["quantization"] + ")"] = (
            results["bundle"]["test_metrics"]
        )
    ours = results["metrics"]["shelfwise SeqRec"]
    rows = {**results["metrics"]}
    baselines = {k: v for k, v in rows.items() if not k.startswith("shelfwise")}
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


def bundle_report(run: Path, bundle: Path, data: str) -> dict[str, object]:
    """Test metrics of the bundle's graph, and fp32 vs bundle scoring latency (same run)."""
    import time

    import numpy as np

    from shelfwise.export.onnx_export import export_onnx, onnx_scorer, run_onnx, session
    from shelfwise.model.bundle import read_bundle
    from shelfwise.training.data import make_split, read_events
    from shelfwise.training.evaluate import evaluate
    from shelfwise.training.train import load_run

    files = read_bundle(bundle)
    model, vocab, config = load_run(run)
    log = read_events(data)
    split = make_split(log, vocab)
    scorer = onnx_scorer(files.model_bytes, len(vocab), config.max_len)
    metrics = evaluate(scorer, split.test, mask_seen=split.mask_seen, desc="bundle").metrics
    fp32 = session(export_onnx(model))
    shipped = session(files.model_bytes)
    histories = np.zeros((300, config.max_len), dtype=np.int64)
    for row, history in enumerate(split.test.histories[:300]):
        tail = history[-config.max_len :]
        histories[row, config.max_len - len(tail) :] = tail
    latency = {}
    for name, sess in (("fp32", fp32), ("bundle", shipped)):
        for row in histories[:20]:  # warm up
            run_onnx(sess, row[None, :], 50)
        started = time.perf_counter()
        for row in histories:
            run_onnx(sess, row[None, :], 50)
        latency[name] = round((time.perf_counter() - started) / len(histories) * 1000, 3)
    return {
        "path": str(bundle),
        "quantization": files.manifest.quantization,
        "test_metrics": metrics,
        "model_onnx_bytes": len(files.model_bytes),
        "latency_ms_batch1_top50": latency,
        "speedup_vs_fp32": round(latency["fp32"] / latency["bundle"], 2),
        "manifest_int8_check": files.manifest.training.get("quantization", {}),
    }


if __name__ == "__main__":
    sys.exit(main())
