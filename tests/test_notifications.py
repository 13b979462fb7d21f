"""The notification outbox: every fired app trigger reaches the app exactly once, through a
real HTTP receiver that fails, drops connections and refuses, and across kill -9."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_helpers import SECRET, fast_sender, queue_back_in_stock, receiver

import shelfwise
from shelfwise.cli import main
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.webhooks import signed_headers, verify_signature

WORKER = str(Path(__file__).parent / "notify_worker.py")


@pytest.fixture
def sw(tmp_path: Path) -> Iterator[shelfwise.Shelfwise]:
    with shelfwise.open(tmp_path / "device.db", store_id="s1") as opened:
        yield opened


def test_a_fired_app_trigger_is_queued_with_the_fire_and_kiosk_fires_are_not(
    sw: shelfwise.Shelfwise,
) -> None:
    assert queue_back_in_stock(sw, 2) == 2
    queued = sw.notifications.list()
    assert [(n.shopper_id, n.item_id, n.kind, n.state) for n in queued] == [
        ("L-0", "kettle", "back_in_stock", "pending"),
        ("L-1", "kettle", "back_in_stock", "pending"),
    ]
    assert len({n.notification_id for n in queued}) == 2
    assert queued[0].title == "The kettle is back: 3.00 off"
    sw.catalog.set_stock("kettle", False)
    sw.catalog.set_stock("kettle", True)
    assert len(sw.offers.run_triggers(channel="kiosk")) == 2  # fired, but not for the app
    assert sw.notifications.counts() == {"pending": 2, "sent": 0, "failed": 0}


def test_every_notification_arrives_once_through_5xx_429_and_dropped_connections(
    sw: shelfwise.Shelfwise,
) -> None:
    queued = queue_back_in_stock(sw, 5)
    # Per notification: 503, taken-then-dropped, 429, then the 200 for the resend; 500, cut
    # before taking it, 200; taken-then-dropped, 200; 503, 200; 200.
    script = ["503", "drop", "429", "200", "500", "cut", "200", "drop", "200", "503"]
    with receiver(script) as (url, seen):
        sender = fast_sender(url)
        report = sw.notifications.deliver(sender)
    assert (report.sent, report.failed, report.pending, report.error) == (5, 0, 0, None)
    ids = {n.notification_id for n in sw.notifications.list(state="sent")}
    assert len(ids) == queued == 5
    assert set(seen.delivered) == ids  # each acted on once by the receiver
    failures = sum(step != "200" for step in script)
    assert sum(seen.requests.values()) == 5 + failures  # every failure was resent...
    assert max(seen.requests.values()) >= 2  # ...carrying the same idempotency key
    assert seen.bad_signatures == 0
    payload = next(iter(seen.delivered.values()))
    assert payload["offer_id"] == "kettle-back" and payload["item_id"] == "kettle"
    assert "state" not in payload and "attempts" not in payload


def test_a_receiver_that_stays_down_keeps_everything_pending_for_the_next_round(
    sw: shelfwise.Shelfwise,
) -> None:
    queue_back_in_stock(sw, 3)
    with receiver(["503"] * 100) as (url, seen):
        report = sw.notifications.deliver(fast_sender(url, attempts=3))
        assert seen.delivered == {}
    assert report.sent == 0 and report.pending == 3
    assert report.error is not None and "503" in report.error
    [first, *rest] = sw.notifications.list()
    assert (first.state, first.attempts) == ("pending", 1) and "503" in (first.last_error or "")
    assert all(n.attempts == 0 for n in rest)  # the round stopped: the endpoint is down
    with receiver() as (url, seen):
        assert sw.notifications.deliver(fast_sender(url)).sent == 3
    assert len(seen.delivered) == 3


def test_a_refused_notification_is_dropped_with_its_error_after_max_attempts(
    sw: shelfwise.Shelfwise,
) -> None:
    queue_back_in_stock(sw, 3)
    refused = sw.notifications.list()[1].notification_id
    with receiver(refuse={refused}) as (url, seen):
        first = sw.notifications.deliver(fast_sender(url), max_attempts=2)
        second = sw.notifications.deliver(fast_sender(url), max_attempts=2)
        third = sw.notifications.deliver(fast_sender(url), max_attempts=2)
    assert (first.sent, first.failed, first.pending) == (2, 0, 1)
    assert (second.sent, second.failed, second.pending) == (0, 1, 0)
    assert third == shelfwise.DeliveryReport(0, 0, 0)
    dropped = sw.notifications.get(refused)
    assert (dropped.state, dropped.attempts) == ("failed", 2)
    assert "422" in (dropped.last_error or "")
    assert seen.requests[refused] == 2  # a 4xx is not retried within a round
    assert refused not in seen.delivered


def test_a_wrong_secret_stops_the_round_and_drops_nothing(sw: shelfwise.Shelfwise) -> None:
    queue_back_in_stock(sw, 2)
    with receiver() as (url, seen):
        wrong = shelfwise.WebhookSender(  # the receiver holds another secret
            url, b"not-the-shared-secret!", wait_initial_s=0.001, wait_max_s=0.01
        )
        for _ in range(3):
            report = sw.notifications.deliver(wrong, max_attempts=1)
            assert (report.sent, report.failed, report.pending) == (0, 0, 2)
            assert report.error is not None and "401" in report.error
        assert seen.bad_signatures == 3 and seen.delivered == {}
        assert sw.notifications.deliver(fast_sender(url), max_attempts=1).sent == 2


def test_quiet_hours_hold_a_notification_and_a_closed_offer_or_withdrawn_consent_drop_it(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.set_quiet_hours("00:00", "23:59")
    queue_back_in_stock(sw, 3)
    held = sw.notifications.list()
    with receiver() as (url, seen):
        assert sw.notifications.deliver(fast_sender(url)).sent == 0  # quiet: not yet
        sw.member("L-1").set_consent("offers", False)
        later = held[0].deliver_at_ms
        report = sw.notifications.deliver(fast_sender(url), now=later)
        assert (report.sent, report.failed) == (2, 1)
        assert {p["shopper_id"] for p in seen.delivered.values()} == {"L-0", "L-2"}
    withdrawn = sw.notifications.list(shopper_id="L-1")[0]
    assert withdrawn.state == "failed" and "consent" in (withdrawn.last_error or "")
    assert withdrawn.attempts == 0  # never sent
    sw.offers.set_quiet_hours(None)
    sw.catalog.set_stock("kettle", False)
    sw.catalog.set_stock("kettle", True)
    sw.offers.run_triggers(channel="app_inbox")
    with receiver() as (url, seen):
        report = sw.notifications.deliver(fast_sender(url), now=now_ms() + 8 * DAY_MS)
    assert (report.sent, report.failed) == (0, 2) and seen.delivered == {}  # the offer closed


def test_retention_prunes_only_delivered_or_dropped_notifications(
    sw: shelfwise.Shelfwise,
) -> None:
    queue_back_in_stock(sw, 2)
    with receiver() as (url, _):
        sw.notifications.deliver(fast_sender(url), limit=1)
    later = now_ms() + 31 * DAY_MS
    assert sw.notifications.prune(older_than_days=30, now=later) == 1
    assert [n.state for n in sw.notifications.list()] == ["pending"]  # still owed: kept
    with pytest.raises(shelfwise.InvalidInput):
        sw.notifications.prune(older_than_days=float("nan"))


def test_the_signature_covers_the_body_and_the_moment() -> None:
    body = json.dumps({"notification_id": "n1"}).encode()
    headers = signed_headers(SECRET, "n1", body, timestamp_ms=1_000_000)
    assert verify_signature(SECRET, body, headers, now=1_000_000)
    assert not verify_signature(SECRET, body + b" ", headers, now=1_000_000)  # tampered
    assert not verify_signature(SECRET, body, headers, now=1_000_000 + 600_000)  # replayed
    with pytest.raises(shelfwise.InvalidInput, match="at least 16 bytes"):
        shelfwise.WebhookSender("http://127.0.0.1:9/hook", b"short")
    with pytest.raises(shelfwise.InvalidInput, match="webhook url"):
        shelfwise.WebhookSender("http://host:99999/hook", SECRET)


def test_bad_delivery_arguments_are_refused_and_change_nothing(sw: shelfwise.Shelfwise) -> None:
    queue_back_in_stock(sw, 1)
    with pytest.raises(shelfwise.InvalidInput, match="max_attempts"):
        sw.notifications.deliver(fast_sender("http://127.0.0.1:9/"), max_attempts=0)
    with pytest.raises(shelfwise.InvalidInput, match="state"):
        sw.notifications.list(state="lost")
    assert sw.notifications.counts() == {"pending": 1, "sent": 0, "failed": 0}
    assert sw.notifications.list()[0].attempts == 0


# -- the command line -------------------------------------------------------------------------
def test_the_cli_fires_delivers_and_lists_like_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "device.db"
    with shelfwise.open(db) as sw:
        sw.catalog.import_rows([{"item_id": "kettle", "name": "Kettle", "price": 3, "in_stock": 0}])
        sw.offers.define(
            {
                "offer_id": "back",
                "title": "Back",
                "reward": {"type": "amount", "value": 1},
                "trigger": {"type": "back_in_stock"},
            }
        )
        sw.member("L-1", consents={"offers": True}).watch("kettle")
        sw.catalog.set_stock("kettle", True)
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET.decode() + "\n")
    base = ["notifications", "deliver", "--db", str(db), "--secret-file", str(secret)]
    with receiver(["503"] * 10) as (url, seen):
        code = main([*base, "--webhook", url, "--run-triggers", "--attempts", "2", "--json"])
        out, err = capsys.readouterr()
        assert code == 4 and json.loads(out)["pending"] == 1 and json.loads(out)["fired"] == 1
        assert err.startswith("error: delivery stopped: the webhook answered 503")
        assert "Traceback" not in err and "retry" not in err
    with receiver() as (url, seen):
        assert main([*base, "--webhook", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["sent"] == 1
    assert [p["offer_id"] for p in seen.delivered.values()] == ["back"]
    assert main(["notifications", "list", "--db", str(db), "--state", "sent", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["counts"] == {"pending": 0, "sent": 1, "failed": 0}
    assert listed["notifications"][0]["attempts"] == 2  # a round that failed, one that sent
    secret.write_text("short")
    assert main([*base, "--webhook", "http://127.0.0.1:9/"]) == 2
    assert capsys.readouterr().err.strip().endswith("a webhook secret is at least 16 bytes")


# -- kill -9 between enqueue and delivery, and during delivery ----------------------------------
def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE, text=True)


def _kill_after_steps(args: list[str], steps: int) -> bool:
    """Run the worker and SIGKILL it after it said ``step`` that many times; False if it
    finished first."""
    proc = _start(*args)
    assert proc.stdout is not None
    for _ in range(steps):
        line = proc.stdout.readline().strip()
        if line != "step":
            proc.wait()
            proc.stdout.close()
            return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return True


@pytest.mark.slow
def test_kill_9_between_enqueue_and_delivery_and_while_delivering_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "device.db")
    proc = _start("queue", db, "12")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "queued 12"
    proc.send_signal(signal.SIGKILL)  # the fires committed; nothing delivered yet
    proc.wait()
    proc.stdout.close()
    rng = random.Random(4)
    with receiver(["drop", "503", "200", "drop"] * 3) as (url, seen):
        kills = sum(_kill_after_steps(["deliver", db, url], rng.randint(1, 3)) for _ in range(4))
        done = subprocess.run(
            [sys.executable, WORKER, "deliver", db, url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.stdout.strip().endswith("done 0"), done.stderr
    assert kills >= 3  # the kills landed mid-delivery
    with shelfwise.open(db) as sw:
        sent = {n.notification_id for n in sw.notifications.list(state="sent")}
        assert sw.notifications.counts() == {"pending": 0, "sent": 12, "failed": 0}
    assert set(seen.delivered) == sent  # every one arrived, each acted on once
    assert seen.bad_signatures == 0
