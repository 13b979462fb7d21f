"""The collector: hostile input changes nothing; aggregation is idempotent and order-free.

The same tests run on SQLite and (marked ``postgres``) on a real PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import LiveClient, serve_in_thread, upstream_cmd

import shelfwise
from shelfwise.clock import DAY_MS, HOUR_MS, now_ms
from shelfwise.sync.protocol import HEADER_SERVER_TIME, Credentials, Envelope, sign_request
from shelfwise.upstream import SqliteStorage, create_app

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


HOUR = now_ms() // HOUR_MS * HOUR_MS - HOUR_MS  # the last closed hour


@pytest.fixture
def client(storage) -> Iterator[LiveClient]:
    # no rate limit here: the fuzz tests send hundreds of requests (rate tests set their own)
    with serve_in_thread(create_app(storage, max_body=64 * 1024, rate_per_s=0)) as live:
        yield live


def _creds(storage, device: str = "kiosk-1", stores=("s1",)) -> Credentials:
    return Credentials(device, storage.add_device(device, region="north", stores=stores))


def _envelope(device: str, key: str, rev: int = 1, cells=None) -> bytes:
    cells = cells if cells is not None else [["view", "s1", HOUR, "i1", "", 20, 21]]
    return Envelope(device, 1, key, rev, HOUR + 1, cells).pack()


def _post(client, creds, body: bytes, *, ts: int | None = None, path="/v1/summaries"):
    stamp = int(time.time() * 1000) if ts is None else ts
    headers = sign_request(creds, "POST", path, body, stamp)
    return client.post(path, content=body, headers=headers)


def _request(device: str, summaries: list[bytes]) -> bytes:
    return msgpack.packb({"v": 1, "device": device, "summaries": summaries}, use_bin_type=True)


def _consistent(storage) -> dict:
    """The fleet totals equal the sum of every stored release's cells (nothing corrupted)."""
    fleet = storage.totals()
    per_device: dict = {}
    for device in {"kiosk-1", "kiosk-2"}:
        for key, (n, q) in storage.totals(device).items():
            old = per_device.get(key, (0, 0))
            per_device[key] = (old[0] + n, old[1] + q)
    assert fleet == per_device
    return fleet


def test_a_valid_upload_is_acknowledged_and_counted(storage, client):
    creds = _creds(storage)
    reply = _post(client, creds, _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:aaaaaaaa")]))
    assert reply.status_code == 200
    assert msgpack.unpackb(reply.content) == {"acked": [["kiosk-1:aaaaaaaa", 1]]}
    assert storage.totals() == {("view", "s1", HOUR, "i1", ""): (20, 21)}


def test_the_same_release_sent_twice_counts_once_and_a_higher_rev_replaces_it(storage, client):
    creds = _creds(storage)
    first = _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:bbbbbbbb")])
    assert _post(client, creds, first).status_code == 200
    assert _post(client, creds, first).status_code == 200
    rebuilt = _envelope(
        "kiosk-1", "kiosk-1:bbbbbbbb", rev=2, cells=[["view", "s1", HOUR, "i1", "", 5, 5]]
    )
    assert _post(client, creds, _request("kiosk-1", [rebuilt])).status_code == 200
    assert _post(client, creds, first).status_code == 200  # a stale duplicate arriving late
    assert storage.totals() == {("view", "s1", HOUR, "i1", ""): (5, 5)}


def _hostile(storage, creds, other):
    good = _envelope("kiosk-1", "kiosk-1:cccccccc")
    too_many = [_envelope("kiosk-1", f"kiosk-1:{n:08d}") for n in range(101)]
    return [
        ("not msgpack", b"\xc1\xc1\xc1", 400, None),
        ("a list body", msgpack.packb([1, 2]), 400, None),
        ("missing device", msgpack.packb({"v": 1, "summaries": [good]}), 400, None),
        ("another device in the body", _request("kiosk-2", [good]), 400, None),
        (
            "an envelope naming another device",
            _request("kiosk-1", [_envelope("kiosk-2", "kiosk-2:dddddddd")]),
            400,
            None,
        ),
        ("an envelope that is not bytes", _request("kiosk-1", [{"v": 1}]), 400, None),  # type: ignore[list-item]
        (
            "one bad envelope among good ones",
            _request("kiosk-1", [good, b"\x93\x01\x02\x03"]),
            400,
            None,
        ),
        ("a key twice", _request("kiosk-1", [good, good]), 400, None),
        ("an empty list", _request("kiosk-1", []), 400, None),
        ("more than 100 summaries", _request("kiosk-1", too_many), 413, None),
        ("a body over the limit", _request("kiosk-1", [b"\x00" * 70_000]), 413, None),
        ("a stale signature", _request("kiosk-1", [good]), 401, 10**12 + 5),
        ("another device's secret", _request("kiosk-1", [good]), 401, other),
    ]


def test_hostile_or_malformed_uploads_get_a_4xx_and_change_nothing(storage, client):
    creds = _creds(storage)
    other = _creds(storage, "kiosk-2")
    seeded = _request("kiosk-2", [_envelope("kiosk-2", "kiosk-2:eeeeeeee")])
    assert _post(client, other, seeded).status_code == 200
    before = (storage.totals(), storage.stats())
    for name, body, status, special in _hostile(storage, creds, other):
        if isinstance(special, Credentials):
            reply = _post(client, Credentials("kiosk-1", special.secret), body)
        else:
            reply = _post(client, creds, body, ts=special)
        assert reply.status_code == status, name
        assert (storage.totals(), storage.stats()) == before, name
    # a release key another device owns is a conflict, not a silent merge
    stolen = _request("kiosk-1", [_envelope("kiosk-1", "kiosk-2:eeeeeeee")])
    assert _post(client, creds, stolen).status_code == 409
    assert (storage.totals(), storage.stats()) == before


def test_a_stale_clock_gets_the_collectors_time_to_re_sign_with(storage, client):
    creds = _creds(storage)
    reply = _post(
        client, creds, _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:ffffffff")]), ts=10**12
    )
    assert reply.status_code == 401
    assert abs(int(reply.headers[HEADER_SERVER_TIME.lower()]) - time.time() * 1000) < 60_000


def test_unsigned_requests_are_refused(storage, client):
    _creds(storage)
    body = _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:gggggggg")])
    assert client.post("/v1/summaries", content=body).status_code == 401
    assert client.get("/v1/fleet/trending").status_code == 401
    assert storage.stats()["releases"] == 0


@pytest.mark.slow
@FUZZ
@given(st.data())
def test_fuzzed_signed_payloads_never_crash_the_collector_or_corrupt_totals(storage, client, data):
    creds = (
        Credentials("kiosk-1", storage.device("kiosk-1").secret)
        if storage.device("kiosk-1")
        else _creds(storage)
    )
    base = bytearray(
        _request(
            "kiosk-1",
            [
                _envelope(
                    "kiosk-1",
                    f"kiosk-1:{data.draw(st.integers(0, 50)):08d}",
                    rev=data.draw(st.integers(1, 3)),
                ),
            ],
        )
    )
    choice = data.draw(st.sampled_from(["mutate", "random", "structure"]))
    if choice == "mutate":
        for _ in range(data.draw(st.integers(0, 6))):
            base[data.draw(st.integers(0, len(base) - 1))] = data.draw(st.integers(0, 255))
        body = bytes(base)
    elif choice == "random":
        body = data.draw(st.binary(max_size=400))
    else:
        scalar = st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**63), 2**64 - 1),
            st.floats(),
            st.text(max_size=20),
            st.binary(max_size=20),
        )
        cell = st.lists(scalar, min_size=0, max_size=8)
        envelope = st.fixed_dictionaries(
            {
                "v": st.sampled_from([1, 1, 2, "1"]),
                "device": st.sampled_from(["kiosk-1", "kiosk-2", ""]),
                "seq": scalar,
                "key": st.sampled_from(["kiosk-1:00000001", "x", "kiosk-1:00000002"]),
                "rev": st.one_of(st.integers(0, 3), scalar),
                "created_ms": scalar,
                "model": st.dictionaries(st.text(max_size=5), scalar, max_size=3),
                "privacy": st.just({}),
                "cells": st.lists(cell, max_size=4),
            }
        )
        body = _request(
            "kiosk-1",
            [
                msgpack.packb(e, use_bin_type=True)
                for e in data.draw(st.lists(envelope, min_size=1, max_size=3))
            ],
        )
    reply = _post(client, creds, body)
    assert reply.status_code in {200, 400, 409, 413, 422}
    _consistent(storage)


@pytest.mark.slow
@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 3), st.integers(0, 3), st.integers(-5, 50)),
        min_size=1,
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_aggregation_is_idempotent_and_order_independent(storage, client, releases, rng):
    if storage.device("kiosk-1") is None:
        _creds(storage)
    storage_before = storage.totals()
    # the latest revision of each release key is what must count, whatever arrives when
    namespace = uuid.uuid4().hex[:12]  # fresh keys per example
    envelopes = []
    for key_n, rev, item, count in releases:
        key = f"kiosk-1:{namespace}{key_n}"
        cells = [["view", "s1", 0, f"i{item}", "", count, count]]
        envelopes.append(Envelope("kiosk-1", 1, key, rev, 0, cells))
    # a key reused with the same rev but other cells is not something a device does
    deduped = {}
    for env in envelopes:
        deduped[(env.key, env.rev)] = env
    envelopes = list(deduped.values())
    latest: dict[str, tuple[int, list]] = {}
    for env in envelopes:
        if env.key not in latest or env.rev > latest[env.key][0]:
            latest[env.key] = (env.rev, env.cells)
    deliveries = envelopes * 2
    rng.shuffle(deliveries)
    for env in deliveries:
        storage.apply("kiosk-1", [env])
    expected = dict(storage_before)
    for _, cells in latest.values():
        for cell in cells:
            key = tuple(cell[:5])
            n, q = expected.get(key, (0, 0))
            expected[key] = (n + cell[5], q + cell[6])
    assert storage.totals() == {k: v for k, v in expected.items() if v != (0, 0)}


def test_fleet_trending_is_served_per_region(storage, client):
    north = _creds(storage)
    cells = [
        ["purchase", "s1", int(time.time() * 1000) // 3_600_000 * 3_600_000, "charcoal", "", 9, 9]
    ]
    _post(
        client, north, _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:hhhhhhhh", cells=cells)])
    )
    south = Credentials("kiosk-2", storage.add_device("kiosk-2", region="south"))
    for creds, expected in ((north, ["charcoal"]), (south, [])):
        headers = sign_request(creds, "GET", "/v1/fleet/trending", b"", int(time.time() * 1000))
        reply = msgpack.unpackb(client.get("/v1/fleet/trending", headers=headers).content)
        assert [item for item, _ in reply["items"]] == expected


def test_the_collector_is_not_fooled_by_a_random_device_id(storage, client):
    _creds(storage)
    ghost = Credentials("ghost", b"g" * 32)
    assert (
        _post(client, ghost, _request("ghost", [_envelope("ghost", "ghost:iiiiiiii")])).status_code
        == 401
    )
    assert storage.stats()["releases"] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Shelfwise-Time", "\u00b2"),  # a digit to str.isdigit(), not to int()
        ("X-Shelfwise-Time", "1" * 5000),  # more digits than int() converts
        ("X-Shelfwise-Time", "-5"),
        ("X-Shelfwise-Time", ""),
        ("X-Shelfwise-Signature", "\u00e9" * 64),  # non-ASCII: compare_digest raises
        ("X-Shelfwise-Signature", "g" * 64),
        ("X-Shelfwise-Device", "kiosk 1"),
        ("X-Shelfwise-Device", "k" * 65),
        ("Content-Length", "\u00b2"),
    ],
)
def test_a_malformed_header_answers_4xx_never_500(storage, client, name, value):
    creds = _creds(storage)
    body = _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:jjjjjjjj")])
    headers = sign_request(creds, "POST", "/v1/summaries", body, int(time.time() * 1000))
    headers[name] = value
    reply = client.post("/v1/summaries", content=body, headers=headers)
    assert reply.status_code in {400, 401}, (name, value, reply.status_code)
    assert storage.stats()["releases"] == 0


# -- a signed device is not trusted blindly ------------------------------------------------

IMPLAUSIBLE = [
    (
        "a store it is not registered for",
        ["view", "s9", HOUR, "i1", "", 20, 20],
        "store_not_registered",
    ),
    ("a negative count", ["view", "s1", HOUR, "i1", "", -20, 0], "negative_count"),
    ("a negative quantity", ["view", "s1", HOUR, "i1", "", 1, -5], "negative_count"),
    ("an absurd magnitude", ["view", "s1", HOUR, "i1", "", 10**9, 10**9], "implausible_count"),
    (
        "a bucket far in the future",
        ["view", "s1", HOUR + 30 * DAY_MS, "i1", "", 1, 1],
        "bucket_out_of_window",
    ),
    (
        "a bucket years ago",
        ["view", "s1", HOUR - 3 * 365 * DAY_MS, "i1", "", 1, 1],
        "bucket_out_of_window",
    ),
    ("a bucket off the hour", ["view", "s1", HOUR + 1234, "i1", "", 1, 1], "bucket_misaligned"),
    (
        "a day metric off the day",
        ["segment", "s1", HOUR + HOUR_MS // 2, "loyal", "", 3, 0],
        "bucket_misaligned",
    ),
]


@pytest.mark.parametrize(("name", "cell", "reason"), IMPLAUSIBLE, ids=[c[0] for c in IMPLAUSIBLE])
def test_an_implausible_summary_is_refused_with_422_quarantined_and_never_counted(
    storage, client, name, cell, reason
):
    creds = _creds(storage)
    good = _envelope("kiosk-1", "kiosk-1:kkkkkkkk")
    assert _post(client, creds, _request("kiosk-1", [good])).status_code == 200
    before = (storage.totals(), storage.trending("north", 0, 10))
    bad = _envelope(
        "kiosk-1", "kiosk-1:llllllll", cells=[["view", "s1", HOUR, "i2", "", 1, 1], cell]
    )
    for _ in range(2):  # sent again (a device bisecting its batch): kept and counted once
        reply = _post(client, creds, _request("kiosk-1", [bad]))
        assert reply.status_code == 422, name
        assert msgpack.unpackb(reply.content)["reason"] == reason
    assert (storage.totals(), storage.trending("north", 0, 10)) == before
    [kept] = storage.quarantined("kiosk-1")
    assert (kept.key, kept.rev, kept.reason, kept.body) == ("kiosk-1:llllllll", 1, reason, bad)
    assert storage.refusals() == {"kiosk-1": {reason: 1}}


def test_a_refused_summary_in_a_batch_refuses_the_request_and_the_device_bisects(storage, client):
    creds = _creds(storage)
    good = [_envelope("kiosk-1", f"kiosk-1:good{n:04d}") for n in range(3)]
    bad = _envelope("kiosk-1", "kiosk-1:badd0001", cells=[["view", "s9", HOUR, "i1", "", 1, 1]])
    assert _post(client, creds, _request("kiosk-1", [*good, bad])).status_code == 422
    assert storage.totals() == {}  # nothing of a refused request is applied
    assert _post(client, creds, _request("kiosk-1", good)).status_code == 200
    assert storage.totals() == {("view", "s1", HOUR, "i1", ""): (60, 63)}


def test_refused_requests_are_counted_per_device_and_reason(storage, client):
    creds = _creds(storage)
    _post(client, creds, b"\xc1")
    _post(client, creds, _request("kiosk-1", [_envelope("kiosk-1", "kiosk-2:mmmmmmmm")]))
    _creds(storage, "kiosk-2")
    _post(client, creds, _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:nnnnnnnn")]))
    assert storage.refusals("kiosk-1") == {"kiosk-1": {"malformed": 1}}


def test_a_device_over_its_rate_gets_429_with_retry_after(storage):
    creds = _creds(storage)
    with serve_in_thread(create_app(storage, rate_per_s=0.5, burst=3)) as live:
        body = _request("kiosk-1", [_envelope("kiosk-1", "kiosk-1:oooooooo")])
        codes = [_post(live, creds, body).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        reply = _post(live, creds, body)
        assert reply.status_code == 429 and 1 <= int(reply.headers["retry-after"]) <= 2
        other = _creds(storage, "kiosk-2")  # one device's rate never throttles another
        headers = sign_request(other, "GET", "/v1/fleet/trending", b"", now_ms())
        assert live.get("/v1/fleet/trending", headers=headers).status_code == 200


# -- device secrets are sealed at rest -----------------------------------------------------


def _secret_column(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT secret FROM devices ORDER BY device_id")]


def test_device_secrets_are_sealed_under_a_0600_server_key_file(tmp_path):
    path = tmp_path / "collector.db"
    storage = SqliteStorage(str(path))
    secret = storage.add_device("kiosk-1", stores=["s1"])
    storage.close()
    [stored] = _secret_column(path)
    assert secret.hex() not in stored and stored.startswith("enc1:")
    assert stat.S_IMODE(os.stat(f"{path}.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    reopened = SqliteStorage(str(path))
    assert reopened.device("kiosk-1").secret == secret
    reopened.close()
    os.chmod(f"{path}.key", 0o644)
    with pytest.raises(shelfwise.InvalidInput, match="chmod 600"):
        SqliteStorage(str(path))


def test_plaintext_secrets_of_an_older_collector_are_sealed_on_open(tmp_path):
    path = tmp_path / "collector.db"
    SqliteStorage(str(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO devices (device_id, secret, region, created_ms) VALUES ('old', ?, '', 0)",
            ["ab" * 32],
        )
    storage = SqliteStorage(str(path))
    assert storage.device("old").secret == bytes.fromhex("ab" * 32)
    storage.close()
    assert _secret_column(path)[0].startswith("enc1:")


def test_key_rotation_reseals_every_secret_and_drops_the_old_key(tmp_path, storage):
    secrets = {d: storage.add_device(d, stores=["s1"]) for d in ("kiosk-1", "kiosk-2")}
    old_file = storage.keys.path.read_text()
    assert storage.rotate_key() == 2
    assert storage.keys.path.read_text() != old_file
    assert len(json.loads(storage.keys.path.read_text())["keys"]) == 1
    assert {d: storage.device(d).secret for d in secrets} == secrets
    assert stat.S_IMODE(os.stat(storage.keys.path).st_mode) == 0o600


# -- the command line never shows a traceback ------------------------------------------------


def _sweep(tmp_path: Path) -> list[tuple[list[str], set[int]]]:
    db = str(tmp_path / "c.db")
    not_db = tmp_path / "not.db"
    not_db.write_text("this is not sqlite")
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"item_id": "tea", "name": "Tea"}\n')
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"item_id": "t", "name": "Th\xe9"}\n'.encode("latin-1"))
    offers = tmp_path / "offers.json"
    offers.write_text(
        '[{"offer_id": "x", "title": "X", "reward": {"type": "percent", "value": 500}}]'
    )
    key = tmp_path / "docs.key"
    key.write_text("11" * 32)
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key")
    open_key = tmp_path / "open.key"
    open_key.write_text("{}")
    open_key.chmod(0o644)
    server_key = str(tmp_path / "server.key")
    dead_pg = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    return [
        (["--port", "abc"], {2}),
        (["--port", "70000"], {2}),
        (["--max-body", "-5"], {2}),
        (["serve", "--db", str(tmp_path / "missing" / "c.db")], {2}),
        (["nosuchcommand"], {2}),
        (["totals", "--db", str(tmp_path)], {2}),
        (["totals", "--db", str(not_db)], {2}),
        (["totals", "--db", db, "--server-key", str(open_key)], {2}),
        (["totals", "--db", db, "--server-key", str(tmp_path)], {2}),
        (["totals", "--pg", dead_pg], {2}),
        (["totals", "--pg", dead_pg, "--server-key", server_key], {4}),
        (
            [
                "serve",
                "--pg",
                "host=127.0.0.1 port=1 connect_timeout=2",
                "--server-key",
                server_key,
            ],
            {4},
        ),
        (["add-device", "--db", db], {2}),
        (["add-device", "--db", db, "--device", "bad id!"], {2}),
        (["set-stores", "--db", db, "--device", "ghost", "--store", "s1"], {2}),
        (["quarantined", "--db", db, "--limit", "0"], {2}),
        (["publish-catalog", "--db", db, "--sign-key", str(tmp_path / "nokey"), str(catalog)], {2}),
        (
            ["publish-catalog", "--db", db, "--sign-key", str(key), str(tmp_path / "none.jsonl")],
            {2},
        ),
        (["publish-catalog", "--db", db, "--sign-key", str(bad_key), str(catalog)], {2}),
        (["publish-catalog", "--db", db, "--sign-key", str(key), str(latin1)], {2}),
        (["publish-offers", "--db", db, "--sign-key", str(key), str(offers)], {2}),
        (
            [
                "publish-offers",
                "--db",
                db,
                "--sign-key",
                str(key),
                str(catalog),
                "--expires-days",
                "0",
            ],
            {2},
        ),
    ]


def test_every_upstream_command_fails_on_bad_input_with_one_line_and_its_exit_code(tmp_path):
    for args, codes in _sweep(tmp_path):
        out = subprocess.run(
            upstream_cmd(*args), capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert out.returncode in codes, (args, out.returncode, out.stderr)
        assert "Traceback" not in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    assert not list(tmp_path.glob("*.key.*"))  # no half-written key file left behind


def test_upstream_commands_work_end_to_end(tmp_path):
    db = str(tmp_path / "c.db")

    def run(*args: str) -> str:
        out = subprocess.run(upstream_cmd(*args), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    key = json.loads(run("add-device", "--db", db, "--device", "kiosk-7", "--store", "s7"))
    run("set-stores", "--db", db, "--device", "kiosk-7", "--store", "s7", "--store", "s8")
    [device] = json.loads(run("devices", "--db", db, "--json"))
    assert device == {"device_id": "kiosk-7", "region": "", "stores": ["s7", "s8"], "refusals": {}}
    assert json.loads(run("rotate-key", "--db", db)) == {"resealed": 1}
    storage = SqliteStorage(db)
    assert storage.device("kiosk-7").secret.hex() == key["secret"]
    storage.close()
    assert json.loads(run("quarantined", "--db", db, "--json")) == []
    assert run("totals", "--db", db) == ""
