"""Tiny real ONNX models for runtime tests, built with onnx.helper (no torch needed).

The model follows the bundle contract: mean of the history's item vectors, dot product with
every item's vector, TopK inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shelfwise._bundle import Manifest, SideTables, write_bundle


def mean_pool_scorer(item_vectors: np.ndarray, opset: int = 17) -> bytes:
    """An ONNX graph: history [B, L] -> mean of item vectors -> scores over all items -> TopK."""
    vectors = np.asarray(item_vectors, dtype=np.float32).copy()
    vectors[0] = 0.0
    scorer = np.ascontiguousarray(vectors.T)
    nodes = [
        helper.make_node("Gather", ["E", "history"], ["emb"], axis=0),
        helper.make_node("ReduceSum", ["emb", "axis1"], ["summed"], keepdims=0),
        helper.make_node("Greater", ["history", "zero"], ["mask"]),
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["user"]),
        helper.make_node("MatMul", ["user", "W"], ["all_scores"]),
        helper.make_node("TopK", ["all_scores", "k"], ["scores", "items"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_pool_scorer",
        [
            helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "topk"]),
            helper.make_tensor_value_info("items", TensorProto.INT64, ["batch", "topk"]),
        ],
        initializer=[
            numpy_helper.from_array(vectors, "E"),
            numpy_helper.from_array(scorer, "W"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([[1.0]], dtype=np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_test_bundle(
    folder: Path,
    items: list[str],
    item_vectors: np.ndarray,
    *,
    side_tables: SideTables | None = None,
    version: str = "1",
    max_history: int = 8,
    sign_key: bytes | None = None,
) -> Path:
    """A complete, verifiable bundle around ``mean_pool_scorer``."""
    write_bundle(
        folder,
        Manifest(
            model_name="test-mean-pool",
            model_version=version,
            max_history=max_history,
            embedding_dim=int(item_vectors.shape[1]),
            opset=17,
        ),
        model_onnx=mean_pool_scorer(item_vectors),
        items=items,
        item_vectors=item_vectors,
        side_tables=side_tables,
        sign_key=sign_key,
    )
    return folder
