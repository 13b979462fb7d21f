"""Peer runtimes: the LiteRT backend behind the same bundle and ModelHandle, the choice of
backend (bundle, device, what is installed), and the peer exports the benchmark measures.

The tests that convert or run a peer are marked slow and skip, saying which package is
missing, when the ``peers`` extra is not installed (``pip install -e '.[train,peers]'``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ITEMS, cluster_vectors
from onnx_models import write_test_bundle

from shelfwise import BundleVerificationError, InvalidInput, ModelRuntimeError
from shelfwise.model import litert
from shelfwise.model.bundle import read_bundle, write_bundle
from shelfwise.model.runtime import (
    BACKEND_ENV,
    DISABLED_OPTIMIZERS,
    ModelHandle,
    choose_backend,
    load_model,
    session_options,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _needs(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (pip install -e '.[train,peers]')")


def _bundle(folder: Path) -> Path:
    return write_test_bundle(folder, ITEMS, cluster_vectors(ITEMS))


# -- choosing the backend (no peer needed) ------------------------------------------------------
def test_a_plain_bundle_is_served_by_onnxruntime_without_importing_litert(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    code = (
        "import sys, shelfwise.model.runtime as m\n"
        f"model = m.load_model({str(bundle)!r})\n"
        "print(model.backend, 'ai_edge_litert' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnxruntime", "False"]


def test_asking_for_litert_on_a_bundle_without_a_litert_model_says_how_to_add_one(
    tmp_path: Path,
) -> None:
    bundle = _bundle(tmp_path / "b")
    with pytest.raises(ModelRuntimeError, match=r"has no LiteRT model.*add_litert_model"):
        load_model(bundle, backend="litert")
    handle = ModelHandle(backend="litert")
    with pytest.raises(ModelRuntimeError):
        handle.swap(bundle)
    assert handle.current is None


def test_an_unknown_backend_is_refused_before_anything_loads(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown model backend 'tensorrt'"):
        load_model(_bundle(tmp_path / "b"), backend="tensorrt")


def test_a_bundle_preferring_litert_is_served_by_onnxruntime_where_litert_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = read_bundle(_bundle(tmp_path / "b")).manifest
    preferring = dataclasses.replace(
        manifest, training={"backends": {"litert": {"preferred": True}}}
    )
    monkeypatch.setattr(litert, "available", lambda: False)
    assert choose_backend(preferring) == "onnxruntime"
    with pytest.raises(ModelRuntimeError, match="ai-edge-litert is not installed"):
        choose_backend(preferring, "litert")
    monkeypatch.setattr(litert, "available", lambda: True)
    assert choose_backend(preferring) == "litert"
    not_preferring = dataclasses.replace(
        manifest, training={"backends": {"litert": {"preferred": False}}}
    )
    assert choose_backend(not_preferring) == "onnxruntime"


def test_the_device_setting_overrides_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    from shelfwise.model.bundle import Manifest

    manifest = Manifest(
        model_name="m",
        model_version="1",
        max_history=4,
        training={"backends": {"litert": {"preferred": True}}},
    )
    monkeypatch.setattr(litert, "available", lambda: True)
    monkeypatch.setenv(BACKEND_ENV, "onnxruntime")
    assert choose_backend(manifest) == "onnxruntime"
    assert choose_backend(manifest, "auto") == "litert"  # an explicit argument wins


def test_extra_bundle_files_are_checksummed_and_tampering_is_refused(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    files = read_bundle(bundle)
    write_bundle(
        bundle,
        files.manifest,
        model_onnx=files.model_bytes,
        items=files.items,
        extra_files={"model.tflite": b"\x00flatbuffer"},
    )
    assert "model.tflite" in read_bundle(bundle).manifest.files
    (bundle / "model.tflite").write_bytes(b"\x01flatbuffer")
    with pytest.raises(BundleVerificationError, match=r"model\.tflite is corrupt"):
        read_bundle(bundle)
    for bad in ("../x", "model.onnx", "manifest.sig"):
        with pytest.raises(InvalidInput, match="not a free plain name"):
            write_bundle(
                tmp_path / "c",
                files.manifest,
                model_onnx=files.model_bytes,
                items=files.items,
                extra_files={bad: b"x"},
            )


def test_the_benchmark_gives_onnxruntime_the_runtimes_own_session() -> None:
    import onnxruntime as ort

    sys.path.insert(0, str(BENCHMARKS))
    import peer_runners

    assert peer_runners.ORT_DISABLED_OPTIMIZERS == DISABLED_OPTIMIZERS
    for items, threads in ((100, 1), (200_000, 2)):
        ours, bench = (
            session_options(items, threads),
            peer_runners.ort_session_options(ort, items, threads),
        )
        assert bench.intra_op_num_threads == ours.intra_op_num_threads
        assert bench.inter_op_num_threads == ours.inter_op_num_threads
        assert bench.graph_optimization_level == ours.graph_optimization_level
        for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
            assert bench.get_session_config_entry(key) == ours.get_session_config_entry(key)


# -- the peers themselves (slow; need the peers extra) -------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from test_training import chain_file

    from shelfwise.training.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("peers")
    config = TrainConfig(
        data=str(chain_file(folder / "chains.txt")),
        out=str(folder / "run"),
        dim=16,
        heads=2,
        layers=1,
        max_len=12,
        dropout=0.1,
        batch_size=32,
        lr=5e-3,
        epochs=3,
        progress=False,
        threads=1,
    )
    train(config)
    return folder / "run"


@pytest.mark.slow
def test_a_litert_bundle_answers_like_onnxruntime_behind_the_same_handle(
    run_dir: Path, tmp_path: Path
) -> None:
    _needs("litert_torch", "ai_edge_litert")
    from shelfwise.export.bundle import export_bundle
    from shelfwise.export.litert import add_litert_model

    bundle = tmp_path / "bundle"
    export_bundle(run_dir, bundle, quantize="none")
    manifest = add_litert_model(run_dir, bundle, preferred=True)
    spec = manifest.training["backends"]["litert"]
    assert spec["top10_agreement_vs_torch"] >= 0.99 and "model.tflite" in manifest.files
    onnx_model = load_model(bundle, backend="onnxruntime")
    handle = ModelHandle()  # auto: the bundle prefers LiteRT and it is installed
    lite = handle.swap(bundle)
    assert lite.backend == "litert" and lite.session is None
    items = onnx_model.vocab.items
    for history in ([items[0]], items[2:9], items[:30], ["not-an-item", items[4]]):
        ours, theirs = onnx_model.score([history], 5)[0], lite.score([history], 5)[0]
        assert ours.items == theirs.items
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-4)
    assert [len(r.items) for r in lite.score([items[:2], items[3:5]], 4)] == [4, 4]
    (bundle / "model.tflite").write_bytes(b"tampered")
    with pytest.raises(BundleVerificationError):
        handle.swap(bundle)
    assert handle.current is lite  # the old model keeps serving


@pytest.mark.slow
# Not ours: ExecuTorch's modules warn on import (importlib.resources.read_text, pytree), and
# OpenVINO's converter forks while JAX (loaded by litert-torch earlier in the session) runs.
@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
    "ignore:os.fork:RuntimeWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)
def test_executorch_and_openvino_exports_agree_with_pytorch(run_dir: Path, tmp_path: Path) -> None:
    _needs("executorch", "openvino")
    sys.path.insert(0, str(BENCHMARKS))
    import peer_export
    import peer_runners

    from shelfwise.export.onnx_export import export_onnx
    from shelfwise.training.data import EvalCases
    from shelfwise.training.train import load_run

    model, vocab, _ = load_run(run_dir)
    top = peer_export.TopKScorer(model, 5)
    onnx = peer_export.onnx_file(export_onnx(model), tmp_path)
    made = [
        peer_export.to_executorch(top, 12, tmp_path),
        peer_export.to_openvino(onnx.path, 12, tmp_path),
    ]
    histories = [h[-12:] for h in EvalCases.from_npz(run_dir / "validation.npz").histories[:40]]
    import torch

    for converted in made:
        assert isinstance(converted, peer_export.Converted), converted
        spec = peer_runners.Spec(
            converted.runtime, converted.path, 1, 5, len(vocab), 12, converted.dynamic_length
        )
        runner = peer_runners.load(spec)
        for history in histories:
            _, items = runner.run(peer_runners.feed(np.asarray([history]), spec))
            with torch.no_grad():
                expected = top(torch.tensor([history]))[1].numpy()
            assert set(items[0].tolist()) == set(expected[0].tolist()), converted.runtime
