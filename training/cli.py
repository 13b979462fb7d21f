"""``shelfwise train`` and ``shelfwise evaluate`` (dispatched here by ``shelfwise.cli``).

Examples::

    shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
    shelfwise evaluate runs/beauty --data ../shared/data/amazon-beauty/Beauty.txt --json q.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shelfwise._errors import ShelfwiseError

from .data import FORMATS, make_split
from .evaluate import METRICS, PUBLISHED_BEAUTY, evaluate, format_table
from .train import TrainConfig, load_run, model_scorer, read_config_log, train

logger = logging.getLogger(__name__)

TRAIN_EXAMPLE = """example:
  shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
  shelfwise train --data ../shared/data/groceries-dated/Groceries_dataset.csv \\
      --format groceries --out runs/groceries --epochs 60
  torchrun --nproc_per_node 2 -m shelfwise.training.train --data Beauty.txt --out runs/ddp
"""
EVALUATE_EXAMPLE = """example:
  shelfwise evaluate runs/beauty --data ../shared/data/amazon-beauty/Beauty.txt --json quality.json
"""


def train_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig(data="", out="")
    parser = argparse.ArgumentParser(
        prog="shelfwise train",
        description="Train the sequential recommender on a transaction log; writes a run folder "
        "(model, vocabulary, side tables, validation curve) that `shelfwise export` turns into "
        "a bundle.",
        epilog=TRAIN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="the data file")
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    parser.add_argument(
        "--columns",
        default="",
        help="for --format events: user=COL,item=COL[,timestamp=COL,basket=COL,event_type=COL,store=COL]",
    )
    parser.add_argument(
        "--item-features", default="", help="JSON {item: [attributes]} or {item: category}"
    )
    parser.add_argument(
        "--categories", default="", help="JSON {item: category} for category popularity"
    )
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="skip and count malformed rows"
    )
    for name in ("seed", "max_len", "dim", "heads", "layers", "batch_size", "epochs"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    for name in ("dropout", "lr", "weight_decay"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name)
        )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shelfwise evaluate",
        description="Evaluate a trained run and the baselines (popularity, co-occurrence, "
        "Markov transitions, EASE) on the test split with full-ranking metrics; prints the "
        "table (with published anchors on Beauty) and writes JSON.",
        epilog=EVALUATE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run folder written by shelfwise train")
    parser.add_argument("--data", help="data file (default: the one the run trained on)")
    parser.add_argument("--json", dest="json_path", help="write the results here")
    parser.add_argument("--split", default="test", choices=["test", "valid"])
    parser.add_argument(
        "--ease-l2",
        type=float,
        default=100.0,
        help="EASE L2 (100: best of 100/400 on Beauty validation)",
    )
    parser.add_argument(
        "--sampled", action="store_true", help="also the sampled-100-negatives protocol"
    )
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run_train(argv: list[str]) -> int:
    """Train a model from the command line."""
    args = train_parser().parse_args(argv)
    config = TrainConfig(
        data=args.data,
        out=args.out,
        format=args.format,
        columns=args.columns,
        item_features=args.item_features,
        categories=args.categories,
        skip_bad_rows=args.skip_bad_rows,
        seed=args.seed,
        max_len=args.max_len,
        dim=args.dim,
        heads=args.heads,
        layers=args.layers,
        dropout=args.dropout,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        epochs=args.epochs,
        patience=args.patience,
        threads=args.threads,
        progress=not args.no_progress,
        resume=args.resume,
    )
    result = train(config)
    summary = {
        "out": str(result.out),
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 1),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"trained {result.out}: best epoch {result.best_epoch}, validation "
            + ", ".join(f"{k} {v:.4f}" for k, v in result.best_valid.items())
            + f" ({result.seconds:.0f} s)"
        )
    return 0


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    *,
    split_name: str = "test",
    baselines: bool = True,
    sampled: bool = False,
    ease_l2: float = 100.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run and the baselines; returns the JSON-ready results.

    Example (needs a trained run)::

        results = evaluate_run("runs/beauty")
        results["metrics"]["shelfwise SeqRec"]["ndcg@10"]
    """
    from .baselines import all_baselines

    model, vocab, config = load_run(run_dir)
    if data:
        config = TrainConfig(**{**config.__dict__, "data": data})
    log = read_config_log(config)
    run_report = json.loads((Path(run_dir) / "run.json").read_text())
    trained_on = run_report["data"]["fingerprint"]
    if log.fingerprint != trained_on:
        logger.warning("evaluating on different data than the run trained on")
    if log.vocabulary().items != vocab.items:
        raise ShelfwiseError(f"{config.data} has a different item vocabulary than {run_dir}")
    split = make_split(log, vocab)
    cases = split.test if split_name == "test" else split.valid
    fit_on = split.train_for_test if split_name == "test" else split.train
    scorers: dict[str, Any] = {"shelfwise SeqRec": model_scorer(model, vocab, config.max_len)}
    timings: dict[str, float] = {}
    if baselines:
        for baseline in all_baselines(ease_l2):
            started = time.monotonic()
            scorers[baseline.name] = baseline.fit(fit_on, len(vocab)).score
            timings[baseline.name] = round(time.monotonic() - started, 1)
    metrics: dict[str, dict[str, float]] = {}
    sampled_metrics: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        metrics[name] = evaluate(
            scorer, cases, mask_seen=split.mask_seen, progress=progress, desc=name[:20]
        ).metrics
        if sampled:
            sampled_metrics[name] = evaluate(
                scorer, cases, mask_seen=split.mask_seen, sampled=True, progress=progress
            ).metrics
    size_bytes = sum(p.numel() * 4 for p in model.parameters())
    beauty = Path(config.data).name == "Beauty.txt"
    results: dict[str, Any] = {
        "protocol": split.protocol + f" ({split_name} split, {len(cases)} cases)",
        "mask_seen": split.mask_seen,
        "split": split_name,
        "data": {"path": config.data, "fingerprint": log.fingerprint, "items": len(vocab)},
        "metrics": metrics,
        "model": {
            "run": str(run_dir),
            "parameters": sum(p.numel() for p in model.parameters()),
            "fp32_megabytes": round(size_bytes / 1e6, 2),
            "config": {k: v for k, v in config.__dict__.items() if k not in ("data", "out")},
            "best_epoch": run_report["best_epoch"],
        },
        "baseline_fit_seconds": timings,
        "published": PUBLISHED_BEAUTY if beauty else {},
    }
    if sampled:
        results["sampled_100_negatives"] = {
            "protocol": "target vs 100 uniformly sampled unseen items; for comparison with "
            "older papers only",
            "metrics": sampled_metrics,
        }
    return results


def run_evaluate(argv: list[str]) -> int:
    """Evaluate from the command line."""
    args = evaluate_parser().parse_args(argv)
    results = evaluate_run(
        args.run,
        args.data,
        split_name=args.split,
        baselines=not args.no_baselines,
        sampled=args.sampled,
        ease_l2=args.ease_l2,
        progress=not args.no_progress,
    )
    print(results["protocol"])
    print(format_table(results["metrics"], results["published"] or None))
    if args.sampled:
        print("\nsampled-100-negatives protocol (older papers only):")
        print(format_table(results["sampled_100_negatives"]["metrics"]))
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=_json_default))
    return 0


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def main(name: str, argv: list[str]) -> int:
    """Entry point used by ``shelfwise.cli``: ``name`` is ``train`` or ``evaluate``.

    Example:
        >>> main("train", ["--help"])  # doctest: +SKIP
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if name == "train":
            return run_train(argv)
        if name == "evaluate":
            return run_evaluate(argv)
    except ShelfwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"unknown command {name!r}", file=sys.stderr)
    return 2


__all__ = ["METRICS", "evaluate_run", "main"]
