"""The trained network exported to each peer runtime with the peer's own maintained tooling.

What goes in is the network ``shelfwise export`` ships (export's ``ExportScorer``: the trained
encoder, one pre-transposed item table, the padding bias) with top-k inside, as the bundle's
ONNX graph has it. What comes out, per peer:

- **ExecuTorch**: ``torch.export`` (history length dynamic, 1..max_len) ->
  ``to_edge_transform_and_lower`` with the ``XnnpackPartitioner`` -> ``.pte``;
- **LiteRT**: ``litert_torch.convert`` -> ``.tflite`` (tried with a dynamic history length
  first, then the static ``[1, max_len]`` a LiteRT deployment pads to; and, when the
  interpreter refuses the straight network, the same weights with the position and mask
  constants precomputed -- ``StaticLengthScorer`` -- recorded as such);
- **OpenVINO**: ``openvino.convert_model`` of the bundle's ONNX file -> IR (``.xml`` + ``.bin``);
- **onnxruntime** (ours, the baseline): the bundle's ONNX graph as export writes it.

A conversion that fails is returned as a ``Failure`` saying which step failed, the exception
and the versions, never raised: the benchmark reports it in the table.

Needs the ``train`` extra (torch, onnx) and the ``peers`` extra for the peers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The wrappers live in export (the LiteRT backend's bundles are made with the same ones).
from shelfwise.export.litert import StaticLengthScorer, TopKScorer, example_history

__all__ = ["Converted", "Failure", "StaticLengthScorer", "TopKScorer", "example_history"]

# The distributions whose versions a result names (what converted, what ran it).
PACKAGES = {
    "onnxruntime": ["onnxruntime", "onnx"],
    "executorch": ["executorch", "torch"],
    "litert": ["litert-torch", "ai-edge-litert", "litert-converter", "torch"],
    "openvino": ["openvino"],
}


def versions(runtime: str) -> dict[str, str]:
    """Installed versions of the packages a runtime's result depends on."""
    out = {}
    for name in PACKAGES.get(runtime, [runtime]):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True)
class Converted:
    """A model file a peer runtime loads, and how it was made."""

    runtime: str
    path: Path  # the file the runtime loads (.onnx, .pte, .tflite, .xml)
    files: tuple[Path, ...]  # every file it needs (OpenVINO: .xml + .bin)
    seconds: float
    dynamic_length: bool  # False: feed histories left padded to max_len
    notes: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


@dataclass(frozen=True)
class Failure:
    """A conversion or a run that did not work: which step, what it said, with which versions."""

    runtime: str
    step: str
    error: str
    versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converters print progress and warn freely; keep the benchmark's output readable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _attempt(runtime: str, step: str, fn: Callable[[], Any]) -> Any:
    try:
        with _quiet():
            return fn()
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        message = " ".join(str(exc).split())[:600]
        return Failure(
            runtime, step, f"{type(exc).__name__} at {where}: {message}", versions(runtime)
        )


# -- ExecuTorch ---------------------------------------------------------------------------------
def to_executorch(top: TopKScorer, max_len: int, out: Path) -> Converted | Failure:
    """``torch.export`` with a dynamic history length, lowered to XNNPACK (fp32)."""
    started = time.perf_counter()
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        return Failure("executorch", "import", f"{exc}", versions("executorch"))
    length = torch.export.Dim("length", min=1, max=max_len)

    def export() -> Any:
        with torch.no_grad():
            return torch.export.export(
                top.eval(), (example_history(max_len),), dynamic_shapes={"history": {1: length}}
            )

    exported = _attempt("executorch", "torch.export (dynamic history length)", export)
    if isinstance(exported, Failure):
        return exported

    def lower() -> bytes:
        program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        return bytes(program.to_executorch().buffer)

    buffer = _attempt("executorch", "to_edge_transform_and_lower(XnnpackPartitioner)", lower)
    if isinstance(buffer, Failure):
        return buffer
    path = out / "model.pte"
    path.write_bytes(buffer)
    return Converted(
        "executorch",
        path,
        (path,),
        time.perf_counter() - started,
        dynamic_length=True,
        notes=("torch.export, dynamic length 1..max_len; XNNPACK partitioner, fp32",),
        versions=versions("executorch"),
    )


# -- LiteRT -------------------------------------------------------------------------------------
def to_litert(
    top: TopKScorer, max_len: int, out: Path
) -> tuple[Converted | Failure, list[Failure]]:
    """litert-torch: dynamic length, else static ``[1, max_len]``, else the constant-folded
    network; every attempt that failed is returned beside the result."""
    started = time.perf_counter()
    try:
        import litert_torch
    except ImportError as exc:
        return Failure("litert", "import", f"{exc}", versions("litert")), []
    failures: list[Failure] = []
    path = out / "model.tflite"
    length = torch.export.Dim("length", min=1, max=max_len)
    attempts: list[tuple[str, nn.Module, dict[str, Any] | None, bool]] = [
        ("litert_torch.convert, dynamic history length", top, {"history": {1: length}}, True),
        ("litert_torch.convert, static [1, max_len]", top, None, False),
        (
            "litert_torch.convert, static [1, max_len], positions and mask as constants",
            StaticLengthScorer(top, max_len),
            None,
            False,
        ),
    ]
    for step, module, dynamic, is_dynamic in attempts:

        def convert(module: nn.Module = module, dynamic: Any = dynamic) -> None:
            with torch.no_grad():
                edge = litert_torch.convert(
                    module.eval(), (example_history(max_len),), dynamic_shapes=dynamic
                )
            edge.export(str(path))

        result = _attempt("litert", step, convert)
        if isinstance(result, Failure):
            failures.append(result)
            continue
        loaded = _attempt("litert", f"{step}: load in ai_edge_litert", lambda: _litert_load(path))
        if isinstance(loaded, Failure):
            failures.append(loaded)
            continue
        return (
            Converted(
                "litert",
                path,
                (path,),
                time.perf_counter() - started,
                dynamic_length=is_dynamic,
                notes=(step, "fp32, XNNPACK delegate (the interpreter's default on CPU)"),
                versions=versions("litert"),
            ),
            failures,
        )
    return failures[-1], failures[:-1]


def _litert_load(path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    Interpreter(model_path=str(path), num_threads=1).allocate_tensors()


# -- OpenVINO -----------------------------------------------------------------------------------
def to_openvino(onnx_path: Path, max_len: int, out: Path) -> Converted | Failure:
    """``openvino.convert_model`` of the bundle's ONNX file, reshaped to the static
    ``[1, max_len]`` history, saved as IR (fp32 weights).

    Static, because the CPU plugin re-infers the dynamic shapes whenever the history length
    changes from one call to the next: with the runtime's variable lengths it answered in
    ~8 ms instead of ~0.5 ms here (the benchmark's first run, recorded in the README).
    """
    started = time.perf_counter()
    try:
        import openvino as ov
    except ImportError as exc:
        return Failure("openvino", "import", f"{exc}", versions("openvino"))
    xml = out / "model.xml"

    def convert() -> None:
        model = ov.convert_model(str(onnx_path))
        model.reshape({"history": [1, max_len], "k": [1]})
        # compress_to_fp16 defaults to True in save_model: keep the weights as trained.
        ov.save_model(model, str(xml), compress_to_fp16=False)

    result = _attempt("openvino", "openvino.convert_model(ONNX) + save_model", convert)
    if isinstance(result, Failure):
        return result
    return Converted(
        "openvino",
        xml,
        (xml, xml.with_suffix(".bin")),
        time.perf_counter() - started,
        dynamic_length=False,
        notes=("convert_model from the bundle's ONNX, reshaped to [1, max_len], fp32 IR",),
        versions=versions("openvino"),
    )


def onnx_file(onnx_bytes: bytes, out: Path, name: str = "model.onnx") -> Converted:
    """The bundle's own graph, as the runtime loads it (the baseline)."""
    path = out / name
    path.write_bytes(onnx_bytes)
    return Converted(
        "onnxruntime",
        path,
        (path,),
        0.0,
        dynamic_length=True,
        notes=("the bundle's ONNX graph (shelfwise export)",),
        versions=versions("onnxruntime"),
    )
