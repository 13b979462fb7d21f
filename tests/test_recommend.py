"""Every recommendation surface and every business filter, on a small store with known answers."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CATALOG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise import SURFACES


def test_for_you_follows_the_session_history(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.track("scan", "sausages")
    results = shopper.recommend("for-you", limit=3)
    assert results, "a session with history gets personal results"
    assert {r.item.item_id for r in results} <= {"buns", "charcoal", "ketchup", "grill"}
    assert all(r.reason == "because you scanned Pork sausages" for r in results)


def test_new_shopper_gets_non_personal_cold_start_results(sw: shelfwise.Shelfwise) -> None:
    results = sw.start_session().recommend("for-you", limit=3)
    assert [r.item.item_id for r in results][:1] == ["milk"]
    assert all("best seller" in r.reason or "popular" in r.reason for r in results)


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_surface_obeys_every_business_filter(sw: shelfwise.Shelfwise, surface: str) -> None:
    shopper = sw.member("L-1", consents={"personalization": True})
    for item in ["sausages", "grill", "milk", "test-kit", "beer"]:
        shopper.view(item)
    for item in ["grill", "test-kit", "beer", "milk"]:  # bought: only milk may come back
        shopper.add_to_cart(item)
    shopper.checkout()
    shopper.add_to_cart("buns")
    results = shopper.recommend(
        surface, limit=10, item="sausages" if surface == "similar" else None
    )
    ids = [r.item.item_id for r in results]
    assert "gone" not in ids, "out of stock"
    assert "buns" not in ids, "already in the cart"
    assert "test-kit" not in ids, "sensitive without consent"
    assert "beer" not in ids, "age restricted, not verified"
    assert "grill" not in ids, "non-repeatable and already bought"
    assert len(ids) == len(set(ids))
    assert results, f"{surface} has something to show this shopper"
    assert all(r.reason for r in results)


def test_sensitive_items_appear_only_with_consent(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.member("L-2", consents={"personalization": True, "sensitive": True})
    shopper.view("milk")
    assert "test-kit" in [r.item.item_id for r in shopper.recommend("for-you", limit=10)]


def test_member_without_personalization_consent_gets_non_personal_results(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.member("L-3", consents={"personalization": False})
    shopper.view("sausages")
    personal = [r for r in shopper.recommend("for-you", limit=5) if r.reason.startswith("because")]
    assert personal == []
    assert shopper.recommend("recently-viewed") == []


def test_similar_items_come_from_the_same_cluster(sw: shelfwise.Shelfwise) -> None:
    results = sw.start_session().recommend("similar", item="milk", limit=3)
    assert {r.item.item_id for r in results} <= {"cereal", "yogurt", "coffee", "juice"}
    # the product's own category first; another category is named in the reason
    assert results[0].item.item_id == "yogurt"
    assert results[0].reason == "similar to Whole milk"
    for other in results[1:]:
        assert other.reason == f"like Whole milk, from {other.item.category}"


def test_complements_rank_by_lift_and_skip_unavailable(sw: shelfwise.Shelfwise) -> None:
    results = sw.start_session().recommend("complements", item="sausages", limit=3)
    assert [r.item.item_id for r in results] == ["buns", "ketchup", "charcoal"]
    assert results[0].reason == "often bought with Pork sausages"


def test_checkout_add_ins_name_the_cart_item(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.add_to_cart("sausages")
    results = shopper.recommend("checkout", limit=2)
    assert results[0].item.item_id == "buns"
    assert results[0].reason == "goes with the Pork sausages in your cart"


def test_buy_again_prefers_items_that_are_due(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.member("L-4", consents={"personalization": True})
    day = 86_400_000
    now = 1_750_000_000_000
    shopper.track("purchase", "milk", ts_ms=now - 7 * day)
    shopper.track("purchase", "coffee", ts_ms=now - 2 * day)
    results = shopper.recommend("buy-again", now=now)
    assert [r.item.item_id for r in results] == ["milk", "coffee"]
    assert "every 7 days" in results[0].reason


def test_recently_viewed_is_most_recent_first(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    for item in ["milk", "coffee", "buns"]:
        shopper.view(item)
    assert [r.item.item_id for r in shopper.recommend("recently-viewed")] == [
        "buns",
        "coffee",
        "milk",
    ]


def test_trending_counts_this_stores_recent_events(sw: shelfwise.Shelfwise) -> None:
    for _ in range(3):
        sw.start_session().track("scan", "charcoal")
    results = sw.start_session().recommend("trending", limit=3)
    assert results[0].item.item_id == "charcoal"
    assert results[0].reason == "trending in this store this week"


def test_diversity_limits_items_per_category(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.view("milk")
    results = shopper.recommend("for-you", limit=3)
    categories = [r.item.category for r in results]
    assert max(categories.count(c) for c in set(categories)) <= 2


def test_search_taste_breaks_ties_but_never_lifts_a_much_weaker_text_match(
    sw: shelfwise.Shelfwise,
) -> None:
    from shelfwise.recommend import rerank_search

    model = sw.recommender.served()
    ketchup, milk = sw.catalog.get("ketchup"), sw.catalog.get("milk")
    breakfast = shelfwise.Context(history=[("cereal", "view", 1), ("coffee", "view", 2)])
    ids = lambda items: [i.item_id for i in items]  # noqa: E731
    assert ids(rerank_search(model, breakfast, [ketchup, milk], [1.0, 1.0])) == ["milk", "ketchup"]
    assert ids(rerank_search(model, breakfast, [ketchup, milk], [10.0, 1.0])) == [
        "ketchup",
        "milk",
    ]
    no_consent = shelfwise.Context(history=breakfast.history, consents=frozenset())
    assert ids(rerank_search(model, no_consent, [ketchup, milk], [1.0, 1.0])) == [
        "ketchup",
        "milk",
    ]


def test_unknown_surface_and_bad_k_are_typed_errors(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    with pytest.raises(shelfwise.InvalidInput):
        shopper.recommend("horoscope")
    with pytest.raises(shelfwise.InvalidInput):
        shopper.recommend("for-you", limit=0)
    with pytest.raises(shelfwise.UnknownItem):
        shopper.recommend("similar", item="unicorn")


def test_filters_read_in_batches_give_the_same_results_as_reading_everything(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The catalog is read a batch at a time on the hot path; the answer must not change."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from shelfwise import Context
    from shelfwise.recommend.filters import diversify, passes_filters
    from shelfwise.recommend.reasons import reason
    from shelfwise.recommend.surfaces import Candidates

    rows = [
        {
            "item_id": f"i{n}",
            "name": f"Item {n}",
            "category": f"c{n % 4}",
            "in_stock": n % 7 != 0,
            "tags": "sensitive" if n % 11 == 0 else "",
        }
        for n in range(120)
    ]
    sw = shelfwise.open(tmp_path_factory.mktemp("batches") / "s.db")
    sw.catalog.import_rows(rows)

    @settings(max_examples=60, deadline=None)
    @given(
        order=st.permutations([f"i{n}" for n in range(120)]),
        k=st.integers(1, 20),
        per_category=st.integers(1, 6),
        in_cart=st.sets(st.sampled_from([f"i{n}" for n in range(120)]), max_size=10),
    )
    def check(order: list[str], k: int, per_category: int, in_cart: set[str]) -> None:
        candidates = Candidates()
        for rank, item_id in enumerate(order):
            candidates.add(item_id, float(len(order) - rank), reason("best_seller"))
        context = Context(cart=frozenset(in_cart))
        got = sw.recommender.apply_filters(candidates, context, k, "trending", None, per_category)
        items = sw.catalog.get_many(order)
        allowed = [items[i] for i in order if passes_filters(items[i], context, set(), None)]
        assert [r.item.item_id for r in got] == [
            i.item_id for i in diversify(allowed, k, per_category)
        ]

    try:
        check()
    finally:
        sw.close()


_filters = st.fixed_dictionaries(
    {},
    optional={
        "min_price": st.sampled_from([0, 1.0, 2.5, 5]),
        "max_price": st.sampled_from([2.0, 5.0, 10, 100]),
        "brand": st.sampled_from(["Acme", ["acme", "Farm"], "nobody"]),
        "category": st.sampled_from(["dairy", ["meat", "bakery"], "sauces"]),
        "tags": st.sampled_from(["organic", []]),
        "exclude_tags": st.sampled_from(["organic", ["sensitive"]]),
        "include": st.lists(st.sampled_from(["milk", "buns", "ketchup", "coffee"]), max_size=3),
        "exclude": st.lists(st.sampled_from(["milk", "buns", "cereal"]), max_size=2),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=_filters, surface=st.sampled_from(sorted(SURFACES)))
def test_every_surface_and_search_honour_every_caller_filter(
    sw: shelfwise.Shelfwise, filters: dict[str, Any], surface: str
) -> None:
    rows = [
        {
            **row,
            "brand": "Acme" if i % 2 else "Farm",
            "tags": "organic" if i % 3 == 0 else row.get("tags", ""),
        }
        for i, row in enumerate(CATALOG)
    ]
    sw.catalog.import_rows(rows)
    shopper = sw.member("L-1", consents={"personalization": True})
    if not shopper.cart() and shopper.profile().interactions == ():
        for item in ["milk", "sausages", "coffee", "buns"]:
            shopper.view(item)
        shopper.add_to_cart("milk")
        shopper.checkout()
    try:
        wanted = shelfwise.ItemFilter.of(filters)
    except shelfwise.InvalidInput:
        return
    anchor = "sausages" if surface == "similar" else None
    got = shopper.recommend(surface, limit=10, item=anchor, filters=filters)
    assert all(wanted.allows(r.item) for r in got)
    assert all(wanted.allows(item) for item in shopper.search("acme", filters=filters))


@pytest.mark.parametrize(
    "filters",
    [
        {"max_price": "cheap"},
        {"max_price": float("nan")},
        {"min_price": -1},
        {"min_price": 5, "max_price": 1},
        {"brand": 42},
        {"include": "milk"},
        {"colour": "red"},
        "max_price=3",
    ],
)
def test_a_malformed_filter_is_a_typed_error(sw: shelfwise.Shelfwise, filters: Any) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        sw.start_session().recommend("trending", filters=filters)


def test_taste_reorders_search_results_but_never_brings_in_another_item(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.catalog.import_rows(
        [
            {"item_id": f"choc-{n}", "name": f"Chocolate bar {n}", "category": "sweets"}
            for n in range(6)
        ]
        # a weak text match the meat lover's taste favours strongly (it is in the model)
        + [{"item_id": "sausages", "name": "Pork sausages, chocolate glaze", "category": "meat"}]
    )
    text_top = [i.item_id for i in sw.catalog.search("chocolate", limit=4)]
    assert "sausages" not in text_top
    meat_lover = sw.member("L-2", consents={"personalization": True})
    for item in ["buns", "charcoal", "ketchup"]:
        meat_lover.view(item)
    assert {i.item_id for i in meat_lover.search("chocolate", limit=4)} == set(text_top)
    found = [i.item_id for i in meat_lover.search("chocolate", limit=8)]
    assert found.index("sausages") < [
        i.item_id for i in sw.catalog.search("chocolate", limit=8)
    ].index("sausages"), "taste reorders what the text found"


def test_a_recorded_list_can_be_clicked_and_both_are_events(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    for item in ["milk", "cereal", "coffee"]:
        shopper.view(item)
    plain = shopper.recommend("recently-viewed")
    assert all(r.shown_id == "" for r in plain)
    shown = shopper.recommend("recently-viewed", record=True)
    assert [r.position for r in shown] == list(range(1, len(shown) + 1))
    assert len({r.shown_id for r in shown}) == 1
    click = shopper.clicked(shown[1])
    assert (click.type, click.item_id) == ("recommendation_clicked", shown[1].item.item_id)
    assert click.payload == {
        "surface": "recently-viewed",
        "shown_id": shown[0].shown_id,
        "position": 2,
    }
    logged = sw.store.query("SELECT payload FROM events WHERE type = 'recommendation_shown'")
    assert len(logged) == 1 and shown[0].item.item_id in logged[0]["payload"]
    with pytest.raises(shelfwise.InvalidInput, match="record=True"):
        shopper.clicked(plain[0])


def test_every_reason_code_reads_in_every_shipped_language_with_the_same_parameters() -> None:
    import string

    from shelfwise.recommend.reasons import LANGUAGES, MESSAGES

    for code, english in MESSAGES["en"].items():
        wanted = {f for _, f, _, _ in string.Formatter().parse(english) if f}
        for language in LANGUAGES:
            assert code in MESSAGES[language], f"{code} has no {language} text"
            got = {f for _, f, _, _ in string.Formatter().parse(MESSAGES[language][code]) if f}
            assert got == wanted, f"{code} in {language} takes {got}, English takes {wanted}"


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_every_surface_explains_itself_with_a_code_in_english_and_italian(
    sw: shelfwise.Shelfwise, surface: str
) -> None:
    shopper = sw.member("L-1", consents={"personalization": True})
    for item in ["milk", "sausages", "coffee"]:
        shopper.view(item)
    shopper.add_to_cart("milk")
    shopper.checkout()
    shopper.add_to_cart("buns")
    results = shopper.recommend(surface, item="sausages" if surface == "similar" else None)
    assert results
    for r in results:
        assert r.why is not None and r.reason == r.why.text("en") == r.reason_in("en")
        assert r.reason_in("it") and r.reason_in("it") != r.reason
        assert r.reason_in("fr") == r.reason, "an unknown language falls back to English"


@pytest.fixture(scope="module")
def wide_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """150 items at random vectors (no ties), 5 aisles, prices 1-15: deep enough that for-you's
    first, shallow read of the model is not the whole catalog."""
    import numpy as np
    from onnx_models import write_test_bundle

    items = [f"p{n:03d}" for n in range(150)]
    vectors = np.random.default_rng(7).standard_normal((151, 8)).astype(np.float32)
    folder = tmp_path_factory.mktemp("wide")
    bundle = write_test_bundle(folder / "bundle", items, vectors)
    sw = shelfwise.open(folder / "s.db", bundle=bundle)
    sw.catalog.import_rows(
        [
            {"item_id": i, "name": f"Product {i}", "category": f"aisle{n % 5}", "price": 1 + n % 15}
            for n, i in enumerate(items)
        ]
    )
    yield sw, items
    sw.close()


@settings(max_examples=40, deadline=None)
@given(
    seen=st.lists(st.integers(0, 149), min_size=1, max_size=30),
    sold_out=st.sets(st.integers(0, 149), max_size=100),
    max_price=st.sampled_from([None, 1, 2, 4, 8]),  # 1 keeps a tenth of the items
    limit=st.integers(1, 12),
)
def test_for_you_gives_the_same_page_as_reading_the_model_at_full_depth(
    wide_store: Any,
    seen: list[int],
    sold_out: set[int],
    max_price: int | None,
    limit: int,
) -> None:
    # for-you reads the model shallow first and again deeper when the filters leave the page
    # short: the page must be the one a full-depth read gives, whatever the filters drop.
    from shelfwise.recommend import recommender

    sw, items = wide_store
    sw.catalog.import_rows(
        [{"item_id": i, "name": f"Product {i}", "category": f"aisle{n % 5}",
          "price": 1 + n % 15, "in_stock": n not in sold_out} for n, i in enumerate(items)]
    )  # fmt: skip
    shopper = sw.start_session()
    for n in seen:
        shopper.view(items[n])
    filters = {"max_price": max_price} if max_price is not None else None
    got = shopper.recommend("for-you", limit=limit, filters=filters)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recommender, "SHALLOW_FIRST", frozenset())
        deep = shopper.recommend("for-you", limit=limit, filters=filters)
    assert [(r.item.item_id, r.reason) for r in got] == [(r.item.item_id, r.reason) for r in deep]
    assert len(got) == len(deep)
    shopper.end()


def test_one_read_of_a_shopper_gives_their_row_consents_and_cart(sw: shelfwise.Shelfwise) -> None:
    from shelfwise.identity import consents_of, get_shopper, shopper_state

    member = sw.member("L-9", consents={"personalization": True, "offers": False})
    member.add_to_cart("milk")
    member.add_to_cart("buns", 2)
    guest = sw.start_session()
    for shopper in (member, guest):
        info, consents, cart = shopper_state(sw.store, shopper.shopper_id)
        assert info == get_shopper(sw.store, shopper.shopper_id)
        assert consents == consents_of(sw.store, info)
        assert cart == {line.item_id for line in shopper.cart()}
    guest.end()
    with pytest.raises(shelfwise.UnknownShopper):
        shopper_state(sw.store, guest.shopper_id)


@settings(max_examples=30, deadline=None)
@given(seen=st.lists(st.integers(0, 149), min_size=2, max_size=15))
def test_each_for_you_reason_names_the_recent_item_closest_to_the_suggestion(
    wide_store: Any, seen: list[int]
) -> None:
    sw, items = wide_store
    model = sw.model.current
    shopper = sw.start_session()
    for n in seen:
        shopper.view(items[n])
    latest = list(dict.fromkeys(reversed([items[n] for n in seen])))[:10]
    results = shopper.recommend("for-you", limit=8)
    assert results
    for result in results:
        target = model.unit_vector(result.item.item_id)
        closest = max(latest, key=lambda item: float(model.unit_vector(item) @ target))
        assert result.reason == f"because you viewed Product {closest}"
    shopper.end()


def test_for_you_without_a_readable_history_gives_the_page_of_a_full_depth_read(
    tmp_path: Any,
) -> None:
    # A shopper the model cannot read (no history yet) gets for-you from trending: this
    # store's items, then the fleet's. Read shallow, the fleet's would fill a page that this
    # store's own, ranked below the shallow cut but above the fleet, should fill.
    from shelfwise.recommend import recommender

    with shelfwise.open(tmp_path / "s.db", store_id="s1") as sw:
        sw.catalog.import_rows(
            [{"item_id": f"i{n:03d}", "name": f"Item {n}", "category": f"c{n % 7}",
              "price": 10 if n < 40 else 1} for n in range(120)]
        )  # fmt: skip
        visitor = sw.start_session()
        for n in range(80):  # i000 most viewed, i079 least: the cheap ones rank from 40 on
            for _ in range(80 - n):
                visitor.view(f"i{n:03d}")
        with sw.store.write() as db:
            db.table("fleet_trending").insert_all(
                {"scope": "r", "item_id": f"i{n:03d}", "score": 200.0 - n, "updated_ms": 1}
                for n in range(80, 120)
            )
        shopper = sw.start_session()
        for limit in (10, 20):
            got = shopper.recommend("for-you", limit=limit, filters={"max_price": 2})
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(recommender, "SHALLOW_FIRST", frozenset())
                deep = shopper.recommend("for-you", limit=limit, filters={"max_price": 2})
            assert [r.item.item_id for r in got] == [r.item.item_id for r in deep]
            assert [r.item.item_id for r in got][:1] == ["i040"], "this store's own first"


@pytest.fixture(scope="module")
def tied_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """120 items on only three distinct vectors (scores tie in long runs), 6 aisles."""
    import numpy as np
    from onnx_models import write_test_bundle

    items = [f"t{n:03d}" for n in range(120)]
    vectors = np.zeros((121, 3), dtype=np.float32)
    for n in range(1, 121):
        vectors[n, n % 3] = 1.0
    folder = tmp_path_factory.mktemp("tied")
    bundle = write_test_bundle(folder / "bundle", items, vectors)
    sw = shelfwise.open(folder / "s.db", bundle=bundle)
    yield sw, items
    sw.close()


@settings(max_examples=40, deadline=None)
@given(
    lapsed=st.booleans(),
    bought=st.lists(st.integers(0, 119), min_size=1, max_size=6),
    seen=st.lists(st.integers(0, 119), max_size=25),
    sold_out=st.sets(st.integers(0, 119), max_size=90),
    max_price=st.sampled_from([None, 1, 3]),
    limit=st.integers(1, 12),
)
def test_for_you_gives_the_full_depth_page_when_scores_tie_and_for_lapsed_members(
    tied_store: Any,
    lapsed: bool,
    bought: list[int],
    seen: list[int],
    sold_out: set[int],
    max_price: int | None,
    limit: int,
) -> None:
    # Ties at the shallow cut, and the welcome-back items ranked above the model's for a
    # lapsed member: the shallow-first page must still be the full-depth one.
    from shelfwise.recommend import recommender

    sw, items = tied_store
    sw.catalog.import_rows(
        [{"item_id": i, "name": f"Tied {i}", "category": f"aisle{n % 6}", "price": 1 + n % 5,
          "in_stock": n not in sold_out} for n, i in enumerate(items)]
    )  # fmt: skip
    now = 1_750_000_000_000
    day = 86_400_000
    shopper = sw.member(f"L-{sw.store.rows('SELECT count(*) FROM shoppers')[0][0]}",
                        consents={"personalization": True})  # fmt: skip
    for n, item in enumerate(bought):  # long ago: the member has lapsed; else last week
        ago = (100 + 7 * n if lapsed else 1 + n) * day
        shopper.track("purchase", items[item], ts_ms=now - ago)
    for n, item in enumerate(seen):
        shopper.track("view", items[item], ts_ms=now - day + n)
    if lapsed and len(bought) > 1:  # two purchase days at least
        assert shopper.context(now=now).segment == "lapsed"
    filters = {"max_price": max_price} if max_price is not None else None
    got = shopper.recommend("for-you", limit=limit, filters=filters, now=now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recommender, "SHALLOW_FIRST", frozenset())
        deep = shopper.recommend("for-you", limit=limit, filters=filters, now=now)
    assert [(r.item.item_id, r.reason) for r in got] == [(r.item.item_id, r.reason) for r in deep]
    if lapsed and len(bought) > 1 and max_price is None and not set(bought) & sold_out:
        assert got[0].reason == "welcome back: you used to buy this"


def test_a_reason_never_names_a_recent_item_the_model_could_not_read(
    sw: shelfwise.Shelfwise,
) -> None:
    # The suggestions come from what the model read: "because you viewed Kombucha" (an item
    # it has never seen) would explain them with something that played no part.
    sw.catalog.import_rows([{"item_id": "kombucha", "name": "Kombucha", "category": "drinks"}])
    shopper = sw.start_session()
    shopper.track("scan", "sausages")
    shopper.view("kombucha")
    results = shopper.recommend("for-you", limit=3)
    assert results
    assert {r.reason for r in results} == {"because you scanned Pork sausages"}
