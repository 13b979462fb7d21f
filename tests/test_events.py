"""Events: every type is validated and recorded with its time and store; bad ones change nothing."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
import shelfwise.clock
from shelfwise.events import EARLIEST_MS, validate_event
from shelfwise.recommend import context as recommend_context

NOW = 1_750_000_000_000


def _state(sw: shelfwise.Shelfwise) -> tuple[Any, ...]:
    """Everything an event can change: events, carts, shoppers' last-seen times."""
    return (
        sw.store.query("SELECT * FROM events ORDER BY seq"),
        sw.store.query("SELECT * FROM carts ORDER BY shopper_id, item_id"),
        sw.store.query("SELECT shopper_id, last_seen_ms FROM shoppers ORDER BY shopper_id"),
    )


@pytest.mark.parametrize(
    ("kind", "item", "fields"),
    [
        ("view", "milk", {}),
        ("scan", "036000291452", {}),
        ("search", None, {"payload": {"query": "milk"}}),
        ("cart_add", "milk", {"quantity": 2}),
        ("cart_remove", "milk", {}),
        ("purchase", "milk", {"quantity": 3, "value": 3.57}),
        ("offer_shown", None, {"payload": {"offer_id": "o-1"}}),
        ("offer_redeemed", None, {"payload": {"offer_id": "o-1"}}),
        ("scan_miss", None, {"payload": {"code": "123"}}),
    ],
)
def test_every_event_type_is_stored_with_its_time_and_store(
    sw: shelfwise.Shelfwise, kind: str, item: str | None, fields: dict[str, Any]
) -> None:
    shopper = sw.start_session()
    event = shopper.track(kind, item, ts_ms=NOW, **fields)
    rows = sw.store.query("SELECT * FROM events WHERE event_id = ?", [event.event_id])
    assert len(rows) == 1
    row = rows[0]
    assert (row["type"], row["ts_ms"], row["store_id"], row["shopper_id"]) == (
        kind,
        NOW,
        "store-1",
        shopper.shopper_id,
    )
    assert row["item_id"] == ("milk" if item else None), "a GTIN is stored as the item id"
    assert json.loads(row["payload"]) == fields.get("payload", {})


def test_an_event_without_a_time_gets_the_current_time(sw: shelfwise.Shelfwise) -> None:
    before = shelfwise.clock.now_ms()
    event = sw.start_session().view("milk")
    assert before <= event.ts_ms <= shelfwise.clock.now_ms()


@pytest.mark.parametrize(
    ("kind", "item", "fields", "error"),
    [
        ("teleport", "milk", {}, shelfwise.InvalidEvent),
        ("view", "unicorn", {}, shelfwise.UnknownItem),
        ("view", "036000291453", {}, shelfwise.InvalidBarcode),
        ("view", None, {}, shelfwise.InvalidEvent),
        ("view", None, {"item_id": "unicorn"}, shelfwise.UnknownItem),
        ("view", "milk", {"ts_ms": 1_700_000_000}, shelfwise.InvalidEvent),  # seconds
        ("view", "milk", {"ts_ms": "yesterday"}, shelfwise.InvalidEvent),
        ("view", "milk", {"ts_ms": NOW * 2}, shelfwise.InvalidEvent),
        ("cart_add", "milk", {"quantity": 0}, shelfwise.InvalidEvent),
        ("cart_add", "milk", {"quantity": 2.5}, shelfwise.InvalidEvent),
        ("purchase", "milk", {"value": float("nan")}, shelfwise.InvalidEvent),
        ("purchase", "milk", {"value": 10**400}, shelfwise.InvalidEvent),
        ("search", None, {"payload": {}}, shelfwise.InvalidEvent),
        ("search", None, {"payload": {"query": "x", "bad": object()}}, shelfwise.InvalidEvent),
        ("search", None, {"payload": "query=milk"}, shelfwise.InvalidEvent),
        ("view", "milk", {"store_id": 12}, shelfwise.InvalidEvent),
        ("search", None, {"payload": {"query": "x" * 5_000_000}}, shelfwise.InvalidEvent),
        ("view", "milk", {"event_id": "id\x00hidden"}, shelfwise.InvalidEvent),
        ("view", "milk", {"store_id": "s1\x00"}, shelfwise.InvalidEvent),
    ],
)
def test_a_malformed_event_is_a_typed_error_and_changes_nothing(
    sw: shelfwise.Shelfwise,
    kind: str,
    item: str | None,
    fields: dict[str, Any],
    error: type[Exception],
) -> None:
    shopper = sw.start_session()
    shopper.add_to_cart("buns")
    before = _state(sw)
    with pytest.raises(error):
        shopper.track(kind, item, **fields)
    assert _state(sw) == before


def test_resending_an_event_id_records_it_once(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    for _ in range(3):  # a client retrying after a timeout
        shopper.track("cart_add", "milk", quantity=2, event_id="client-42")
    assert sw.store.query("SELECT count(*) AS n FROM events")[0]["n"] == 1
    assert [(line.item_id, line.quantity) for line in shopper.cart()] == [("milk", 2)]


def test_a_retried_event_id_returns_the_event_as_first_recorded(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    first = shopper.track("cart_add", "milk", quantity=2, event_id="client-7", ts_ms=NOW)
    again = shopper.track("cart_add", "milk", quantity=2, event_id="client-7")
    assert again == first, "a retry gets the stored event back, time included"


def test_an_event_id_reused_for_other_content_is_refused_and_changes_nothing(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    shopper.track("view", "milk", event_id="client-8")
    before = _state(sw)
    with pytest.raises(shelfwise.InvalidEvent, match="already recorded with other content"):
        shopper.track("view", "buns", event_id="client-8")
    assert _state(sw) == before
    other = sw.start_session()
    with pytest.raises(shelfwise.InvalidEvent):  # another shopper cannot claim the id either
        other.track("view", "milk", event_id="client-8")


def test_the_cart_follows_add_and_remove_events(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.add_to_cart("milk", 3)
    shopper.add_to_cart("buns")
    shopper.remove_from_cart("milk")
    assert [(line.item_id, line.quantity) for line in shopper.cart()] == [
        ("milk", 2),
        ("buns", 1),
    ]
    shopper.remove_from_cart("milk", 5)  # more than is there: the line goes
    shopper.remove_from_cart("coffee")  # not in the cart: recorded, nothing else
    assert [line.item_id for line in shopper.cart()] == ["buns"]


def test_checkout_records_a_purchase_per_line_and_empties_the_cart(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    shopper.add_to_cart("milk", 2)
    shopper.add_to_cart("buns")
    events = shopper.checkout()
    assert sorted((e.item_id, e.quantity, e.value) for e in events) == [
        ("buns", 1, 1.79),
        ("milk", 2, 2.38),
    ]
    assert shopper.cart() == []
    assert sw.store.query("SELECT count(*) AS n FROM events WHERE type = 'purchase'")[0]["n"] == 2
    with pytest.raises(shelfwise.InvalidEvent, match="empty"):
        shopper.checkout()


def test_an_ended_session_cannot_record_events(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.view("milk")
    shopper.end()
    before = _state(sw)
    with pytest.raises(shelfwise.UnknownShopper):
        shopper.view("milk")
    assert _state(sw) == before


# -- property tests: validation never fails with anything but InvalidEvent --------------------
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**400),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        ["view", "scan", "search", "purchase", "cart_add", "offer_shown", "milk", "Milk "]
    ),
    st.integers(min_value=EARLIEST_MS, max_value=NOW + 10**9),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_raw_events = st.dictionaries(
    st.sampled_from(
        ["type", "item_id", "quantity", "value", "store_id", "event_id", "payload", "ts_ms", "x"]
    ),
    _value,
    max_size=9,
)


@settings(max_examples=400, deadline=None)
@given(raw=st.one_of(_raw_events, _value))
def test_any_input_validates_to_an_event_or_raises_invalid_event(raw: Any) -> None:
    try:
        event = validate_event(raw, now=NOW)
    except shelfwise.InvalidEvent:
        return
    assert event.type in shelfwise.EVENT_TYPES
    assert EARLIEST_MS <= event.ts_ms <= NOW + 86_400_000
    assert 1 <= event.quantity <= 1000
    assert event.event_id
    json.dumps(dict(event.payload), allow_nan=False)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=_raw_events)
def test_a_tracked_event_is_recorded_whole_or_not_at_all(
    sw: shelfwise.Shelfwise, raw: dict[str, Any]
) -> None:
    shopper = sw.member("L-prop", consents={"personalization": True})
    fields = {k: v for k, v in raw.items() if k not in {"type", "x"}}
    before = sw.store.query("SELECT count(*) AS n FROM events")[0]["n"]
    try:
        event = shopper.track(str(raw.get("type")), **fields)
    except shelfwise.ShelfwiseError:
        assert sw.store.query("SELECT count(*) AS n FROM events")[0]["n"] == before
        return
    # Exactly one row (a resent event_id is kept once, whatever the retry carried).
    rows = sw.store.query("SELECT * FROM events WHERE event_id = ?", [event.event_id])
    assert len(rows) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    happened=st.lists(
        st.tuples(
            st.sampled_from(["view", "scan", "cart_add", "purchase", "search", "cart_remove"]),
            st.sampled_from(["milk", "buns", "coffee"]),
            st.integers(0, 5),  # few distinct times: ties are common
        ),
        max_size=30,
    ),
    limit=st.integers(1, 12),
)
def test_a_recommendation_reads_the_latest_interests_in_order_and_every_purchase(
    tmp_path_factory: pytest.TempPathFactory, happened: list[tuple[str, str, int]], limit: int
) -> None:
    from shelfwise.events import INTEREST_EVENTS, purchases_of, recent_interests

    with shelfwise.open(tmp_path_factory.mktemp("ip") / "s.db") as sw:
        sw.catalog.import_rows([{"item_id": i, "name": i} for i in ("milk", "buns", "coffee")])
        shopper = sw.member("L-1", consents={"personalization": True})
        other = sw.member("L-2", consents={"personalization": True})
        recorded = []  # in recording order: later wins a tie on time
        for kind, item, minute in happened:
            fields: dict[str, Any] = {"payload": {"query": item}} if kind == "search" else {}
            target = None if kind == "search" else item
            if kind == "cart_remove":
                shopper.track("cart_add", item, ts_ms=NOW + minute * 60_000)
                recorded.append(("cart_add", item, NOW + minute * 60_000))
            shopper.track(kind, target, ts_ms=NOW + minute * 60_000, **fields)
            other.track("purchase", "milk", ts_ms=NOW)  # someone else's never shows
            recorded.append((kind, item, NOW + minute * 60_000))
        interests = recent_interests(sw.store, shopper.shopper_id, limit)
        purchases = purchases_of(sw.store, shopper.shopper_id)
        # A request's context reads the same, its history cut at the limit or not.
        with mock.patch.object(recommend_context, "HISTORY_EVENTS", limit):
            context = shopper.context()
    ordered = sorted(
        ((ts, n, item, kind) for n, (kind, item, ts) in enumerate(recorded)),
    )
    wanted = [(item, kind, ts) for ts, _, item, kind in ordered if kind in INTEREST_EVENTS]
    assert interests == wanted[-limit:]
    assert sorted(purchases) == sorted(
        (item, ts) for kind, item, ts in recorded if kind == "purchase"
    )
    assert list(context.history) == interests
    assert sorted(context.purchases) == sorted(purchases)
