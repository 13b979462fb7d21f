"""Privacy: export everything held about a shopper, erase a shopper, purge old raw events."""

from __future__ import annotations

import json

import pytest

import shelfwise
from shelfwise.clock import now_ms

DAY = 86_400_000
# Every table that holds rows about one shopper, pinned: a new table keyed by shopper_id must be
# added here on purpose (and so is seen by export and erase), not discovered by the code under test.
SHOPPER_TABLES = [
    "carts",
    "consents",
    "events",
    "experiment_assignments",
    "fleet_confirmations",
    "geofence_clock",
    "geofence_state",
    "impressions",
    "notifications",
    "offer_codes",
    "orders",
    "profile_counters",
    "profile_epochs",
    "redemptions",
    "reservations",
    "sandbox_redemptions",
    "sync_tokens",
    "trigger_fires",
    "voided_redemptions",
    "watches",
]


def _rows_about(sw: shelfwise.Shelfwise, shopper_id: str) -> dict[str, int]:
    counts = {
        table: sw.store.query(
            f"SELECT count(*) AS n FROM [{table}] WHERE shopper_id = ?", [shopper_id]
        )[0]["n"]
        for table in [*SHOPPER_TABLES, "shoppers"]
    }
    return {table: n for table, n in counts.items() if n}


def _busy_member(sw: shelfwise.Shelfwise, loyalty_id: str) -> shelfwise.Shopper:
    member = sw.member(
        loyalty_id,
        consents={"personalization": True, "offers": False},
        attributes={"age_verified": True},
    )
    member.view("milk")
    member.track("search", payload={"query": "coffee"})
    member.add_to_cart("coffee")
    member.checkout()
    member.add_to_cart("buns")
    return member


def test_export_holds_everything_about_the_shopper_as_json(sw: shelfwise.Shelfwise) -> None:
    member = _busy_member(sw, "L-1")
    _busy_member(sw, "L-2")
    data = json.loads(json.dumps(member.export()))
    assert (data["shopper_id"], data["kind"]) == ("L-1", "member")
    assert data["attributes"] == {"age_verified": True}
    assert data["consents"]["personalization"] is True and data["consents"]["offers"] is False
    tables = data["tables"]
    assert [e["type"] for e in tables["events"]] == [
        "view",
        "search",
        "cart_add",
        "purchase",
        "cart_add",
    ]
    assert {e["shopper_id"] for e in tables["events"]} == {"L-1"}, "nobody else's rows"
    assert [c["item_id"] for c in tables["carts"]] == ["buns"]
    assert {c["purpose"] for c in tables["consents"]} == {"personalization", "offers"}
    assert all(c["updated_ms"] > 0 for c in tables["consents"])
    for table, count in _rows_about(sw, "L-1").items():
        if table != "shoppers":
            assert len(tables[table]) == count, f"the export misses rows of {table}"


def test_erasing_a_shopper_removes_every_row_about_them_and_nobody_else(
    sw: shelfwise.Shelfwise,
) -> None:
    member = _busy_member(sw, "L-1")
    _busy_member(sw, "L-2")
    other_rows = _rows_about(sw, "L-2")
    removed = member.forget()
    assert removed >= 8
    assert _rows_about(sw, "L-1") == {}
    assert _rows_about(sw, "L-2") == other_rows
    with pytest.raises(shelfwise.UnknownShopper):
        sw.export_shopper("L-1")
    with pytest.raises(shelfwise.UnknownShopper):
        sw.forget_shopper("L-1")


def test_an_erased_member_who_comes_back_starts_from_nothing(sw: shelfwise.Shelfwise) -> None:
    _busy_member(sw, "L-1").forget()
    back = sw.member("L-1")
    assert back.consents()["personalization"] is False
    assert back.cart() == []
    assert back.recommend("recently-viewed") == []


def test_retention_purges_only_raw_events_older_than_the_limit(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1", consents={"personalization": True})
    now = now_ms()
    for days in [100, 91, 89, 1]:
        member.track("view", "milk", ts_ms=now - days * DAY)
    member.add_to_cart("buns")
    assert sw.forget_events(older_than_days=90, now=now) == 2
    remaining = sw.store.query("SELECT ts_ms FROM events ORDER BY ts_ms")
    assert [round((now - r["ts_ms"]) / DAY) for r in remaining] == [89, 1, 0]
    assert [line.item_id for line in member.cart()] == ["buns"], (
        "state that is not raw events stays"
    )
    assert sw.forget_events(older_than_days=90, now=now) == 0


@pytest.mark.parametrize("days", [0, -5, float("nan"), float("inf"), "90"])
def test_a_nonsense_retention_age_is_refused_and_purges_nothing(
    sw: shelfwise.Shelfwise, days: object
) -> None:
    sw.start_session().view("milk")
    with pytest.raises(shelfwise.InvalidInput):
        sw.forget_events(older_than_days=days)  # type: ignore[arg-type]
    assert sw.store.query("SELECT count(*) AS n FROM events")[0]["n"] == 1


def test_export_and_erase_cover_exactly_the_pinned_shopper_tables(sw: shelfwise.Shelfwise) -> None:
    assert sw.shopper_tables() == SHOPPER_TABLES
    assert sorted(sw.export_shopper(_busy_member(sw, "L-9").shopper_id)["tables"]) == SHOPPER_TABLES
