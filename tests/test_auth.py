"""Secrets, lockouts and the audit trail (shelfwise.auth) and member PINs on the Shopper."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import shelfwise
from shelfwise.auth import Backoff, check_pin_strength

MINUTE = 60_000


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("12345", "length"),
        ("888888", "repeated"),
        ("345678", "sequence"),
        ("987654", "sequence"),
        ("121212", "pattern"),
        ("580580", "pattern"),
        ("159753", "common"),
        (123456789, "type"),
    ],
)
def test_weak_pins_are_refused_with_the_rule_they_break(pin: object, reason: str) -> None:
    with pytest.raises(shelfwise.WeakSecret) as caught:
        check_pin_strength(pin)
    assert caught.value.reason == reason and str(caught.value)


@pytest.mark.parametrize("pin", ["58029374", "740193", "correct horse battery"])
def test_pins_without_a_pattern_pass(pin: str) -> None:
    assert check_pin_strength(pin) == pin


def test_a_secret_is_kept_as_a_salted_argon2id_hash() -> None:
    first, second = shelfwise.hash_secret("58029374"), shelfwise.hash_secret("58029374")
    assert first.startswith("$argon2id$") and "58029374" not in first
    assert first != second, "salted: the same PIN hashes differently"
    assert shelfwise.verify_secret(first, "58029374")
    assert not shelfwise.verify_secret(first, "58029375")
    assert not shelfwise.verify_secret(first, None)
    assert not shelfwise.verify_secret("plain text", "58029374")


def test_after_the_free_attempts_each_failure_doubles_the_wait(sw: shelfwise.Shelfwise) -> None:
    throttle = sw.throttle("staff_pin", Backoff(free=2, base_s=60, max_s=600))
    throttle.attempt("k", now=0)
    throttle.attempt("k", now=1)  # the second failure: now wait 60 s
    with pytest.raises(shelfwise.AuthLocked) as caught:
        throttle.attempt("k", now=2)
    assert 59 <= caught.value.retry_after_s <= 60
    throttle.attempt("k", now=1 + MINUTE)  # the third: 120 s
    with pytest.raises(shelfwise.AuthLocked):
        throttle.attempt("k", now=1 + 2 * MINUTE)
    throttle.attempt("k", now=2 + 3 * MINUTE)
    assert throttle.state("k", now=2 + 3 * MINUTE).failures == 4
    throttle.succeeded("k")
    assert throttle.state("k").failures == 0


def test_a_locked_attempt_is_not_counted_and_old_failures_are_forgotten(
    sw: shelfwise.Shelfwise,
) -> None:
    throttle = sw.throttle("x", Backoff(free=1, base_s=60, forget_after_s=3600))
    throttle.attempt("k", now=0)
    for stamp in range(1, 50):
        with pytest.raises(shelfwise.AuthLocked):
            throttle.attempt("k", now=stamp)
    assert throttle.state("k", now=50).failures == 1
    throttle.attempt("k", now=3600_001 + 1)  # a failure more than an hour old no longer counts
    assert throttle.state("k", now=3600_002).failures == 1


def test_parallel_guesses_are_each_counted_before_any_is_checked(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    shelfwise.open(db).close()
    passed: list[int] = []
    refused: list[int] = []

    def guess() -> None:
        with shelfwise.open(db) as sw:
            try:
                sw.throttle("staff_pin", Backoff(free=3, base_s=600)).attempt("kiosk-1")
                passed.append(1)
            except shelfwise.AuthLocked:
                refused.append(1)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passed) == 3 and len(refused) == 13


def test_a_lockout_survives_reopening_the_store(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with shelfwise.open(db) as sw:
        throttle = sw.throttle("staff_pin", Backoff(free=1, base_s=600))
        throttle.attempt("kiosk-1")
    with shelfwise.open(db) as sw, pytest.raises(shelfwise.AuthLocked):
        sw.throttle("staff_pin", Backoff(free=1, base_s=600)).attempt("kiosk-1")


def test_the_audit_log_lists_who_did_what_where_newest_first(sw: shelfwise.Shelfwise) -> None:
    sw.record_audit(actor="staff:ab12", device="kiosk-1", action="offer_off", target="milk")
    sw.record_audit(actor="staff:ab12", device="kiosk-2", action="sandbox_on")
    entries = sw.audit_log()
    assert [e.action for e in entries] == ["sandbox_on", "offer_off"]
    assert entries[1].target == "milk" and entries[1].ts_ms > 0
    assert [e.action for e in sw.audit_log(device="kiosk-1")] == ["offer_off"]
    with pytest.raises(shelfwise.InvalidInput):
        sw.record_audit(actor="staff", action="")


# -- member PINs ------------------------------------------------------------------------------
def test_a_member_pin_is_verified_and_never_kept_in_clear(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with shelfwise.open(db) as sw:
        member = sw.member("L-1")
        assert not member.has_pin()
        member.set_pin("7391")
        assert member.has_pin()
        member.verify_pin("7391", device="kiosk-1")
        with pytest.raises(shelfwise.AuthenticationFailed) as caught:
            member.verify_pin("7390", device="kiosk-1")
        assert caught.value.reason == "pin_wrong"
        assert "pin_hash" not in str(member.export()), "a data export never carries the hash"
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"7391" not in data


def test_a_member_without_a_pin_is_told_where_to_set_one(sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.AuthenticationFailed) as caught:
        sw.member("L-1").verify_pin("7391")
    assert caught.value.reason == "no_pin" and "phone app" in str(caught.value)


def test_weak_member_pins_and_guest_pins_are_refused(sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.WeakSecret):
        sw.member("L-1").set_pin("1234")
    with pytest.raises(shelfwise.InvalidInput):
        sw.start_session().set_pin("7391")


def test_guessing_one_card_locks_the_card_even_for_the_right_pin(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.set_pin("7391")
    for guess in ["0001", "0002", "0003"]:
        with pytest.raises(shelfwise.AuthenticationFailed):
            member.verify_pin(guess, device="kiosk-1")
    with pytest.raises(shelfwise.AuthLocked):
        member.verify_pin("7391", device="kiosk-2")  # another kiosk: the card is locked


def test_guessing_many_cards_on_one_kiosk_locks_the_kiosk(sw: shelfwise.Shelfwise) -> None:
    members = [sw.member(f"L-{n}") for n in range(12)]
    for member in members:
        member.set_pin("7391")
    for member in members[:10]:  # one guess per card: no card is locked, the kiosk is
        with pytest.raises(shelfwise.AuthenticationFailed):
            member.verify_pin("0001", device="kiosk-1")
    with pytest.raises(shelfwise.AuthLocked):
        members[11].verify_pin("7391", device="kiosk-1")
    members[11].verify_pin("7391", device="kiosk-2")


def test_right_pins_do_not_add_up_to_a_kiosk_lockout(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.set_pin("7391")
    for _ in range(15):
        member.verify_pin("7391", device="kiosk-1")
    assert sw.throttle("member_pin_device").state("kiosk-1").failures == 0


def test_forgetting_a_member_removes_their_pin(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.set_pin("7391")
    member.forget()
    assert sw.store.query("SELECT count(*) AS n FROM member_credentials")[0]["n"] == 0


def test_clearing_the_cart_records_no_removal(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-1")
    member.add_to_cart("milk", 2)
    member.clear_cart()
    assert member.cart() == []
    kinds = [e["type"] for e in member.export()["tables"]["events"]]
    assert kinds == ["cart_add"]
