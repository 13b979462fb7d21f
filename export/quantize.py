"""Dynamic int8 quantization of the exported graph, the check that it really runs int8, and
the per-bundle choice between int8 and fp32 (``choose_quantization``).

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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


# -- choosing per bundle: int8 only where this machine measures that it pays -----------------------
# int8 must answer at least this much faster than fp32 to be worth its rounding error (and, with
# the table kept in fp32 for the input lookup, its extra bytes).
MIN_SPEEDUP = 1.10
# Catalog sizes at which the scoring head alone is timed, fp32 against int8, to find the size
# from which the int8 scorer pays on this machine.
CROSSOVER_SIZES = (2_000, 8_000, 32_000, 128_000)


@dataclass(frozen=True)
class QuantizationChoice:
    """What export ships and why: the graph, its mode, and the measurements behind it."""

    mode: str  # "none" (fp32) or "int8" (the scorer MatMul only)
    model: bytes
    why: str
    crossover_items: int | None  # smallest timed catalog where the int8 head paid; None: none
    measured: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The record export writes into ``Manifest.training["quantization"]``."""
        return {
            "mode": "int8 scorer (MatMulInteger), rest fp32" if self.mode == "int8" else "none",
            "policy": "auto",
            "chosen": self.mode,
            "why": self.why,
            "int8_scorer_pays_from_items": self.crossover_items,
            "min_speedup": MIN_SPEEDUP,
            "measured": self.measured,
        }


def scoring_head_model(table: np.ndarray, opset: int = 18) -> bytes:
    """The scoring head alone, as export writes it: ``user`` [B, d] @ W [d, N+1] + a padding
    bias (-1e9 on column 0) -> ``TopK(k)``; ``table`` is [N+1, d] (row 0 padding).

    Example:
        >>> import onnxruntime as ort
        >>> table = np.eye(3, dtype=np.float32)
        >>> session = ort.InferenceSession(scoring_head_model(table), providers=["CPUExecutionProvider"])
        >>> _, items = session.run(None, {"user": table[2:3], "k": np.array([1])})
        >>> items.tolist()
        [[2]]
    """
    from onnx import TensorProto, helper, numpy_helper

    bias = np.zeros(len(table), np.float32)
    bias[0] = -1e9
    nodes = [
        helper.make_node("MatMul", ["user", "W"], ["matmul"], name="scorer"),
        helper.make_node("Add", ["matmul", "pad_bias"], ["all_scores"]),
        helper.make_node("TopK", ["all_scores", "k"], ["scores", "items"], axis=1, name="topk"),
    ]
    graph = helper.make_graph(
        nodes,
        "scoring_head",
        [
            helper.make_tensor_value_info("user", TensorProto.FLOAT, ["batch", table.shape[1]]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "topk"]),
            helper.make_tensor_value_info("items", TensorProto.INT64, ["batch", "topk"]),
        ],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(table.T, dtype=np.float32), "W"),
            numpy_helper.from_array(bias, "pad_bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _runtime_session(onnx_bytes: bytes, num_items: int) -> Any:
    """A session configured exactly as ``shelfwise.model.runtime.LoadedModel`` configures it."""
    import onnxruntime as ort

    from shelfwise.model.runtime import DISABLED_OPTIMIZERS, session_options

    return ort.InferenceSession(
        onnx_bytes,
        sess_options=session_options(num_items),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )


def _interleaved_p50_ms(
    sessions: dict[str, Any], feeds: list[dict[str, np.ndarray]], rounds: int
) -> dict[str, float]:
    """Median ms per call for each session, calls interleaved so machine noise hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for sess in sessions.values():
        for feed in feeds[:3]:  # warm up
            sess.run(None, feed)
    for i in range(rounds):
        feed = feeds[i % len(feeds)]
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, feed)
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) * 1000 for name, values in samples.items()}


def scorer_crossover(dim: int, *, rounds: int = 60, seed: int = 0) -> tuple[int | None, dict]:
    """The smallest of ``CROSSOVER_SIZES`` at which the int8 scoring head answers at least
    ``MIN_SPEEDUP`` times faster than fp32 here (head only: the encoder costs both the same),
    and the timings behind it."""
    rng = np.random.default_rng(seed)
    timings: dict[str, dict[str, float]] = {}
    crossover = None
    k = np.array([11], dtype=np.int64)
    for size in CROSSOVER_SIZES:
        table = rng.standard_normal((size + 1, dim)).astype(np.float32) * 0.1
        fp32 = scoring_head_model(table)
        sessions = {
            "fp32": _runtime_session(fp32, size),
            "int8": _runtime_session(quantize_int8(fp32), size),
        }
        feeds: list[dict[str, np.ndarray]] = [
            {"user": rng.standard_normal((1, dim)).astype(np.float32), "k": k} for _ in range(8)
        ]
        p50 = _interleaved_p50_ms(sessions, feeds, rounds)
        timings[str(size)] = {name: round(ms, 4) for name, ms in p50.items()}
        if crossover is None and p50["fp32"] >= MIN_SPEEDUP * p50["int8"]:
            crossover = size
    return crossover, timings


def choose_quantization(
    fp32: bytes,
    histories: np.ndarray,
    num_items: int,
    dim: int,
    *,
    relative_drop: Callable[[bytes], float] | None = None,
    max_relative_drop: float = 0.02,
    rounds: int = 200,
) -> QuantizationChoice:
    """fp32, or int8 for the scorer alone, whichever this machine measures to be worth it.

    1. Time the scoring head alone, fp32 vs int8, at a few catalog sizes: below the size from
       which int8 pays (``MIN_SPEEDUP``), keep fp32 -- small catalogs lose to the quantize step.
    2. Above it, quantize the scorer only and time both full graphs on real ``histories``
       (left-padded [n, L], fed as the runtime feeds them, with the runtime's session options):
       ship int8 only if it answers ``MIN_SPEEDUP`` times faster and ``relative_drop`` (the
       validation metric's relative loss, when given) stays within ``max_relative_drop``.

    Example (needs an exported graph and its validation histories)::

        choice = choose_quantization(fp32, histories, num_items=12101, dim=64)
        choice.mode, choice.why
    """
    measured: dict[str, Any] = {"items": num_items, "fp32_bytes": len(fp32)}
    crossover, head = scorer_crossover(dim)
    measured["head_p50_ms_by_items"] = head
    if crossover is None or num_items < crossover:
        where = (
            f"from {crossover:,} items" if crossover else f"at any of {list(CROSSOVER_SIZES)} items"
        )
        why = (
            f"fp32: the int8 scorer pays {where} on this machine (head alone, >= "
            f"{MIN_SPEEDUP}x faster), and this catalog has {num_items:,}"
            if crossover
            else f"fp32: the int8 scorer head was not {MIN_SPEEDUP}x faster {where} here"
        )
        return QuantizationChoice("none", fp32, why, crossover, measured)
    int8 = quantize_int8(fp32, scorer_only=True)
    feeds: list[dict[str, np.ndarray]] = []
    k = np.array([11], dtype=np.int64)
    for row in histories:
        filled = np.flatnonzero(row)
        if len(filled):  # the runtime feeds the filled columns only
            feeds.append({"history": np.ascontiguousarray(row[None, filled[0] :]), "k": k})
    sessions = {
        "fp32": _runtime_session(fp32, num_items),
        "int8": _runtime_session(int8, num_items),
    }
    p50 = _interleaved_p50_ms(sessions, feeds, rounds)
    speedup = p50["fp32"] / p50["int8"]
    measured.update(
        int8_bytes=len(int8),
        graph_p50_ms={name: round(ms, 4) for name, ms in p50.items()},
        int8_speedup=round(speedup, 3),
    )
    if speedup < MIN_SPEEDUP:
        why = (
            f"fp32: {num_items:,} items is above the {crossover:,}-item crossover, but the whole "
            f"int8-scorer graph answered only {speedup:.2f}x as fast as fp32 "
            f"({p50['int8']:.3f} vs {p50['fp32']:.3f} ms) on real histories"
        )
        return QuantizationChoice("none", fp32, why, crossover, measured)
    if relative_drop is not None:
        drop = relative_drop(int8)
        measured["ndcg@10_relative_drop"] = round(drop, 4)
        if drop > max_relative_drop:
            why = (
                f"fp32: int8 was {speedup:.2f}x faster but cost {100 * drop:.1f}% relative "
                f"NDCG@10 on validation (budget {100 * max_relative_drop:.0f}%)"
            )
            return QuantizationChoice("none", fp32, why, crossover, measured)
    why = (
        f"int8 scorer: {num_items:,} items is above the {crossover:,}-item crossover and the "
        f"graph answered {speedup:.2f}x faster ({p50['int8']:.3f} vs {p50['fp32']:.3f} ms)"
    )
    return QuantizationChoice("int8", int8, why, crossover, measured)
