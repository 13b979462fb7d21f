"""Summaries: what leaves the device, who counts, and how the outbox keeps it exact."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import view_row

import shelfwise
from shelfwise.sync.outbox import outbox_status, rebuild_dirty, released_totals
from shelfwise.sync.privacy import DIMENSION_KEYS, HOUR_MS, PrivacyPolicy, aggregate, dimensions
from shelfwise.sync.protocol import EnvelopeError, safe_unpack, unpack_envelope
from shelfwise.sync.transport import Backoff

ITEMS = [{"item_id": f"i{n}", "name": f"Item {n}", "price": 1.0 + n} for n in range(8)]


@pytest.fixture
def store(tmp_path: Path):
    with shelfwise.open(tmp_path / "device.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        yield sw


def _bodies(sw: shelfwise.Shelfwise) -> list[dict]:
    return [
        msgpack.unpackb(r["body"], raw=False)
        for r in sw.store.query("SELECT body FROM sync_outbox ORDER BY id")
    ]


def _cells(sw: shelfwise.Shelfwise) -> dict[tuple, tuple[int, int]]:
    out: dict[tuple, tuple[int, int]] = {}
    for body in _bodies(sw):
        for cell in body["cells"]:
            key = tuple(cell[:5])
            n, q = out.get(key, (0, 0))
            out[key] = (n + cell[5], q + cell[6])
    return out


def test_summary_counts_per_item_store_and_hour_and_never_names_a_shopper(store):
    for _ in range(3):
        shopper = store.member("L-7", consents={"sync": True})
        shopper.view("i1")
        shopper.add_to_cart("i2", quantity=2)
    store.start_session().track("scan_miss", payload={"code": "4006381333931"})
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells = _cells(store)
    views = [v for k, v in cells.items() if k[0] == "view" and k[3] == "i1"]
    assert views == [(3, 3)]
    assert [v for k, v in cells.items() if k[0] == "cart_add"] == [(3, 6)]
    assert [k[3] for k in cells if k[0] == "scan_miss"] == ["4006381333931"]
    assert all(k[2] % HOUR_MS == 0 for k in cells)
    raw = b"".join(r["body"] for r in store.store.query("SELECT body FROM sync_outbox"))
    assert b"L-7" not in raw and b"anon-" not in raw


def test_cells_with_fewer_than_k_distinct_contributors_are_suppressed(store):
    for n in range(4):
        session = store.start_session()
        session.view("i1")
        if n == 0:
            for _ in range(10):  # one eager shopper is still one contributor
                session.view("i2")
    releases = store.summarise(device_id="kiosk-1", k=3, include_open_hour=True)
    cells = _cells(store)
    assert [k[3] for k in cells if k[0] == "view"] == ["i1"]
    assert releases[0].suppressed == 1


def test_default_policy_needs_at_least_15_contributors():
    assert PrivacyPolicy().k >= 15 and PrivacyPolicy().k_pairs > PrivacyPolicy().k


def test_members_without_sync_consent_are_left_out_entirely(store):
    store.member("L-1", consents={"sync": True}).view("i1")
    store.member("L-2", consents={"personalization": True}).view("i1")
    releases = store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    assert releases[0].withheld == 1
    assert [v for k, v in _cells(store).items() if k[0] == "view"] == [(1, 1)]
    assert outbox_status(store.store).unsummarised_events == 0


def test_an_ended_anonymous_session_still_counts_as_one_contributor(store):
    sessions = [store.start_session() for _ in range(2)]
    for session in sessions:
        for _ in range(3):
            session.view("i3")
        session.end()
    assert (
        store.store.query("SELECT count(*) AS n FROM events WHERE shopper_id IS NULL")[0]["n"] == 6
    )
    # two sessions: released with k=2, suppressed with k=3 (not six "contributors")
    assert store.summarise(device_id="kiosk-1", k=3, include_open_hour=True)[0].cells == 0


def test_session_tokens_are_cleared_once_summarised(store):
    session = store.start_session()
    session.view("i3")
    session.end()
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    assert store.store.query("SELECT contributor FROM events") == [{"contributor": None}]


def test_segment_counts_and_copurchase_pairs_are_released(store):
    for n in range(3):
        member = store.member(f"L-{n}", consents={"sync": True})
        member.add_to_cart("i1")
        member.add_to_cart("i2")
        member.checkout()
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells = _cells(store)
    assert [v for k, v in cells.items() if k[0] == "pair"] == [(3, 3)]
    assert [(k[3], v[0]) for k, v in cells.items() if k[0] == "segment"] == [("new", 3)]


def test_offer_funnel_is_counted_by_offer_and_reason_without_free_text(store):
    shopper = store.start_session()
    shopper.track("offer_shown", payload={"offer_id": "o-1"})
    shopper.track("offer_redeemed", payload={"offer_id": "o-1"})
    shopper.track("search", payload={"query": "my private search"})
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells = _cells(store)
    assert {(k[0], k[3]) for k in cells} >= {("offer_shown", "o-1"), ("offer_redeemed", "o-1")}
    assert [k[3] for k in cells if k[0] == "search"] == [""]
    assert b"private" not in store.store.query("SELECT body FROM sync_outbox")[0]["body"]


def test_recommendation_click_through_is_counted_per_surface_without_the_list(store):
    for n in range(3):
        shopper = store.start_session()
        shopper.view(f"i{n}")
        shown = shopper.recommend("recently-viewed", record=True)
        if n < 2:
            shopper.clicked(shown[0])
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    cells = _cells(store)
    # The surface is the first dimension only: it is not read a second time as the second.
    assert [(k[3], k[4], v[0]) for k, v in cells.items() if k[0] == "recommendation_shown"] == [
        ("recently-viewed", "", 3)
    ]
    clicks = {(k[3], k[4]): v[0] for k, v in cells.items() if k[0] == "recommendation_clicked"}
    assert clicks == {("i0", "recently-viewed"): 1, ("i1", "recently-viewed"): 1}
    raw = b"".join(r["body"] for r in store.store.query("SELECT body FROM sync_outbox"))
    assert b"shown_id" not in raw, "the shown list and its id stay on the device"


@given(
    st.dictionaries(
        st.sampled_from([k for k in DIMENSION_KEYS if k not in ("experiment", "arm")]),
        st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8),
        max_size=4,
    )
)
def test_an_events_dimensions_are_its_first_two_labels_each_read_once(labels: dict) -> None:
    # Keys that are never dimensions stay out, whatever they hold.
    payload = {**labels, "query": "free text", "shown_id": "abc"}
    wanted = [labels[key] for key in sorted(labels, key=DIMENSION_KEYS.index)] + ["", ""]
    assert dimensions("offer_shown", None, payload) == (wanted[0], wanted[1])


def test_open_hour_waits_until_it_is_complete(store):
    store.start_session().view("i1")
    assert store.summarise(device_id="kiosk-1", k=1) == []
    assert outbox_status(store.store).unsummarised_events == 1


def test_withdrawn_sync_consent_purges_the_member_from_queued_summaries(store):
    stay = store.member("L-stay", consents={"sync": True})
    leave = store.member("L-leave", consents={"sync": True})
    stay.view("i1")
    leave.view("i1")
    leave.view("i5")
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    key_before = store.store.query("SELECT idempotency_key FROM sync_outbox ORDER BY id")[0]
    leave.set_consent("sync", False)
    assert outbox_status(store.store).dirty == 2  # the hour's release and the day's segments
    assert rebuild_dirty(store.store) == 2
    row = store.store.query("SELECT idempotency_key, rev FROM sync_outbox ORDER BY id")[0]
    assert row["idempotency_key"] == key_before["idempotency_key"] and row["rev"] == 2
    cells = _cells(store)
    assert [v for k, v in cells.items() if k[0] == "view"] == [(1, 1)]
    # the ledger follows: what the device says it released is what it will send
    assert {k: v for k, v in released_totals(store.store).items()} == cells


def test_erased_member_is_purged_from_queued_summaries(store):
    gone = store.member("L-gone", consents={"sync": True})
    gone.view("i4")
    store.member("L-other", consents={"sync": True}).view("i1")
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    gone.forget()
    rebuild_dirty(store.store)
    assert {k[3] for k in _cells(store)} == {"i1", "new"}


def test_noise_records_the_epsilon_spent_per_release(store):
    for _ in range(30):
        store.start_session().view("i1")
    releases = store.summarise(
        device_id="kiosk-1",
        policy=PrivacyPolicy(k=1, k_pairs=1, epsilon=0.5),
        include_open_hour=True,
    )
    assert releases[0].epsilon == pytest.approx(0.5)
    ledger = store.store.query("SELECT epsilon FROM sync_ledger")
    assert ledger == [{"epsilon": pytest.approx(0.5)}]
    assert _bodies(store)[0]["privacy"]["epsilon"] == pytest.approx(0.5)


def test_noisy_counts_are_never_negative_so_the_collector_accepts_them():
    rows = [view_row(seq, seq, seq % 40, 1_700_000_000_000) for seq in range(40)]
    release = aggregate(rows, PrivacyPolicy(k=1, epsilon=0.01))  # noise scale 100 per count
    assert len(release.cells) == 40
    assert all(cell[5] >= 0 and cell[6] >= 0 for cell in release.cells)


def test_a_large_backlog_becomes_a_few_compact_releases(store):
    session = store.start_session()
    base = 1_700_000_000_000
    with store.store.write() as db:
        db.table("events").insert_all(
            {
                "event_id": f"e{n}",
                "shopper_id": session.shopper_id,
                "type": "view",
                "item_id": f"i{n % 8}",
                "store_id": "s1",
                "ts_ms": base + n * 60_000,
            }
            for n in range(3000)
        )
    releases = shelfwise.sync.outbox.summarise(
        store.store, device_id="kiosk-1", k=1, max_events=1000, now=base + 10**9
    )
    assert 2 <= len(releases) <= 4
    assert sum(r.events for r in releases) == 3000
    totals = released_totals(store.store)
    assert sum(n for (metric, *_), (n, _) in totals.items() if metric == "view") == 3000


# -- mergeable deltas: any split of the events sums to the whole ---------------------------


def _row(seq: int, shopper: int, item: int, hour: int) -> dict:
    return view_row(seq, shopper, item, 1_700_000_000_000 + hour * HOUR_MS, quantity=1 + item % 3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, 3)), max_size=60),
    st.integers(0, 60),
)
def test_summaries_are_mergeable_deltas(events, split):
    rows = [_row(i, *e) for i, e in enumerate(events)]
    policy = PrivacyPolicy(k=1, k_pairs=1)

    def total(cells):
        out: dict = {}
        for c in cells:
            n, q = out.get(tuple(c[:5]), (0, 0))
            out[tuple(c[:5])] = (n + c[5], q + c[6])
        return out

    whole = total(aggregate(rows, policy).cells)
    parts = total(aggregate(rows[:split], policy).cells + aggregate(rows[split:], policy).cells)
    assert parts == whole


# -- the wire format refuses anything off-schema --------------------------------------------

VALID = {
    "v": 1,
    "device": "kiosk-1",
    "seq": 1,
    "key": "kiosk-1:0123456789abcdef",
    "rev": 1,
    "created_ms": 1_700_000_000_000,
    "model": {},
    "privacy": {"k": 15},
    "cells": [["view", "s1", 1_699_999_200_000, "i1", "", 20, 20]],
}


def test_a_valid_envelope_round_trips():
    assert unpack_envelope(msgpack.packb(VALID)).cells == VALID["cells"]


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"seq": 0},
        {"seq": True},
        {"key": "short"},
        {"key": "bad key with spaces!"},
        {"device": "../../etc"},
        {"cells": [["view", "s1", 1, "i1", ""]]},
        {"cells": [["VIEW", "s1", 1, "i1", "", 1, 1]]},
        {"cells": [["view", "s1", 1, "i1", "", 1.5, 1]]},
        {"cells": [["view", "s1", 1, "i1", "", 1, 1], ["view", "s1", 1, "i1", "", 1, 1]]},
        {"cells": [["view", "s1", -5, "i1", "", 1, 1]]},
        {"model": {"nested": {"a": 1}}},
        {"extra": 1},
    ],
)
def test_an_off_schema_envelope_is_refused(change):
    with pytest.raises(EnvelopeError):
        unpack_envelope(msgpack.packb({**VALID, **change}))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_decode_into_anything_but_a_clear_error(raw):
    with contextlib.suppress(EnvelopeError):
        unpack_envelope(raw)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_envelopes_are_valid_or_refused_never_a_crash(data):
    raw = bytearray(msgpack.packb(VALID))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(EnvelopeError):
        unpack_envelope(bytes(raw))


def test_integer_map_keys_are_refused():
    with pytest.raises(EnvelopeError):
        safe_unpack(msgpack.packb({1: "x"}))


# -- backoff --------------------------------------------------------------------------------


def test_backoff_is_full_jitter_capped_at_300_seconds():
    backoff = Backoff(rng=random.Random(1))
    for attempt in range(20):
        ceiling = min(300.0, 2.0**attempt)
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(0.0 <= d <= ceiling for d in delays)
    assert max(backoff.delay(12) for _ in range(200)) > 150  # it does reach toward the cap


def test_backoff_honours_retry_after():
    assert Backoff(rng=random.Random(1)).delay(9, retry_after=7.0) == 7.0


def test_payload_json_column_is_read_back_for_dimensions(store):
    store.start_session().track(
        "offer_shown", payload={"offer_id": "o-9", "experiment": "x1", "variant": "b"}
    )
    store.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    assert ("offer_shown", "o-9", "x1") in {(k[0], k[3], k[4]) for k in _cells(store)}
    assert json.dumps(outbox_status(store.store).to_dict())
