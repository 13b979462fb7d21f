"""Bulk history import (Shelfwise.import_history): what a kiosk seeds from a loyalty system."""

from __future__ import annotations

import pytest

import shelfwise

T0 = 1_750_000_000_000


def rows() -> list[dict]:
    return [
        {
            "shopper_id": "L-7",
            "type": "purchase",
            "item_id": "milk",
            "ts_ms": T0 + 5,
            "event_id": "a",
        },
        {
            "shopper_id": "L-7",
            "type": "purchase",
            "item_id": "cereal",
            "ts_ms": T0,
            "event_id": "b",
        },
        {
            "shopper_id": "L-8",
            "type": "purchase",
            "item_id": "milk",
            "ts_ms": T0 + 9,
            "event_id": "c",
        },
    ]


def test_members_are_created_as_first_seen_at_their_earliest_event(
    sw: shelfwise.Shelfwise,
) -> None:
    assert sw.import_history(rows()) == 3
    info = sw.shopper("L-7").info()
    assert info.is_member and info.created_ms == T0
    events = sw.export_shopper("L-7")["tables"]["events"]
    assert sorted(e["item_id"] for e in events) == ["cereal", "milk"]


def test_importing_the_same_events_twice_adds_nothing(sw: shelfwise.Shelfwise) -> None:
    sw.import_history(rows())
    assert sw.import_history(rows()) == 0


def test_an_unknown_item_refuses_the_whole_import(sw: shelfwise.Shelfwise) -> None:
    bad = [*rows(), {"shopper_id": "L-9", "type": "purchase", "item_id": "caviar", "ts_ms": T0}]
    with pytest.raises(shelfwise.InvalidInput, match="caviar"):
        sw.import_history(bad)
    with pytest.raises(shelfwise.UnknownShopper):
        sw.shopper("L-7")
