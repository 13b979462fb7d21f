"""``shelfwise export RUN_DIR --out BUNDLE [--quantize int8] [--sign-key KEY]``.

Example::

    shelfwise export runs/beauty --out bundles/beauty --quantize int8 --sign-key keys/bundle.key
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from shelfwise._errors import ShelfwiseError
from shelfwise.model.bundle import read_private_key

from .bundle import export_bundle

EXAMPLE = """example:
  shelfwise export runs/beauty --out bundles/beauty --quantize int8
  shelfwise export runs/groceries --out kiosk_demo/store/bundle --quantize int8 --sign-key k.key
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shelfwise export",
        description="Export a training run as a model bundle: ONNX graph (dynamic batch and "
        "history length, top-K inside), onnx.checker, parity with PyTorch on real histories, "
        "optional int8 with its validation metric change, side tables, sha256 of every file, "
        "optional ed25519 signature. The runtime loads it without torch.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder written by shelfwise train")
    p.add_argument("--out", required=True, help="bundle folder to write (replaced atomically)")
    p.add_argument("--quantize", default="none", choices=["none", "int8"])
    p.add_argument("--sign-key", help="ed25519 private key file (raw 32 bytes, hex or PEM)")
    p.add_argument("--name", default="", help="model name (default from the data file)")
    p.add_argument("--version", default="", help="model version (default: data fingerprint)")
    p.add_argument("--expires-days", type=float, help="bundle refuses to install after this")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    return p


def main(name: str, argv: list[str]) -> int:
    """Entry point used by ``shelfwise.cli`` for ``shelfwise export``.

    Example:
        >>> main("export", ["--help"])  # doctest: +SKIP
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    try:
        key = read_private_key(args.sign_key) if args.sign_key else None
        expires = (
            int((time.time() + args.expires_days * 86400) * 1000) if args.expires_days else None
        )
        report = export_bundle(
            args.run,
            args.out,
            quantize=args.quantize,
            sign_key=key,
            model_name=args.name,
            model_version=args.version,
            expires_ms=expires,
        )
    except (ShelfwiseError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = report.manifest
    if args.json:
        print(json.dumps(manifest.__dict__, indent=1, sort_keys=True, default=dict))
    else:
        training = manifest.training
        parity = training["parity_fp32_vs_torch"]
        print(
            f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, {manifest.num_items} items, "
            f"quantization {manifest.quantization}{', signed' if key else ''})\n"
            f"parity fp32 vs torch: max abs diff {parity['max_abs_diff']:.2e}, "
            f"top-10 agreement {parity['top10_agreement']:.4f} over {parity['cases']} histories"
        )
        quant = training["quantization"]
        if quant.get("valid_int8"):
            print(
                f"int8: validation NDCG@10 {quant['valid_fp32']['ndcg@10']:.4f} -> "
                f"{quant['valid_int8']['ndcg@10']:.4f} "
                f"({100 * quant['ndcg@10_relative_drop']:.2f}% relative), MatMulInteger feeds "
                f"TopK: {quant['scorer_runs_matmulinteger']}"
            )
    return 0
