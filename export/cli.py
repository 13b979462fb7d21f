"""``shelfwise export``: a training run -> a model bundle (``export_bundle``), loaded on use.

Example::

    shelfwise export runs/beauty --out bundles/beauty --quantize int8 --sign-key keys/bundle.key
"""

from __future__ import annotations

import time

import click

from shelfwise.cli.output import emit, json_option, show_log_lines
from shelfwise.cli.params import POSITIVE, Folder, InputFile
from shelfwise.model.bundle import read_private_key

from .bundle import ExportReport, export_bundle


def _summary(report: ExportReport, signed: bool) -> str:
    manifest = report.manifest
    training = manifest.training
    parity = training["parity_fp32_vs_torch"]
    text = (
        f"wrote {report.path} ({report.size_bytes / 1e6:.2f} MB, {manifest.num_items} items, "
        f"quantization {manifest.quantization}{', signed' if signed else ''})\n"
        f"parity fp32 vs torch: max abs diff {parity['max_abs_diff']:.2e}, "
        f"top-10 agreement {parity['top10_agreement']:.4f} over {parity['cases']} histories"
    )
    quant = training["quantization"]
    if quant.get("valid_int8"):
        text += (
            f"\nint8: validation NDCG@10 {quant['valid_fp32']['ndcg@10']:.4f} -> "
            f"{quant['valid_int8']['ndcg@10']:.4f} "
            f"({100 * quant['ndcg@10_relative_drop']:.2f}% relative), MatMulInteger feeds "
            f"TopK: {quant['scorer_runs_matmulinteger']}"
        )
    return text


@click.command("export")
@click.argument("run", type=Folder())
@click.option("--out", required=True, help="Bundle folder to write (replaced atomically).")
@click.option(
    "--quantize", default="auto", show_default=True,
    type=click.Choice(["auto", "none", "int8"]),
    help="auto: int8 scoring head only where export measures it faster (the reason goes in "
    "the manifest); int8: always; none: fp32.",
)  # fmt: skip
@click.option(
    "--sign-key", type=InputFile(), help="ed25519 private key (raw 32 bytes, hex or PEM)."
)
@click.option("--name", default="", help="Model name (default: from the data file).")
@click.option("--version", default="", help="Model version (default: the data fingerprint).")
@click.option("--expires-days", type=POSITIVE, help="The bundle refuses to install after this.")
@json_option
def export_command(
    run: str,
    out: str,
    quantize: str,
    sign_key: str | None,
    name: str,
    version: str,
    expires_days: float | None,
    as_json: bool,
) -> None:
    """Export a training run as a model bundle the runtime loads without torch.

    ONNX graph (dynamic batch and history length, top-K inside), onnx.checker, parity with
    PyTorch on real histories, optional int8 with its validation metric change, side tables,
    sha256 of every file, optional ed25519 signature.

    Python: shelfwise.export.bundle.export_bundle(run, out, ...)

    \b
    Examples:
      shelfwise export runs/beauty --out bundles/beauty --quantize int8
      shelfwise export runs/groceries --out kiosk_demo/store/bundle --quantize int8 --sign-key k.key
    """
    show_log_lines()
    key = read_private_key(sign_key) if sign_key else None
    expires = int((time.time() + expires_days * 86400) * 1000) if expires_days else None
    report = export_bundle(
        run,
        out,
        quantize=quantize,
        sign_key=key,
        model_name=name,
        model_version=version,
        expires_ms=expires,
    )
    emit(as_json, report.manifest.__dict__, lambda: _summary(report, key is not None))


__all__ = ["export_command"]
