"""What comes down from upstream is input: a hostile or broken collector is refused with a
typed error, changes nothing, and the device keeps serving (``sw.sync`` never raises)."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import FakeCollector

import shelfwise
from shelfwise.sync.downstream import apply_document, pull_bundle, pull_fleet
from shelfwise.sync.protocol import Credentials, generate_signing_key, sign_document
from shelfwise.sync.transport import retry_after_s

CREDS = Credentials("kiosk-1", b"k" * 32)
_, PUBLIC = generate_signing_key()


def _fleet(items, scope="region:north", **extra) -> bytes:
    return msgpack.packb({"scope": scope, "generated_ms": 1, "items": items, **extra})


@pytest.fixture
def kiosk(tmp_path):
    with shelfwise.open(tmp_path / "kiosk.db", store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": f"i{n}", "name": f"Item {n}"} for n in range(5)])
        with sw.store.write() as db:  # what an earlier, good pull left
            db.table("fleet_trending").insert(
                {"scope": "region:north", "item_id": "i1", "score": 4.0, "updated_ms": 1}
            )
        yield sw


def _fleet_rows(sw) -> list[tuple[str, float]]:
    return [(r["item_id"], r["score"]) for r in sw.store.query("SELECT * FROM fleet_trending")]


def test_a_nan_score_after_an_acknowledged_upload_is_reported_not_raised(kiosk):
    kiosk.start_session().view("i2")
    kiosk.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    with FakeCollector() as fake:
        fake.replies["/v1/fleet/trending"] = (200, {}, _fleet([["i3", math.nan]]))
        report = kiosk.sync(fake.url, CREDS, k=1)
    assert report.acked == 1 and report.remaining == 0
    assert report.error is not None and "fleet" in report.error
    assert _fleet_rows(kiosk) == [("i1", 4.0)]  # the table it had keeps serving
    assert kiosk.start_session().recommend("trending", limit=3)


HOSTILE_FLEET = {
    "nan score": _fleet([["i3", math.nan]]),
    "infinite score": _fleet([["i3", math.inf]]),
    "negative score": _fleet([["i3", -2.0]]),
    "text score": _fleet([["i3", "high"]]),
    "item not text": _fleet([[3, 1.0]]),
    "row not a pair": _fleet([["i3", 1.0, 7]]),
    "an item twice": _fleet([["i3", 1.0], ["i3", 2.0]]),
    "too many rows": _fleet([[f"i{n}", 1.0] for n in range(5000)]),
    "huge item id": _fleet([["x" * 10_000, 1.0]]),
    "scope not text": _fleet([["i3", 1.0]], scope=7),
    "items not a list": _fleet({"i3": 1.0}),
    "not msgpack": b"\xc1\xc1",
    "a list": msgpack.packb([1, 2]),
    "a 40 MB body": b"\x00" * (40 << 20),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FLEET))
def test_a_hostile_fleet_table_is_refused_with_a_typed_error_and_changes_nothing(kiosk, name):
    with FakeCollector() as fake:
        fake.replies["/v1/fleet/trending"] = (200, {}, HOSTILE_FLEET[name])
        with pytest.raises(shelfwise.UpdateRefused) as refused:
            pull_fleet(kiosk.store, fake.url, CREDS)
        report = kiosk.sync(fake.url, CREDS, k=1)
    assert refused.value.reason in {"malformed", "too_large"}
    assert report.error and "fleet" in report.error
    assert _fleet_rows(kiosk) == [("i1", 4.0)]


def test_a_valid_fleet_table_still_replaces_the_old_one(kiosk):
    with FakeCollector() as fake:
        fake.replies["/v1/fleet/trending"] = (200, {}, _fleet([["i3", 2.5], ["i4", 0.0]]))
        assert pull_fleet(kiosk.store, fake.url, CREDS) == 2
    assert sorted(_fleet_rows(kiosk)) == [("i3", 2.5), ("i4", 0.0)]


@pytest.mark.parametrize(
    "files",
    [{"model.onnx": 1 << 40}, {"model.onnx": "text"}, [1, 2], {"../evil": b"x"}],
)
def test_a_hostile_bundle_reply_is_refused_without_allocating_what_it_claims(
    kiosk, tmp_path, files
):
    body = msgpack.packb({"name": "b", "files": files}, use_bin_type=True)
    with FakeCollector() as fake:
        fake.replies["/v1/bundle"] = (200, {}, body)
        with pytest.raises(shelfwise.BundleVerificationError):
            pull_bundle(
                kiosk.model,
                fake.url,
                CREDS,
                tmp_path / "bundles",
                store=kiosk.store,
                public_key=PUBLIC,
            )


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (401, {"X-Shelfwise-Server-Time": "\u00b2"}),
        (401, {"X-Shelfwise-Server-Time": "9" * 5000}),
        (503, {"Retry-After": "\u00b2"}),
        (429, {"Retry-After": "9" * 5000}),
    ],
)
def test_hostile_status_headers_end_in_a_report_not_a_crash(kiosk, status, headers):
    kiosk.start_session().view("i2")
    kiosk.summarise(device_id="kiosk-1", k=1, include_open_hour=True)
    with FakeCollector() as fake:
        fake.replies["/v1/summaries"] = (status, headers, b"no")
        report = kiosk.sync(fake.url, CREDS, k=1, deadline_s=0)
    assert report.error and report.remaining == 1


def test_retry_after_reads_only_plain_seconds_or_an_http_date():
    assert retry_after_s("\u00b2") is None
    assert retry_after_s("9" * 5000) == 3600.0


_PRIVATE, _PUBLIC = generate_signing_key()
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_ROW_KEYS = st.sampled_from(
    ["item_id", "name", "price", "gtin", "tags", "offer_id", "title", "reward", "targeting", "x"]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["catalog", "offers"]),
    rows=st.lists(st.one_of(_VALUES, st.dictionaries(_ROW_KEYS, _VALUES, max_size=6)), max_size=4),
)
def test_signed_documents_with_any_rows_apply_or_are_refused_never_crash(kiosk, kind, rows):
    key = "items" if kind == "catalog" else "offers"
    raw = sign_document(kind, {key: rows}, version=1, private_key=_PRIVATE)
    before = (kiosk.catalog.count(), len(kiosk.offers.all()))
    try:
        apply_document(kiosk.store, raw, kind=kind, public_key=_PUBLIC)
    except shelfwise.UpdateRefused:
        assert (kiosk.catalog.count(), len(kiosk.offers.all())) == before
    else:
        kiosk.store.db.execute("DELETE FROM sync_documents")
