"""Scorer graphs for the benchmark's large catalogs, built from the REAL exported model.

A bundle written by ``shelfwise export`` scores the catalog with one pre-transposed item
table ``scorer`` [d, N+1] (the encoder gathers its input vectors from the same table), adds
``pad_bias`` (-1e9 on the padding column) and ranks with ``TopK``. ``tiled_model`` keeps that
graph -- the trained SASRec-style encoder and the scoring head exactly as exported -- and only
swaps the table and the bias for ``N`` tiled copies, so the 100k and 1M rows run the same
computation as the 12k bundle, just over more items. ``head_model`` is the scoring head alone
(``user`` [B, d] -> MatMul -> Add -> TopK), fed a real user vector from the encoder, to measure
the head against numpy and the memory floor without the encoder's fixed cost.

int8 goes through ``shelfwise.export.quantize.quantize_int8``, as ``--quantize int8`` does, and
``scorer_is_int8`` checks that the scores TopK ranks come out of ``MatMulInteger``.

Needs the ``train`` extra (onnx; onnxruntime's quantization tools).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shelfwise.export.quantize import (
    quantize_int8,
    scorer_is_int8,
    scorer_matmul,
    scoring_head_model,
)

NEG = -1e9


@dataclass(frozen=True)
class ScoringHead:
    """Names in an exported graph: the scorer MatMul, its [d, N+1] weight, the bias, the user."""

    matmul: str
    weight: str
    bias: str | None
    user: str


def scoring_head(model: onnx.ModelProto) -> ScoringHead:
    """Find the catalog scorer the export wrote: MatMul(user, W[d, N+1]) (+ bias) -> TopK."""
    graph = model.graph
    name = scorer_matmul(model.SerializeToString())
    node = next(n for n in graph.node if n.name == name)
    inits = {i.name for i in graph.initializer}
    if node.input[1] not in inits:
        raise ValueError(f"the scorer {name} has no constant weight")
    bias = None
    for other in graph.node:
        if other.op_type == "Add" and node.output[0] in other.input:
            constant = [i for i in other.input if i in inits]
            bias = constant[0] if constant else None
    return ScoringHead(matmul=name, weight=node.input[1], bias=bias, user=node.input[0])


def scorer_table(model_bytes: bytes) -> np.ndarray:
    """The exported item table, [N+1, d] (row 0 is padding), as the graph holds it."""
    model = onnx.load_from_string(model_bytes)
    head = scoring_head(model)
    weight = next(i for i in model.graph.initializer if i.name == head.weight)
    return np.ascontiguousarray(numpy_helper.to_array(weight).T)


def tile_table(table: np.ndarray, items: int, seed: int = 1, noise: float = 0.05) -> np.ndarray:
    """``items`` item vectors (+ the padding row 0): the real rows repeated, each copy with
    Gaussian noise of ``noise`` x the table's std, so copies are near but not equal."""
    real = table[1:]
    reps = -(-items // len(real))
    tiled = np.tile(real, (reps, 1))[:items]
    rng = np.random.default_rng(seed)
    tiled = tiled + rng.standard_normal(tiled.shape, dtype=np.float32) * (noise * float(real.std()))
    return np.vstack([np.zeros((1, table.shape[1]), np.float32), tiled]).astype(np.float32)


def _pad_bias(rows: int) -> np.ndarray:
    bias = np.zeros(rows, np.float32)
    bias[0] = NEG
    return bias


def tiled_model(model_bytes: bytes, table: np.ndarray) -> bytes:
    """The exported fp32 graph with its item table and padding bias replaced by ``table``
    [N+1, d]: same encoder, same scoring head, N items."""
    model = onnx.load_from_string(model_bytes)
    head = scoring_head(model)
    replacements = {head.weight: np.ascontiguousarray(table.T)}
    if head.bias is not None:
        replacements[head.bias] = _pad_bias(len(table))
    for init in model.graph.initializer:
        if init.name in replacements:
            init.CopyFrom(numpy_helper.from_array(replacements[init.name], init.name))
    # Shapes recorded at export time name the old N; shape inference recomputes them.
    del model.graph.value_info[:]
    return model.SerializeToString()


def user_model(model_bytes: bytes) -> bytes:
    """The exported graph with the user vector (the scorer MatMul's input) as an extra output."""
    model = onnx.load_from_string(model_bytes)
    head = scoring_head(model)
    model.graph.output.append(helper.make_tensor_value_info(head.user, TensorProto.FLOAT, None))
    return model.SerializeToString()


def head_model(table: np.ndarray, opset: int = 18) -> bytes:
    """The scoring head alone: ``user`` [B, d] @ W[d, N+1] + pad bias -> TopK(k) (the same
    graph export times to find the catalog size from which int8 pays)."""
    return scoring_head_model(table, opset)


def int8(model_bytes: bytes) -> bytes:
    """Dynamic int8 as ``shelfwise export --quantize int8`` writes it; refuses a graph whose
    TopK is not fed by ``MatMulInteger`` (a dequantize-every-call graph is slower than fp32)."""
    quantized = quantize_int8(model_bytes)
    if not scorer_is_int8(quantized):
        raise AssertionError("the scorer did not become an int8 MatMulInteger feeding TopK")
    return quantized


def op_types(model_bytes: bytes) -> list[str]:
    """The op types on the path from the scores TopK ranks back to the scorer (for the report)."""
    graph = onnx.load_from_string(model_bytes).graph
    producer = {out: node for node in graph.node for out in node.output}
    topk = next(n for n in graph.node if n.op_type == "TopK")
    path, frontier = [], [topk.input[0]]
    while frontier:
        node = producer.get(frontier.pop(0))
        if node is None:
            continue
        path.append(node.op_type)
        if node.op_type in {"MatMul", "MatMulInteger"}:
            break
        frontier.extend(node.input)
    return ["TopK", *path]
