"""Load an exported model in its runtime and answer one history: the same three steps for
onnxruntime (ours), ExecuTorch, LiteRT and OpenVINO.

Every runner takes a left-padded int64 history ``[1, L]`` and returns ``(scores, items)``
``[1, k]``, best first. A runner whose model has a static length gets the history left padded to
``max_len`` (what a deployment of it would do); the others get the filled columns only, as the
shelfwise runtime feeds its own graph.

Also a probe, run in a fresh process by the benchmark for cold start and memory::

    python benchmarks/peer_runners.py RUNTIME MODEL_PATH THREADS K ITEMS MAX_LEN DYNAMIC HISTORY
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    def run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Spec:
    """How to feed a model: its file, threads, k (fixed in the peers' graphs), shapes."""

    runtime: str
    path: Path
    threads: int
    k: int
    items: int
    max_len: int
    dynamic_length: bool


def feed(history: np.ndarray, spec: Spec) -> np.ndarray:
    """The input a runtime gets: filled columns only (dynamic length) or padded to max_len."""
    row = np.asarray(history, dtype=np.int64).reshape(1, -1)[:, -spec.max_len :]
    filled = np.flatnonzero(row[0])
    row = row[:, filled[0] :] if len(filled) else row[:, -1:]
    if spec.dynamic_length:
        return np.ascontiguousarray(row)
    padded = np.zeros((1, spec.max_len), dtype=np.int64)
    padded[0, spec.max_len - row.shape[1] :] = row[0]
    return padded


# -- onnxruntime (ours) -------------------------------------------------------------------------
def ort_session_options(ort: Any, items: int, threads: int) -> Any:
    """The shelfwise runtime's session options (``shelfwise.model.runtime.session_options``),
    rebuilt here so the probe does not import the whole SDK before it measures onnxruntime
    (tests/test_peers.py checks the two agree)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


# The runtime's own list (shelfwise.model.runtime.DISABLED_OPTIMIZERS); checked by the tests.
ORT_DISABLED_OPTIMIZERS = ["MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion"]


class OrtRunner:
    def __init__(self, spec: Spec) -> None:
        import onnxruntime as ort

        self.spec = spec
        self.session = ort.InferenceSession(
            str(spec.path),
            sess_options=ort_session_options(ort, spec.items, spec.threads),
            providers=["CPUExecutionProvider"],
            disabled_optimizers=ORT_DISABLED_OPTIMIZERS,
        )
        self.k = np.array([spec.k], dtype=np.int64)

    def run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, items = self.session.run(["scores", "items"], {"history": history, "k": self.k})
        return scores, items


# -- ExecuTorch ---------------------------------------------------------------------------------
class ExecuTorchRunner:
    """The ``.pte`` through ExecuTorch's Python runtime (``executorch.runtime``); XNNPACK's
    thread pool is process-wide, so it is resized to ``threads`` before each use."""

    def __init__(self, spec: Spec) -> None:
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        self.torch = torch
        self.spec = spec
        portable_lib._unsafe_reset_threadpool(spec.threads)
        self.program = Runtime.get().load_program(spec.path)
        self.method = self.program.load_method("forward")

    def run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, items = self.method.execute([self.torch.from_numpy(history)])
        return scores.numpy(), items.numpy()

    @staticmethod
    def set_threads(threads: int) -> None:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)


# -- LiteRT -------------------------------------------------------------------------------------
class LiteRtRunner:
    """The ``.tflite`` through ``ai_edge_litert``'s interpreter (XNNPACK delegate on CPU)."""

    def __init__(self, spec: Spec) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        self.interpreter = Interpreter(model_path=str(spec.path), num_threads=spec.threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # The converter names outputs output_0, output_1...: scores are float, items integer.
        self.scores = next(o["index"] for o in outputs if np.dtype(o["dtype"]).kind == "f")
        self.items = next(o["index"] for o in outputs if np.dtype(o["dtype"]).kind == "i")
        self.dtype = self.interpreter.get_input_details()[0]["dtype"]

    def run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.interpreter.set_tensor(self.input, history.astype(self.dtype, copy=False))
        self.interpreter.invoke()
        return (
            self.interpreter.get_tensor(self.scores),
            self.interpreter.get_tensor(self.items).astype(np.int64, copy=False),
        )


# -- OpenVINO -----------------------------------------------------------------------------------
class OpenVinoRunner:
    """The IR compiled for the CPU plugin with a latency hint and ``threads`` inference threads."""

    def __init__(self, spec: Spec) -> None:
        import openvino as ov

        self.spec = spec
        core = ov.Core()
        self.compiled = core.compile_model(
            str(spec.path),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": spec.threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",  # as trained: no bf16/fp16 shortcuts
            },
        )
        self.request = self.compiled.create_infer_request()
        self.k = np.array([spec.k], dtype=np.int64)
        self.scores = self.compiled.output("scores")
        self.items = self.compiled.output("items")

    def run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.request.infer({"history": history, "k": self.k})
        return result[self.scores], result[self.items]


RUNNERS: dict[str, type] = {
    "onnxruntime": OrtRunner,
    "executorch": ExecuTorchRunner,
    "litert": LiteRtRunner,
    "openvino": OpenVinoRunner,
}
# What importing each runtime means (timed separately from loading the model).
IMPORTS = {
    "onnxruntime": "import onnxruntime",
    "executorch": "import executorch.runtime, executorch.extension.pybindings.portable_lib",
    "litert": "import ai_edge_litert.interpreter",
    "openvino": "import openvino",
}


def load(spec: Spec) -> Runner:
    runner: Runner = RUNNERS[spec.runtime](spec)
    return runner


# -- the fresh-process probe --------------------------------------------------------------------
def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(spec: Spec, history: list[int], requests: int = 50) -> dict[str, float]:
    """Cold start and memory in this (fresh) process: import, load, first answer, RSS."""
    base_rss = _status_mb("VmRSS")
    t0 = time.perf_counter()
    exec(IMPORTS[spec.runtime])
    t1 = time.perf_counter()
    runner = load(spec)
    t2 = time.perf_counter()
    row = feed(np.asarray([history], dtype=np.int64), spec)
    runner.run(row)
    t3 = time.perf_counter()
    for _ in range(requests):
        runner.run(row)
    return {
        "import_ms": (t1 - t0) * 1000,
        "load_ms": (t2 - t1) * 1000,
        "first_answer_ms": (t3 - t2) * 1000,
        "cold_start_ms": (t3 - t0) * 1000,  # import + load + first answer
        "rss_mb": _status_mb("VmRSS"),
        "peak_rss_mb": _status_mb("VmHWM"),
        "rss_added_mb": _status_mb("VmRSS") - base_rss,
        "rss_before_mb": base_rss,
    }


def main(argv: list[str]) -> int:
    runtime, path, threads, k, items, max_len, dynamic, history = argv
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    spec = Spec(runtime, Path(path), int(threads), int(k), int(items), int(max_len), dynamic == "1")
    print(json.dumps(probe(spec, json.loads(history))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
