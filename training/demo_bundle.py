"""Build the kiosk demo store's model bundle from the real dated groceries data, in one command.

    python -m shelfwise.training.demo_bundle

trains on ``../shared/data/groceries-dated/Groceries_dataset.csv`` (member baskets, time-based
split), reads the demo catalog (``kiosk_demo/store/catalog.jsonl``: category, brand, name,
price) as item features, uses ``kiosk_demo/store/categories.json`` for the category popularity
scopes, and exports an int8 bundle to ``kiosk_demo/store/bundle``. The bundle's feature table
gives the catalog's products that no member ever bought (the Open Food Facts ones) vectors
from their features. There is no time of day in that data, so the bundle has no ``hour:``
popularity scopes (none are invented).

Example::

    python -m shelfwise.training.demo_bundle --epochs 40 --out kiosk_demo/store/bundle
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "groceries-dated" / "Groceries_dataset.csv"
DEFAULT_OUT = ROOT / "kiosk_demo" / "store" / "bundle"
CATEGORIES = ROOT / "kiosk_demo" / "store" / "categories.json"
CATALOG = ROOT / "kiosk_demo" / "store" / "catalog.jsonl"


def main(argv: list[str] | None = None) -> int:
    """Train on the groceries data and export the demo bundle (int8)."""
    from shelfwise.export.bundle import export_bundle

    from .train import TrainConfig, train

    parser = argparse.ArgumentParser(
        prog="python -m shelfwise.training.demo_bundle",
        description="Train on the real dated groceries data and write the kiosk demo bundle.",
        epilog="example: python -m shelfwise.training.demo_bundle --epochs 40",
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--run", default=str(ROOT / "runs" / "groceries"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--categories", default=str(CATEGORIES) if CATEGORIES.is_file() else "")
    parser.add_argument("--catalog", default=str(CATALOG) if CATALOG.is_file() else "")
    parser.add_argument("--threads", type=int, default=0, help="Torch threads (0: torch decides).")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = TrainConfig(
        data=args.data,
        out=args.run,
        format="groceries",
        categories=args.categories,
        catalog=args.catalog,  # category, brand, name words and price band as item features
        threads=args.threads,
        epochs=args.epochs,
        patience=8,
        dim=32,
        heads=2,
        dropout=0.3,
        batch_size=128,
        progress=not args.no_progress,
    )
    result = train(config)
    report = export_bundle(
        result.out, args.out, quantize="int8", model_name="shelfwise-demo-groceries"
    )
    quant = report.manifest.training["quantization"]
    print(
        f"demo bundle {report.path}: {report.size_bytes / 1e3:.0f} kB, best epoch "
        f"{result.best_epoch}, validation ndcg@10 {result.best_valid['ndcg@10']:.4f}, "
        f"int8 relative drop {quant['ndcg@10_relative_drop']:.4f}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
