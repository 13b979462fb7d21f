"""A reference ONNX scorer built with onnx.helper (needs ``onnx``, not torch).

Used by the runtime tests and the benchmarks, and usable to ship item embeddings trained
elsewhere as a bundle.

The graph follows the bundle contract (history [B, L] int64, k [1] int64 -> scores, items):
mean of the history's item vectors, one MatMul against a pre-transposed [d, N+1] item
matrix, TopK inside the graph (FIELD-NOTES: in-graph TopK beats numpy at large N).
"""

from __future__ import annotations

import numpy as np


def mean_pool_scorer(
    item_vectors: np.ndarray, opset: int = 17, *, user_output: bool = False
) -> bytes:
    """Serialized ONNX model scoring every item against the mean of the history's vectors.

    With ``user_output`` the graph also returns that mean as ``user`` [batch, d], the vector
    the runtime scores items outside the vocabulary against.

    Example:
        >>> import onnxruntime as ort
        >>> vectors = np.eye(3, dtype=np.float32)
        >>> session = ort.InferenceSession(mean_pool_scorer(vectors), providers=["CPUExecutionProvider"])
        >>> _, items = session.run(None, {"history": np.array([[0, 2]]), "k": np.array([1])})
        >>> items.tolist()
        [[2]]
    """
    from onnx import TensorProto, helper, numpy_helper

    vectors = np.asarray(item_vectors, dtype=np.float32).copy()
    vectors[0] = 0.0  # the padding row scores 0 and contributes nothing to the mean
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
    outputs = [
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "topk"]),
        helper.make_tensor_value_info("items", TensorProto.INT64, ["batch", "topk"]),
    ]
    if user_output:
        nodes.append(helper.make_node("Identity", ["user"], ["user_vector"]))
        outputs.append(
            helper.make_tensor_value_info(
                "user_vector", TensorProto.FLOAT, ["batch", vectors.shape[1]]
            )
        )
    graph = helper.make_graph(
        nodes,
        "bench_mean_pool_scorer",
        [
            helper.make_tensor_value_info("history", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        outputs,
        initializer=[
            numpy_helper.from_array(vectors, "E"),
            numpy_helper.from_array(np.ascontiguousarray(vectors.T), "W"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([[1.0]], dtype=np.float32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    # > 2 GB protobufs need external data; the 1M x 64 fp32 case is 2 x 256 MB, well below.
    return bytes(model.SerializeToString())
