"""Shared fixtures: small real stores and bundles the project builds itself."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from onnx_models import write_test_bundle

import shelfwise
from shelfwise import SideTables

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A small grocery: two clusters (breakfast, barbecue) the test model's vectors encode, plus
# items that exercise every business filter.
CATALOG = [
    {
        "item_id": "milk",
        "name": "Whole milk",
        "category": "dairy",
        "price": 1.19,
        "gtin": "036000291452",
    },
    {"item_id": "cereal", "name": "Corn flakes", "category": "breakfast", "price": 2.99},
    {"item_id": "yogurt", "name": "Greek yogurt", "category": "dairy", "price": 0.89},
    {"item_id": "coffee", "name": "Ground coffee", "category": "breakfast", "price": 5.49},
    {"item_id": "juice", "name": "Orange juice", "category": "drinks", "price": 2.49},
    {"item_id": "sausages", "name": "Pork sausages", "category": "meat", "price": 4.99},
    {"item_id": "buns", "name": "Burger buns", "category": "bakery", "price": 1.79},
    {"item_id": "charcoal", "name": "Charcoal", "category": "garden", "price": 6.99},
    {"item_id": "ketchup", "name": "Tomato ketchup", "category": "sauces", "price": 1.99},
    {
        "item_id": "beer",
        "name": "Lager 6-pack",
        "category": "drinks",
        "price": 7.49,
        "tags": "age_restricted",
    },
    {
        "item_id": "test-kit",
        "name": "Pregnancy test",
        "category": "health",
        "price": 8.99,
        "tags": "sensitive",
    },
    {
        "item_id": "grill",
        "name": "Kettle grill",
        "category": "garden",
        "price": 89.0,
        "tags": "non_repeatable",
    },
    {
        "item_id": "gone",
        "name": "Sold-out mustard",
        "category": "sauces",
        "price": 1.5,
        "in_stock": "no",
    },
]
BREAKFAST = ["milk", "cereal", "yogurt", "coffee", "juice"]
BARBECUE = ["sausages", "buns", "charcoal", "ketchup", "beer", "grill", "gone"]


def cluster_vectors(items: list[str]) -> np.ndarray:
    """Item vectors where breakfast and barbecue items point in opposite directions."""
    vectors = np.zeros((len(items) + 1, 4), dtype=np.float32)
    for index, item in enumerate(items, 1):
        base = [1.0, 0.0] if item in BREAKFAST else [0.0, 1.0]
        vectors[index, :2] = base
        vectors[index, 2] = 0.01 * index  # break ties deterministically
        vectors[index, 3] = 0.3 if item == "test-kit" else 0.0
    vectors[[items.index("test-kit") + 1], :2] = [1.0, 0.0]
    return vectors


ITEMS = [row["item_id"] for row in CATALOG]
SIDE_TABLES = SideTables(
    cooccurrence={
        "sausages": [
            ("buns", 3.0, 40),
            ("ketchup", 2.5, 30),
            ("charcoal", 2.0, 20),
            ("gone", 5.0, 50),
        ],
        "milk": [("cereal", 2.0, 30), ("coffee", 1.5, 20)],
        "buns": [("sausages", 3.0, 40), ("ketchup", 1.2, 5)],
    },
    popularity={
        "all": {"milk": 100, "buns": 60, "cereal": 50, "sausages": 40, "gone": 500},
        "category:dairy": {"milk": 100, "yogurt": 30},
    },
    repeat_days={"milk": 7.0, "coffee": 21.0},
)


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    """A verified bundle (real ONNX) over the small grocery."""
    return write_test_bundle(
        tmp_path / "bundle", ITEMS, cluster_vectors(ITEMS), side_tables=SIDE_TABLES
    )


@pytest.fixture
def sw(tmp_path: Path, bundle_path: Path) -> Iterator[shelfwise.Shelfwise]:
    """An open store file with the small grocery catalog and the bundle loaded."""
    with shelfwise.open(tmp_path / "store.db", bundle=bundle_path, store_id="store-1") as opened:
        opened.catalog.import_rows(CATALOG)
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """The collector's storage, once on SQLite and once (marked) on a fresh PostgreSQL database.

    Imported here, not at the top: only the collector tests need the ``upstream`` extra.
    """
    from sync_helpers import fresh_pg_database

    from shelfwise.upstream import SqliteStorage, open_storage

    if request.param == "sqlite":
        opened = SqliteStorage(str(tmp_path / "collector.db"))
        yield opened
        opened.close()
    else:
        for dsn in fresh_pg_database():
            opened = open_storage(pg=dsn, key_file=tmp_path / "server.key")
            yield opened
            opened.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data not found at {SHARED_DATA}")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)
