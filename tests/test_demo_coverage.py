"""Every product of the demo store gets suggestions, from the first day it is on the shelf.

The committed bundle was trained on the groceries baskets (167 products); the demo catalog
has 1,198. The other 1,031 (Open Food Facts products nobody in the data bought) are served
from the bundle's feature table: similar, complements and the scan card's alternatives must
answer for every product with a catalog row, and an alternative from another category says
so in its reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import shelfwise
from shelfwise.kiosk_demo.__main__ import open_store
from shelfwise.kiosk_demo.seed import BUNDLE_DIR

pytestmark = pytest.mark.slow  # three calls for each of 1,198 products


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[shelfwise.Shelfwise]:
    folder = tmp_path_factory.mktemp("coverage")
    sw, _ = open_store(folder / "store.db", BUNDLE_DIR)
    yield sw
    sw.close()


def products(sw: shelfwise.Shelfwise) -> list[shelfwise.Item]:
    items = sw.catalog.all()
    assert len(items) == 1198
    return items


def test_the_committed_bundle_serves_products_it_never_saw(demo: shelfwise.Shelfwise) -> None:
    model = demo.model.current
    assert model is not None and model.features is not None
    assert len(model.vocab) == 167


def test_similar_and_complements_answer_for_every_product(demo: shelfwise.Shelfwise) -> None:
    shopper = demo.start_session()
    missing = {"similar": [], "complements": []}  # type: dict[str, list[str]]
    for item in products(demo):
        for surface, gaps in missing.items():
            if not shopper.recommend(surface, item=item.item_id, limit=3):
                gaps.append(item.item_id)
    assert missing == {"similar": [], "complements": []}


def test_similar_items_keep_to_the_category_or_say_where_they_are_from(
    demo: shelfwise.Shelfwise,
) -> None:
    shopper = demo.start_session()
    unexplained = []
    for item in products(demo):
        for rec in shopper.recommend("similar", item=item.item_id, limit=3):
            other = rec.item.category
            if other != item.category and f"from {other}" not in rec.reason:
                unexplained.append((item.item_id, rec.item.item_id, rec.reason))
    assert unexplained == []


def test_every_scan_card_has_alternatives_in_the_category_or_says_otherwise(
    demo: shelfwise.Shelfwise,
) -> None:
    shopper = demo.start_session()
    without, unexplained = [], []
    for item in products(demo):
        assert item.gtin, item.item_id  # every demo product carries a code
        card = shopper.scan(item.gtin)
        if not card.alternatives:
            without.append(item.item_id)
        for rec in card.alternatives:
            other = rec.item.category
            if other != item.category and f"from {other}" not in rec.reason:
                unexplained.append((item.item_id, rec.item.item_id, rec.reason))
    assert without == [] and unexplained == []
