"""The collector's side of members across the fleet: it files sealed copies under blinded ids,
replaces only the copies an upload merged, refuses a copy older than the member's erasure,
deletes what an erasure covers, and serves the erasure feed in order to every device, also
with several collector processes on one PostgreSQL.

The same tests run on SQLite and (marked ``postgres``) on a real PostgreSQL server.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import (
    backend_args,
    collector,
    fresh_pg_database,
    open_backend,
    register,
    serve_in_thread,
)

from shelfwise.clock import DAY_MS, now_ms
from shelfwise.sync.protocol import (
    ERASURES_PATH,
    MAX_COPIES,
    PROFILES_PATH,
    TOMBSTONES_PATH,
    Credentials,
    ErasureBacklog,
    MemberCopies,
    ProfileAnswer,
    ProfileUpload,
    SealedCopy,
    Tombstone,
    TombstoneAcks,
    TombstonePage,
    TombstoneUpload,
    pack_wire,
    sign_request,
    unpack_wire,
)
from shelfwise.sync.transport import HttpTransport
from shelfwise.upstream import SqliteStorage, create_app

ALICE = "a1" * 32  # blinded ids: 64 hex digits, never a loyalty number
BOB = "b2" * 32


def copy_id() -> str:
    return secrets.token_hex(16)


def sealed(size: int = 64) -> bytes:
    return os.urandom(size)  # ciphertext is opaque to the collector: random bytes will do


def a_copy(member: str = ALICE, *, epoch: int = 0, supersedes=(), cid: str | None = None):
    return SealedCopy(member, cid or copy_id(), epoch, sealed(), tuple(supersedes))


@pytest.fixture
def client(storage):
    with serve_in_thread(create_app(storage, rate_per_s=0)) as live:
        yield live


def _creds(storage, device: str = "kiosk-1") -> Credentials:
    return Credentials(device, storage.add_device(device, region="north", stores=("s1",)))


def _call(client, creds, method: str, path: str, body: bytes = b""):
    headers = sign_request(creds, method, path, body, now_ms())
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, content=body, headers=headers)


def _upload(client, creds, *copies):
    body = pack_wire(ProfileUpload(1, creds.device_id, list(copies)))
    reply = _call(client, creds, "POST", PROFILES_PATH, body)
    assert reply.status_code == 200, reply.content
    return [(o.outcome, o.erased_ms) for o in unpack_wire(reply.content, ProfileAnswer).outcomes]


def _copies(client, creds, member: str = ALICE) -> MemberCopies:
    reply = _call(client, creds, "GET", f"{PROFILES_PATH}/{member}")
    assert reply.status_code == 200, reply.content
    return unpack_wire(reply.content, MemberCopies)


def _erase(client, creds, member: str, erased_ms: int):
    body = pack_wire(TombstoneUpload(1, creds.device_id, [Tombstone(member, erased_ms)]))
    reply = _call(client, creds, "POST", TOMBSTONES_PATH, body)
    assert reply.status_code == 200, reply.content
    return unpack_wire(reply.content, TombstoneAcks).acked


def _feed(client, creds, since: int = 0, limit: int = 1000) -> TombstonePage:
    reply = _call(client, creds, "GET", f"{TOMBSTONES_PATH}?since={since}&limit={limit}")
    assert reply.status_code == 200, reply.content
    return unpack_wire(reply.content, TombstonePage)


def test_a_sealed_copy_is_filed_under_the_blinded_id_and_served_back_as_sent(storage, client):
    creds = _creds(storage)
    copy = a_copy()
    assert _upload(client, creds, copy) == [("stored", 0)]
    assert _upload(client, creds, copy) == [("stored", 0)], "a retry is acknowledged, not doubled"
    held = _copies(client, creds)
    assert held.copies == [(copy.copy_id, 0, copy.sealed)] and held.erased_ms == 0
    assert _copies(client, creds, BOB).copies == []


def test_an_upload_replaces_only_the_copies_it_merged(storage, client):
    a, b = _creds(storage, "kiosk-a"), _creds(storage, "kiosk-b")
    first, second = a_copy(), a_copy()
    _upload(client, a, first)
    _upload(client, b, second)
    # Kiosk A merged only its own copy; kiosk B's, sealed meanwhile, must survive.
    merged_by_a = a_copy(supersedes=[first.copy_id])
    assert _upload(client, a, merged_by_a) == [("stored", 0)]
    assert {c[0] for c in _copies(client, a).copies} == {second.copy_id, merged_by_a.copy_id}
    # Two devices that merged the same copies upload at once: both results are kept.
    seen = [second.copy_id, merged_by_a.copy_id]
    one, two = a_copy(supersedes=seen), a_copy(supersedes=seen)
    _upload(client, a, one)
    _upload(client, b, two)
    assert {c[0] for c in _copies(client, a).copies} == {one.copy_id, two.copy_id}


def test_an_erasure_deletes_older_copies_and_refuses_old_copies_coming_back(storage, client):
    creds = _creds(storage)
    old = a_copy(epoch=0)
    _upload(client, creds, old, a_copy(BOB))
    erased_at = now_ms() - 1000
    assert _erase(client, creds, ALICE, erased_at) == [Tombstone(ALICE, erased_at)]
    assert _copies(client, creds).copies == [] and _copies(client, creds).erased_ms == erased_at
    assert len(_copies(client, creds, BOB).copies) == 1, "another member is untouched"
    # A device offline since before the erasure sends its old copy: refused, and told when.
    assert _upload(client, creds, a_copy(epoch=0)) == [("erased", erased_at)]
    assert _upload(client, creds, old) == [("erased", erased_at)]
    # A device that knew of the erasure (the member came back) may file a copy again.
    assert _upload(client, creds, a_copy(epoch=erased_at)) == [("stored", erased_at)]
    # An older erasure arriving late changes nothing; a later one wins.
    _erase(client, creds, ALICE, erased_at - 5000)
    assert _copies(client, creds).erased_ms == erased_at
    assert len(_copies(client, creds).copies) == 1


def test_the_erasure_feed_is_ordered_paged_and_remembers_each_devices_place(storage, client):
    a, b = _creds(storage, "kiosk-a"), _creds(storage, "kiosk-b")
    members = [f"{n:064x}" for n in range(1, 6)]
    for n, member in enumerate(members):
        _erase(client, a, member, 1_000 + n)
    _erase(client, a, members[0], 1_000)  # a retry: no new place in the feed
    first = _feed(client, b, 0, limit=3)
    assert [t.blinded_id for t, _ in first.tombstones] == members[:3] and first.more
    rest = _feed(client, b, first.next, limit=3)
    assert [t.blinded_id for t, _ in rest.tombstones] == members[3:] and not rest.more
    assert [seq for _, seq in first.tombstones + rest.tombstones] == [1, 2, 3, 4, 5]
    assert _feed(client, b, rest.next).tombstones == []  # b now holds everything
    _erase(client, a, members[2], 9_000)  # a later erasure of the same member: news again
    assert [(t.blinded_id, t.erased_ms, s) for t, s in _feed(client, b, 5).tombstones] == [
        (members[2], 9_000, 6)
    ]
    reply = _call(client, a, "GET", ERASURES_PATH)
    backlog = unpack_wire(reply.content, ErasureBacklog)
    pending = {device: n for device, n, _, _ in backlog.devices}
    assert backlog.tombstones == 5 and pending == {"kiosk-a": 5, "kiosk-b": 1}


def test_the_signature_covers_the_feeds_query(storage, client):
    creds = _creds(storage)
    headers = sign_request(creds, "GET", f"{TOMBSTONES_PATH}?since=0", b"", now_ms())
    assert client.get(f"{TOMBSTONES_PATH}?since=5", headers=headers).status_code == 401
    assert client.get(f"{TOMBSTONES_PATH}?since=0", headers=headers).status_code == 200


def test_more_than_the_cap_of_copies_of_one_member_is_refused_not_dropped(storage, client):
    creds = _creds(storage)
    held = [a_copy() for _ in range(MAX_COPIES)]
    for start in range(0, MAX_COPIES, 50):
        for copy in held[start : start + 50]:  # one copy per member per request
            assert _upload(client, creds, copy) == [("stored", 0)]
    assert _upload(client, creds, a_copy()) == [("too_many_copies", 0)]
    assert _upload(client, creds, a_copy(supersedes=[held[0].copy_id])) == [("stored", 0)]
    assert len(_copies(client, creds).copies) == MAX_COPIES
    assert storage.refusals("kiosk-1") == {"kiosk-1": {"profile_too_many_copies": 1}}


def _raw(device: str, copies: list) -> bytes:
    return msgpack.packb({"v": 1, "device": device, "copies": copies}, use_bin_type=True)


def test_hostile_member_requests_get_a_4xx_and_change_nothing(storage, client):
    creds = _creds(storage)
    other = _creds(storage, "kiosk-2")
    good = [ALICE, copy_id(), 0, sealed(), []]
    cid = copy_id()
    cases = [
        (PROFILES_PATH, b"\xc1", 400),
        (PROFILES_PATH, _raw("kiosk-2", [good]), 400),  # a device other than the signer
        (PROFILES_PATH, _raw("kiosk-1", []), 400),
        (PROFILES_PATH, _raw("kiosk-1", [["2990001234566", copy_id(), 0, sealed(), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, "x" * 32, 0, sealed(), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, copy_id(), -1, sealed(), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, copy_id(), 0, b"short", []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, copy_id(), 0, sealed(300_000), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, copy_id(), 0, sealed(), [copy_id()] * 65]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[ALICE, cid, 0, sealed(), []], [BOB, cid, 0, sealed(), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [good, [ALICE, copy_id(), 0, sealed(), []]]), 400),
        (PROFILES_PATH, _raw("kiosk-1", [good] * 51), 400),
        (PROFILES_PATH, _raw("kiosk-1", [[*good, "extra"]]), 400),
        (PROFILES_PATH, b"\x00" * (5 << 20), 413),
        (TOMBSTONES_PATH, msgpack.packb({"v": 1, "device": "kiosk-1", "tombstones": []}), 400),
        (TOMBSTONES_PATH, msgpack.packb({"v": 1, "device": "kiosk-1", "tombstones": [[ALICE, 0]]}), 400),
        (TOMBSTONES_PATH, msgpack.packb({"v": 1, "device": "kiosk-1", "tombstones": [[ALICE, now_ms() + 2 * DAY_MS]]}), 400),
        (TOMBSTONES_PATH, msgpack.packb({"v": 1, "device": "kiosk-1", "tombstones": [["zz", 5]]}), 400),
    ]  # fmt: skip
    for path, body, status in cases:
        reply = _call(client, creds, "POST", path, body)
        assert reply.status_code == status, (path, body[:80], reply.content)
    for path in (f"{PROFILES_PATH}/{'A' * 64}", f"{PROFILES_PATH}/x", f"{TOMBSTONES_PATH}?since=-1",
                 f"{TOMBSTONES_PATH}?since=1&limit=abc", f"{TOMBSTONES_PATH}?since=%C2%B2"):  # fmt: skip
        assert _call(client, creds, "GET", path).status_code in (400, 404), path
    # Unsigned, or signed by nobody the collector knows: 401, nothing read or written.
    assert client.get(f"{PROFILES_PATH}/{ALICE}").status_code == 401
    stranger = Credentials("kiosk-9", b"k" * 32)
    assert (
        _call(client, stranger, "POST", PROFILES_PATH, _raw("kiosk-9", [good])).status_code == 401
    )
    # A copy id another member's copy already uses is a conflict, never an overwrite.
    taken = a_copy(BOB)
    _upload(client, other, taken)
    assert _upload(client, creds, a_copy(cid=taken.copy_id)) == [("copy_conflict", 0)]
    assert _upload(client, creds, a_copy(epoch=now_ms() + 2 * DAY_MS)) == [("bad_epoch", 0)]
    assert _copies(client, creds).copies == [] and _feed(client, creds).tombstones == []
    assert storage.member_stats()["copies"] == 1


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("upload"), st.integers(0, 2), st.integers(0, 3)),
            st.tuples(st.just("look"), st.integers(0, 2)),
            st.tuples(st.just("erase"), st.integers(0, 2), st.integers(1, 40)),
        ),
        max_size=40,
    )
)
def test_any_interleaving_keeps_every_copy_nobody_merged_and_none_an_erasure_covers(ops):
    storage = SqliteStorage(":memory:")
    storage.add_device("d")
    seen: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}  # what each device merged
    live: set[str] = set()  # copies nobody has merged (the collector must keep them all)
    epochs: dict[str, int] = {}
    known_erasure = [0, 0, 0]
    erased = 0
    for clock, op in enumerate(ops, 1):
        if op[0] == "look":  # a device fetches and merges everything held
            held = storage.member_copies(ALICE)
            seen[op[1]] = {c[0] for c in held.copies}
            known_erasure[op[1]] = held.erased_ms
        elif op[0] == "upload":
            device = op[1]
            epoch = known_erasure[device]
            copy = SealedCopy(ALICE, copy_id(), epoch, sealed(), tuple(sorted(seen[device])))
            [outcome] = storage.store_copies("d", [copy], now=10**12)
            if epoch < erased:
                assert outcome.outcome == "erased" and outcome.erased_ms == erased
                known_erasure[device] = erased
                continue
            assert outcome.outcome == "stored"
            live = (live - seen[device]) | {copy.copy_id}
            epochs[copy.copy_id] = epoch
            seen[device] = {copy.copy_id}
        else:
            erased = max(erased, op[2] * 100 + clock)
            storage.add_tombstones("d", [Tombstone(ALICE, erased)], now=10**12)
            live = {c for c in live if epochs[c] >= erased}
        held = {c[0] for c in storage.member_copies(ALICE).copies}
        assert held == live
        assert all(epochs[c] >= erased for c in held)


def _hammer(urls: list[str], devices: list[Credentials], rounds: int) -> dict:
    """Devices upload and merge copies of a few members through every collector at once,
    while one device erases members; returns what each device learned."""
    members = [f"{n:064x}" for n in range(1, 5)]
    lock = threading.Lock()
    outcome: dict = {"stored": {}, "superseded": set(), "erasures": {}, "errors": [], "pulled": {}}
    done = threading.Event()

    def reader(creds: Credentials) -> None:
        """A device pulling the feed while the others write: it must see every erasure."""
        transport = HttpTransport(urls[-1], timeout_s=30)
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                path = f"{TOMBSTONES_PATH}?since={cursor}"
                headers = sign_request(creds, "GET", path, b"", now_ms())
                page = unpack_wire(transport.request("GET", path, b"", headers).body, TombstonePage)
                for tombstone, _ in page.tombstones:
                    pulled = outcome["pulled"]
                    pulled[tombstone.blinded_id] = max(
                        tombstone.erased_ms, pulled.get(tombstone.blinded_id, 0)
                    )
                cursor = page.next
                if finished and not page.more:
                    return
        except Exception as exc:
            outcome["errors"].append(f"reader: {exc!r}")

    def device(index: int, creds: Credentials) -> None:
        transport = HttpTransport(urls[index % len(urls)], timeout_s=30)
        try:
            for n in range(rounds):
                member = members[(index + n) % len(members)]
                path = f"{PROFILES_PATH}/{member}"
                reply = transport.request(
                    "GET", path, b"", sign_request(creds, "GET", path, b"", now_ms())
                )
                held = unpack_wire(reply.body, MemberCopies)
                if index < 2 and n % 3 == 2:
                    stamp = now_ms()
                    body = pack_wire(
                        TombstoneUpload(1, creds.device_id, [Tombstone(member, stamp)])
                    )
                    headers = sign_request(creds, "POST", TOMBSTONES_PATH, body, now_ms())
                    assert transport.request("POST", TOMBSTONES_PATH, body, headers).status == 200
                    with lock:
                        outcome["erasures"][member] = max(stamp, outcome["erasures"].get(member, 0))
                    continue
                merged = tuple(c[0] for c in held.copies)
                copy = SealedCopy(member, copy_id(), held.erased_ms, sealed(), merged)
                body = pack_wire(ProfileUpload(1, creds.device_id, [copy]))
                headers = sign_request(creds, "POST", PROFILES_PATH, body, now_ms())
                reply = transport.request("POST", PROFILES_PATH, body, headers)
                [result] = unpack_wire(reply.body, ProfileAnswer).outcomes
                with lock:
                    if result.outcome == "stored":
                        outcome["stored"][copy.copy_id] = (member, held.erased_ms)
                        outcome["superseded"].update(merged)
        except Exception as exc:  # reported below, with the thread's name
            outcome["errors"].append(f"device {index}: {exc!r}")

    threads = [threading.Thread(target=device, args=(i, c)) for i, c in enumerate(devices[:-1])]
    pulling = threading.Thread(target=reader, args=(devices[-1],))
    for thread in [*threads, pulling]:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    pulling.join(timeout=300)
    return outcome


def _check_fleet(storage, outcome: dict) -> None:
    assert not outcome["errors"], outcome["errors"]
    held = {}
    for member in {m for m, _ in outcome["stored"].values()}:
        copies = storage.member_copies(member)
        for cid, epoch, _ in copies.copies:
            held[cid] = (member, epoch)
            assert epoch >= copies.erased_ms, "a copy older than its member's erasure survived"
    for cid, (member, epoch) in outcome["stored"].items():
        erased = storage.member_copies(member).erased_ms
        if cid not in outcome["superseded"] and epoch >= erased:
            assert cid in held, "a copy nobody merged was lost"
    page = storage.tombstones_since("observer", 0)
    seqs = [seq for _, seq in page.tombstones]
    assert seqs == sorted(set(seqs)), "the erasure feed repeats or goes back"
    final = {t.blinded_id: t.erased_ms for t, _ in page.tombstones}
    assert final == {m: storage.member_copies(m).erased_ms for m in outcome["erasures"]}
    assert final == outcome["erasures"]
    # A device that pulled the feed with its cursor all along missed nothing.
    assert outcome["pulled"] == final, "a reader of the feed skipped an erasure"


@pytest.mark.slow
def test_two_collector_processes_on_one_sqlite_file_lose_no_copy(tmp_path: Path):
    backend = backend_args(tmp_path, None)
    devices = [register(backend, f"kiosk-{n}") for n in range(5)]
    with collector(backend, "--rate", "0") as one, collector(backend, "--rate", "0") as two:
        outcome = _hammer([one, two], devices, rounds=12)
    storage = open_backend(backend)
    _check_fleet(storage, outcome)


@pytest.mark.postgres
def test_two_collector_processes_on_one_postgresql_lose_no_copy_and_keep_the_feed_in_order(
    tmp_path: Path,
):
    for dsn in fresh_pg_database():
        backend = backend_args(tmp_path, dsn)
        devices = [register(backend, f"kiosk-{n}") for n in range(7)]
        with collector(backend, "--rate", "0") as one, collector(backend, "--rate", "0") as two:
            start = time.monotonic()
            outcome = _hammer([one, two], devices, rounds=15)
            assert time.monotonic() - start < 300
        storage = open_backend(backend)
        _check_fleet(storage, outcome)
        storage.close()


def test_the_erasures_command_shows_what_each_device_has_yet_to_pull(tmp_path: Path):
    import json
    import subprocess

    from sync_helpers import upstream_cmd

    db = str(tmp_path / "c.db")
    storage = SqliteStorage(db)
    storage.add_device("kiosk-a")
    storage.add_device("kiosk-b")
    storage.store_copies("kiosk-a", [a_copy(BOB)])
    storage.add_tombstones("kiosk-a", [Tombstone(ALICE, 5_000)])
    storage.tombstones_since("kiosk-b", 1)
    storage.close()
    out = subprocess.run(
        upstream_cmd("erasures", "--db", db, "--json"), capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    assert {d["device_id"]: d["pending"] for d in data["devices"]} == {"kiosk-a": 1, "kiosk-b": 0}
    assert (data["tombstones"], data["copies"], data["members_with_copies"]) == (1, 1, 1)
    assert ALICE not in out.stdout and BOB not in out.stdout, "no member is named"
    bad = subprocess.run(
        upstream_cmd("erasures", "--db", str(tmp_path)), capture_output=True, text=True
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
