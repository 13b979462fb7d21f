"""The content-aware model end to end: item features in training, a feature table in the
bundle, the runtime giving new items vectors, and the cold-start protocol (needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from test_training import chain_file

import shelfwise
from shelfwise.export.bundle import export_bundle
from shelfwise.model.bundle import read_bundle
from shelfwise.model.encoding import ItemFeatures
from shelfwise.model.runtime import load_model
from shelfwise.training.train import TrainConfig, load_features, load_new_items, load_run, train

pytestmark = pytest.mark.slow  # every test here trains a (small) model

ITEMS = 40


def catalog_row(item: int) -> dict[str, object]:
    """Neighbours on the chain share a group: the group is what a new item is known by
    (item 41, which no shopper ever bought, joins the last group)."""
    group = min((item - 1) // 4, ITEMS // 4 - 1)
    return {
        "item_id": str(item),
        "name": f"Gadget {['alpha', 'beta', 'gamma', 'delta', 'omega'][group % 5]} {item}",
        "brand": f"maker{group}",
        "category": f"group{group}",
        "price": 1.0 + group,
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("features")
    chain_file(folder / "chains.txt", users=200, items=ITEMS)
    rows = [catalog_row(i) for i in range(1, ITEMS + 2)]  # item 41: never in the data
    (folder / "catalog.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def config(folder: Path, out: str, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": str(folder / "chains.txt"),
        "out": str(folder / out),
        "catalog": str(folder / "catalog.jsonl"),
        "dim": 16,
        "heads": 2,
        "layers": 1,
        "max_len": 12,
        "dropout": 0.1,
        "batch_size": 32,
        "lr": 5e-3,
        "epochs": 6,
        "token_buckets": 64,
        "progress": False,
        "threads": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cold_run(folder: Path) -> Path:
    train(config(folder, "cold", cold_start=0.2, id_dropout=0.5))
    return folder / "cold"


@pytest.fixture(scope="module")
def bundle(cold_run: Path, folder: Path) -> Path:
    export_bundle(cold_run, folder / "bundle", quantize="int8")
    return folder / "bundle"


def test_a_run_with_a_catalog_learns_its_feature_encoding(cold_run: Path) -> None:
    encoding = load_features(cold_run)
    assert encoding is not None and encoding.token_buckets == 64
    assert {"category:group0", "brand:maker0"} <= set(encoding.vocabulary)
    assert encoding.price_edges  # price bands from the catalog's prices
    new = load_new_items(cold_run)
    assert len(new) == 8
    for item in new:  # a feature only a new item has never made it into the vocabulary
        assert f"brand:maker{(int(item) - 1) // 4}" in encoding.vocabulary or all(
            (int(other) - 1) // 4 == (int(item) - 1) // 4 for other in new if other != item
        )


def test_the_bundle_gives_a_held_out_item_the_vector_the_model_trained(
    cold_run: Path, bundle: Path
) -> None:
    files = read_bundle(bundle)
    assert files.features is not None and files.feature_table is not None
    assert files.manifest.output_user == "user"
    assert files.manifest.training["features"]["encoding_check"]["mismatches"] == 0
    model = load_model(bundle)
    vocab_items = files.items
    assert files.item_vectors is not None
    for item in load_new_items(cold_run):
        features = ItemFeatures.of_fields(
            **{k: v for k, v in catalog_row(int(item)).items() if k != "item_id"}
        )  # type: ignore[arg-type]
        ours = model.content_vectors([features])[0]
        trained = files.item_vectors[vocab_items.index(item) + 1]  # no id part: features only
        # item vectors ship as float16: equal to its precision
        assert np.allclose(ours, trained, rtol=2e-3, atol=2e-3), item


def test_rows_no_trained_item_uses_ship_as_zero(cold_run: Path, bundle: Path) -> None:
    torch_model, _, _ = load_run(cold_run)
    files = read_bundle(bundle)
    assert files.feature_table is not None
    used = set(np.unique(torch_model.item_features[torch_model.has_id > 0].numpy()).tolist())
    for row in range(1, len(files.feature_table)):
        if row not in used:
            assert not files.feature_table[row].any(), row


def test_a_product_imported_after_training_is_served_on_every_surface(
    bundle: Path, tmp_path: Path
) -> None:
    with shelfwise.open(tmp_path / "store.db", bundle=bundle) as sw:
        sw.catalog.import_rows([catalog_row(i) for i in range(1, ITEMS + 2)])
        shopper = sw.start_session()
        similar = shopper.recommend("similar", item="41", limit=3)
        assert similar and all(r.item.category == "group9" or "from" in r.reason for r in similar)
        assert shopper.recommend("complements", item="41", limit=3)
        assert "41" in [r.item.item_id for r in shopper.recommend("similar", item="40", limit=3)]
        shopper.view("41")
        assert (
            shopper.recommend("for-you", limit=5)[0].reason == "because you viewed Gadget omega 41"
        )


def test_evaluate_cold_start_reports_both_pools_against_the_baselines(
    cold_run: Path, tmp_path: Path
) -> None:
    from shelfwise.cli import main

    out = tmp_path / "cold.json"
    assert (
        main(["evaluate", str(cold_run), "--cold-start", "--output", str(out), "--no-progress"])
        == 0
    )
    results = json.loads(out.read_text())
    assert results["new_items"] == 8 and results["cases"] > 0
    assert "target is a new item" in results["protocol"] and "masked" in results["protocol"]
    for pool in ("all items", "new items only"):
        rows = results["metrics"][pool]
        assert set(rows) == {
            "shelfwise SeqRec (features)",
            "popularity within category",
            "content nearest neighbours",
            "popularity",
        }
        assert rows["shelfwise SeqRec (features)"]["ndcg@10"] > rows["popularity"]["ndcg@10"]


def test_evaluate_cold_start_on_an_ordinary_run_says_how_to_train_one(
    folder: Path, tmp_path: Path
) -> None:
    from shelfwise.cli import main

    train(config(folder, "warm", epochs=1))
    assert main(["evaluate", str(folder / "warm"), "--cold-start", "--no-progress"]) == 2


def test_a_refit_run_trains_on_the_validation_targets_for_exactly_its_epochs(
    folder: Path, tmp_path: Path
) -> None:
    result = train(config(folder, "refit", epochs=3, patience=1, refit=True))
    report = json.loads((folder / "refit" / "run.json").read_text())
    assert report["refit"] is True and result.epochs_run == 3 and result.best_epoch == 3
    assert result.best_valid == {} and all("valid" not in h for h in report["history"])
    manifest = export_bundle(folder / "refit", tmp_path / "bundle").manifest
    assert manifest.training["refit"] is True
