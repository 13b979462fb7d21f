"""The redemption report: what a till reconciles (committed, voided, sandbox) and its exports."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CATALOG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.offers.reporting import RedemptionRecord

DAY = 86_400_000
NOON = 1_767_268_800_000  # 2026-01-01 12:00 UTC
EARN = {"offer_id": "earn", "title": "1 point per 1.00", "reward": {"type": "points", "points": 1}}
TWO_OFF = {"offer_id": "two", "title": "2.00 off", "reward": {"type": "amount", "value": 2}}
BURN = {
    "offer_id": "burn",
    "title": "100 points for 1.00 off",
    "reward": {"type": "amount", "value": 1},
    "points_cost": 100,
}
CODED = {
    "offer_id": "coded",
    "title": "1.00 off with a code",
    "codes": "unique",
    "reward": {"type": "amount", "value": 1},
}


@pytest.fixture
def sw(tmp_path: Path) -> Iterator[shelfwise.Shelfwise]:
    with shelfwise.open(tmp_path / "store.db", store_id="store-1") as opened:
        opened.catalog.import_rows(CATALOG)
        opened.offers.define(TWO_OFF)
        yield opened


def _rows(sw: shelfwise.Shelfwise, **filters: object) -> list[tuple[object, ...]]:
    return [
        (r.order_id, r.offer_id, r.amount, r.status)
        for r in sw.offers.redemptions(**filters)  # type: ignore[arg-type]
    ]


def test_a_voided_order_stays_in_the_report_as_voided(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=["coffee"])
    member.redeem_order("t-2", cart=["coffee"])
    sw.offers.void_order("t-1", now=NOON)
    assert _rows(sw) == [("t-1", "two", 2.0, "voided"), ("t-2", "two", 2.0, "committed")]
    voided = sw.offers.redemptions(order_id="t-1")[0]
    assert (voided.shopper_id, voided.store_id, voided.voided_ms) == ("L-1", "store-1", NOON)
    # The live ledger no longer counts it: the offer's counters gave it back.
    assert sw.offers.stats("two")["redemptions"] == 1
    events = sw.store.query("SELECT payload, value FROM events WHERE type = 'offer_voided'")
    assert [(json.loads(e["payload"]), e["value"]) for e in events] == [
        ({"offer_id": "two", "order_id": "t-1"}, 2.0)
    ]


def test_voiding_twice_reports_the_void_once(sw: shelfwise.Shelfwise) -> None:
    sw.member("L-1").redeem_order("t-1", cart=["coffee"])
    sw.offers.void_order("t-1")
    sw.offers.void_order("t-1")
    assert _rows(sw) == [("t-1", "two", 2.0, "voided")]


def test_the_report_shows_points_earned_and_spent_per_offer(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EARN)
    sw.offers.define(BURN)
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=[("charcoal", 20)])  # 139.80 - 2.00: 137 points
    member.redeem_order("t-2", cart=["coffee"], offers=["burn"])
    got = [
        (r.order_id, r.offer_id, r.points_earned, r.points_spent) for r in sw.offers.redemptions()
    ]
    assert ("t-1", "earn", 137, 0) in got and ("t-2", "burn", 0, 100) in got


def test_filters_pick_by_time_offer_and_order(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(EARN)
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=["coffee"])
    stamp = sw.offers.redemptions()[0].ts_ms
    assert _rows(sw, offer_id="earn") == [("t-1", "earn", 0.0, "committed")]
    assert _rows(sw, order_id="t-9") == []
    assert len(_rows(sw, since=stamp, until=stamp + 1)) == 2
    assert _rows(sw, since=stamp + 1) == [] and _rows(sw, until=stamp) == []


@pytest.mark.parametrize(
    "filters",
    [
        {"since": 10, "until": 5},
        {"since": -1},
        {"until": True},
        {"since": 1.5},
        {"offer_id": ""},
        {"order_id": 7},
        {"sandbox": "yes"},
    ],
)
def test_bad_filters_are_refused_with_our_error(
    sw: shelfwise.Shelfwise, filters: dict[str, object]
) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        sw.offers.redemptions(**filters)  # type: ignore[arg-type]


def test_a_sandbox_order_is_reported_apart_and_spends_nothing(sw: shelfwise.Shelfwise) -> None:
    sw.member("L-1")
    order = sw.offers.sandbox().redeem_order("t-1", shopper_id="L-1", cart=["coffee"])
    assert order.sandbox and order.price.discount == 2.0
    assert _rows(sw) == []  # real ones only, by default
    [test] = sw.offers.redemptions(sandbox=True)
    assert (test.order_id, test.amount, test.sandbox, test.status) == (
        "t-1",
        2.0,
        True,
        "committed",
    )
    assert len(sw.offers.redemptions(sandbox=None)) == 1
    assert sw.offers.stats("two")["redemptions"] == 0
    with pytest.raises(shelfwise.OfferRejected):
        sw.offers.order("t-1")  # no order was kept: the till can redeem it for real


def test_a_sandbox_code_redemption_is_reported_as_sandbox(sw: shelfwise.Shelfwise) -> None:
    sw.member("L-1")
    sw.offers.sandbox().redeem("two", shopper_id="L-1", cart_total=5)
    assert [(r.offer_id, r.order_id, r.sandbox) for r in sw.offers.redemptions(sandbox=True)] == [
        ("two", None, True)
    ]


def test_csv_and_json_exports_hold_every_field(sw: shelfwise.Shelfwise, tmp_path: Path) -> None:
    sw.member("L-1").redeem_order("t-1", cart=["coffee"])
    sw.offers.void_order("t-1")
    assert sw.offers.write_redemptions(str(tmp_path / "r.csv")) == 1
    assert sw.offers.write_redemptions(str(tmp_path / "r.json")) == 1
    with (tmp_path / "r.csv").open(newline="") as handle:
        [row] = list(csv.DictReader(handle))
    [data] = json.loads((tmp_path / "r.json").read_text())
    assert set(row) == set(data) == set(RedemptionRecord.__dataclass_fields__)
    assert (row["shopper_id"], row["order_id"], row["status"], row["code"]) == (
        "L-1",
        "t-1",
        "voided",
        "",
    )
    assert (data["amount"], data["sandbox"], data["status"]) == (2.0, False, "voided")


def test_a_csv_cell_never_runs_as_a_spreadsheet_formula(tmp_path: Path) -> None:
    row = RedemptionRecord(
        "r", "=HYPERLINK(1)", None, "", "o", None, 1.0, 0, 0, False, "committed", 1
    )
    from shelfwise.offers.reporting import write_redemptions

    write_redemptions([row], tmp_path / "r.csv")
    assert "'=HYPERLINK(1)" in (tmp_path / "r.csv").read_text()


def test_an_unknown_export_format_writes_nothing(sw: shelfwise.Shelfwise, tmp_path: Path) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="format"):
        sw.offers.write_redemptions(str(tmp_path / "r.xlsx"))
    with pytest.raises(shelfwise.InvalidInput):
        sw.offers.write_redemptions(str(tmp_path / "r.csv"), format="xml")
    assert list(tmp_path.glob("r.*")) == []


def test_totals_count_points_and_order_discounts_today_and_in_all(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(EARN)
    sw.offers.define(BURN)
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=[("charcoal", 20)])  # 2.00 off, 137 points
    member.redeem_order("t-2", cart=["coffee"], offers=["burn"])  # 3.00 off, 100 spent, 2 earned
    member.redeem_order("t-3", cart=["coffee"])  # voided: counts nowhere
    sw.offers.void_order("t-3")
    stamp = sw.offers.order("t-1").created_ms
    totals = sw.offers.redemption_totals(timezone="UTC", now=stamp)
    assert (totals.points_issued_today, totals.points_issued_total) == (139, 139)
    assert (totals.points_burned_today, totals.points_burned_total) == (100, 100)
    assert (totals.discounted_orders_today, totals.order_discount_today) == (2, 5.0)
    tomorrow = sw.offers.redemption_totals(timezone="UTC", now=stamp + DAY)
    assert (tomorrow.points_issued_today, tomorrow.discounted_orders_today) == (0, 0)
    assert (tomorrow.points_issued_total, tomorrow.order_discount_total) == (139, 5.0)
    with pytest.raises(shelfwise.InvalidInput):
        sw.offers.redemption_totals(timezone="Mars/Olympus")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(["redeem", "void"]), st.integers(0, 3)), max_size=12)
)
def test_the_report_always_matches_the_orders_and_the_offers_counters(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    with shelfwise.open(tmp_path_factory.mktemp("prop") / "s.db", store_id="s") as sw:
        sw.catalog.import_rows(CATALOG)
        sw.offers.define(TWO_OFF)
        member = sw.member("L-1")
        for verb, n in steps:
            if verb == "redeem":
                member.redeem_order(f"t-{n}", cart=["coffee"])
            elif sw.store.query("SELECT 1 FROM orders WHERE order_id = ?", [f"t-{n}"]):
                sw.offers.void_order(f"t-{n}")
        records = sw.offers.redemptions()
        states = {r["order_id"]: r["state"] for r in sw.store.query("SELECT * FROM orders")}
        # One row per order ever redeemed, in the order's state; committed money = counters.
        assert {r.order_id: r.status for r in records} == {
            oid: "committed" if state == "redeemed" else "voided" for oid, state in states.items()
        }
        assert len(records) == len(states)
        committed = [r for r in records if r.status == "committed"]
        stats = sw.offers.stats("two")
        assert stats["redemptions"] == len(committed)
        assert stats["spent"] == pytest.approx(sum(r.amount for r in committed))


def test_a_store_from_before_the_report_shows_its_old_orders_points_and_voids(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with shelfwise.open(path, store_id="store-1") as sw:
        sw.catalog.import_rows(CATALOG)
        sw.offers.define(TWO_OFF)
        sw.offers.define(EARN)
        member = sw.member("L-1")
        member.redeem_order("t-1", cart=["coffee"])  # 2.00 off, 3 points
        member.redeem_order("t-2", cart=["coffee"])
        sw.offers.void_order("t-2")
    # Roll the file back to the schema and rows a store had before the report existed.
    with sqlite3.connect(path) as db:
        for statement in [
            "DELETE FROM voided_redemptions",
            "DROP TABLE voided_redemptions",
            "DROP TABLE sandbox_redemptions",
            "DROP INDEX redemptions_by_time",
            "ALTER TABLE redemptions DROP COLUMN store_id",
            "ALTER TABLE redemptions DROP COLUMN points_earned",
            "ALTER TABLE redemptions DROP COLUMN points_spent",
            "DELETE FROM _sqlite_migrations WHERE name = '016_redemption_report'",
        ]:
            db.execute(statement)
    with shelfwise.open(path) as sw:
        got = [
            (r.order_id, r.offer_id, r.amount, r.points_earned, r.status)
            for r in sw.offers.redemptions()
        ]
    assert sorted(got) == [
        ("t-1", "earn", 0.0, 3, "committed"),
        ("t-1", "two", 2.0, 0, "committed"),
        ("t-2", "earn", 0.0, 3, "voided"),
        ("t-2", "two", 2.0, 0, "voided"),
    ]


def test_a_guests_redemptions_stay_in_the_report_unlinked_when_the_session_ends(
    sw: shelfwise.Shelfwise,
) -> None:
    guest = sw.start_session()
    guest.redeem_order("t-1", cart=["coffee"])
    guest.redeem_order("t-2", cart=["coffee"])
    sw.offers.void_order("t-2", now=NOON)
    sw.offers.sandbox().redeem_order("t-3", shopper_id=guest.shopper_id, cart=["coffee"])
    assert sw.end_session(guest.shopper_id)
    assert sorted(_rows(sw)) == [("t-1", "two", 2.0, "committed"), ("t-2", "two", 2.0, "voided")]
    kept = sw.offers.redemptions(sandbox=None)
    assert sorted(r.order_id for r in kept) == ["t-1", "t-2", "t-3"]
    # Nothing ties them to the guest any more, and the report agrees with the counters.
    assert {r.shopper_id for r in kept} == {""}
    for table in ("redemptions", "voided_redemptions", "sandbox_redemptions"):
        linked = f"SELECT 1 FROM {table} WHERE shopper_id = ?"
        assert sw.store.query(linked, [guest.shopper_id]) == []
    assert sw.offers.stats("two")["redemptions"] == 1


def test_a_members_erasure_still_removes_their_redemptions(sw: shelfwise.Shelfwise) -> None:
    sw.member("L-1").redeem_order("t-1", cart=["coffee"])
    sw.forget_shopper("L-1")
    assert _rows(sw) == []


def test_a_guests_order_can_still_be_voided_after_the_session_ends(
    sw: shelfwise.Shelfwise,
) -> None:
    guest = sw.start_session()
    assert guest.price_order("t-1", cart=["coffee"]).discount == 2.0
    guest.redeem_order("t-1", cart=["coffee"])
    guest.end()
    totals = sw.offers.redemption_totals(now=NOON)
    assert (totals.discounted_orders_total, totals.order_discount_total) == (1, 2.0)
    kept = sw.offers.order("t-1")
    assert (kept.state, kept.shopper_id, kept.price.shopper_id) == ("redeemed", "", "")
    # The guest walked away; the till refunds the sale by its order id.
    voided = sw.offers.void_order("t-1", now=NOON)
    assert (voided.state, voided.price.discount) == ("voided", 2.0)
    assert _rows(sw) == [("t-1", "two", 2.0, "voided")]
    assert sw.offers.stats("two")["redemptions"] == 0
    assert sw.offers.redemption_totals(now=NOON).discounted_orders_total == 0


def _code_state(sw: shelfwise.Shelfwise, code: str) -> tuple[object, ...] | None:
    rows = sw.store.query("SELECT shopper_id, state FROM offer_codes WHERE code = ?", [code])
    return (rows[0]["shopper_id"], rows[0]["state"]) if rows else None


def test_a_guests_code_used_in_a_kept_order_comes_back_when_the_till_voids_it(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(CODED)
    guest = sw.start_session()
    [code] = sw.offers.issue_codes("coded", 1, shopper_id=guest.shopper_id)
    guest.redeem_order("t-1", cart=["coffee"], codes=[code])
    guest.end()
    # The code stays with the kept order, unlinked from the guest like the order itself...
    assert _code_state(sw, code) == (None, "redeemed")
    refused = sw.start_session().price_order("t-2", cart=["coffee"], codes=[code])
    assert [(x.offer_id, x.reason) for x in refused.left_out] == [("coded", "code_used")]
    # ...so the till's refund gives it back, as it does a member's.
    sw.offers.void_order("t-1", now=NOON)
    assert _code_state(sw, code) == (None, "available")
    assert ("t-1", "coded", 1.0, "voided") in _rows(sw)
    back = sw.start_session().redeem_order("t-3", cart=["coffee"], codes=[code])
    assert [a.code for a in back.price.applied if a.offer_id == "coded"] == [code]
    assert sw.offers.stats("coded")["redemptions"] == 1


def test_a_guests_unused_codes_go_with_the_session(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(CODED)
    guest = sw.start_session()
    spare, held, given_back = sw.offers.issue_codes("coded", 3, shopper_id=guest.shopper_id)
    guest.reserve(held, cart_total=5.0)
    guest.redeem_order("t-1", cart=["coffee"], codes=[given_back])
    sw.offers.void_order("t-1", now=NOON)
    guest.end()
    for code in (spare, held, given_back):
        assert _code_state(sw, code) is None, "nobody could use it: it is bound to the guest"
    assert sw.offers.stats("coded")["reserved"] == 0


def test_a_session_end_that_fails_leaves_the_guests_codes_as_they_were(
    sw: shelfwise.Shelfwise, monkeypatch: pytest.MonkeyPatch
) -> None:
    sw.offers.define(CODED)
    guest = sw.start_session()
    used, spare = sw.offers.issue_codes("coded", 2, shopper_id=guest.shopper_id)
    guest.redeem_order("t-1", cart=["coffee"], codes=[used])

    def power_cut(*_: object) -> int:  # the last step of the session end fails
        raise RuntimeError("power cut")

    monkeypatch.setattr(shelfwise.identity, "delete_rows", power_cut)
    with pytest.raises(RuntimeError):
        guest.end()
    assert _code_state(sw, used) == (guest.shopper_id, "redeemed")
    assert _code_state(sw, spare) == (guest.shopper_id, "available")
    assert sw.offers.order("t-1").shopper_id == guest.shopper_id


def test_a_new_order_under_an_ended_guests_order_id_is_refused(sw: shelfwise.Shelfwise) -> None:
    guest = sw.start_session()
    guest.redeem_order("t-1", cart=["coffee"])
    guest.end()
    with pytest.raises(shelfwise.OfferRejected) as refused:
        sw.start_session().redeem_order("t-1", cart=["coffee"])
    assert refused.value.reason == "order_conflict"
    assert sw.offers.stats("two")["redemptions"] == 1


def _tables_mentioning(sw: shelfwise.Shelfwise, text: str) -> set[str]:
    """Every table with a column holding ``text`` anywhere in it (JSON included)."""
    found = set()
    tables = sw.store.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    for table in [t["name"] for t in tables]:
        for column in sw.store.query(f"SELECT name FROM pragma_table_info('{table}')"):
            where = f"instr(CAST([{column['name']}] AS TEXT), ?)"
            if sw.store.query(f"SELECT 1 FROM [{table}] WHERE {where} LIMIT 1", [text]):
                found.add(table)
    return found


def test_an_ended_guests_orders_keep_nothing_of_the_guest(sw: shelfwise.Shelfwise) -> None:
    guest = sw.start_session()
    guest.view("coffee")
    guest.redeem_order("t-1", cart=["coffee"])
    guest.redeem_order("t-2", cart=["coffee"])
    sw.offers.void_order("t-2", now=NOON)
    assert "orders" in _tables_mentioning(sw, guest.shopper_id)
    guest.end()
    assert _tables_mentioning(sw, guest.shopper_id) == set()
    assert sorted(r["order_id"] for r in sw.store.query("SELECT order_id FROM orders")) == [
        "t-1",
        "t-2",
    ]


def test_a_members_erasure_still_removes_their_orders(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.redeem_order("t-1", cart=["coffee"])
    member.forget()
    assert sw.store.query("SELECT order_id FROM orders") == []
    assert _tables_mentioning(sw, "L-1") == set()
    with pytest.raises(shelfwise.OfferRejected) as unknown:
        sw.offers.void_order("t-1")
    assert unknown.value.reason == "order_unknown"
    assert sw.offers.redemption_totals(now=NOON).discounted_orders_total == 0
