"""Peer runtimes: the LiteRT backend behind the same bundle and ModelHandle, the choice of
backend (bundle, device, what is installed), and the peer exports the benchmark measures.

The tests that convert or run a peer are marked ``peers`` (and slow). They need the ``peers``
extra, which lives in its own virtualenv (``bash scripts/setup_peers.sh`` -> ``.venv-peers``:
the extra cannot share ``.venv``, see benchmarks/README.md); ``scripts/test.sh`` runs this file
there after the main suite. Where a peer's package is missing they skip saying which, except
in CI (``CI`` set), where they fail: a peer step that installed nothing never passes as green.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

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

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# The modules each peer needs (its converter and its runtime), from the peers extra.
PEER_MODULES = {
    "executorch": ("executorch",),
    "litert": ("litert_torch", "ai_edge_litert"),
    "openvino": ("openvino",),
}
# Peers whose packages would pull a torch build other than the train extra's torch==2.13.0
# (the CPU wheel): skipped with this reason, in CI too, rather than installed. Empty since
# `pip install --dry-run --report` of the pinned peers extra resolved torch 2.13.0+cpu itself.
WOULD_REPLACE_TORCH: dict[str, str] = {}


def _needs(what: str, modules: tuple[str, ...]) -> None:
    """Skip when ``modules`` are missing; fail instead in CI, where the peer step installed them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = f"{what} needs {', '.join(missing)} (bash scripts/setup_peers.sh, then .venv-peers)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI runs this in .venv-peers, where it must be installed")
    pytest.skip(message)


def _needs_peer(peer: str) -> None:
    if peer in WOULD_REPLACE_TORCH:
        pytest.skip(f"{peer} is not installed with torch 2.13.0: {WOULD_REPLACE_TORCH[peer]}")
    _needs(peer, PEER_MODULES[peer])


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
    _needs("training a run", ("torch",))
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
@pytest.mark.peers
def test_a_litert_bundle_answers_like_onnxruntime_behind_the_same_handle(
    run_dir: Path, tmp_path: Path
) -> None:
    _needs_peer("litert")
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


# -- how the peer tests run in CI (no peer needed) ----------------------------------------------
def test_a_missing_peer_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PEER_MODULES, "nonesuch", ("shelfwise_no_such_runtime",))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs shelfwise_no_such_runtime"):
        _needs_peer("nonesuch")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"scripts/setup_peers\.sh"):
        _needs_peer("nonesuch")
    # A peer that would replace torch is skipped with that reason, in CI too.
    monkeypatch.setitem(WOULD_REPLACE_TORCH, "nonesuch", "it pins torch==9.9")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception, match=r"not installed with torch 2\.13\.0: it pins"):
        _needs_peer("nonesuch")


def _peer_pins() -> dict[str, str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pins = {}
    for requirement in extras["peers"]:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement}: the peers extra pins exact versions (reproducible)"
        pins[name] = version
    assert "torch==2.13.0" in extras["train"]  # never looser: that pulls a CUDA build
    return pins


def test_the_peers_extra_pins_every_package_exactly() -> None:
    assert set(_peer_pins()) == {"executorch", "litert-torch", "ai-edge-litert", "openvino"}


@pytest.mark.peers
def test_the_peer_venv_runs_the_pinned_peers_beside_torch_2_13() -> None:
    for peer in PEER_MODULES:
        _needs_peer(peer)
    for name, version in _peer_pins().items():
        assert importlib.metadata.version(name) == version, name
    assert importlib.metadata.version("torch").startswith("2.13.0")


# -- the peers as the benchmark converts, runs and checks them -----------------------------------
@pytest.fixture(scope="module")
def bench_peers(run_dir: Path) -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    import bench_peers

    return bench_peers


@pytest.mark.slow
def test_the_peers_torch_reference_is_the_trained_models_own_ranking(
    run_dir: Path, bench_peers: Any
) -> None:
    import torch

    from shelfwise.training.train import load_run

    bench = bench_peers
    source = bench.load_source("test", run_dir, 0, 20)
    model = load_run(run_dir)[0].eval()
    reference = bench.torch_reference(source)
    assert len(reference) == len(source.histories) == 20
    for history, (scores, top) in zip(source.histories, reference, strict=True):
        with torch.no_grad():
            expected = model.score(torch.tensor([history]))[0].numpy()
        assert scores.shape == expected.shape
        np.testing.assert_allclose(scores[1:], expected[1:], atol=1e-4)
        assert top.tolist() == np.argsort(-scores, kind="stable")[:10].tolist()
        # The scorer every peer is exported from answers the same top k.
        with torch.no_grad():
            top_scores, top_items = source.top(torch.tensor([history]))
        assert top_items[0, :10].tolist() == top.tolist()
        np.testing.assert_allclose(top_scores[0].numpy(), scores[top_items[0].numpy()], atol=1e-5)


@pytest.mark.slow
# Not ours: ExecuTorch's modules warn on import (importlib.resources.read_text, pytree), and
# OpenVINO's converter forks while JAX (loaded by litert-torch earlier in the session) runs.
@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
    "ignore:os.fork:RuntimeWarning",
    "ignore::pytest.PytestUnraisableExceptionWarning",
)
@pytest.mark.parametrize(
    "runtime",
    [
        "onnxruntime",
        pytest.param("executorch", marks=pytest.mark.peers),
        pytest.param("litert", marks=pytest.mark.peers),
        pytest.param("openvino", marks=pytest.mark.peers),
    ],
)
def test_each_runtime_agrees_with_pytorch_as_the_benchmark_measures_it(
    runtime: str, run_dir: Path, bench_peers: Any, tmp_path: Path
) -> None:
    if runtime != "onnxruntime":
        _needs_peer(runtime)
    sys.path.insert(0, str(BENCHMARKS))
    import peer_export
    import peer_runners

    bench = bench_peers
    source = bench.load_source("test", run_dir, 0, 40)
    made = bench.convert_all(source, tmp_path, [] if runtime == "onnxruntime" else [runtime])
    converted = made[runtime]
    assert isinstance(converted, peer_export.Converted), converted
    spec = bench.spec_of(converted, source, 1)
    result = bench.agreement(peer_runners.load(spec), spec, source, bench.torch_reference(source))
    assert result["histories"] == 40
    assert result["top10_agreement"] >= 0.99, result
    assert result["max_abs_score_diff"] <= 1e-4, result
