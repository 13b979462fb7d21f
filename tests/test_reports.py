"""Day reports: a store's day counted in its own time zone (shelfwise.reports)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

import shelfwise

ROME = ZoneInfo("Europe/Rome")


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = ROME) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp() * 1000)


DAY = date(2026, 6, 10)


def test_scans_are_bucketed_by_the_store_s_local_hour(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.track("scan", "milk", ts_ms=at(DAY, 9, 5))
    shopper.track("scan", "milk", ts_ms=at(DAY, 9, 55))
    shopper.track(
        "scan_miss", payload={"code": "123", "reason": "check_digit"}, ts_ms=at(DAY, 0, 30)
    )
    report = sw.day_report(timezone="Europe/Rome", day=DAY)
    assert report.scans_by_hour[9] == 2, "09 local (07 UTC in summer)"
    assert report.scans_by_hour[0] == 1, "a miss counts as a scan in the chart"
    assert sum(report.scans_by_hour) == 3
    utc = sw.day_report(timezone="UTC", day=DAY)
    assert utc.scans_by_hour[7] == 2 and sum(utc.scans_by_hour) == 2, (
        "00:30 Rome is 22:30 UTC the day before"
    )


def test_only_the_asked_day_counts(sw: shelfwise.Shelfwise) -> None:
    shopper = sw.start_session()
    shopper.track("scan", "milk", ts_ms=at(DAY, 0, 0))  # the first millisecond of the day
    shopper.track("scan", "milk", ts_ms=at(date(2026, 6, 9), 23, 59))
    shopper.track("scan", "milk", ts_ms=at(date(2026, 6, 11), 0, 0))
    report = sw.day_report(timezone="Europe/Rome", day=DAY)
    assert report.scans_by_hour[0] == 1 and sum(report.scans_by_hour) == 1
    assert report.count("scan") == 1
    assert report.end_ms - report.start_ms == 24 * 3_600_000


def test_a_day_when_the_clocks_go_forward_has_23_hours(sw: shelfwise.Shelfwise) -> None:
    spring = date(2026, 3, 29)
    shopper = sw.start_session()
    shopper.track("scan", "milk", ts_ms=at(spring, 1, 30))
    shopper.track("scan", "milk", ts_ms=at(spring, 3, 30))
    report = sw.day_report(timezone="Europe/Rome", day=spring)
    assert report.end_ms - report.start_ms == 23 * 3_600_000
    assert report.scans_by_hour[1] == 1 and report.scans_by_hour[3] == 1
    assert report.scans_by_hour[2] == 0, "02:xx does not exist that night"


def test_the_funnel_follows_its_steps_and_refusals_come_by_reason(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    stamp = at(DAY, 12)
    shopper.track("scan", "milk", ts_ms=stamp)
    shopper.track("cart_add", "milk", ts_ms=stamp)
    for reason in ["code_used", "code_used", "code_unknown"]:
        payload = {"offer_id": "x", "reason": reason}
        shopper.track("offer_rejected", payload=payload, ts_ms=stamp)
    report = sw.day_report(timezone="Europe/Rome", day=DAY)
    assert [step for step, _ in report.funnel] == list(
        ("scan", "offer_shown", "cart_add", "offer_rejected", "offer_redeemed", "purchase")
    )
    assert report.count("scan") == 1 and report.count("cart_add") == 1
    assert report.count("offer_rejected") == 3 and report.count("purchase") == 0
    assert report.rejections == (("code_used", 2), ("code_unknown", 1))
    data = report.to_dict()
    assert data["day"] == "2026-06-10" and data["rejections"][0] == {
        "reason": "code_used",
        "count": 2,
    }


def test_today_is_the_store_s_today(sw: shelfwise.Shelfwise) -> None:
    # 23:30 UTC on 10 June is already 11 June in Rome.
    now = at(DAY, 23, 30, zone=ZoneInfo("UTC"))
    assert sw.day_report(timezone="Europe/Rome", now=now).day == date(2026, 6, 11)
    assert sw.day_report(timezone="UTC", now=now).day == DAY


def test_an_unknown_time_zone_is_refused_with_what_to_use(sw: shelfwise.Shelfwise) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="IANA"):
        sw.day_report(timezone="Mars/Olympus")
