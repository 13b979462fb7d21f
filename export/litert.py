"""The bundle's network as a LiteRT model (``model.tflite``), for devices that run it instead of
onnxruntime.

``benchmarks/bench_peers.py`` measured LiteRT (``ai-edge-litert``, XNNPACK on CPU) against the
runtime's onnxruntime session on the same trained network: see benchmarks/README.md. Where it
wins, ``add_litert_model`` puts the LiteRT export of the same network into an existing bundle:

- converted with litert-torch (Google's maintained PyTorch -> LiteRT converter) from export's
  ``ExportScorer`` with top-k inside, for a static ``[1, max_len]`` history (the converter
  refused a dynamic length) -- ``StaticLengthScorer`` precomputes the position embeddings and
  the causal mask, because ``torch.arange``/``torch.eye`` lower to ``STABLEHLO_IOTA``, which the
  LiteRT interpreter cannot run;
- checked for top-10 agreement with PyTorch on the run's real validation histories;
- timed against the bundle's own ONNX graph with the runtime's session options, interleaved;
- listed in the manifest (sha256 like every file, so a signature covers it) and described in
  ``Manifest.training["backends"]["litert"]``, with ``preferred`` true when it measured faster.

The runtime serves it only when ``ai-edge-litert`` is installed and the bundle prefers it or the
device asks for it (``SHELFWISE_MODEL_BACKEND=litert``): ``shelfwise.model.litert``.

Example (needs a trained run, its bundle and the ``peers`` extra)::

    report = add_litert_model("runs/beauty", "bundles/beauty")
    report.training["backends"]["litert"]["preferred"]
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shelfwise import ExportCheckFailed
from shelfwise.model.bundle import Manifest, read_bundle, write_bundle
from shelfwise.model.litert import FILE, MAX_K
from shelfwise.training.data import EvalCases
from shelfwise.training.model import NEG, SeqRec
from shelfwise.training.train import load_run, run_file

from .bundle import padded
from .onnx_export import ExportScorer

MIN_AGREEMENT = 0.99  # top-10 agreement with PyTorch a LiteRT model must reach to ship


class TopKScorer(nn.Module):
    """Export's ``ExportScorer`` with top-``k`` inside, as the bundle's ONNX graph runs it.

    ``table`` [N+1, d] replaces the trained item table (the benchmark's tiled catalogs).
    """

    def __init__(self, model: SeqRec, k: int, table: np.ndarray | None = None) -> None:
        super().__init__()
        self.scorer = ExportScorer(model).eval()
        if table is not None and table.shape[0] != self.scorer.scorer.shape[1]:
            self.scorer.scorer = nn.Parameter(
                torch.from_numpy(np.ascontiguousarray(table.T)), requires_grad=False
            )
            bias = torch.zeros(table.shape[0])
            bias[0] = NEG
            self.scorer.pad_bias = bias
        self.k = k

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # ExportScorer also returns the user vector (the bundle graph's second output): the
        # peers answer the top k only.
        all_scores, _user = self.scorer(history)
        # A tuple, not torch.return_types.topk: ExecuTorch's emitter cannot serialize the latter.
        scores, items = torch.topk(all_scores, self.k, dim=1)
        return scores, items


class StaticLengthScorer(nn.Module):
    """``TopKScorer`` for one fixed history length, with the position embeddings and the causal
    mask precomputed: the weights and the arithmetic of ``SeqRec.encode``, without the
    ``arange``/``eye`` that LiteRT's interpreter cannot run."""

    def __init__(self, top: TopKScorer, length: int) -> None:
        super().__init__()
        self.top = top
        model = top.scorer.model
        self.dim = model.config.dim
        positions = torch.arange(length) + (model.config.max_len - length)
        with torch.no_grad():
            self.positions: torch.Tensor
            self.register_buffer("positions", model.pos_emb(positions).detach().clone())
        self.causal: torch.Tensor
        self.register_buffer("causal", torch.ones(length, length, dtype=torch.bool).tril())
        self.diagonal: torch.Tensor
        self.register_buffer("diagonal", torch.eye(length, dtype=torch.bool))

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scorer = self.top.scorer
        model = scorer.model
        batch, length = history.shape
        picked = torch.index_select(scorer.scorer, 1, history.reshape(-1))
        x = picked.T.reshape(batch, length, -1) * math.sqrt(self.dim) + self.positions
        present = history > 0
        x = x * present.unsqueeze(-1)
        allowed = (self.causal & present[:, None, None, :]) | self.diagonal
        for block in model.blocks:
            x = block(x, allowed) * present.unsqueeze(-1)
        user = model.norm(x)[:, -1, :]
        scores = torch.matmul(user, scorer.scorer) + scorer.pad_bias
        top_scores, top_items = torch.topk(scores, self.top.k, dim=1)
        return top_scores, top_items


def example_history(max_len: int) -> torch.Tensor:
    """A left-padded example input [1, max_len] for the exporters."""
    example = torch.arange(1, max_len + 1, dtype=torch.long).reshape(1, max_len)
    example[0, : max_len // 3] = 0
    return example


def convert(model: SeqRec, k: int, table: np.ndarray | None = None) -> bytes:
    """The LiteRT flatbuffer of ``StaticLengthScorer``: history int64 [1, max_len] ->
    (scores float32 [1, k], items int64 [1, k])."""
    import litert_torch

    max_len = model.config.max_len
    module = StaticLengthScorer(TopKScorer(model, k, table), max_len).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the converter warns about torch internals
        edge = litert_torch.convert(module, (example_history(max_len),))
    return bytes(edge.model_content())


def top10_agreement(model: SeqRec, tflite: bytes, histories: np.ndarray) -> float:
    """Mean |LiteRT top-10 ∩ PyTorch top-10| / 10 over left-padded ``histories`` [n, max_len]."""
    from shelfwise.model.litert import LiteRtScorer

    scorer = LiteRtScorer(tflite, threads=1, history_length=model.config.max_len)
    agree = 0.0
    with torch.no_grad():
        expected = model.score(torch.from_numpy(histories)).numpy()
    _, items = scorer.run(histories, 10)
    for ours, scores in zip(items, expected, strict=True):
        agree += len(set(ours.tolist()) & set(np.argsort(-scores)[:10].tolist())) / 10
    return agree / max(len(histories), 1)


def _p50_ms(
    histories: np.ndarray, onnx_bytes: bytes, tflite: bytes, items: int
) -> dict[str, float]:
    """onnxruntime (the runtime's options, filled columns) vs LiteRT, interleaved per call."""
    import onnxruntime as ort

    from shelfwise.model.litert import LiteRtScorer
    from shelfwise.model.runtime import DISABLED_OPTIMIZERS, session_options

    session = ort.InferenceSession(
        onnx_bytes,
        sess_options=session_options(items, 1),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )
    lite = LiteRtScorer(tflite, threads=1, history_length=histories.shape[1])
    k = np.array([11], dtype=np.int64)
    samples: dict[str, list[float]] = {"onnxruntime": [], "litert": []}
    for n in range(3 * len(histories)):
        row = histories[n % len(histories)][None]
        filled = np.flatnonzero(row[0])
        trimmed = np.ascontiguousarray(row[:, filled[0] if len(filled) else -1 :])
        start = time.perf_counter()
        session.run(None, {"history": trimmed, "k": k})
        samples["onnxruntime"].append(time.perf_counter() - start)
        start = time.perf_counter()
        lite.run(row, 11)
        samples["litert"].append(time.perf_counter() - start)
    return {name: round(float(np.median(v)) * 1000, 4) for name, v in samples.items()}


def add_litert_model(
    run_dir: str | Path,
    bundle: str | Path,
    *,
    sign_key: bytes | None = None,
    preferred: bool | None = None,
    cases: int = 500,
) -> Manifest:
    """Add ``model.tflite`` (the same network, for LiteRT) to the bundle exported from
    ``run_dir``, rewritten atomically (and signed again with ``sign_key``).

    ``preferred`` (None: measured here -- LiteRT answered at least as fast as onnxruntime)
    tells the runtime to serve it by default where ``ai-edge-litert`` is installed.
    Raises ``ExportCheckFailed`` when the run is not the bundle's or the agreement is short.
    """
    files = read_bundle(bundle)
    model, vocab, _config = load_run(run_dir)
    if list(vocab.items) != list(files.items):
        raise ExportCheckFailed(f"{run_dir} is not the run {bundle} was exported from (items)")
    max_len = model.config.max_len
    k = min(len(vocab) + 1, MAX_K)
    started = time.perf_counter()
    tflite = convert(model, k)
    seconds = time.perf_counter() - started
    valid = EvalCases.from_npz(run_file(run_dir, "validation.npz"))
    histories = padded(valid.histories[:cases], max_len)
    histories = histories[(histories > 0).any(axis=1)]
    agreement = top10_agreement(model, tflite, histories)
    if agreement < MIN_AGREEMENT:
        raise ExportCheckFailed(
            f"LiteRT top-10 agreement with PyTorch is {agreement:.4f} < {MIN_AGREEMENT}"
        )
    p50 = _p50_ms(histories[:100], files.model_bytes, tflite, len(vocab))
    if preferred is None:
        preferred = p50["litert"] <= p50["onnxruntime"]
    training: dict[str, Any] = dict(files.manifest.training)
    training["backends"] = {
        **dict(training.get("backends", {})),
        "litert": {
            "file": FILE,
            "history_length": max_len,
            "k": k,
            "preferred": bool(preferred),
            "top10_agreement_vs_torch": round(agreement, 4),
            "agreement_cases": len(histories),
            "p50_ms_one_history_1_thread": p50,
            "converter": {
                name: importlib.metadata.version(name)
                for name in ("litert-torch", "ai-edge-litert", "torch")
            },
            "convert_s": round(seconds, 1),
            "how": "litert_torch.convert of export's ExportScorer + top-k, static [1, max_len], "
            "positions and causal mask precomputed (STABLEHLO_IOTA is not in the interpreter)",
        },
    }
    return write_bundle(
        bundle,
        dataclasses.replace(files.manifest, training=training),
        model_onnx=files.model_bytes,
        items=files.items,
        item_vectors=files.item_vectors,
        side_tables=files.side_tables,
        sign_key=sign_key,
        extra_files={FILE: tflite},
    )
