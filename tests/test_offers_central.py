"""The collector as the chain's authority, over real HTTP. Single-use codes it issued: claimed by
the first device that asks, then that device's alone (offline too, and after a void); never
twice across the fleet, never without the network, never stored in clear. Members' uses of
per-customer-limited offers: counted centrally when the device is online, so the limit holds
across devices whose profiles never met; offline, the offer's policy. Runs on SQLite and
(marked) PostgreSQL."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CATALOG
from sync_helpers import serve_in_thread

import shelfwise
from shelfwise.cli import cli
from shelfwise.offers import orders
from shelfwise.offers.codes import new_code
from shelfwise.sync.leasing import CollectorAuthority
from shelfwise.sync.protocol import Tombstone
from shelfwise.upstream import create_app
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


@pytest.fixture
def url(storage) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serve_in_thread(create_app(storage, rate_per_s=0)) as live:
        yield f"http://127.0.0.1:{live.port}"


SECRET = b"the-chain-secret-of-this-retailer"
ONCE = {
    "offer_id": "once",
    "title": "0.50 off, once per member",
    "reward": {"type": "amount", "value": 0.5},
    "limits": {"per_customer": 1, "offline": "deny"},
}


def kiosk(tmp_path: Path, storage, url: str, name: str, *offers: dict) -> shelfwise.Shelfwise:  # type: ignore[no-untyped-def]
    sw = shelfwise.open(tmp_path / f"{name}.db", store_id=name, chain_secret=SECRET)
    sw.catalog.import_rows(CATALOG)
    for offer in offers or (WELCOME, BIG, ONCE):
        sw.offers.define(offer)
    creds = shelfwise.Credentials(name, storage.add_device(name, stores=(name,)))
    sw.offers.use_collector(CollectorAuthority(url, creds, blind=sw.fleet.blinded_id))
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
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
) -> None:
    (code,) = storage.issue_codes("welcome", 1)
    a = kiosk(tmp_path, storage, url, "kiosk-a")
    creds = shelfwise.Credentials("kiosk-a", b"x" * 32)
    a.offers.use_collector(CollectorAuthority("http://127.0.0.1:9", creds, timeout_s=1))
    with pytest.raises(shelfwise.OfferRejected) as caught:
        order(a, "a-1", code)
    assert caught.value.reason == "code_unconfirmed"
    assert a.store.query("SELECT count(*) AS n FROM offer_codes")[0]["n"] == 0
    assert storage.code_stats()["welcome"]["available"] == 1


def test_a_code_whose_redemption_failed_is_given_back_for_another_device(
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
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
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
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


def once(sw: shelfwise.Shelfwise, order_id: str, member: str = "L-7") -> list[str]:
    """Redeem the once-per-member offer; the offers applied, else the reasons."""
    priced = sw.member(member).redeem_order(order_id, cart=["milk"], offers=["once"]).price
    return [a.offer_id for a in priced.applied] or [x.reason for x in priced.left_out]


def test_a_once_per_member_offer_holds_across_online_devices_whose_profiles_never_met(
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
) -> None:
    a, b = kiosk(tmp_path, storage, url, "kiosk-a"), kiosk(tmp_path, storage, url, "kiosk-b")
    assert once(a, "a-1") == ["once"]
    assert once(a, "a-1") == ["once"]  # the till's retry of the same order counts once
    assert once(b, "b-1") == ["customer_limit"]
    assert once(b, "b-2", member="L-8") == ["once"]  # another member is another count
    a.offers.void_order("a-1")  # the refund gives the use back, centrally too
    assert once(b, "b-3") == ["once"]
    with pytest.raises(shelfwise.OfferRejected) as caught:
        a.member("L-7").redeem("once", cart_total=5)  # one offer at a time: the same check
    assert caught.value.reason == "customer_limit"


# Two once-per-member offers an order cannot combine; offline, both trust the device.
BEST = {
    "offer_id": "best",
    "title": "1.00 off, once per member, alone",
    "reward": {"type": "amount", "value": 1},
    "limits": {"per_customer": 1, "offline": "allow"},
    "stacking": {"exclusive": True},
}
SECOND = {**ONCE, "offer_id": "second", "limits": {"per_customer": 1, "offline": "allow"}}


def test_the_central_check_prices_again_only_when_the_collectors_answers_change_the_order(
    tmp_path: Path,
    storage,  # type: ignore[no-untyped-def]
    url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = []
    real_price = orders.price

    def counted_price(*args, **kwargs):  # type: ignore[no-untyped-def]
        passes.append(1)
        return real_price(*args, **kwargs)

    monkeypatch.setattr(orders, "price", counted_price)
    a, b = (kiosk(tmp_path, storage, url, name, BEST, SECOND) for name in ("kiosk-a", "kiosk-b"))

    def redeem(sw: shelfwise.Shelfwise, order_id: str) -> tuple[list[str], int]:
        passes.clear()
        priced = sw.member("L-7").redeem_order(order_id, cart=["milk"]).price
        return [x.offer_id for x in priced.applied], len(passes)

    # The collector grants what the order applies: the price stands (one pass for the check,
    # one inside the redemption's transaction).
    assert redeem(a, "a-1") == (["best"], 2)
    # "best" was used on kiosk-a: refused centrally, it makes room for "second", which is
    # checked in a second round before it applies.
    assert redeem(b, "b-1") == (["second"], 3)
    # Back on kiosk-a: "second" was used on kiosk-b, so nothing applies.
    assert redeem(a, "a-2") == ([], 3)


def test_offline_the_offers_own_policy_decides(tmp_path: Path, storage, url) -> None:  # type: ignore[no-untyped-def]
    a = kiosk(tmp_path, storage, url, "kiosk-a")
    offline = CollectorAuthority(
        "http://127.0.0.1:9", shelfwise.Credentials("kiosk-a", b"x" * 32), timeout_s=1,
        blind=a.fleet.blinded_id,
    )  # fmt: skip
    a.offers.use_collector(offline)
    assert once(a, "a-1") == ["customer_unconfirmed"]  # offline: deny


def test_two_devices_asking_for_a_members_last_use_at_once_get_it_once(storage) -> None:  # type: ignore[no-untyped-def]
    for n in range(4):
        storage.add_device(f"kiosk-{n}")
    granted = []
    lock = threading.Lock()

    def ask(n: int) -> None:
        status, _ = storage.claim_use(f"kiosk-{n}", "b" * 64, "once", 2, f"{n:064x}")
        with lock:
            granted.append(status)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(granted) == ["granted", "granted", "limit", "limit"]


def test_an_erasure_takes_the_members_central_uses_with_it(storage) -> None:  # type: ignore[no-untyped-def]
    storage.add_device("kiosk-1")
    assert storage.claim_use("kiosk-1", "c" * 64, "once", 1, "1" * 64, now=1_000)[0] == "granted"
    storage.add_tombstones("kiosk-1", [Tombstone("c" * 64, 2_000)], now=3_000)
    assert storage.claim_use("kiosk-1", "c" * 64, "once", 1, "2" * 64, now=4_000) == (
        "granted",
        0,
    )


def test_the_till_cli_redeems_a_central_code_through_the_collector(
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
) -> None:
    (code,) = storage.issue_codes("welcome", 1)
    db = tmp_path / "till.db"
    with shelfwise.open(db) as sw:
        sw.catalog.import_rows(CATALOG)
        sw.offers.define(WELCOME)
    key = tmp_path / "till.key"
    secret = storage.add_device("till-1", stores=("s",))
    key.write_text(json.dumps({"device_id": "till-1", "secret": secret.hex()}))
    base = ["orders", "redeem", "--db", str(db), "--cart", "milk", "--codes", code, "--json"]
    run = CliRunner().invoke
    alone = run(cli, [*base, "--order-id", "t-1"])  # no collector: the till cannot know it
    assert alone.exit_code == 0
    assert [x["reason"] for x in json.loads(alone.stdout)["price"]["left_out"]] == ["code_unknown"]
    online = run(cli, [*base, "--order-id", "t-2", "--collector", url, "--key-file", str(key)])
    assert online.exit_code == 0, online.stderr
    assert [a["offer_id"] for a in json.loads(online.stdout)["price"]["applied"]] == ["welcome"]
    half = run(cli, [*base, "--order-id", "t-3", "--collector", url])
    assert half.exit_code == 2 and half.stderr.startswith("error:")


def test_pricing_an_order_shows_what_a_central_code_would_do_and_claims_nothing(
    tmp_path: Path,
    storage,
    url,  # type: ignore[no-untyped-def]
) -> None:
    first, second = storage.issue_codes("welcome", 2)
    a, b = kiosk(tmp_path, storage, url, "kiosk-a"), kiosk(tmp_path, storage, url, "kiosk-b")
    priced = a.member("L-1").price_order("a-1", cart=["milk"], codes=[first])
    assert [(x.offer_id, x.code) for x in priced.applied] == [("welcome", first)]
    assert storage.code_stats()["welcome"] == {"available": 2, "claimed": 0}
    assert a.store.query("SELECT count(*) AS n FROM offer_codes")[0]["n"] == 0  # rolled back
    order(b, "b-1", second)
    used = a.member("L-1").price_order("a-2", cart=["milk"], codes=[second])
    assert [x.reason for x in used.left_out] == ["code_used"]


EARN = {"offer_id": "earn", "title": "1 point per 1.00", "reward": {"type": "points", "points": 1}}
BURN_ONCE = {
    "offer_id": "burn",
    "title": "50 points for 1.00 off, once per member",
    "reward": {"type": "amount", "value": 1},
    "points_cost": 50,
    "limits": {"per_customer": 1, "offline": "deny"},
}


def test_a_once_per_member_points_burn_is_counted_centrally_as_the_till_prices_it(
    tmp_path: Path,
    storage,
    url: str,  # type: ignore[no-untyped-def]
) -> None:
    # A points burn limited per member is counted centrally like any other such offer: the
    # member's points on each device pay for it, the collector says it was used.
    a, b = (kiosk(tmp_path, storage, url, name, EARN, BURN_ONCE) for name in ("kiosk-a", "kiosk-b"))
    for sw, device in ((a, "a"), (b, "b")):
        sw.member("L-7").redeem_order(f"{device}-0", cart=["grill"])  # 89 points here

    def burned(sw: shelfwise.Shelfwise, order_id: str) -> list[str]:
        priced = sw.member("L-7").redeem_order(order_id, cart=["milk"], offers=["burn"]).price
        return [a.offer_id for a in priced.applied if a.offer_id == "burn"] or [
            x.reason for x in priced.left_out if x.offer_id == "burn"
        ]

    assert burned(a, "a-1") == ["burn"]
    assert burned(b, "b-1") == ["customer_limit"]
