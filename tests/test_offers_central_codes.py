"""Single-use codes the collector issued: claimed by the first device that asks over real HTTP,
then that device's alone (offline too, and after a void); never twice across the fleet, never
without the network, never stored in clear. Runs on SQLite and (marked) PostgreSQL."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CATALOG
from sync_helpers import fresh_pg_database, serve_in_thread

import shelfwise
from shelfwise.offers.codes import new_code
from shelfwise.sync.leasing import CodeAuthority
from shelfwise.upstream import SqliteStorage, create_app, open_storage
from shelfwise.upstream.__main__ import main as upstream_main

WELCOME = {
    "offer_id": "welcome",
    "title": "1.00 off",
    "reward": {"type": "amount", "value": 1},
    "codes": "unique",
}
BIG = {
    "offer_id": "big",
    "title": "5.00 off over 50.00",
    "reward": {"type": "amount", "value": 5},
    "targeting": {"cart_total_min": 50},
    "codes": "unique",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    if request.param == "sqlite":
        opened = SqliteStorage(str(tmp_path / "collector.db"))
        yield opened
        opened.close()
    else:
        for dsn in fresh_pg_database():
            opened = open_storage(pg=dsn, key_file=tmp_path / "server.key")
            yield opened
            opened.close()


@pytest.fixture
def url(storage) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serve_in_thread(create_app(storage, rate_per_s=0)) as live:
        yield f"http://127.0.0.1:{live.port}"


def kiosk(tmp_path: Path, storage, url: str, name: str) -> shelfwise.Shelfwise:  # type: ignore[no-untyped-def]
    sw = shelfwise.open(tmp_path / f"{name}.db", store_id=name)
    sw.catalog.import_rows(CATALOG)
    sw.offers.define(WELCOME)
    sw.offers.define(BIG)
    creds = shelfwise.Credentials(name, storage.add_device(name, stores=(name,)))
    sw.offers.use_code_authority(CodeAuthority(url, creds))
    return sw


def order(sw: shelfwise.Shelfwise, order_id: str, code: str) -> shelfwise.Order:
    return sw.member("L-1").redeem_order(order_id, cart=["milk"], codes=[code])


def test_a_central_code_is_redeemed_once_across_the_fleet(tmp_path: Path, storage, url) -> None:  # type: ignore[no-untyped-def]
    (code,) = storage.issue_codes("welcome", 1)
    a, b = kiosk(tmp_path, storage, url, "kiosk-a"), kiosk(tmp_path, storage, url, "kiosk-b")
    first = order(a, "a-1", code)
    assert [(x.offer_id, x.amount) for x in first.price.applied] == [("welcome", 1.0)]
    with pytest.raises(shelfwise.OfferRejected) as caught:
        order(b, "b-1", code)
    assert caught.value.reason == "code_used"
    assert b.offers.stats("welcome")["redemptions"] == 0
    a.offers.void_order("a-1")  # the code comes back where it was redeemed, and only there
    with pytest.raises(shelfwise.OfferRejected):
        order(b, "b-2", code)
    assert [x.offer_id for x in order(a, "a-2", code).price.applied] == ["welcome"]
    assert storage.code_stats() == {"welcome": {"available": 0, "claimed": 1}}


def test_a_device_that_cannot_reach_the_collector_refuses_a_central_code_and_changes_nothing(
    tmp_path: Path, storage, url  # type: ignore[no-untyped-def]
) -> None:
    (code,) = storage.issue_codes("welcome", 1)
    a = kiosk(tmp_path, storage, url, "kiosk-a")
    creds = shelfwise.Credentials("kiosk-a", b"x" * 32)
    a.offers.use_code_authority(CodeAuthority("http://127.0.0.1:9", creds, timeout_s=1))
    with pytest.raises(shelfwise.OfferRejected) as caught:
        order(a, "a-1", code)
    assert caught.value.reason == "code_unconfirmed"
    assert a.store.query("SELECT count(*) AS n FROM offer_codes")[0]["n"] == 0
    assert storage.code_stats()["welcome"]["available"] == 1


def test_a_code_whose_redemption_failed_is_given_back_for_another_device(
    tmp_path: Path, storage, url  # type: ignore[no-untyped-def]
) -> None:
    (code,) = storage.issue_codes("big", 1)
    a, b = kiosk(tmp_path, storage, url, "kiosk-a"), kiosk(tmp_path, storage, url, "kiosk-b")
    priced = order(a, "a-1", code).price  # a 1.19 cart: the 5.00-over-50.00 offer is left out
    assert [x.reason for x in priced.left_out if x.offer_id == "big"] == ["cart_total_below"]
    assert storage.code_stats()["big"] == {"available": 1, "claimed": 0}
    assert a.store.query("SELECT count(*) AS n FROM offer_codes")[0]["n"] == 0
    big_cart = b.member("L-2").redeem_order("b-1", cart=[("grill", 1)], codes=[code])
    assert [x.offer_id for x in big_cart.price.applied] == ["big"]


def test_an_unknown_code_is_refused_and_a_mistyped_one_never_reaches_the_collector(
    tmp_path: Path, storage, url  # type: ignore[no-untyped-def]
) -> None:
    (code,) = storage.issue_codes("welcome", 1)
    a = kiosk(tmp_path, storage, url, "kiosk-a")
    other = new_code()  # well formed, never issued
    with pytest.raises(shelfwise.OfferRejected) as caught:
        order(a, "a-1", other)
    assert caught.value.reason == "code_unknown"
    typo = code[:-1] + ("2" if code[-1] != "2" else "3")
    assert [x.reason for x in order(a, "a-2", typo).price.left_out] == ["code_invalid"]
    assert storage.refusals("kiosk-a") == {"kiosk-a": {"code_unknown": 1}}


def test_devices_racing_for_one_code_get_it_exactly_once(storage) -> None:  # type: ignore[no-untyped-def]
    codes = storage.issue_codes("welcome", 5)
    for n in range(4):
        storage.add_device(f"kiosk-{n}")
    won: list[tuple[int, str]] = []
    lock = threading.Lock()

    def race(n: int) -> None:
        for code in codes:
            status, _ = storage.claim_code(f"kiosk-{n}", code, f"claim-{n}")
            if status == "claimed":
                with lock:
                    won.append((n, code))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for _, code in won) == sorted(codes)


def test_issued_codes_are_written_once_0600_and_kept_only_hashed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = str(tmp_path / "collector.db"), tmp_path / "codes.txt"
    argv = ["issue-codes", "--db", db, "--offer", "welcome", "--count", "3", "--out", str(out)]
    assert upstream_main(argv) == 0
    codes = out.read_text().split()
    assert len(codes) == 3 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert upstream_main(argv) == 2  # never over an existing file
    assert out.read_text().split() == codes
    for path in tmp_path.glob("collector.db*"):
        assert not any(code.encode() in path.read_bytes() for code in codes)
    capsys.readouterr()
    assert upstream_main(["codes", "--db", db, "--json"]) == 0
    assert '"available": 3' in capsys.readouterr().out
