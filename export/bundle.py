"""Run folder -> verified, optionally int8, optionally signed bundle the runtime loads.

Steps: export the ONNX graph, ``onnx.checker``, parity with PyTorch on the run's real
validation histories (max abs diff, top-10 agreement; batch sizes >= 2 and a shorter history
length), quantization (``auto``, the default: int8 for the scorer only where this machine
measures it worth it, else fp32 -- ``quantize.choose_quantization`` -- or ``int8``/``none`` as
asked) with its metric change on the validation split,
then ``shelfwise.model.bundle.write_bundle`` with all of it in ``Manifest.training``: the training
data fingerprint and attribution, the side tables, sha256 of every file, and an ed25519
signature when a key is given.

A bundle goes to every device and may be published, so its manifest names no path of the
trainer's machine: input files appear as their name and sha256 (``public_config``), and
export refuses a training record that still carries an absolute or home-directory path.

Example (needs a trained run)::

    report = export_bundle("runs/beauty", "bundles/beauty")  # quantize="auto"
    report.manifest.quantization   # 'none' or 'int8', whichever measured worth it
    report.manifest.training["quantization"]["why"]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from shelfwise import ExportCheckFailed, InvalidInput
from shelfwise.model.bundle import Manifest, SideTables, write_bundle
from shelfwise.model.encoding import FeatureEncoding, ItemFeatures
from shelfwise.training.data import EvalCases
from shelfwise.training.evaluate import evaluate
from shelfwise.training.model import SeqRec
from shelfwise.training.train import (
    TrainConfig,
    item_feature_map,
    load_features,
    load_run,
    model_scorer,
    public_config,
    read_run_json,
    run_file,
)

from .onnx_export import OPSET, USER_OUTPUT, check_parity, export_onnx, onnx_scorer
from .quantize import choose_quantization, op_counts, quantize_int8, scorer_is_int8

logger = logging.getLogger(__name__)

# Where the public data came from (shared/data/README.md); copied into the manifest.
ATTRIBUTION = {
    "Beauty.txt": "Amazon 'Beauty' review sequences (S3-Rec cut), RUCAIBox/CIKM2020-S3Rec @ "
    "2a81540a data/Beauty.txt; Amazon review data, research use",
    "Groceries_dataset.csv": "Kaggle 'Groceries dataset' (a real grocery store's loyalty-member "
    "purchases, 2014-2015), Isha019/Market-Basket-Analysis-using-Apriori-Algorithm @ 23247d46; "
    "licence not stated",
    "BreadBasket_DMS.csv": "Kaggle 'Transactions from a bakery' (Edinburgh), prasertcbs/"
    "basic-dataset @ a53613f6; licence not stated",
}
# An absolute path (POSIX, Windows drive or share) or a home directory starting a token.
MACHINE_PATH = re.compile(r"""(?:^|[\s"'=(,;])(?:/[^\s/]|~[/\\]|[A-Za-z]:[/\\]|\\\\[^\s\\])""")
PARITY_TOLERANCE = 1e-3  # max abs score difference accepted for fp32
INT8_MAX_RELATIVE_DROP = 0.02  # int8 may cost at most 2% relative validation NDCG@10
QUANTIZE_MODES = ("auto", "none", "int8")


@dataclass(frozen=True)
class ExportReport:
    """What export measured and wrote."""

    path: Path
    manifest: Manifest
    size_bytes: int


def padded(histories: list[list[int]], max_len: int) -> np.ndarray:
    """Left-padded int64 [n, max_len] (the same layout ``encode_histories`` produces)."""
    batch = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, history in enumerate(histories):
        tail = history[-max_len:]
        if tail:
            batch[row, max_len - len(tail) :] = tail
    return batch


def trained_feature_table(model: SeqRec) -> np.ndarray:
    """The model's feature table with the rows no trained item uses set to zero.

    A hashed name word that only an unseen (or held-out) item has kept its random initial
    row: shipping it would add noise to a new item's vector, shipping zero adds nothing.
    """
    assert model.feature_emb is not None
    with torch.no_grad():
        table = model.feature_emb.weight.detach().clone().numpy().astype(np.float32)
    trained_items = model.item_features[model.has_id > 0]
    used = np.zeros(len(table), dtype=bool)
    used[np.unique(trained_items.numpy())] = True
    used[0] = False
    table[~used] = 0.0
    return table


def check_feature_encoding(
    model: SeqRec, encoding: FeatureEncoding, config: TrainConfig, vocab_items: list[str]
) -> dict[str, Any]:
    """Re-encode the training items' features with the encoding the bundle ships and compare
    with the rows the model trained on: the runtime must read features the same way."""
    from shelfwise.model.encoding import Vocabulary

    vocab = Vocabulary(vocab_items)
    sources = [p for p in (config.catalog, config.item_features) if p]
    if not all(Path(p).is_file() for p in sources):
        return {"checked": False, "reason": "the feature files are not on this machine"}
    by_item = item_feature_map(config, vocab)
    empty = ItemFeatures()
    trained = model.item_features.numpy()
    rows = encoding.encode(
        [empty] + [by_item.get(i, empty) for i in range(1, len(vocab) + 1)],
        width=trained.shape[1],
    )
    differ = int((np.sort(rows, axis=1) != np.sort(trained, axis=1)).any(axis=1).sum())
    if differ:
        raise ExportCheckFailed(
            f"{differ} items encode to other feature rows than the model trained on: the "
            "feature encoding changed since training; train again"
        )
    return {"checked": True, "items": len(vocab), "mismatches": 0}


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key}", str(key)
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def refuse_machine_paths(training: dict[str, Any]) -> None:
    """Raise ``ExportCheckFailed`` if the training record names a path of this machine.

    Example:
        >>> refuse_machine_paths({"data": {"path": "Beauty.txt"}})
        >>> refuse_machine_paths({"config": {"data": "/home/ann/Beauty.txt"}})
        Traceback (most recent call last):
        ...
        shelfwise.ExportCheckFailed: training.config.data names a path of the trainer's machine ('/home/ann/Beauty.txt'): record a file name and its sha256 instead
    """
    home = str(Path.home())
    for where, text in _strings(training, "training"):
        if MACHINE_PATH.search(text) or (len(home) > 1 and home in text):
            raise ExportCheckFailed(
                f"{where} names a path of the trainer's machine ({text!r}): record a file "
                "name and its sha256 instead"
            )


def export_bundle(
    run_dir: str | Path,
    out: str | Path,
    *,
    quantize: str = "auto",
    sign_key: bytes | None = None,
    model_name: str = "",
    model_version: str = "",
    parity_cases: int = 2000,
    expires_ms: int | None = None,
) -> ExportReport:
    """Export a run folder as a bundle; raises ``ExportCheckFailed`` if parity fails.

    ``InvalidInput`` for an unknown ``quantize``, ``InvalidRun`` for a folder that is not a
    finished run; both before any work, and nothing is written.
    """
    if quantize not in QUANTIZE_MODES:
        raise InvalidInput(f"unknown quantization {quantize!r}: use {', '.join(QUANTIZE_MODES)}")
    run = Path(run_dir)
    model, vocab, config = load_run(run)
    encoding = load_features(run)
    report = read_run_json(run, "run.json")
    valid = EvalCases.from_npz(run_file(run, "validation.npz"))
    max_len = model.config.max_len
    mask_seen = bool(report["mask_seen"])

    fp32 = export_onnx(model)
    histories = padded(valid.histories[:parity_cases], max_len)
    parity = check_parity(model, fp32, histories)
    if parity.max_abs_diff > PARITY_TOLERANCE or parity.top10_agreement < 0.99:
        raise ExportCheckFailed(f"ONNX does not match PyTorch: {parity}")
    torch_valid = evaluate(
        model_scorer(model, vocab, max_len), valid, mask_seen=mask_seen, progress=False
    ).metrics
    onnx_bytes = fp32
    quant: dict[str, Any] = {"mode": "none"}
    if quantize == "int8":
        # All dense layers first; if that costs more than the budget, only the scorer.
        for scope in ("all MatMul weights", "scorer MatMul only"):
            onnx_bytes = quantize_int8(fp32, scorer_only=scope.startswith("scorer"))
            int8_valid = evaluate(
                onnx_scorer(onnx_bytes, len(vocab), max_len), valid, mask_seen=mask_seen,
                progress=False,
            ).metrics  # fmt: skip
            drop = (torch_valid["ndcg@10"] - int8_valid["ndcg@10"]) / max(
                torch_valid["ndcg@10"], 1e-9
            )
            if drop < INT8_MAX_RELATIVE_DROP:
                break
        int8_parity = check_parity(model, onnx_bytes, histories)
        quant = {
            "mode": "int8 dynamic (onnxruntime quantize_dynamic, per-channel QInt8 weights)",
            "quantized": scope,
            "scorer_runs_matmulinteger": scorer_is_int8(onnx_bytes),
            "valid_fp32": torch_valid,
            "valid_int8": int8_valid,
            "ndcg@10_relative_drop": round(drop, 4),
            "within_budget": drop < INT8_MAX_RELATIVE_DROP,
            "parity_vs_torch": int8_parity.to_dict(),
            "fp32_bytes": len(fp32),
            "int8_bytes": len(onnx_bytes),
        }
        if not quant["scorer_runs_matmulinteger"]:
            raise ExportCheckFailed("int8 graph does not score with MatMulInteger")
        if not quant["within_budget"]:
            logger.warning("int8 costs %.1f%% relative NDCG@10", 100 * drop)
    elif quantize == "auto":  # int8 for the scorer only where it measures faster (quantize.py)

        def int8_drop(graph: bytes) -> float:
            metrics = evaluate(
                onnx_scorer(graph, len(vocab), max_len), valid, mask_seen=mask_seen, progress=False
            ).metrics
            return (torch_valid["ndcg@10"] - metrics["ndcg@10"]) / max(torch_valid["ndcg@10"], 1e-9)

        choice = choose_quantization(
            fp32, histories[:200], len(vocab), model.config.dim,
            relative_drop=int8_drop, max_relative_drop=INT8_MAX_RELATIVE_DROP,
        )  # fmt: skip
        onnx_bytes, quant = choice.model, choice.to_dict()
        if choice.mode == "int8":
            quant["parity_vs_torch"] = check_parity(model, onnx_bytes, histories).to_dict()
            quant["scorer_runs_matmulinteger"] = scorer_is_int8(onnx_bytes)
        logger.info("quantization: %s", choice.why)

    side_path = run / "side_tables.msgpack"
    side = SideTables.from_msgpack(side_path.read_bytes()) if side_path.is_file() else SideTables()
    data_name = Path(report["data"]["path"]).name
    training: dict[str, Any] = {
        "data": {**report["data"], "path": data_name},  # no machine-specific paths
        "attribution": ATTRIBUTION.get(data_name, "see the data's own licence"),
        "protocol": report["protocol"],
        "mask_seen": mask_seen,
        "best_epoch": report["best_epoch"],
        # a refit run trained on the validation targets too: its validation metrics below
        # measure the export (parity, int8), not held-out quality
        "refit": bool(report.get("refit", False)),
        "valid_metrics": torch_valid,
        "config": public_config(read_run_json(run, "config.json")),
        "onnx_checker": "passed (full_check)",
        "parity_fp32_vs_torch": parity.to_dict(),
        "quantization": quant,
        "ops": op_counts(onnx_bytes),
        "exporter": f"torch {torch.__version__} dynamo, opset {OPSET}",
        "verified_with_onnxruntime": ort.__version__,
    }
    feature_table = None
    if encoding is not None and model.feature_emb is not None:
        feature_table = trained_feature_table(model)
        training["features"] = {
            "rows": int(feature_table.shape[0]),
            "trained_rows": int((np.abs(feature_table).sum(axis=1) > 0).sum()),
            "encoding_check": check_feature_encoding(model, encoding, config, vocab.items),
            "id_dropout": model.config.id_dropout,
        }
    refuse_machine_paths(training)
    manifest = Manifest(
        model_name=model_name or f"shelfwise-seqrec-{Path(data_name).stem.lower()}",
        model_version=model_version or report["data"]["fingerprint"][:12],
        max_history=max_len,
        num_items=len(vocab),
        embedding_dim=model.config.dim,
        opset=OPSET,
        min_onnxruntime="1.17",
        quantization="int8" if scorer_is_int8(onnx_bytes) else "none",
        expires_ms=expires_ms,
        training=training,
        output_user=USER_OUTPUT,
        features=encoding.to_dict() if feature_table is not None and encoding else {},
    )
    with torch.no_grad():
        vectors = model.item_table().numpy().astype(np.float32)
    written = write_bundle(
        out,
        manifest,
        model_onnx=onnx_bytes,
        items=vocab.items,
        item_vectors=vectors,
        side_tables=side,
        feature_table=feature_table,
        sign_key=sign_key,
    )
    onnx.checker.check_model(onnx.load_from_string(onnx_bytes))
    size = sum(p.stat().st_size for p in Path(out).iterdir())
    logger.info("wrote bundle %s (%d bytes, %s)", out, size, written.quantization)
    return ExportReport(Path(out), written, size)
