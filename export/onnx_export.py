"""PyTorch model -> ONNX graph with the bundle contract, and the parity check.

Graph contract (``shelfwise.model.runtime.LoadedModel.score``): inputs ``history`` int64
[batch, L] (left padded with 0, any L up to ``max_len``) and ``k`` int64 [1]; outputs
``scores`` float32 [batch, k] and ``items`` int64 [batch, k] (model indices), and ``user``
float32 [batch, dim], the vector the catalog is scored against: the runtime scores items the
bundle has never seen (vectors from the feature table) against it.

How it is built, and why:

- The item table is stored once, pre-transposed as the scorer weight ``W`` [dim, N+1]. The
  input embedding is ``Gather(W, history, axis=1)`` then a transpose of the small result, so
  the table is not duplicated and dynamic int8 quantization turns the scoring ``MatMul`` into
  ``MatMulInteger`` on a real int8 weight (FIELD-NOTES export pitfall 3).
- Padding (index 0) gets a -1e9 bias, so it never wins.
- torch exports the scores; ``TopK`` with the ``k`` input is appended with ``onnx.helper``
  (a data-dependent k does not trace cleanly). Top-K inside the graph is ~10x faster than
  numpy at large catalogs.
- The dynamo exporter is given an example batch of 2 and explicit dynamic dims: with batch 1
  it can silently fix the batch at 1 (FIELD-NOTES export pitfall 1).

Example (needs a trained run)::

    model, vocab, config = load_run("runs/beauty")
    onnx_bytes = export_onnx(model)
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch import nn

from shelfwise.model.runtime import session_options
from shelfwise.training.evaluate import Scorer
from shelfwise.training.model import NEG, SeqRec

logger = logging.getLogger(__name__)
OPSET = 18
USER_OUTPUT = "user"


class ExportScorer(nn.Module):
    """The model with one pre-transposed item table used for both lookup and scoring."""

    def __init__(self, model: SeqRec) -> None:
        super().__init__()
        self.model = model.eval()
        with torch.no_grad():
            table = model.item_table().detach().clone()
        self.scorer = nn.Parameter(table.T.contiguous(), requires_grad=False)  # [dim, N+1]
        bias = torch.zeros(table.shape[0])
        bias[0] = NEG
        self.pad_bias: torch.Tensor
        self.register_buffer("pad_bias", bias)

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length = history.shape
        picked = torch.index_select(self.scorer, 1, history.reshape(-1))  # [dim, B*L]
        embedded = picked.T.reshape(batch, length, -1)
        user = self.model.encode(history, embedded)[:, -1, :]
        return torch.matmul(user, self.scorer) + self.pad_bias, user


def _torch_export(module: nn.Module, max_len: int) -> onnx.ModelProto:
    example = torch.ones(2, max_len, dtype=torch.long)  # batch >= 2: see module docstring
    example[0, : max_len // 2] = 0
    batch = torch.export.Dim("batch", min=1, max=4096)
    length = torch.export.Dim("length", min=1, max=max_len)
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=["history"],
            output_names=["all_scores", USER_OUTPUT],
            dynamo=True,
            opset_version=OPSET,
            external_data=False,
            dynamic_shapes={"history": {0: batch, 1: length}},
            optimize=True,
            verbose=False,
        )
        return onnx.load(path)


def _append_topk(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    scores_name = graph.output[0].name
    user = []
    for output in graph.output:
        if output.name == USER_OUTPUT:  # a copy: the outputs are cleared below
            user.append(onnx.ValueInfoProto())
            user[-1].CopyFrom(output)
    graph.input.append(helper.make_tensor_value_info("k", TensorProto.INT64, [1]))
    graph.node.append(
        helper.make_node("TopK", [scores_name, "k"], ["scores", "items"], axis=1, name="topk")
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "topk"]),
            helper.make_tensor_value_info("items", TensorProto.INT64, ["batch", "topk"]),
            *user,
        ]
    )
    return model


def export_onnx(model: SeqRec) -> bytes:
    """The ONNX graph (bytes) for a trained model; ``onnx.checker`` passes on it."""
    module = ExportScorer(model).eval()
    with torch.no_grad():
        exported = _torch_export(module, model.config.max_len)
    exported = _append_topk(exported)
    onnx.checker.check_model(exported, full_check=True)
    buffer = io.BytesIO()
    onnx.save(exported, buffer)
    return buffer.getvalue()


def session(onnx_bytes: bytes, num_items: int = 0) -> ort.InferenceSession:
    """An onnxruntime session on CPU with the runtime's own options (threads, no spinning)."""
    options = session_options(num_items)
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run_onnx(
    sess: ort.InferenceSession, histories: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, items) for a padded int64 history batch."""
    scores, items = sess.run(
        ["scores", "items"], {"history": histories, "k": np.array([k], dtype=np.int64)}
    )
    return scores, items


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX graph reproduces PyTorch on real histories."""

    cases: int
    max_abs_diff: float  # over the top-10 scores onnx returned, vs torch's scores for them
    top10_agreement: float  # mean |onnx top-10 ∩ torch top-10| / 10
    batch_sizes: tuple[int, ...]
    lengths: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "max_abs_diff": self.max_abs_diff,
            "top10_agreement": self.top10_agreement,
            "batch_sizes": list(self.batch_sizes),
            "history_lengths": list(self.lengths),
        }


def check_parity(
    model: SeqRec, onnx_bytes: bytes, histories: np.ndarray, *, batch_size: int = 64
) -> Parity:
    """Compare ONNX and PyTorch on real padded histories [n, max_len], at the full length
    and a shorter one (the graph's dynamic length), in several batch sizes."""
    sess = session(onnx_bytes)
    model.eval()
    max_len = histories.shape[1]
    short = max(1, max_len // 2)
    max_diff, agree, count = 0.0, 0.0, 0
    sizes = []
    for length in (max_len, short):
        for start in range(0, len(histories), batch_size):
            batch = np.ascontiguousarray(histories[start : start + batch_size, -length:])
            if not (batch > 0).any(axis=1).all():
                batch = batch[(batch > 0).any(axis=1)]
                if not len(batch):
                    continue
            sizes.append(len(batch))
            with torch.no_grad():
                expected = model.score(torch.from_numpy(batch)).numpy()
            scores, items = run_onnx(sess, batch, 10)
            picked = np.take_along_axis(expected, items, axis=1)
            max_diff = max(max_diff, float(np.abs(picked - scores).max()))
            torch_top = np.argsort(-expected, axis=1)[:, :10]
            for ours, theirs in zip(items, torch_top, strict=True):
                agree += len(set(ours.tolist()) & set(theirs.tolist())) / 10
            count += len(batch)
    return Parity(
        cases=count,
        max_abs_diff=round(max_diff, 7),
        top10_agreement=round(agree / max(count, 1), 4),
        batch_sizes=tuple(sorted(set(sizes))),
        lengths=(max_len, short),
    )


def onnx_scorer(onnx_bytes: bytes, num_items: int, max_len: int) -> Scorer:
    """A ``Scorer`` over the ONNX graph (full catalog scores via k = N+1), for metrics."""
    sess = session(onnx_bytes)

    def score(histories: list[list[int]]) -> np.ndarray:
        batch = np.zeros((len(histories), max_len), dtype=np.int64)
        for row, history in enumerate(histories):
            tail = history[-max_len:]
            if tail:
                batch[row, max_len - len(tail) :] = tail
        scores, items = run_onnx(sess, batch, num_items + 1)
        out = np.empty_like(scores)
        np.put_along_axis(out, items, scores, axis=1)
        return out

    return score


def save(onnx_bytes: bytes, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(onnx_bytes)
    return path
