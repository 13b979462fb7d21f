"""Scan cards: the item, deals, goes-with, cheaper alternatives, a personal note; misses recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shelfwise
from shelfwise import cli
from shelfwise.barcode.gtin import in_store_code

DAY = 86_400_000


def misses(sw: shelfwise.Shelfwise) -> list[dict[str, str]]:
    rows = sw.store.query("SELECT payload FROM events WHERE type = 'scan_miss' ORDER BY seq")
    return [json.loads(r["payload"]) for r in rows]


def test_scan_returns_the_item_with_goes_with_and_records_the_scan(sw: shelfwise.Shelfwise) -> None:
    sw.catalog.import_rows(
        [
            {
                "item_id": "sausages",
                "name": "Pork sausages",
                "category": "meat",
                "price": 4.99,
                "gtin": "4006381333931",
            }
        ]
    )
    shopper = sw.start_session()
    card = shopper.scan("4006381333931")
    assert card.item.item_id == "sausages"
    assert [r.item.item_id for r in card.goes_with] == ["buns", "ketchup", "charcoal"]
    assert card.note is None
    assert sw.store.query("SELECT type, item_id FROM events WHERE type = 'scan'") == [
        {"type": "scan", "item_id": "sausages"}
    ]


def test_alternatives_are_similar_in_stock_and_cheaper(sw: shelfwise.Shelfwise) -> None:
    sw.catalog.import_rows(
        [
            {
                "item_id": "coffee",
                "name": "Ground coffee",
                "category": "breakfast",
                "price": 5.49,
                "gtin": "4006381333931",
            }
        ]
    )
    card = sw.start_session().scan("4006381333931")
    assert card.alternatives
    for alternative in card.alternatives:
        assert alternative.item.in_stock
        assert alternative.item.price is not None and alternative.item.price < 5.49
        assert "cheaper" in alternative.reason


@pytest.mark.parametrize("code", [123, None, b"036000291452", ["036000291452"]])
def test_a_code_that_is_not_text_is_an_invalid_barcode_not_a_crash(
    sw: shelfwise.Shelfwise, code: object
) -> None:
    with pytest.raises(shelfwise.InvalidBarcode, match="a barcode is text"):
        sw.start_session().scan(code)  # type: ignore[arg-type]


def test_unknown_code_is_recorded_as_a_miss_with_the_reason(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    with pytest.raises(shelfwise.UnknownItem, match=r"valid .* not in this store's catalog"):
        shopper.scan("4006381333931")
    with pytest.raises(shelfwise.InvalidBarcode) as caught:
        shopper.scan("4006381333932")
    assert caught.value.reason == "check_digit"
    assert misses(sw) == [
        {"code": "4006381333931", "reason": "not_in_catalog"},
        {"code": "4006381333932", "reason": "check_digit"},
    ]


def test_a_weighed_item_is_found_by_its_base_code_with_the_label_price(
    sw: shelfwise.Shelfwise,
) -> None:
    base = in_store_code("24", "00123", 0)
    sw.catalog.import_rows(
        [{"item_id": "cheese", "name": "Parmigiano by weight", "category": "deli", "gtin": base}]
    )
    card = sw.start_session().scan(in_store_code("24", "00123", 1234))
    assert card.item.item_id == "cheese"
    assert card.price == 12.34
    assert card.barcode.kind == "variable_price"


def test_member_gets_a_personal_note_only_with_consent(sw: shelfwise.Shelfwise) -> None:
    stamp = shelfwise.clock.now_ms()
    fan = sw.member("L-1", consents={"personalization": True})
    fan.track("purchase", "milk", ts_ms=stamp - 21 * DAY)
    assert fan.scan("036000291452").note == "you bought this 3 weeks ago"
    private = sw.member("L-2", consents={"personalization": False})
    private.track("purchase", "milk", ts_ms=stamp - 21 * DAY)
    assert private.scan("036000291452").note is None


def test_scan_card_shows_the_deals_on_the_item(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(
        {
            "offer_id": "milk-deal",
            "title": "20% off milk",
            "reward": {"type": "percent", "value": 20},
            "targeting": {"items": ["milk"]},
        }
    )
    sw.offers.define(
        {
            "offer_id": "coffee-deal",
            "title": "10% off coffee",
            "reward": {"type": "percent", "value": 10},
            "targeting": {"items": ["coffee"]},
        }
    )
    card = sw.member("L-1", consents={"offers": True}).scan("036000291452")
    assert [d.offer.offer_id for d in card.deals] == ["milk-deal"]
    assert card.deals[0].decision.amount == 0.24


def test_cli_scan_prints_the_card_as_json(
    sw: shelfwise.Shelfwise, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sw.store.path
    assert (
        cli.main(
            ["scan", "--db", path, "--bundle", str(bundle_path), "--code", "036000291452", "--json"]
        )
        == 0
    )
    card = json.loads(capsys.readouterr().out)
    assert card["item"]["item_id"] == "milk"
    assert cli.main(["scan", "--db", path, "--code", "036000291453", "--json"]) == 2
    assert "check digit" in capsys.readouterr().err
