"""End to end: devices -> flaky network -> a real collector process; totals stay exact.

Every test runs against the SQLite collector and, marked ``postgres``, the PostgreSQL one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_helpers import (
    FaultProxy,
    backend_args,
    collector,
    fresh_pg_database,
    open_backend,
    random_faults,
    register,
)

import shelfwise
from shelfwise.sync.outbox import outbox_status, released_totals, summarise
from shelfwise.sync.protocol import Credentials
from shelfwise.sync.upload import upload

ITEMS = [{"item_id": f"i{n}", "name": f"Item {n}", "price": 1.0} for n in range(12)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield backend_args(tmp_path, None)
    else:
        yield from fresh_pg_database_as_args(tmp_path)


def fresh_pg_database_as_args(tmp_path: Path) -> Iterator[list[str]]:
    for dsn in fresh_pg_database():
        yield backend_args(tmp_path, dsn)


def _storage(backend: list[str]):
    return open_backend(backend)


def _shop(sw: shelfwise.Shelfwise, rng: random.Random, sessions: int) -> None:
    for n in range(sessions):
        shopper = (
            sw.member(f"L-{n % 5}", consents={"sync": n % 3 != 0}) if n % 2 else sw.start_session()
        )
        for _ in range(rng.randint(1, 4)):
            shopper.view(f"i{rng.randrange(12)}")
        for _ in range(rng.randint(1, 3)):
            shopper.add_to_cart(f"i{rng.randrange(12)}", quantity=rng.randint(1, 3))
        shopper.checkout()
        shopper.track("offer_shown", payload={"offer_id": f"o{rng.randrange(3)}"})
        shopper.end()


def _raw_counts(sw: shelfwise.Shelfwise) -> dict[str, int]:
    """What happened on the device, counted straight from the events (consented data only)."""
    rows = sw.store.query(
        "SELECT e.type, count(*) AS n FROM events e LEFT JOIN shoppers s USING (shopper_id) "
        "LEFT JOIN consents c ON c.shopper_id = e.shopper_id AND c.purpose = 'sync' "
        "WHERE s.kind IS NOT 'member' OR c.granted = 1 GROUP BY e.type"
    )
    return {r["type"]: r["n"] for r in rows}


def _drain(sw, url, creds, sleeps, rounds=40):
    for _ in range(rounds):
        report = upload(sw.store, url, creds, sleep=sleeps.append, timeout_s=1.0)
        if report.complete:
            return report
    raise AssertionError(f"outbox did not drain: {outbox_status(sw.store)}")


@pytest.mark.slow
def test_totals_upstream_equal_device_totals_through_a_faulty_network(tmp_path, backend):
    weights = {
        "ok": 4,
        "500": 1,
        "503": 1,
        "429": 1,
        "drop": 1,
        "dup": 1,
        "processed_then_500": 1,
        "timeout": 0.3,
    }
    devices = []
    for d in range(3):
        creds = register(backend, f"kiosk-{d}", region="north", stores=(f"store-{d % 2}",))
        sw = shelfwise.open(tmp_path / f"device-{d}.db", store_id=f"store-{d % 2}")
        sw.catalog.import_rows(ITEMS)
        devices.append((sw, creds))
    with collector(backend) as url:
        port = int(url.rsplit(":", 1)[1])
        with FaultProxy(port, random_faults(11, weights)) as proxy:
            for round_ in range(3):  # shop, summarise, sync; again and again
                for d, (sw, creds) in enumerate(devices):
                    _shop(sw, random.Random(100 * round_ + d), sessions=12)
                    summarise(sw.store, device_id=creds.device_id, k=1, include_open_hour=True)
                    sleeps: list[float] = []
                    _drain(sw, proxy.url, creds, sleeps)
        assert proxy.seen["drop"] and proxy.seen["dup"] and proxy.seen["processed_then_500"]
    storage = _storage(backend)
    fleet: dict = {}
    for sw, creds in devices:
        device_released = released_totals(sw.store)
        assert storage.totals(creds.device_id) == device_released
        for key, (n, q) in device_released.items():
            fleet[key] = (fleet.get(key, (0, 0))[0] + n, fleet.get(key, (0, 0))[1] + q)
        # and with k=1 and no noise, the release is exactly what happened on the device
        raw = _raw_counts(sw)
        for metric in ("view", "cart_add", "purchase", "offer_shown"):
            assert sum(n for k, (n, _) in device_released.items() if k[0] == metric) == raw[metric]
        sw.close()
    assert storage.totals() == fleet
    storage.close()


def test_retry_after_is_honoured_and_duplicates_do_not_double_count(tmp_path, backend):
    creds = register(backend, "kiosk-r")
    script = iter(["503", "429", "dup", "processed_then_500", "ok", "ok", "ok"])
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        _shop(sw, random.Random(1), sessions=5)
        summarise(sw.store, device_id="kiosk-r", k=1, include_open_hour=True)
        with (
            collector(backend) as url,
            FaultProxy(int(url.rsplit(":", 1)[1]), lambda: next(script, "ok")) as proxy,
        ):
            sleeps: list[float] = []
            report = _drain(sw, proxy.url, creds, sleeps)
        assert sleeps[:2] == [7.0, 3.0]  # the proxy's Retry-After values, not our jitter
        assert report.complete
        storage = _storage(backend)
        assert storage.totals("kiosk-r") == released_totals(sw.store)
        storage.close()


def test_a_release_upstream_refuses_is_quarantined_and_the_rest_still_arrive(tmp_path, backend):
    creds = register(backend, "kiosk-q")
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        for hour in range(4):  # four releases
            _shop(sw, random.Random(hour), sessions=3)
            summarise(sw.store, device_id="kiosk-q", k=1, include_open_hour=True)
        queued = sw.sync_status().queued  # 4 hourly releases and the day's segment counts
        bad = sw.store.query("SELECT id FROM sync_outbox ORDER BY id LIMIT 1 OFFSET 2")[0]["id"]
        with sw.store.write() as db:  # a corrupted row: the collector must say 400
            db.execute("UPDATE sync_outbox SET body = x'81a3626164c3' WHERE id = ?", [bad])
        with collector(backend) as url:
            report = upload(sw.store, url, creds, sleep=lambda s: None)
        assert report.quarantined == 1 and report.remaining == 0
        status = outbox_status(sw.store)
        assert status.quarantined == 1 and status.queued == 0
        storage = _storage(backend)
        assert storage.stats()["releases"] == queued - 1
        storage.close()


def test_a_batch_too_large_is_split_until_it_fits(tmp_path, backend):
    creds = register(backend, "kiosk-s")
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        for hour in range(6):
            _shop(sw, random.Random(hour), sessions=3)
            summarise(sw.store, device_id="kiosk-s", k=1, include_open_hour=True)
        biggest = max(r["size"] for r in sw.store.query("SELECT size FROM sync_outbox"))
        queued = sw.sync_status().queued
        with collector(backend, "--max-body", str(biggest + 200)) as url:
            report = upload(sw.store, url, creds, sleep=lambda s: None)
        assert report.complete and report.acked == queued and report.requests > 1
        storage = _storage(backend)
        assert storage.totals("kiosk-s") == released_totals(sw.store)
        storage.close()


def test_a_kiosk_with_a_wrong_clock_re_authenticates_with_the_collectors_time(tmp_path, backend):
    creds = register(backend, "kiosk-c")
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        _shop(sw, random.Random(3), sessions=3)
        summarise(sw.store, device_id="kiosk-c", k=1, include_open_hour=True)
        two_hours_fast = lambda: shelfwise.clock.now_ms() + 7_200_000  # noqa: E731
        with collector(backend) as url:
            report = upload(sw.store, url, creds, clock=two_hours_fast, sleep=lambda s: None)
        assert report.complete


def test_wrong_credentials_stop_with_an_error_and_keep_the_outbox(tmp_path, backend):
    register(backend, "kiosk-w")
    wrong = Credentials("kiosk-w", b"not-the-secret-at-all-000000000")
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        _shop(sw, random.Random(3), sessions=3)
        releases = summarise(sw.store, device_id="kiosk-w", k=1, include_open_hour=True)
        assert len(releases) == 2  # the hour's events and the day's segment counts
        with collector(backend) as url:
            report = upload(sw.store, url, wrong, sleep=lambda s: None)
        assert report.error and "credentials" in report.error
        status = sw.sync_status()
        assert status.queued == len(releases) and status.last_error


def test_an_unreachable_upstream_keeps_everything_queued_and_says_so(tmp_path):
    creds = Credentials("kiosk-x", b"0" * 32)
    with shelfwise.open(tmp_path / "d.db", store_id="s1") as sw:
        sw.catalog.import_rows(ITEMS)
        _shop(sw, random.Random(3), sessions=3)
        sleeps: list[float] = []
        releases = summarise(sw.store, device_id="kiosk-x", k=1, include_open_hour=True)
        assert len(releases) == 2  # the hour's events and the day's segment counts
        report = upload(sw.store, "http://127.0.0.1:9", creds, deadline_s=100, sleep=sleeps.append)
        assert report.remaining == len(releases) and "network" in (report.error or "")
        assert len(sleeps) >= 3 and all(s <= 300 for s in sleeps)
        status = sw.sync_status()
        assert status.queued == len(releases) and status.queued_bytes > 0
        assert status.last_success_ms is None
