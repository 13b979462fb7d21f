"""Items the model never saw: vectors from their features alone, in every item surface.

The bundles here are built with onnx.helper (no torch): the runtime's feature path must work
on a kiosk that has only the runtime installed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import CATALOG, ITEMS, SIDE_TABLES, cluster_vectors
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_models import write_test_bundle

import shelfwise
from shelfwise import BundleVerificationError
from shelfwise.model.bundle import read_bundle
from shelfwise.model.encoding import FeatureEncoding, ItemFeatures
from shelfwise.model.runtime import load_model

BREAKFAST_AISLES = {"dairy", "breakfast", "health"}
BARBECUE_AISLES = {"meat", "bakery", "garden", "sauces"}
NEW_ITEMS = [
    {"item_id": "oat-milk", "name": "Oat milk drink", "category": "dairy", "price": 1.99},
    {"item_id": "chorizo", "name": "Spicy chorizo", "category": "meat", "price": 3.49},
]


def encoding_and_table() -> tuple[FeatureEncoding, np.ndarray]:
    """The small grocery's features: a breakfast aisle points where the breakfast cluster
    does, a barbecue aisle where the barbecue cluster does; drinks sit between."""
    encoding = FeatureEncoding.learn(
        [ItemFeatures.of_fields(**{k: row[k] for k in ("name", "category")}) for row in CATALOG],
        token_buckets=16,
        price_bands=1,
    )
    table = np.zeros((encoding.size, 4), dtype=np.float32)
    for row, name in enumerate(encoding.vocabulary, 1):
        aisle = name.removeprefix("category:")
        if aisle in BREAKFAST_AISLES:
            table[row, :2] = [1.0, 0.0]
        elif aisle in BARBECUE_AISLES:
            table[row, :2] = [0.0, 1.0]
        elif aisle == "drinks":
            table[row, :2] = [0.5, 0.5]
    return encoding, table


@pytest.fixture
def feature_bundle(tmp_path: Path) -> Path:
    encoding, table = encoding_and_table()
    return write_test_bundle(
        tmp_path / "features-bundle",
        ITEMS,
        cluster_vectors(ITEMS),
        side_tables=SIDE_TABLES,
        features=encoding,
        feature_table=table,
    )


@pytest.fixture
def store(tmp_path: Path, feature_bundle: Path) -> Iterator[shelfwise.Shelfwise]:
    """The small grocery plus two products imported after the bundle was trained."""
    with shelfwise.open(tmp_path / "store.db", bundle=feature_bundle) as opened:
        opened.catalog.import_rows(CATALOG + NEW_ITEMS)
        yield opened


def ids(results: list[shelfwise.Recommendation]) -> list[str]:
    return [r.item.item_id for r in results]


def test_a_new_item_gets_the_sum_of_its_feature_rows_as_its_vector(feature_bundle: Path) -> None:
    model = load_model(feature_bundle)
    encoding, table = encoding_and_table()
    oat = ItemFeatures(name="Oat milk drink", category="Dairy ", brand="Unknown brand")
    expected = table[encoding.indices(oat)].sum(axis=0)
    assert np.allclose(model.content_vectors([oat])[0], expected)
    assert np.allclose(expected[:2], [1.0, 0.0])  # unknown brand and words add nothing


def test_similar_answers_for_a_product_imported_after_training(
    store: shelfwise.Shelfwise,
) -> None:
    results = store.start_session().recommend("similar", item="oat-milk", limit=3)
    assert ids(results)[:2] == ["milk", "yogurt"]  # its own aisle first
    assert results[0].reason == "similar to Oat milk drink"
    for other in results[2:]:
        assert other.reason == f"like Oat milk drink, from {other.item.category}"
    # and a new item is similar to known ones in its aisle, in the other direction too
    assert "chorizo" in ids(store.start_session().recommend("similar", item="sausages", limit=3))


def test_complements_of_a_new_item_come_from_its_closest_known_items(
    store: shelfwise.Shelfwise,
) -> None:
    results = store.start_session().recommend("complements", item="chorizo", limit=3)
    assert ids(results) == ["buns", "ketchup", "charcoal"]  # what sausages go with
    assert {r.reason for r in results} == {"goes with items like Spicy chorizo"}


def test_for_you_ranks_new_items_and_reads_them_in_a_history(store: shelfwise.Shelfwise) -> None:
    shopper = store.start_session()
    shopper.view("milk")
    shopper.view("cereal")
    assert "oat-milk" in ids(shopper.recommend("for-you", limit=5))
    newcomer = store.start_session()
    newcomer.view("chorizo")  # only a new item in the history
    results = newcomer.recommend("for-you", limit=3)
    assert set(ids(results)) <= {"sausages", "buns", "charcoal", "ketchup", "grill"}
    assert results[0].reason == "because you viewed Spicy chorizo"


def test_an_import_after_loading_is_picked_up_without_a_reload(
    tmp_path: Path, feature_bundle: Path
) -> None:
    with shelfwise.open(tmp_path / "s.db", bundle=feature_bundle) as sw:
        sw.catalog.import_rows(CATALOG)
        assert "oat-milk" not in ids(sw.start_session().recommend("similar", item="milk"))
        sw.catalog.import_rows(NEW_ITEMS)
        assert "oat-milk" in ids(sw.start_session().recommend("similar", item="milk"))


def test_every_product_with_a_catalog_row_gets_similar_and_complements(
    store: shelfwise.Shelfwise,
) -> None:
    shopper = store.start_session()
    for row in CATALOG + NEW_ITEMS:
        if row.get("in_stock") == "no":
            continue
        assert shopper.recommend("similar", item=row["item_id"], limit=3), row["item_id"]
        assert shopper.recommend("complements", item=row["item_id"], limit=3), row["item_id"]


def test_a_bundle_without_features_still_answers_with_the_category_best_sellers(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.catalog.import_rows(NEW_ITEMS)
    results = sw.start_session().recommend("similar", item="oat-milk", limit=3)
    assert ids(results)[:2] == ["milk", "yogurt"]
    assert results[0].reason == "a best seller in dairy"
    assert sw.model.current is not None and sw.model.current.features is None


def test_a_feature_table_without_its_encoding_is_refused(feature_bundle: Path) -> None:
    import json

    manifest = json.loads((feature_bundle / "manifest.json").read_text())
    manifest["features"] = {}
    (feature_bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVerificationError, match="feature table and its manifest"):
        read_bundle(feature_bundle)


def test_a_feature_table_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    encoding, table = encoding_and_table()
    folder = write_test_bundle(
        tmp_path / "b", ITEMS, cluster_vectors(ITEMS), features=encoding, feature_table=table[:3]
    )
    with pytest.raises(BundleVerificationError, match=r"feature_table\.npy is 3 x 4"):
        read_bundle(folder)


def test_a_malformed_feature_encoding_is_refused(tmp_path: Path) -> None:
    import json

    encoding, table = encoding_and_table()
    folder = write_test_bundle(
        tmp_path / "b", ITEMS, cluster_vectors(ITEMS), features=encoding, feature_table=table
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["features"]["token_buckets"] = "many"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleVerificationError, match="token_buckets"):
        read_bundle(folder)


def test_the_feature_path_never_loads_torch(feature_bundle: Path) -> None:
    code = (
        "import sys, shelfwise\n"
        f"sw = shelfwise.open(':memory:', bundle={str(feature_bundle)!r})\n"
        "sw.catalog.import_rows([{'item_id': 'oat', 'name': 'Oat milk', 'category': 'dairy'},\n"
        "                        {'item_id': 'milk', 'name': 'Milk', 'category': 'dairy'}])\n"
        "assert sw.start_session().recommend('similar', item='oat')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the encoding itself --------------------------------------------------------------------

fields = st.builds(
    ItemFeatures,
    name=st.text(max_size=40),
    brand=st.text(max_size=12),
    category=st.sampled_from(["", "dairy", "Dairy", "meat", "toys"]),
    price=st.one_of(st.none(), st.floats(0, 100)),
    attributes=st.lists(st.text(max_size=6), max_size=4).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(fields)
def test_any_item_encodes_to_rows_of_the_table_and_always_the_same(item: ItemFeatures) -> None:
    encoding, _ = encoding_and_table()
    rows = encoding.indices(item)
    assert rows == encoding.indices(item)
    assert all(1 <= r < encoding.size for r in rows) and len(set(rows)) == len(rows)
    assert len(rows) <= encoding.max_features


def test_an_encoding_round_trips_through_the_manifest() -> None:
    encoding, _ = encoding_and_table()
    assert FeatureEncoding.from_dict(encoding.to_dict()) == encoding


def test_features_are_read_without_case_or_accents_and_unknown_ones_add_nothing() -> None:
    encoding = FeatureEncoding.learn(
        [ItemFeatures(brand="Nestlé", category="Dairy", price=2.0)], price_bands=1
    )
    same = encoding.indices(ItemFeatures(brand=" NESTLE ", category="dairy"))
    assert same == encoding.indices(ItemFeatures(brand="Nestlé", category="Dairy"))
    assert encoding.indices(ItemFeatures(brand="Other", category="toys")) == []


def test_name_words_hash_to_the_same_bucket_in_every_process() -> None:
    code = "from shelfwise.model.encoding import token_bucket\nprint(token_bucket('latte', 2048))\n"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1 and runs.pop().strip().isdigit()


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Known items and feature rows at random (no ties to speak of), for ranking checks; with
    the graph's own float32 item vectors (the bundle keeps float16 copies for similarity)."""
    rng = np.random.default_rng(13)
    encoding, table = encoding_and_table()
    vectors = rng.standard_normal((len(ITEMS) + 1, 4)).astype(np.float32)
    rows = rng.standard_normal(table.shape).astype(np.float32)
    rows[0] = 0.0  # "no feature", as every trained table has it
    path = write_test_bundle(
        tmp_path_factory.mktemp("random") / "bundle", ITEMS, vectors, features=encoding,
        feature_table=rows,
    )  # fmt: skip
    return path, vectors


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(st.sampled_from(ITEMS), min_size=1, max_size=6),
    new=st.lists(fields, min_size=1, max_size=12),
    k=st.integers(1, 30),
)
def test_for_you_ranks_new_and_known_items_together_by_score(
    random_bundle: tuple[Path, np.ndarray], history: list[str], new: list[ItemFeatures], k: int
) -> None:
    # The model's top k over known and new items alike is the best k scores of all of them
    # against the user vector (here the mean of the history's vectors), best first.
    path, known = random_bundle
    model = load_model(path)
    rows = [(f"new-{n}", features) for n, features in enumerate(new)]
    extra = model.catalog_vectors(f"rev-{len(new)}-{hash(tuple(new))}", lambda: rows)
    assert extra is not None
    scored = model.score([history], k=k, extra=extra)[0]
    user = known[[ITEMS.index(i) + 1 for i in history]].mean(axis=0)
    every = {item: float(known[n + 1] @ user) for n, item in enumerate(ITEMS)}
    every |= {item: float(extra.vectors[n] @ user) for n, item in enumerate(extra.items)}
    best = sorted(every.values(), reverse=True)[:k]
    assert len(scored.items) == min(k, len(every)) == len(set(scored.items))
    assert scored.scores == sorted(scored.scores, reverse=True)
    assert np.allclose(scored.scores, best, rtol=1e-4, atol=1e-4)
    assert np.allclose([every[i] for i in scored.items], scored.scores, rtol=1e-4, atol=1e-4)


def test_new_items_that_tie_rank_the_same_however_deep_the_model_is_read(
    tmp_path: Path, feature_bundle: Path
) -> None:
    # Items with the same features score the same: whatever k cuts the list, the items come in
    # one order (the catalog's), so for-you's shallow read starts the way a deep one does.
    from shelfwise.recommend import recommender

    aisles = ["dairy", "drinks", "breakfast", "meat", "health", "garden"]  # three vectors
    twins = [
        {"item_id": f"oat-{n:02d}", "name": "Oat drink", "category": aisles[n * 7 % 6], "price": 1}
        for n in range(60)
    ]
    with shelfwise.open(tmp_path / "twins.db", bundle=feature_bundle) as sw:
        sw.catalog.import_rows(CATALOG + twins)
        model = sw.recommender.served()
        assert model is not None
        extra = sw.recommender.sources.catalog_vectors(model)
        everything = len(CATALOG) + len(twins)
        deepest = model.score([["milk", "cereal"]], k=everything, extra=extra)[0].items
        assert sum(item.startswith("oat-") for item in deepest) == len(twins)
        for k in range(1, everything):
            assert model.score([["milk", "cereal"]], k=k, extra=extra)[0].items == deepest[:k]
        shopper = sw.start_session()
        shopper.view("milk")
        for limit in (3, 7):
            got = shopper.recommend("for-you", limit=limit, filters={"max_price": 1})
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(recommender, "SHALLOW_FIRST", frozenset())
                deep = shopper.recommend("for-you", limit=limit, filters={"max_price": 1})
            assert ids(got) == ids(deep)
