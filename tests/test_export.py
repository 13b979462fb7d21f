"""Export: ONNX contract, parity with PyTorch, int8 that really runs int8, bundles the
runtime loads (without torch) and verifies."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import onnx
import torch

import shelfwise
from shelfwise import BundleVerificationError, ExportCheckFailed
from shelfwise.export.bundle import export_bundle, padded
from shelfwise.export.onnx_export import check_parity, export_onnx, run_onnx, session
from shelfwise.export.quantize import quantize_int8, scorer_is_int8
from shelfwise.model.bundle import generate_signing_key, read_bundle
from shelfwise.training.data import EvalCases
from shelfwise.training.train import TrainConfig, load_run, train

sys.path.insert(0, str(Path(__file__).parent))
from test_training import chain_file

pytestmark = pytest.mark.slow  # every test here needs a (small) trained run


DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "kiosk_demo" / "store" / "bundle"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    data = chain_file(folder / "chains.txt")
    (folder / "categories.json").write_text(json.dumps({str(i): "c" for i in range(40)}))
    config = TrainConfig(
        data=str(data),
        out=str(folder / "run"),
        categories=str(folder / "categories.json"),
        dim=16,
        heads=2,
        layers=1,
        max_len=12,
        dropout=0.1,
        batch_size=32,
        lr=5e-3,
        epochs=4,
        progress=False,
        threads=1,
    )
    train(config)
    return folder / "run"


@pytest.fixture(scope="module")
def fp32(run_dir: Path) -> bytes:
    model, _, _ = load_run(run_dir)
    return export_onnx(model)


def histories(run_dir: Path) -> np.ndarray:
    return padded(EvalCases.from_npz(run_dir / "validation.npz").histories, 12)


def test_graph_has_the_bundle_contract_and_passes_the_checker(fp32: bytes) -> None:
    model = onnx.load_from_string(fp32)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["history", "k"]
    # the user vector too: the runtime scores items the bundle never saw against it
    assert [o.name for o in model.graph.output] == ["scores", "items", "user"]
    history = model.graph.input[0].type.tensor_type.shape.dim
    assert all(d.dim_param for d in history), "batch and length must both be dynamic"
    assert any(n.op_type == "TopK" for n in model.graph.node)


def test_onnx_matches_pytorch_on_real_histories_in_batches_and_shorter_lengths(
    run_dir: Path, fp32: bytes
) -> None:
    model, _, _ = load_run(run_dir)
    parity = check_parity(model, fp32, histories(run_dir), batch_size=7)
    assert parity.max_abs_diff < 1e-4
    assert parity.top10_agreement > 0.99
    assert parity.lengths == (12, 6)
    assert max(parity.batch_sizes) >= 2


def test_any_batch_size_and_history_length_runs_and_padding_never_wins(
    run_dir: Path, fp32: bytes
) -> None:
    sess = session(fp32)
    model, vocab, _ = load_run(run_dir)
    for batch in (1, 2, 5):
        for length in (1, 4, 12):
            hist = np.zeros((batch, length), dtype=np.int64)
            hist[:, -1] = np.arange(1, batch + 1)
            scores, items = run_onnx(sess, hist, len(vocab))
            assert scores.shape == (batch, len(vocab))
            assert (items > 0).all(), "the padding index must rank last"
            with torch.no_grad():
                expected = model.score(torch.from_numpy(hist)).numpy()
            np.testing.assert_allclose(
                scores[:, :5], np.take_along_axis(expected, items[:, :5], 1), atol=1e-4
            )


def test_int8_graph_scores_with_matmulinteger_feeding_topk(run_dir: Path, fp32: bytes) -> None:
    int8 = quantize_int8(fp32)
    ops = {n.op_type for n in onnx.load_from_string(int8).graph.node}
    assert "MatMulInteger" in ops
    assert scorer_is_int8(int8)
    assert not scorer_is_int8(fp32)
    scorer_only = quantize_int8(fp32, scorer_only=True)
    ops_only = [n.op_type for n in onnx.load_from_string(scorer_only).graph.node]
    assert scorer_is_int8(scorer_only) and ops_only.count("MatMulInteger") == 1
    model, _, _ = load_run(run_dir)
    parity = check_parity(model, int8, histories(run_dir))
    assert parity.top10_agreement > 0.8


def test_exported_bundle_loads_in_the_runtime_and_serves(run_dir: Path, tmp_path: Path) -> None:
    report = export_bundle(run_dir, tmp_path / "bundle", quantize="int8")
    manifest = report.manifest
    training = manifest.training
    assert manifest.quantization == "int8"
    assert training["parity_fp32_vs_torch"]["max_abs_diff"] < 1e-3
    assert training["quantization"]["scorer_runs_matmulinteger"] is True
    assert "ndcg@10_relative_drop" in training["quantization"]
    assert len(training["data"]["fingerprint"]) == 64
    assert set(manifest.files) >= {"model.onnx", "items.json", "item_vectors.npy"}
    items = json.loads((tmp_path / "bundle" / "items.json").read_text())
    with shelfwise.open(tmp_path / "store.db", bundle=tmp_path / "bundle") as sw:
        sw.catalog.import_rows(
            [{"item_id": i, "name": f"Item {i}", "category": "c", "price": 1.0} for i in items]
        )
        recs = sw.recommend(history=["3", "4", "5"], surface="for-you", limit=5)
    assert len(recs) == 5
    assert all(r.item.item_id in items for r in recs)


def test_runtime_loads_the_bundle_in_a_process_without_torch(run_dir: Path, tmp_path: Path) -> None:
    export_bundle(run_dir, tmp_path / "bundle")
    code = (
        "import sys, shelfwise.model.runtime as m\n"
        f"model = m.load_model({str(tmp_path / 'bundle')!r})\n"
        "print(model.score([['3', '4']], k=3)[0].items)\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(eval(out.stdout)) == 3


def test_signed_bundle_verifies_with_its_key_and_is_refused_with_another(
    run_dir: Path, tmp_path: Path
) -> None:
    private, public = generate_signing_key()
    key_file = tmp_path / "bundle.key"
    key_file.write_text(private.hex())
    from shelfwise.cli import main

    out = tmp_path / "signed"
    assert main(["export", str(run_dir), "--out", str(out), "--sign-key", str(key_file)]) == 0
    assert read_bundle(out, public_key=public).signed
    _, other = generate_signing_key()
    with pytest.raises(BundleVerificationError):
        read_bundle(out, public_key=other)


# -- what a bundle tells the world ----------------------------------------------------------
def _texts(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def machine_paths(manifest: Path, *machine: str) -> list[str]:
    """Every string of a manifest that names a path of the machine that wrote it."""
    found = []
    for text in _texts(json.loads(manifest.read_text())):
        tokens = re.split(r"""[\s"'=(),;]+""", text)
        if (
            any(os.path.isabs(t) or re.match(r"^(~[/\\]|[A-Za-z]:[/\\]|\\\\)", t) for t in tokens)
            or any(m in text for m in (str(Path.home()), *machine))
            or re.search(r"(^|/)(home|Users)/", text)
        ):
            found.append(text)
    return found


def test_a_written_manifest_names_files_by_name_and_sha256_never_by_path(
    run_dir: Path, tmp_path: Path
) -> None:
    export_bundle(run_dir, tmp_path / "bundle", quantize="int8")
    manifest = tmp_path / "bundle" / "manifest.json"
    assert machine_paths(manifest, str(run_dir.parent), str(tmp_path)) == []
    train = json.loads(manifest.read_text())["training"]["config"]["train"]
    data = run_dir.parent / "chains.txt"
    assert train["data"] == {
        "name": "chains.txt",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert train["categories"]["name"] == "categories.json"
    assert "out" not in train
    # The run folder keeps the real paths: resuming and evaluating on this machine need them.
    assert json.loads((run_dir / "config.json").read_text())["train"]["data"] == str(data)


def test_export_refuses_a_training_record_that_names_a_path(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    report = json.loads((run / "run.json").read_text())
    report["protocol"] += f" (cases from {run_dir}/validation.npz)"
    (run / "run.json").write_text(json.dumps(report))
    with pytest.raises(ExportCheckFailed, match=r"training\.protocol names a path"):
        export_bundle(run, tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "manifest.json").exists()


def test_the_committed_demo_bundle_names_no_path_of_the_machine_that_trained_it() -> None:
    assert machine_paths(DEMO_BUNDLE / "manifest.json") == []


def test_default_export_chooses_its_quantization_and_says_why(
    run_dir: Path, tmp_path: Path
) -> None:
    report = export_bundle(run_dir, tmp_path / "bundle")  # quantize="auto"
    quant = report.manifest.training["quantization"]
    assert quant["policy"] == "auto" and quant["why"].startswith(("fp32", "int8 scorer"))
    graph = (tmp_path / "bundle" / "model.onnx").read_bytes()
    shipped = "int8" if scorer_is_int8(graph) else "none"
    assert report.manifest.quantization == shipped == quant["chosen"]
    assert "128000" in quant["measured"]["head_p50_ms_by_items"]
