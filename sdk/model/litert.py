"""Optional LiteRT backend: serves a bundle's ``model.tflite`` instead of its ONNX graph.

A bundle may carry, beside ``model.onnx``, the same network exported for LiteRT
(``shelfwise.export.litert.add_litert_model``); ``Manifest.training["backends"]["litert"]``
describes it (file, static history length, k, agreement with PyTorch, ``preferred``). The
runtime serves it when the device asks for it (``SHELFWISE_MODEL_BACKEND=litert``, or
``ModelHandle(backend="litert")``) or when the bundle prefers it and ``ai-edge-litert`` is
installed (``pip install 'shelfwise[litert]'``). Nothing here is imported unless a bundle is
served with LiteRT, and the runtime does not depend on the package.

The interpreter is not safe to call from two threads at once (an onnxruntime session is), so
calls are serialised by a lock; histories are left padded to the model's static length.

Example:
    >>> from shelfwise.model.litert import available
    >>> isinstance(available(), bool)
    True
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

BACKEND = "litert"
FILE = "model.tflite"
MAX_K = 1024  # top-k baked into the graph (a request for more gets the best MAX_K)


def available() -> bool:
    """True when ``ai-edge-litert`` is installed (without importing it)."""
    return importlib.util.find_spec("ai_edge_litert") is not None


class LiteRtScorer:
    """A LiteRT model with the bundle contract: left-padded int64 histories -> (scores, items).

    The graph takes one history ``[1, history_length]`` and returns its top ``k`` (fixed at
    export); ``run`` feeds each row in turn.
    """

    def __init__(self, model: bytes, *, threads: int, history_length: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._model = model  # the interpreter reads the flatbuffer in place: keep it alive
        self._interpreter: Any = Interpreter(model_content=model, num_threads=max(1, threads))
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 2:
            raise ValueError(f"expected 1 input and 2 outputs, found {len(inputs)}/{len(outputs)}")
        self.history_length = int(inputs[0]["shape"][-1])
        if self.history_length != history_length:
            raise ValueError(
                f"the model takes histories of {self.history_length}, the manifest says "
                f"{history_length}"
            )
        self._input = inputs[0]["index"]
        self._dtype = inputs[0]["dtype"]
        # The converter names outputs by position only: scores are float, items integer.
        self._scores = next(o["index"] for o in outputs if np.dtype(o["dtype"]).kind == "f")
        self._items = next(o["index"] for o in outputs if np.dtype(o["dtype"]).kind == "i")
        self.k = int(next(o["shape"][-1] for o in outputs if o["index"] == self._items))
        self._lock = threading.Lock()

    def run(self, histories: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``min(k, self.k)`` (scores, model indices) per row of ``histories`` [B, L]."""
        length = self.history_length
        rows = np.zeros((len(histories), length), dtype=self._dtype)
        tail = histories[:, -length:]
        rows[:, length - tail.shape[1] :] = tail
        take = min(k, self.k)
        scores = np.empty((len(rows), take), dtype=np.float32)
        items = np.empty((len(rows), take), dtype=np.int64)
        with self._lock:
            for n, row in enumerate(rows):
                self._interpreter.set_tensor(self._input, row[None])
                self._interpreter.invoke()
                scores[n] = self._interpreter.get_tensor(self._scores)[0, :take]
                items[n] = self._interpreter.get_tensor(self._items)[0, :take]
        return scores, items
