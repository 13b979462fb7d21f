"""Model bundles: verification, one onnxruntime session shared by threads, atomic hot swap."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import CATALOG, ITEMS, SIDE_TABLES, cluster_vectors
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_models import mean_pool_scorer, write_test_bundle

import shelfwise
from shelfwise.clock import now_ms
from shelfwise.model.bundle import (
    MANIFEST,
    Manifest,
    SideTables,
    generate_signing_key,
    read_bundle,
    write_bundle,
)
from shelfwise.model.runtime import load_model, session_options

KEYS = generate_signing_key()
OTHER_KEYS = generate_signing_key()


def _signed(folder: Path, version: str = "1", vectors: np.ndarray | None = None) -> Path:
    return write_test_bundle(
        folder,
        ITEMS,
        cluster_vectors(ITEMS) if vectors is None else vectors,
        side_tables=SIDE_TABLES,
        version=version,
        sign_key=KEYS[0],
    )


def _moved() -> np.ndarray:
    """Vectors of a retrained model: sausages now sit with the breakfast items."""
    vectors = cluster_vectors(ITEMS)
    vectors[ITEMS.index("sausages") + 1, :2] = [1.0, 0.0]
    return vectors


def _flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite_manifest(folder: Path, **changes: object) -> None:
    data = json.loads((folder / MANIFEST).read_text())
    data.update(changes)
    (folder / MANIFEST).write_text(json.dumps(data))


def _corrupt_model(folder: Path) -> None:
    _flip_byte(folder / "model.onnx")


def _wrong_format_version(folder: Path) -> None:
    _rewrite_manifest(folder, format_version=2)


def _missing_items(folder: Path) -> None:
    (folder / "items.json").unlink()


def _missing_vectors(folder: Path) -> None:
    (folder / "item_vectors.npy").unlink()


def _missing_manifest(folder: Path) -> None:
    (folder / MANIFEST).unlink()


def _unloadable_model(folder: Path) -> None:
    # Checksums and signature are right, but onnxruntime cannot parse the model.
    write_bundle(
        folder,
        Manifest(model_name="broken", model_version="9", max_history=8),
        model_onnx=b"\x08\x07 this is not a protobuf",
        items=ITEMS,
        sign_key=KEYS[0],
    )


def _wrong_tensor_names(folder: Path) -> None:
    write_bundle(
        folder,
        Manifest(model_name="names", model_version="9", max_history=8, output_scores="nope"),
        model_onnx=mean_pool_scorer(cluster_vectors(ITEMS)),
        items=ITEMS,
        sign_key=KEYS[0],
    )


def _signed_by_another_key(folder: Path) -> None:
    write_test_bundle(folder, ITEMS, cluster_vectors(ITEMS), version="9", sign_key=OTHER_KEYS[0])


def _unsigned(folder: Path) -> None:
    (folder / "manifest.sig").unlink()


def _expired(folder: Path) -> None:
    write_bundle(
        folder,
        Manifest(model_name="old", model_version="9", max_history=8, expires_ms=now_ms() - 1000),
        model_onnx=mean_pool_scorer(cluster_vectors(ITEMS)),
        items=ITEMS,
        sign_key=KEYS[0],
    )


def _vocabulary_mismatch(folder: Path) -> None:
    write_bundle(
        folder,
        Manifest(model_name="short", model_version="9", max_history=8),
        model_onnx=mean_pool_scorer(cluster_vectors(ITEMS)),
        items=ITEMS,
        item_vectors=cluster_vectors(ITEMS)[:-3],
        sign_key=KEYS[0],
    )


def _malformed_manifest_field(folder: Path) -> None:
    _rewrite_manifest(folder, max_history="eight")


BAD_BUNDLES: dict[str, tuple[Callable[[Path], None], type[Exception]]] = {
    "flipped byte in model.onnx": (_corrupt_model, shelfwise.BundleVerificationError),
    "wrong format_version": (_wrong_format_version, shelfwise.BundleVerificationError),
    "missing items.json": (_missing_items, shelfwise.BundleVerificationError),
    "missing item_vectors.npy": (_missing_vectors, shelfwise.BundleVerificationError),
    "missing manifest": (_missing_manifest, shelfwise.BundleVerificationError),
    "model onnxruntime cannot load": (_unloadable_model, shelfwise.ModelRuntimeError),
    "manifest names tensors the model lacks": (_wrong_tensor_names, shelfwise.ModelRuntimeError),
    "signed by the wrong key": (_signed_by_another_key, shelfwise.BundleVerificationError),
    "not signed": (_unsigned, shelfwise.BundleVerificationError),
    "expired manifest": (_expired, shelfwise.BundleVerificationError),
    "vectors do not match the vocabulary": (
        _vocabulary_mismatch,
        shelfwise.BundleVerificationError,
    ),
    "manifest field of the wrong type": (
        _malformed_manifest_field,
        shelfwise.BundleVerificationError,
    ),
}


@pytest.fixture
def signed_sw(tmp_path: Path) -> shelfwise.Shelfwise:
    opened = shelfwise.open(
        tmp_path / "s.db", bundle=_signed(tmp_path / "v1"), public_key=KEYS[1], store_id="s"
    )
    opened.catalog.import_rows(CATALOG)
    return opened


def _answers(sw: shelfwise.Shelfwise) -> list[list[tuple[str, float, str]]]:
    return [
        [(r.item.item_id, round(r.score, 6), r.reason) for r in recs]
        for recs in [
            sw.recommend(history=["sausages"], limit=4),
            sw.recommend(history=["milk", "coffee"], limit=4),
            sw.recommend(surface="similar", item="milk", limit=3),
        ]
    ]


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_and_the_old_model_keeps_serving(
    signed_sw: shelfwise.Shelfwise, tmp_path: Path, case: str
) -> None:
    damage, error = BAD_BUNDLES[case]
    before = _answers(signed_sw)
    candidate = _signed(tmp_path / "v2", version="2")
    damage(candidate)
    with pytest.raises(error):
        signed_sw.load_bundle(candidate)
    assert signed_sw.model_version == "test-mean-pool@1"
    assert _answers(signed_sw) == before
    signed_sw.close()


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_opening_with_a_bad_bundle_is_a_typed_error(tmp_path: Path, case: str) -> None:
    damage, error = BAD_BUNDLES[case]
    candidate = _signed(tmp_path / "v2", version="2")
    damage(candidate)
    with pytest.raises(error):
        shelfwise.open(tmp_path / "s.db", bundle=candidate, public_key=KEYS[1])


def test_a_good_bundle_swaps_in_and_changes_the_answers(
    signed_sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    before = _answers(signed_sw)
    loaded = signed_sw.load_bundle(_signed(tmp_path / "v2", version="2", vectors=_moved()))
    assert loaded.version == signed_sw.model_version == "test-mean-pool@2"
    assert _answers(signed_sw) != before
    signed_sw.close()


def test_recommendations_stay_consistent_while_bundles_swap(
    signed_sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    v1 = tmp_path / "v1"
    v2 = _signed(tmp_path / "v2", version="2", vectors=_moved())
    breakfast = {"milk", "cereal", "yogurt", "coffee", "juice", "test-kit"}
    assert {
        r.item.item_id for r in signed_sw.recommend(history=["sausages"], limit=3)
    } & breakfast == set()
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[str] = set()

    def serve() -> None:
        while not stop.is_set():
            try:
                ids = {r.item.item_id for r in signed_sw.recommend(history=["sausages"], limit=3)}
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            # Each answer comes wholly from one model: all barbecue (v1) or all breakfast (v2).
            assert ids <= breakfast or not ids & breakfast, ids
            seen.add("v2" if ids <= breakfast else "v1")

    workers = [threading.Thread(target=serve) for _ in range(4)]
    for worker in workers:
        worker.start()
    for round_ in range(6):
        signed_sw.load_bundle(v2 if round_ % 2 == 0 else v1)
    stop.set()
    for worker in workers:
        worker.join(30)
    assert errors == []
    assert seen, "the workers served requests during the swaps"
    signed_sw.close()


def test_one_session_serves_every_thread_with_the_same_answers(bundle_path: Path) -> None:
    model = load_model(bundle_path)
    histories = [[item] for item in ITEMS] * 8
    serial = [model.score([h], k=5)[0] for h in histories]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda h: model.score([h], k=5)[0], histories))
    assert parallel == serial


def test_session_options_suit_a_two_core_device() -> None:
    small, large = session_options(12_000), session_options(100_000)
    assert small.intra_op_num_threads == 1
    assert large.intra_op_num_threads == 2
    assert small.inter_op_num_threads == 1
    for options in (small, large):
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(100_000, threads=64).intra_op_num_threads <= 64


def test_scores_skip_unknown_items_and_never_return_padding(bundle_path: Path) -> None:
    model = load_model(bundle_path)
    result = model.score([["milk", "no-such-item"], ["no-such-item"]], k=len(ITEMS))
    assert len(result[0].items) == len(ITEMS)
    assert set(result[0].items) == set(ITEMS)
    assert result[0].scores == sorted(result[0].scores, reverse=True)
    assert all(np.isfinite(result[1].scores))


def test_a_signed_bundle_verifies_with_its_key_and_inspect_reports_it(tmp_path: Path) -> None:
    folder = _signed(tmp_path / "b")
    files = read_bundle(folder, public_key=KEYS[1])
    assert files.signed and files.manifest.num_items == len(ITEMS)
    assert set(files.manifest.files) == {
        "model.onnx",
        "items.json",
        "item_vectors.npy",
        "side_tables.msgpack",
    }
    with pytest.raises(shelfwise.BundleVerificationError, match="signature"):
        read_bundle(folder, public_key=OTHER_KEYS[1])


def test_an_unreadable_bundle_file_is_a_verification_error(tmp_path: Path) -> None:
    folder = _signed(tmp_path / "b")
    (folder / "items.json").unlink()
    (folder / "items.json").mkdir()  # a folder where a file should be
    with pytest.raises(shelfwise.BundleVerificationError):
        read_bundle(folder)
    shutil.rmtree(folder)
    with pytest.raises(shelfwise.BundleVerificationError, match="not a bundle"):
        read_bundle(folder)


@settings(max_examples=200, deadline=None)
@given(
    graph=st.lists(st.integers(0, 4), max_size=12),
    new=st.lists(st.integers(0, 4), max_size=30),
    k=st.integers(1, 12),
)
def test_new_items_merge_into_the_graphs_top_k_as_one_stable_ranking(
    graph: list[int], new: list[int], k: int
) -> None:
    # Few distinct scores: ties everywhere. The spec: every graph item and every new item
    # ranked by score, a graph item before a new one on a tie, new items in catalog order.
    from shelfwise.model.runtime import CatalogVectors, LoadedModel

    graph_scores = sorted((float(s) for s in graph), reverse=True)[:k]
    extra = CatalogVectors(
        revision="r",
        items=tuple(f"new-{n}" for n in range(len(new))),
        vectors=np.zeros((len(new), 1), dtype=np.float32),
        unit=np.zeros((len(new), 1), dtype=np.float32),
        stand_in=np.zeros(len(new), dtype=np.int64),
    )
    top = [(f"known-{n}", s) for n, s in enumerate(graph_scores)]
    merged = LoadedModel._with_new_items(top, np.asarray(new, dtype=np.float32), extra, k)
    everything = [(f"known-{n}", s) for n, s in enumerate(graph_scores)]
    everything += [(f"new-{n}", float(s)) for n, s in enumerate(new)]
    wanted = sorted(everything, key=lambda pair: pair[1], reverse=True)[:k]
    assert merged == wanted


@settings(max_examples=100, deadline=None)
@given(
    table=st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 5), max_size=30),
    asks=st.lists(st.integers(0, 40), min_size=1, max_size=4),
)
def test_the_most_popular_items_of_a_scope_rank_by_count_ties_in_table_order(
    table: dict[str, int], asks: list[int]
) -> None:
    side = SideTables(popularity={"all": table})
    total = sum(table.values()) or 1.0
    ranked = sorted(table.items(), key=lambda pair: -pair[1])
    for n in asks:  # the ranking is worked out once, then served from memory
        assert side.most_popular("all", n) == [(item, c / total) for item, c in ranked[:n]]
    assert side.most_popular("hour:07", 5) == []
