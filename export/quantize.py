"""Dynamic int8 quantization of the exported graph, and the check that it really runs int8.

``onnxruntime.quantization.quantize_dynamic`` replaces ``MatMul`` nodes whose second input
is a constant with ``DynamicQuantizeLinear`` + ``MatMulInteger`` over an int8 weight. The
check walks back from ``TopK``: the catalog scores must come out of a ``MatMulInteger`` (if the
table were dequantized on every call, int8 would be slower than fp32 — FIELD-NOTES).

Example (needs an exported graph)::

    int8_bytes = quantize_int8(onnx_bytes)
    assert scorer_is_int8(int8_bytes)
"""

from __future__ import annotations

import logging
import os
import tempfile

import onnx

# Element-wise steps between the scoring MatMulInteger and TopK after quantization.
_PASS_THROUGH = {"Cast", "Mul", "Add", "Identity", "Reshape"}


def scorer_matmul(onnx_bytes: bytes) -> str:
    """Name of the MatMul node whose output TopK ranks (the catalog scorer)."""
    graph = onnx.load_from_string(onnx_bytes).graph
    producer = {out: node for node in graph.node for out in node.output}
    topk = next(n for n in graph.node if n.op_type == "TopK")
    frontier = [topk.input[0]]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None:
            continue
        if node.op_type == "MatMul":
            return node.name
        if node.op_type in _PASS_THROUGH:
            frontier.extend(node.input)
    raise ValueError("no MatMul feeds TopK in this graph")


def quantize_int8(onnx_bytes: bytes, *, scorer_only: bool = False) -> bytes:
    """int8 weights for every constant-weight MatMul (the scorer and the dense layers), or
    with ``scorer_only`` just the catalog scorer (the bulk of the bytes and of the time)."""
    nodes = [scorer_matmul(onnx_bytes)] if scorer_only else None
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "fp32.onnx")
        target = os.path.join(tmp, "int8.onnx")
        with open(source, "wb") as handle:
            handle.write(onnx_bytes)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it logs a "consider pre-processing" WARNING on root
        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=nodes,
                per_channel=True,
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            root.setLevel(level)
        model = onnx.load(target)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def scorer_is_int8(onnx_bytes: bytes) -> bool:
    """True when the scores TopK ranks are computed by a ``MatMulInteger``."""
    graph = onnx.load_from_string(onnx_bytes).graph
    producer = {out: node for node in graph.node for out in node.output}
    topk = [n for n in graph.node if n.op_type == "TopK"]
    if not topk:
        return False
    frontier = [topk[0].input[0]]
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        node = producer.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        if node.op_type == "MatMulInteger":
            return True
        if node.op_type in _PASS_THROUGH:
            frontier.extend(node.input)
    return False


def op_counts(onnx_bytes: bytes) -> dict[str, int]:
    """How many nodes of each op type the graph has (for the manifest and tests)."""
    counts: dict[str, int] = {}
    for node in onnx.load_from_string(onnx_bytes).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
