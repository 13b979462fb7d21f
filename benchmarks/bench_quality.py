"""Quality benchmark on Amazon Beauty: our model vs baselines vs published anchors.

Full ranking over all 12,101 items, leave-one-out, the user's seen items masked, ties counted
against the model. Trains a run (with the item attributes as features) unless ``--run`` points
at an existing one, evaluates it and every baseline in the same run, prints the table and
writes ``benchmarks/results/quality_beauty.json``; copies the validation curve to docs/.
``--cold-start`` adds the item cold-start tables (a run trained with 10% of the items held
out, ``--cold-start-run`` to reuse one); ``--second`` adds the same hyperparameters on the
dated groceries data (``--second-run`` to reuse a run).

    python benchmarks/bench_quality.py                      # train (minutes) + evaluate
    python benchmarks/bench_quality.py --run runs/beauty    # evaluate an existing run
    python benchmarks/bench_quality.py --run runs/beauty --bundle runs/bundle_beauty_int8 \
        --cold-start-run runs/beauty-cold --second-run runs/groceries-same
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
ATTRIBUTES = DATA.with_name("Beauty_item2attributes.json")
SECOND = ROOT.parent / "shared" / "data" / "groceries-dated" / "Groceries_dataset.csv"
SECOND_CATALOG = ROOT / "kiosk_demo" / "store" / "catalog.jsonl"
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
    parser.add_argument("--item-features", default=str(ATTRIBUTES) if ATTRIBUTES.is_file() else "")
    parser.add_argument("--cold-start", action="store_true", help="also the cold-start tables")
    parser.add_argument("--cold-start-run", help="a run trained with --cold-start 0.1")
    parser.add_argument("--second", action="store_true", help="also the dated groceries data")
    parser.add_argument("--second-run", help="a groceries run with the same hyperparameters")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"skipped: {args.data} not found (the shared data sits beside the project)")
        return 0
    run = Path(args.run) if args.run else None
    if run is None:
        result = train(TrainConfig(data=args.data, out=args.out, item_features=args.item_features))
        run = result.out
    results = evaluate_run(run, args.data, sampled=args.sampled)
    if args.cold_start or args.cold_start_run:
        results["cold_start"] = cold_start_report(run, args)
    if args.second or args.second_run:
        results["second_dataset"] = second_dataset_report(run, args)
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
    for pool, table in results.get("cold_start", {}).get("metrics", {}).items():
        print(format_table(table, title=f"\ncold start, ranked among {pool}:"))
    if "second_dataset" in results:
        second = results["second_dataset"]
        print("\n" + second["protocol"])
        print(format_table(second["metrics"]))
    print(json.dumps(results["verdict"], indent=1))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot = run / "validation.png"
    if plot.is_file():
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(plot, ROOT / "docs" / "training_beauty_validation.png")
    return 0


def cold_start_report(run: Path, args: argparse.Namespace) -> dict[str, object]:
    """The cold-start tables of a run with the same hyperparameters and 10% new items."""
    import dataclasses

    from shelfwise.training.cold_start import evaluate_cold_start
    from shelfwise.training.train import load_run, train

    cold = Path(args.cold_start_run) if args.cold_start_run else None
    if cold is None:
        _, _, config = load_run(run)
        cold = Path(str(run) + "-cold")
        train(dataclasses.replace(config, out=str(cold), cold_start=0.1, resume=False))
    return evaluate_cold_start(cold)


def second_dataset_report(run: Path, args: argparse.Namespace) -> dict[str, object]:
    """The Beauty run's hyperparameters on the dated groceries data (not tuned on)."""
    import dataclasses

    from shelfwise.training.cli import evaluate_run
    from shelfwise.training.train import TrainConfig, load_run, train

    second = Path(args.second_run) if args.second_run else None
    if second is None:
        _, _, config = load_run(run)
        fields = {f.name for f in dataclasses.fields(TrainConfig)} - {
            "data", "out", "format", "item_features", "catalog", "categories", "resume"
        }  # fmt: skip
        second = ROOT / "runs" / "groceries-same"
        train(
            TrainConfig(
                data=str(SECOND),
                out=str(second),
                catalog=str(SECOND_CATALOG),
                **{k: getattr(config, k) for k in fields},
            )
        )
    return evaluate_run(second)


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
        "bundle_bytes": sum(p.stat().st_size for p in bundle.iterdir()),
        "bundle_files": {p.name: p.stat().st_size for p in sorted(bundle.iterdir())},
        "latency_ms_batch1_top50": latency,
        "speedup_vs_fp32": round(latency["fp32"] / latency["bundle"], 2),
        "manifest_int8_check": files.manifest.training.get("quantization", {}),
    }


if __name__ == "__main__":
    sys.exit(main())
