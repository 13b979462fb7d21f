"""The catalog: imports (CSV, JSON lines), lookups by id and any GTIN form, FTS5 search."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CATALOG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.catalog import parse_item


@pytest.fixture
def store(tmp_path: Path) -> Iterator[shelfwise.Shelfwise]:
    with shelfwise.open(tmp_path / "catalog.db") as opened:
        opened.catalog.import_rows(CATALOG)
        yield opened


def _snapshot(sw: shelfwise.Shelfwise) -> list[dict[str, Any]]:
    return [item.to_dict() for item in sw.catalog.all()]


def test_a_csv_catalog_imports_every_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "item_id,gtin,name,brand,category,price,in_stock,tags\n"
        "milk,036000291452,Whole milk,Dairyland,dairy,1.19,yes,\n"
        "beer,4006381333931,Lager,Brewco,drinks,7.49,no,age_restricted;non_repeatable\n",
        encoding="utf-8",
    )
    with shelfwise.open(tmp_path / "s.db") as sw:
        assert sw.catalog.import_file(path) == 2
        milk, beer = sw.catalog.get("milk"), sw.catalog.get("beer")
    assert (milk.name, milk.brand, milk.category, milk.price) == (
        "Whole milk",
        "Dairyland",
        "dairy",
        1.19,
    )
    assert milk.gtin == "00036000291452" and milk.in_stock and milk.repeatable
    assert beer.tags == ("age_restricted", "non_repeatable")
    assert beer.age_restricted and not beer.in_stock and not beer.repeatable


def test_a_json_lines_catalog_imports_lists_and_booleans(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    rows = [
        {"item_id": "kit", "name": "Pregnancy test", "tags": ["sensitive"], "price": 8.99},
        {"id": "soap", "name": "Soap", "in_stock": False, "gtin": "96385074"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    with shelfwise.open(tmp_path / "s.db") as sw:
        assert sw.catalog.import_file(path) == 2
        assert sw.catalog.get("kit").sensitive
        assert not sw.catalog.get("soap").in_stock
        assert sw.catalog.lookup("96385074").item_id == "soap"  # EAN-8


@pytest.mark.parametrize(
    "code",
    ["036000291452", "0036000291452", "00036000291452", "0 36000 29145 2", "036000-291452"],
)
def test_an_item_is_found_by_any_form_of_its_gtin(store: shelfwise.Shelfwise, code: str) -> None:
    assert store.catalog.lookup(code).item_id == "milk"
    assert store.catalog.by_gtin(code).item_id == "milk"


def test_lookup_by_id_wins_and_unknown_ids_or_codes_are_unknown_items(
    store: shelfwise.Shelfwise,
) -> None:
    assert store.catalog.lookup("milk").name == "Whole milk"
    with pytest.raises(shelfwise.UnknownItem) as caught:
        store.catalog.lookup("unicorn")
    assert isinstance(caught.value, KeyError) and "unicorn" in str(caught.value)
    with pytest.raises(shelfwise.UnknownItem):
        store.catalog.lookup("4006381333931")  # a valid GTIN this store does not sell
    with pytest.raises(shelfwise.InvalidBarcode) as bad:
        store.catalog.lookup("036000291453")
    assert bad.value.reason == "check_digit"


@pytest.mark.parametrize("weird", [None, 12, ["milk"], "\ud800", ""])
def test_ids_that_cannot_exist_are_unknown_items_not_driver_errors(
    store: shelfwise.Shelfwise, weird: Any
) -> None:
    with pytest.raises(shelfwise.UnknownItem):
        store.catalog.lookup(weird)
    assert store.catalog.get_many([weird, "milk"]).keys() == {"milk"}


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"name": "No id"}, "item_id is missing"),
        ({"item_id": "x"}, "has no name"),
        ({"item_id": "x", "name": "X", "price": "cheap"}, "not a number"),
        ({"item_id": "x", "name": "X", "price": -1}, "non-negative"),
        ({"item_id": "x", "name": "X", "price": "nan"}, "non-negative"),
        ({"item_id": "x", "name": "X", "in_stock": "maybe"}, "yes/no"),
        ({"item_id": "x", "name": "X", "gtin": "036000291453"}, "check digit"),
        ({"item_id": "x", "name": "X", "tags": {"a": 1}}, "tags"),
        ({"item_id": "x", "name": {"en": "X"}}, "must be text"),
        ({"item_id": "x" * 201, "name": "X"}, "longer than"),
    ],
)
def test_a_bad_row_rejects_the_whole_import_and_changes_nothing(
    store: shelfwise.Shelfwise, row: dict[str, Any], problem: str
) -> None:
    before = _snapshot(store)
    good = {"item_id": "new", "name": "New item"}
    with pytest.raises(shelfwise.InvalidCatalog) as caught:
        store.catalog.import_rows([good, row], replace=True)
    assert problem in str(caught.value) and "row 2" in str(caught.value)
    assert _snapshot(store) == before


def test_a_gtin_given_twice_in_an_import_is_refused(store: shelfwise.Shelfwise) -> None:
    rows = [
        {"item_id": "a", "name": "A", "gtin": "4006381333931"},
        {"item_id": "b", "name": "B", "gtin": "04006381333931"},
    ]
    with pytest.raises(shelfwise.InvalidCatalog, match="given to both a and b"):
        store.catalog.import_rows(rows)
    with pytest.raises(shelfwise.InvalidCatalog, match="appears twice"):
        store.catalog.import_rows([{"item_id": "a", "name": "A"}, {"item_id": "a", "name": "B"}])


def test_a_gtin_already_held_by_another_item_is_an_import_error_not_a_store_error(
    store: shelfwise.Shelfwise,
) -> None:
    before = _snapshot(store)
    with pytest.raises(shelfwise.InvalidCatalog, match="conflicts"):
        store.catalog.import_rows(
            [
                {"item_id": "new", "name": "N"},
                {"item_id": "copy", "name": "C", "gtin": "036000291452"},
            ]
        )
    assert _snapshot(store) == before


def test_importing_again_updates_items_and_replace_removes_the_rest(
    store: shelfwise.Shelfwise,
) -> None:
    store.catalog.import_rows([{"item_id": "milk", "name": "Oat milk", "price": 1.5}])
    assert store.catalog.get("milk").name == "Oat milk"
    assert store.catalog.count() == len(CATALOG)
    store.catalog.import_rows([{"item_id": "milk", "name": "Oat milk"}], replace=True)
    assert [i.item_id for i in store.catalog.all()] == ["milk"]


@pytest.mark.parametrize("rows", [None, 42, "item_id,name", {"item_id": "x", "name": "X"}])
def test_importing_something_that_is_not_rows_is_invalid_catalog(
    store: shelfwise.Shelfwise, rows: object
) -> None:
    before = _snapshot(store)
    with pytest.raises(shelfwise.InvalidCatalog, match="iterable of row mappings"):
        store.catalog.import_rows(rows)  # type: ignore[arg-type]
    assert _snapshot(store) == before


def test_unreadable_catalog_files_are_typed_errors(tmp_path: Path) -> None:
    bad_json = tmp_path / "c.jsonl"
    bad_json.write_text('{"item_id": "a", "name": "A"}\n{not json\n')
    with shelfwise.open(tmp_path / "s.db") as sw:
        with pytest.raises(shelfwise.InvalidCatalog, match="line 2"):
            sw.catalog.import_file(bad_json)
        with pytest.raises(shelfwise.InvalidCatalog, match=r"\.csv or \.jsonl"):
            sw.catalog.import_file(tmp_path / "c.xlsx")
        bad_json.write_text("[1, 2]\n")
        with pytest.raises(shelfwise.InvalidCatalog, match="must be an object"):
            sw.catalog.import_file(bad_json)
        assert sw.catalog.count() == 0


def test_search_matches_word_prefixes_and_ranks_names_first(store: shelfwise.Shelfwise) -> None:
    assert [i.item_id for i in store.catalog.search("saus")] == ["sausages"]
    assert {i.item_id for i in store.catalog.search("dairy")} == {"milk", "yogurt"}
    store.catalog.import_rows([{"item_id": "dairy-box", "name": "Dairy box", "category": "gifts"}])
    assert store.catalog.search("dairy")[0].item_id == "dairy-box", "name beats category"
    assert store.catalog.search("!!!") == []
    # Quotes and operators are text, not FTS syntax: no error, and no match smuggled in by OR.
    assert [i.item_id for i in store.catalog.search('milk" OR "x')] == []
    assert [i.item_id for i in store.catalog.search('"milk"')] == ["milk"]


def test_search_ignores_accents_and_follows_renames(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([{"item_id": "creme", "name": "Crème fraîche", "category": "dairy"}])
    assert [i.item_id for i in store.catalog.search("creme fraiche")] == ["creme"]
    store.catalog.import_rows([{"item_id": "creme", "name": "Sour cream", "category": "dairy"}])
    assert store.catalog.search("fraiche") == []
    assert [i.item_id for i in store.catalog.search("sour")] == ["creme"]


def test_search_is_personally_reranked_for_a_consenting_shopper(
    sw: shelfwise.Shelfwise,
) -> None:
    # Same brand on a breakfast and a barbecue item: text relevance ties, taste decides.
    sw.catalog.import_rows(
        [
            {"item_id": "milk", "name": "Whole milk", "brand": "Acme", "category": "dairy"},
            {"item_id": "sausages", "name": "Pork sausages", "brand": "Acme", "category": "meat"},
        ]
    )
    breakfast = sw.start_session()
    for item in ["cereal", "coffee"]:
        breakfast.view(item)
    barbecue = sw.start_session()
    for item in ["buns", "charcoal"]:
        barbecue.view(item)
    assert [i.item_id for i in breakfast.search("acme")] == ["milk", "sausages"]
    assert [i.item_id for i in barbecue.search("acme")] == ["sausages", "milk"]
    barbecue.set_consent("personalization", False)
    assert [i.item_id for i in barbecue.search("acme")] == [
        i.item_id for i in sw.catalog.search("acme")
    ]


def test_stock_changes_are_stored_and_unknown_items_refused(store: shelfwise.Shelfwise) -> None:
    store.catalog.set_stock("milk", False)
    assert not store.catalog.get("milk").in_stock
    with pytest.raises(shelfwise.UnknownItem):
        store.catalog.set_stock("unicorn", True)


# -- property tests: the row parser never fails with anything but our typed error ------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["036000291452", "96385074", "yes", "no", "1.5", "sensitive;x", "0"]),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)
_rows = st.dictionaries(
    st.sampled_from(
        [
            "item_id",
            "id",
            "name",
            "brand",
            "category",
            "price",
            "in_stock",
            "repeatable",
            "tags",
            "gtin",
            "extra",
        ]
    ),
    _values,
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(row=st.one_of(_rows, _values))
def test_any_row_parses_to_a_valid_item_or_raises_invalid_catalog(row: Any) -> None:
    try:
        item = parse_item(row, 1)
    except shelfwise.InvalidCatalog:
        return
    assert item.item_id and item.name
    assert item.price is None or item.price >= 0
    assert item.gtin is None or (len(item.gtin) == 14 and item.gtin.isdigit())
    json.dumps(item.to_dict(), allow_nan=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_rows, min_size=1, max_size=4))
def test_an_import_either_stores_every_row_or_changes_nothing(
    store: shelfwise.Shelfwise, rows: list[dict[str, Any]]
) -> None:
    before = _snapshot(store)
    try:
        count = store.catalog.import_rows(rows)
    except shelfwise.InvalidCatalog:
        assert _snapshot(store) == before
        return
    assert count == len(rows)
    for row in rows:
        item = parse_item(row)
        assert store.catalog.get(item.item_id) == item


def test_names_are_read_for_known_items_and_unknown_or_impossible_ids_are_left_out(
    store: shelfwise.Shelfwise,
) -> None:
    known = store.catalog.all()[:3]
    wanted = [known[0].item_id, "no-such-item", known[1].item_id, "x" * 500, known[0].item_id]
    names = store.catalog.names(wanted)
    assert names == {known[0].item_id: known[0].name, known[1].item_id: known[1].name}
    assert store.catalog.names([]) == {}


def test_a_renamed_or_retagged_item_reads_back_as_it_is_now(store: shelfwise.Shelfwise) -> None:
    # Tag sets are shared between rows when read: a change must still show for that item only.
    store.catalog.import_rows(
        [
            {"item_id": "a", "name": "A", "tags": "organic;local"},
            {"item_id": "b", "name": "B", "tags": "organic;local"},
        ]
    )
    store.catalog.import_rows([{"item_id": "a", "name": "A2", "tags": "sensitive"}])
    items = store.catalog.get_many(["a", "b"])
    assert items["a"].tags == ("sensitive",) and items["a"].sensitive
    assert items["b"].tags == ("local", "organic") and not items["b"].sensitive
    assert store.catalog.names(["a", "b"]) == {"a": "A2", "b": "B"}


_tag = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=8)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tag_sets=st.lists(st.lists(_tag, max_size=4), min_size=1, max_size=5))
def test_every_item_reads_back_with_exactly_the_tags_it_was_imported_with(
    store: shelfwise.Shelfwise, tag_sets: list[list[str]]
) -> None:
    rows = [{"item_id": f"t{n}", "name": f"T{n}", "tags": tags} for n, tags in enumerate(tag_sets)]
    try:
        store.catalog.import_rows(rows)
    except shelfwise.InvalidCatalog:
        return  # a tag the parser refuses (e.g. blank once stripped) is another test's subject
    items = store.catalog.get_many([row["item_id"] for row in rows])
    for row in rows:
        assert items[row["item_id"]] == parse_item(row)
        assert items[row["item_id"]] == store.catalog.get(row["item_id"])


# -- the in-memory item cache: a read always sees the catalog as it is in the store --------
_IDS = ["a", "b", "c", "d"]
_cache_ops = st.lists(
    st.one_of(
        st.tuples(st.just("import"), st.sampled_from(_IDS), st.integers(1, 99)),
        st.tuples(st.just("replace"), st.sets(st.sampled_from(_IDS), min_size=1)),
        st.tuples(st.just("stock"), st.sampled_from(_IDS), st.booleans()),
        st.tuples(st.just("other_process"), st.sampled_from(_IDS), st.integers(1, 99)),
        st.tuples(st.just("rolled_back"), st.sampled_from(_IDS), st.integers(1, 99)),
        st.tuples(st.just("read"), st.lists(st.sampled_from([*_IDS, "zz"]), max_size=5)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=_cache_ops)
def test_reads_by_id_always_see_what_the_store_holds_whoever_wrote_it(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    import sqlite3

    from shelfwise import UnknownItem

    path = tmp_path_factory.mktemp("cache") / "s.db"
    with shelfwise.open(path) as sw, shelfwise.open(path) as other:
        sw.catalog.import_rows([{"item_id": i, "name": i.upper(), "price": 1} for i in _IDS])
        for op in ops:
            kind = op[0]
            if kind == "import":
                sw.catalog.import_rows(
                    [{"item_id": op[1], "name": f"{op[1]}{op[2]}", "price": op[2]}]
                )
            elif kind == "replace":
                rows = [{"item_id": i, "name": i, "price": 2} for i in sorted(op[1])]
                other.catalog.import_rows(rows, replace=True)
            elif kind == "stock":
                with contextlib.suppress(UnknownItem):
                    other.catalog.set_stock(op[1], op[2])
            elif kind == "other_process":  # a plain connection: no shelfwise code in the way
                with sqlite3.connect(path) as conn:
                    conn.execute("UPDATE items SET price = ? WHERE item_id = ?", [op[2], op[1]])
                conn.close()
            elif kind == "rolled_back":
                with pytest.raises(RuntimeError), sw.store.write() as db:
                    db.execute("UPDATE items SET price = ? WHERE item_id = ?", [op[2], op[1]])
                    sw.catalog.get_many([op[1]])  # read (and cached) inside the transaction
                    raise RuntimeError("the till crashed")
            else:
                sw.catalog.get_many(op[1])
            held = {row[0]: row[1] for row in sw.store.rows("SELECT item_id, price FROM items")}
            got = sw.catalog.get_many([*_IDS, "zz"])
            assert {i: item.price for i, item in got.items()} == held
            assert {i: item.in_stock for i, item in got.items()} == {
                row[0]: bool(row[1]) for row in sw.store.rows("SELECT item_id, in_stock FROM items")
            }


def test_reads_inside_a_pin_see_one_version_of_the_catalog(store: shelfwise.Shelfwise) -> None:
    # One request reads one catalog: a change committed meanwhile shows from the next request.
    with shelfwise.open(store.store.path) as other:
        before = store.catalog.get("milk").price
        with store.catalog.pinned():
            assert store.catalog.get("milk").price == before
            other.catalog.import_rows([{"item_id": "milk", "name": "Whole milk", "price": 9.99}])
            assert store.catalog.get("milk").price == before
            assert store.catalog.names(["milk"]) == {"milk": "Whole milk"}
        assert store.catalog.get("milk").price == 9.99


def test_the_item_cache_stays_bounded_and_reads_stay_right(
    store: shelfwise.Shelfwise, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shelfwise import catalog

    monkeypatch.setattr(catalog, "MAX_CACHED_ITEMS", 3)
    ids = [row["item_id"] for row in CATALOG]
    for start in range(len(ids)):
        window = [*ids[start : start + 2], "no-such-item"]
        assert sorted(store.catalog.get_many(window)) == sorted(window[:-1])
        assert len(store.catalog._cache.items) <= 3
    assert {i: it.name for i, it in store.catalog.get_many(ids).items()} == {
        row["item_id"]: row["name"] for row in CATALOG
    }


def test_a_change_rolled_back_inside_a_pin_is_never_read_afterwards(
    store: shelfwise.Shelfwise,
) -> None:
    # A request that pinned the catalog and then wrote to it: what its transaction read must
    # not outlive it, nor show to other threads while it is open.
    price = store.catalog.get("milk").price
    seen_meanwhile: list[float | None] = []
    with pytest.raises(RuntimeError), store.catalog.pinned(), store.store.write() as db:
        db.execute("UPDATE items SET price = 99 WHERE item_id IN ('milk', 'buns')")
        assert store.catalog.get("milk").price == 99, "a transaction reads its own changes"
        assert store.catalog.get("buns").price == 99
        reader = threading.Thread(
            target=lambda: seen_meanwhile.append(store.catalog.get("buns").price)
        )
        reader.start()
        reader.join(10)
        raise RuntimeError("the till crashed")
    assert seen_meanwhile == [_price_of("buns")]
    assert store.catalog.get("milk").price == price
    assert store.catalog.get_many(["buns"])["buns"].price == seen_meanwhile[0]


def test_a_memory_store_never_keeps_an_item_another_thread_rolled_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On ":memory:" every thread reads through the one connection, so a write transaction
    # open in another thread shows; what it changed must not stay once it is rolled back.
    with shelfwise.open(":memory:") as sw:
        sw.catalog.import_rows(CATALOG)
        changed, release = threading.Event(), threading.Event()

        def crashing_writer() -> None:
            with contextlib.suppress(RuntimeError), sw.store.write() as db:
                db.execute("UPDATE items SET price = 99 WHERE item_id = 'milk'")
                changed.set()
                release.wait(10)
                raise RuntimeError("the till crashed")

        writer = threading.Thread(target=crashing_writer)
        rows = sw.store.rows

        def rows_then_a_write_begins(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            found = rows(sql, params)
            if not changed.is_set():  # the writer begins after this read, before the next
                writer.start()
                changed.wait(10)
            return found

        monkeypatch.setattr(sw.store, "rows", rows_then_a_write_begins)
        sw.catalog.get_many(["milk"])
        release.set()
        writer.join(10)
        monkeypatch.undo()
        assert sw.catalog.get("milk").price == _price_of("milk")


def _price_of(item_id: str) -> float:
    return float(next(row["price"] for row in CATALOG if row["item_id"] == item_id))


def test_a_pin_ends_with_its_block_even_when_an_error_escapes_it(
    store: shelfwise.Shelfwise,
) -> None:
    with shelfwise.open(store.store.path) as other:
        with pytest.raises(KeyError), store.catalog.pinned():
            store.catalog.get("milk")
            raise KeyError("a failed request")
        other.catalog.import_rows([{"item_id": "milk", "name": "Whole milk", "price": 2.5}])
        assert store.catalog.get("milk").price == 2.5
        assert store.catalog.names(["milk"]) == {"milk": "Whole milk"}


def test_a_nested_pin_keeps_the_outer_one_and_pins_are_per_thread(
    store: shelfwise.Shelfwise,
) -> None:
    seen_elsewhere: list[float | None] = []
    with shelfwise.open(store.store.path) as other, store.catalog.pinned():
        price = store.catalog.get("milk").price
        with store.catalog.pinned():
            other.catalog.import_rows([{"item_id": "milk", "name": "Whole milk", "price": 2.5}])
        assert store.catalog.get("milk").price == price, "the outer pin still holds"
        elsewhere = threading.Thread(
            target=lambda: seen_elsewhere.append(store.catalog.get("milk").price)
        )
        elsewhere.start()
        elsewhere.join(10)
        assert seen_elsewhere == [2.5], "another thread is not pinned"
    assert store.catalog.get("milk").price == 2.5


def test_a_store_from_before_the_catalog_token_gets_it_and_reads_stay_right(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "older.db"
    with shelfwise.open(path) as sw:
        sw.catalog.import_rows(CATALOG)
    with sqlite3.connect(path) as conn:  # as a shelfwise without migration 002 left it
        conn.executescript(
            """
            DROP TRIGGER catalog_changes_insert;
            DROP TRIGGER catalog_changes_update;
            DROP TRIGGER catalog_changes_delete;
            DROP TABLE catalog_changes;
            DELETE FROM _sqlite_migrations WHERE name = '002_catalog_changes';
            UPDATE items SET price = 3.33 WHERE item_id = 'milk';
            """
        )
    conn.close()
    with shelfwise.open(path) as sw:
        assert sw.catalog.get("milk").price == 3.33
        with sqlite3.connect(path) as conn:  # an older shelfwise process still writing
            conn.execute("UPDATE items SET price = 4.44 WHERE item_id = 'milk'")
            conn.execute("DELETE FROM items WHERE item_id = 'buns'")
        conn.close()
        assert sw.catalog.get("milk").price == 4.44
        assert "buns" not in sw.catalog.get_many(["buns", "milk"])


def test_a_signed_catalog_document_shows_at_once_and_a_refused_one_never(
    store: shelfwise.Shelfwise,
) -> None:
    from shelfwise import UpdateRefused
    from shelfwise.sync.downstream import apply_document, build_document
    from shelfwise.sync.protocol import generate_signing_key

    private, public = generate_signing_key()
    assert store.catalog.get("cereal").price == _price_of("cereal")  # read, so cached
    cereal = {"item_id": "cereal", "name": "Corn flakes", "price": 7.77}
    clash = {"item_id": "oat-milk", "name": "Oat milk", "gtin": "036000291452"}  # milk's GTIN
    refused = build_document(
        "catalog", {"items": [cereal, clash], "replace": False}, version=1, private_key=private
    )
    with pytest.raises(UpdateRefused):
        apply_document(store.store, refused, kind="catalog", public_key=public)
    assert store.catalog.get("cereal").price == _price_of("cereal")
    assert "oat-milk" not in store.catalog.get_many(["oat-milk"])
    applied = build_document("catalog", {"items": [cereal]}, version=2, private_key=private)
    apply_document(store.store, applied, kind="catalog", public_key=public)
    assert store.catalog.get("cereal").price == 7.77
    assert store.catalog.get_many(["milk", "cereal"]).keys() == {"cereal"}, "replaced"


def test_one_read_of_more_items_than_the_cache_holds_leaves_it_bounded(
    store: shelfwise.Shelfwise, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shelfwise import catalog

    monkeypatch.setattr(catalog, "MAX_CACHED_ITEMS", 3)
    ids = [row["item_id"] for row in CATALOG]
    assert sorted(store.catalog.get_many(ids)) == sorted(ids)
    assert len(store.catalog._cache.items) <= 3
    assert store.catalog.get_many(ids[:2]).keys() == set(ids[:2])
    assert len(store.catalog._cache.items) <= 3
