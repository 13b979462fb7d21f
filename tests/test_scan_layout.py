"""The in-store barcode layout is a store setting: scans, the kiosk and the CLI all read it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shelfwise
from shelfwise import cli
from shelfwise.barcode.gtin import in_store_code
from shelfwise.barcode.layout import DEFAULT_LAYOUT, InStoreLayout, layout_from_dict, layout_to_dict

with warnings.catch_warnings():
    # Starlette 1.x warns at import that its TestClient will move to httpx2 (not installed).
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# A chain whose labels print 4 item digits and a 6-digit price, and whose prefix 22 is a
# price (the default reads 22 as a weight): 22 IIII VVVVVV C.
PRICES = [f"{p}" for p in range(22, 30)]
WIDE_PRICE = {
    "item_length": 4,
    "value_start": 6,
    "value_length": 6,
    "weight_prefixes": ["21"],
    "price_prefixes": PRICES,
}
CHAIN = InStoreLayout(2, 4, 6, 6, ("21",), tuple(PRICES), 2)
LABEL = in_store_code("22", "0123", 12_345, CHAIN)  # 123.45 in the chain's layout
BASE = in_store_code("22", "0123", 0, CHAIN)


@pytest.fixture
def chain_store(sw: shelfwise.Shelfwise) -> shelfwise.Shelfwise:
    sw.catalog.import_rows(
        [{"item_id": "ham", "name": "Ham by weight", "category": "deli", "gtin": BASE}]
    )
    return sw


def test_a_new_store_uses_the_documented_layout(sw: shelfwise.Shelfwise) -> None:
    assert sw.barcode_layout() == DEFAULT_LAYOUT


def test_scans_read_the_store_layout_and_it_survives_a_restart(
    chain_store: shelfwise.Shelfwise, bundle_path: Path
) -> None:
    misread = chain_store.start_session().scan(LABEL)  # the default reads 22 as grams
    assert (misread.barcode.kind, misread.barcode.weight_g, misread.price) == (
        "variable_weight",
        12_345,
        None,
    )
    assert chain_store.set_barcode_layout(WIDE_PRICE) == CHAIN
    card = chain_store.start_session().scan(LABEL)
    assert (card.item.item_id, card.price, card.barcode.item_reference) == ("ham", 123.45, "0123")
    path = chain_store.store.path
    chain_store.close()
    with shelfwise.open(path, bundle=bundle_path) as again:
        assert again.barcode_layout() == CHAIN
        assert again.start_session().scan(LABEL).price == 123.45
        again.set_barcode_layout(None)
        assert again.barcode_layout() == DEFAULT_LAYOUT


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"value_start": 5}, "overlap"),
        ({"value_length": 6}, "positions 2-11"),
        ({"item_start": 1}, "positions 2-11"),
        ({"price_prefixes": ["22", "23"], "weight_prefixes": ["22"]}, "both a weight and a price"),
        ({"weight_prefixes": ["31"]}, "'20'-'29'"),
        ({"weight_prefixes": "21"}, "must be a list"),
        ({"price_decimals": 7}, "between 0 and 4"),
        ({"price_decimals": 1.5}, "must be an integer"),
        ({"check_digit": 12}, "unknown field"),
    ],
)
def test_a_bad_layout_is_refused_and_changes_nothing(
    chain_store: shelfwise.Shelfwise, fields: dict, message: str
) -> None:
    chain_store.set_barcode_layout(WIDE_PRICE)
    with pytest.raises(shelfwise.InvalidInput, match=message):
        chain_store.set_barcode_layout(fields)
    assert chain_store.barcode_layout() == CHAIN


def test_an_unreadable_stored_layout_fails_closed(chain_store: shelfwise.Shelfwise) -> None:
    chain_store.store.set_meta("scan.in_store_layout", '{"value_start": 3}')  # old or hand-edited
    with pytest.raises(shelfwise.InvalidInput, match="set it again"):
        chain_store.start_session().scan(LABEL)


@given(
    st.integers(2, 11),
    st.integers(1, 6),
    st.integers(2, 11),
    st.integers(1, 6),
    st.integers(0, 4),
)
def test_any_accepted_layout_round_trips_and_reads_back_its_own_codes(
    item_start: int, item_length: int, value_start: int, value_length: int, decimals: int
) -> None:
    fields = {
        "item_start": item_start,
        "item_length": item_length,
        "value_start": value_start,
        "value_length": value_length,
        "price_decimals": decimals,
    }
    try:
        layout = layout_from_dict(fields)
    except shelfwise.InvalidInput:
        return
    assert layout_from_dict(layout_to_dict(layout)) == layout
    reference = "7" * item_length
    value = 10**value_length - 2
    parsed = shelfwise.parse_barcode(in_store_code("24", reference, value, layout), layout=layout)
    assert parsed.item_reference == reference
    assert parsed.price == value / 10**decimals


def test_the_kiosk_reads_the_store_layout(chain_store: shelfwise.Shelfwise) -> None:
    from shelfwise.kiosk_demo.app import KioskConfig, create_app

    chain_store.set_barcode_layout(WIDE_PRICE)
    app = create_app(chain_store, KioskConfig())
    with TestClient(app, base_url="http://localhost") as client:
        client.headers["X-CSRF-Token"] = client.get("/api/state").json()["csrf"]
        client.post("/api/session/start", json={})
        card = client.post("/api/scan", json={"code": LABEL}).json()
    assert (card["item"]["item_id"], card["price"]) == ("ham", 123.45)


def test_the_cli_shows_sets_and_uses_the_store_layout(
    chain_store: shelfwise.Shelfwise, capsys: pytest.CaptureFixture[str]
) -> None:
    path = chain_store.store.path
    assert cli.main(["barcode-layout", "--db", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == layout_to_dict(DEFAULT_LAYOUT)
    assert (
        cli.main(["barcode-layout", "--db", path, "--set", json.dumps(WIDE_PRICE), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["value_length"] == 6
    assert cli.main(["scan", "--db", path, "--code", LABEL, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["price"] == 123.45
    assert cli.main(["barcode-layout", "--db", path, "--set", '{"value_start": 5}', "--json"]) == 2
    assert "overlap" in capsys.readouterr().err
    assert cli.main(["barcode-layout", "--db", path, "--reset"]) == 0
    assert chain_store.barcode_layout() == DEFAULT_LAYOUT
