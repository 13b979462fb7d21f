"""No double spending: many checkouts (threads, then processes) race for one single-use code."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

import shelfwise

OFFER = {
    "offer_id": "once",
    "title": "5.00 off",
    "reward": {"type": "amount", "value": 5},
    "codes": "unique",
}


def _prepare(path: Path, members: int) -> str:
    with shelfwise.open(path) as sw:
        sw.offers.define(OFFER)
        for i in range(members):
            sw.member(f"L-{i}")
        return sw.offers.issue_codes("once", 1)[0]


def test_threads_racing_for_one_code_exactly_one_wins(tmp_path: Path) -> None:
    code = _prepare(tmp_path / "s.db", 16)
    outcomes: list[str] = []
    barrier = threading.Barrier(16)
    with shelfwise.open(tmp_path / "s.db") as sw:

        def checkout(i: int) -> None:
            barrier.wait()
            try:
                sw.shopper(f"L-{i}").redeem(code, cart_total=20)
                outcomes.append("won")
            except shelfwise.OfferRejected as exc:
                outcomes.append(exc.reason)

        threads = [threading.Thread(target=checkout, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("won") == 1
        assert set(outcomes) - {"won"} <= {"code_used", "code_reserved"}
        assert sw.offers.stats("once")["redemptions"] == 1
        assert sw.offers.stats("once")["spent"] == 5.0


def _redeem_in_process(
    path: str,
    member: str,
    code: str,
    start: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue,
) -> None:  # type: ignore[name-defined]
    with shelfwise.open(path) as sw:
        start.wait()
        try:
            sw.shopper(member).redeem(code, cart_total=20)
            out.put("won")
        except shelfwise.OfferRejected as exc:
            out.put(exc.reason)


@pytest.mark.slow
def test_processes_racing_for_one_code_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    code = _prepare(path, 6)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    workers = [
        context.Process(target=_redeem_in_process, args=(str(path), f"L-{i}", code, start, out))
        for i in range(6)
    ]
    for worker in workers:
        worker.start()
    start.set()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert results.count("won") == 1
    with shelfwise.open(path) as sw:
        assert sw.offers.stats("once")["redemptions"] == 1
        assert sw.store.query("SELECT count(*) AS n FROM redemptions")[0]["n"] == 1


def test_budget_is_never_overspent_by_concurrent_checkouts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with shelfwise.open(path) as sw:
        sw.offers.define({**OFFER, "codes": "none", "limits": {"budget": 20}})
        for i in range(12):
            sw.member(f"L-{i}")
    wins: list[float] = []
    with shelfwise.open(path) as sw:

        def checkout(i: int) -> None:
            try:
                wins.append(sw.shopper(f"L-{i}").redeem("once", cart_total=20).amount)
            except shelfwise.OfferRejected as exc:
                assert exc.reason == "budget_exhausted"

        threads = [threading.Thread(target=checkout, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(wins) == 20.0
        assert sw.offers.stats("once")["spent"] == 20.0
