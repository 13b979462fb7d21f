"""Watches: a member hears once per change when a watched item is back or cheaper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.cli import cli
from shelfwise.clock import now_ms


def watch_offer(oid: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "offer_id": oid,
        "title": f"{oid}: 1.00 off",
        "reward": {"type": "amount", "value": 1},
        "trigger": {"type": kind},
        **fields,
    }


def item(price: float | None = 10.0, in_stock: bool = True, item_id: str = "kettle") -> dict:
    return {"item_id": item_id, "name": "Kettle", "price": price, "in_stock": in_stock}


@pytest.fixture
def store() -> Any:
    with shelfwise.open(":memory:", store_id="s1") as sw:
        yield sw


def fired_items(sw: shelfwise.Shelfwise, channel: str = "app_push", **kw: Any) -> list[Any]:
    return [(f.offer_id, f.item_id) for f in sw.offers.run_triggers(channel=channel, **kw)]


def test_a_watched_item_back_in_stock_fires_once_per_return(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([item(in_stock=False), item(item_id="mug", in_stock=False)])
    store.offers.define(watch_offer("back", "back_in_stock"))
    member = store.member("L-1", consents={"offers": True})
    member.watch("kettle")
    assert fired_items(store) == []  # nothing changed yet
    store.catalog.import_rows([item(in_stock=True), item(item_id="mug", in_stock=True)])
    assert fired_items(store) == [("back", "kettle")]  # the mug is not watched
    assert fired_items(store) == []  # once per change
    store.catalog.import_rows([item(in_stock=True)])  # still in stock: no change
    assert fired_items(store) == []
    store.catalog.set_stock("kettle", False)
    store.catalog.set_stock("kettle", True)  # back again: a new change
    assert fired_items(store) == [("back", "kettle")]
    assert member.watches()[0].pending == 0
    assert "back" in member.offer_context().triggered  # the offer is open to the member


def test_a_price_drop_fires_on_each_new_low_below_the_watch_price(
    store: shelfwise.Shelfwise,
) -> None:
    store.catalog.import_rows([item(price=10.0)])
    store.offers.define(watch_offer("cheaper", "price_drop"))
    member = store.member("L-1", consents={"offers": True})
    assert member.watch("kettle", kind="price_drop").watch_price == 10.0
    store.catalog.import_rows([item(price=12.0)])
    assert fired_items(store) == []  # dearer
    store.catalog.import_rows([item(price=9.0)])
    assert fired_items(store) == [("cheaper", "kettle")]
    for price in (9.5, 9.0, 9.2):  # up, then back to the low already told
        store.catalog.import_rows([item(price=price)])
    assert fired_items(store) == []
    store.catalog.import_rows([item(price=7.0)])
    store.catalog.import_rows([item(price=6.5)])  # two new lows before the run: one fire
    assert fired_items(store) == [("cheaper", "kettle")]


def test_a_replace_import_counts_the_change_too(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([item(in_stock=False)])
    store.offers.define(watch_offer("back", "back_in_stock"))
    store.member("L-1", consents={"offers": True}).watch("kettle")
    store.catalog.import_rows([item(in_stock=True)], replace=True)  # deleted, inserted
    assert fired_items(store) == [("back", "kettle")]


def test_one_change_fires_one_offer_even_when_two_offers_watch_that_kind(
    store: shelfwise.Shelfwise,
) -> None:
    store.catalog.import_rows([item(in_stock=False), item(item_id="mug", in_stock=False)])
    store.offers.define(watch_offer("back-a", "back_in_stock"))
    store.offers.define(watch_offer("back-b", "back_in_stock"))
    member = store.member("L-1", consents={"offers": True})
    member.watch("kettle")
    member.watch("mug")
    store.catalog.import_rows([item(), item(item_id="mug")])
    fired = fired_items(store)
    assert sorted(i for _, i in fired) == ["kettle", "mug"]  # each change once, both items
    assert {o for o, _ in fired} == {"back-a"}


def test_watch_fires_respect_consent_and_quiet_hours(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([item(in_stock=False)])
    store.offers.define(watch_offer("back", "back_in_stock"))
    member = store.member("L-1", consents={"offers": True})
    member.watch("kettle")
    member.set_consent("offers", False)
    store.catalog.set_stock("kettle", True)
    assert fired_items(store) == []  # no consent: nothing fires (the change waits)
    member.set_consent("offers", True)
    store.offers.set_quiet_hours("00:00", "23:59")
    stamp = now_ms()
    [fire] = store.offers.run_triggers(channel="app_push", now=stamp)
    assert fire.deliver_at_ms is not None and fire.deliver_at_ms > stamp
    [queued] = store.notifications.list()
    assert queued.deliver_at_ms == fire.deliver_at_ms  # held until the quiet hours end


def test_a_perishable_watch_offer_waits_out_the_quiet_hours(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([item(in_stock=False)])
    store.offers.define(watch_offer("back", "back_in_stock", perishable=True))
    store.member("L-1", consents={"offers": True}).watch("kettle")
    store.catalog.set_stock("kettle", True)
    store.offers.set_quiet_hours("00:00", "23:59")
    assert fired_items(store) == []
    store.offers.set_quiet_hours(None)
    assert fired_items(store) == [("back", "kettle")]  # the change was kept, not lost


def test_watching_needs_a_member_with_the_offers_consent_and_changes_nothing_when_refused(
    store: shelfwise.Shelfwise,
) -> None:
    store.catalog.import_rows([item(), item(price=None, item_id="bag")])
    with pytest.raises(shelfwise.InvalidInput, match="loyalty member"):
        store.start_session().watch("kettle")
    refusing = store.member("L-2", consents={"offers": False})
    with pytest.raises(shelfwise.ConsentRequired):
        refusing.watch("kettle")
    member = store.member("L-1", consents={"offers": True})
    with pytest.raises(shelfwise.UnknownItem):
        member.watch("unicorn")
    with pytest.raises(shelfwise.InvalidInput, match="back_in_stock, price_drop"):
        member.watch("kettle", kind="sale")
    with pytest.raises(shelfwise.InvalidInput, match="no price"):
        member.watch("bag", kind="price_drop")
    assert member.watches() == [] and refusing.watches() == []


def test_watch_list_unwatch_and_forget(store: shelfwise.Shelfwise) -> None:
    store.catalog.import_rows([item(in_stock=False)])
    store.offers.define(watch_offer("back", "back_in_stock"))
    member = store.member("L-1", consents={"offers": True})
    first = member.watch("kettle")
    assert member.watch("kettle") == first  # watching again keeps the watch
    member.watch("kettle", kind="price_drop")
    assert [(w.item_id, w.kind) for w in member.watches()] == [
        ("kettle", "back_in_stock"),
        ("kettle", "price_drop"),
    ]
    assert member.unwatch("kettle", kind="price_drop") == 1
    store.catalog.set_stock("kettle", True)
    store.offers.run_triggers(channel="app_inbox")
    assert len(store.notifications.list()) == 1
    member.forget()  # erasure takes the watches and the queued notifications with it
    assert store.notifications.list() == []
    assert store.store.query("SELECT count(*) AS n FROM watches")[0]["n"] == 0


def test_watch_triggers_are_validated_like_the_others() -> None:
    with pytest.raises(shelfwise.InvalidOffer, match=r"unknown trigger field.*window_days"):
        shelfwise.parse_offer(
            {**watch_offer("o", "price_drop"), "trigger": {"type": "price_drop", "window_days": 3}}
        )
    never_open = {"type": "back_in_stock", "valid_days": 0}
    with pytest.raises(shelfwise.InvalidOffer, match=r"trigger\.valid_days"):
        shelfwise.parse_offer({**watch_offer("o", "back_in_stock"), "trigger": never_open})
    assert shelfwise.parse_offer(watch_offer("o", "back_in_stock")).trigger.type == "back_in_stock"


# -- any sequence of catalog updates --------------------------------------------------------
UPDATE = st.tuples(
    st.sampled_from([None, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0]),  # the new price
    st.booleans(),  # in stock
    st.sampled_from(["import", "replace", "stock"]),  # how the catalog is written
    st.booleans(),  # the trigger run comes after this update
)


@settings(max_examples=60, deadline=None)
@given(start_in_stock=st.booleans(), updates=st.lists(UPDATE, max_size=12))
def test_any_catalog_updates_fire_each_watch_at_most_once_per_change_and_never_lose_one(
    start_in_stock: bool, updates: list[tuple[float | None, bool, str, bool]]
) -> None:
    with shelfwise.open(":memory:") as sw:
        sw.catalog.import_rows([item(price=8.0, in_stock=start_in_stock)])
        sw.offers.define(watch_offer("back", "back_in_stock"))
        sw.offers.define(watch_offer("cheaper", "price_drop"))
        member = sw.member("L-1", consents={"offers": True})
        member.watch("kettle", kind="back_in_stock")
        member.watch("kettle", kind="price_drop")
        # The model: a change is a return to stock, or a price below every price since the watch.
        in_stock, low, price = start_in_stock, 8.0, 8.0
        changes = {"back": 0, "cheaper": 0}
        pending = {"back": False, "cheaper": False}
        expected = {"back": 0, "cheaper": 0}
        fired = {"back": 0, "cheaper": 0}

        stamp = now_ms()  # every run at one moment: fires are told apart by the change

        def run() -> None:
            for fire in sw.offers.run_triggers(channel="app_inbox", now=stamp):
                fired[fire.offer_id] += 1
            for oid in pending:
                expected[oid] += pending[oid]
                pending[oid] = False

        for new_price, new_stock, how, run_after in updates:
            if how == "stock":  # set_stock leaves the price as it is
                new_price = price
                sw.catalog.set_stock("kettle", new_stock)
            else:
                sw.catalog.import_rows([item(new_price, new_stock)], replace=how == "replace")
            if new_stock and not in_stock:
                changes["back"] += 1
                pending["back"] = True
            if new_price is not None and new_price < low:
                changes["cheaper"] += 1
                pending["cheaper"] = True
                low = new_price
            in_stock, price = new_stock, new_price
            if run_after:
                run()
        run()
        assert fired == expected  # one fire per run that had a new change: none lost
        for oid in fired:
            assert fired[oid] <= changes[oid]  # never more than once per change
        assert len(sw.notifications.list(limit=1000)) == sum(fired.values())


def test_the_cli_adds_lists_and_removes_a_members_watch_and_refuses_without_consent(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "store.db")
    with shelfwise.open(db) as sw:
        sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 4.0}])
        sw.member("L-1", consents={"offers": True})
        sw.member("L-2")
    run = CliRunner().invoke
    added = run(cli, ["watches", "add", "--db", db, "--member", "L-1", "--item", "tea",
                      "--kind", "price-drop", "--json"])  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert (json.loads(added.stdout)["kind"], json.loads(added.stdout)["watch_price"]) == (
        "price_drop",
        4.0,
    )
    listed = json.loads(run(cli, ["watches", "list", "--db", db, "--member", "L-1", "--json"]).stdout)
    assert [(w["item_id"], w["kind"]) for w in listed] == [("tea", "price_drop")]
    refused = run(cli, ["watches", "add", "--db", db, "--member", "L-2", "--item", "tea"])
    assert refused.exit_code != 0 and refused.stderr.startswith("error:")
    assert "Traceback" not in refused.stderr
    removed = run(cli, ["watches", "remove", "--db", db, "--member", "L-1", "--item", "tea", "--json"])
    assert json.loads(removed.stdout) == {"removed": 1}
    with shelfwise.open(db) as sw:
        assert sw.shopper("L-1").watches() == [] and sw.shopper("L-2").watches() == []
