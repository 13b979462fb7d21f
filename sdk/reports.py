"""Store-level reports read from the event log: what a staff screen or a back office shows.

A report counts events of one local day of the store (in the store's own time zone, so a
shop in Milan sees its 9 o'clock rush at 09, not at 08 UTC). It reads the store only; it
never writes and never names a shopper.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "gtin": "4006381333931"}])
    ...     _ = sw.start_session().scan("4006381333931")
    ...     report = sw.day_report(timezone="Europe/Rome")
    ...     sum(report.scans_by_hour), report.count("scan")
    (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import InvalidInput
from .clock import now_ms
from .store.connection import Store

# The offer funnel, in order: seen on a scan, shown an offer, put in the cart, refused,
# redeemed, bought. Refusals are broken down by reason beside it.
FUNNEL_STEPS = ("scan", "offer_shown", "cart_add", "offer_rejected", "offer_redeemed", "purchase")
# A scan that found nothing still counts as the shopper's scan in the hourly chart.
SCAN_EVENTS = ("scan", "scan_miss")


@dataclass(frozen=True)
class DayReport:
    """One local day of a store: scans by local hour, the offer funnel, refusals by reason.

    ``scans_by_hour[h]`` counts scans whose local clock read hour ``h`` (on the day the clocks
    go back, the repeated hour counts in one bucket; on the day they go forward, one bucket
    stays empty). ``funnel`` follows ``FUNNEL_STEPS``; ``rejections`` is most frequent first.
    """

    day: date
    timezone: str
    start_ms: int
    end_ms: int
    scans_by_hour: tuple[int, ...]
    funnel: tuple[tuple[str, int], ...]
    rejections: tuple[tuple[str, int], ...]

    def count(self, step: str) -> int:
        """The count of one funnel step (0 when it is not a step).

        Example:
            >>> DayReport(date(2026, 1, 5), "UTC", 0, 1, (0,) * 24, (("scan", 3),), ()).count("scan")
            3
        """
        return dict(self.funnel).get(step, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the day as ISO text, steps and reasons as objects."""
        return {
            "day": self.day.isoformat(),
            "timezone": self.timezone,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "scans_by_hour": list(self.scans_by_hour),
            "funnel": [{"step": step, "count": n} for step, n in self.funnel],
            "rejections": [{"reason": reason, "count": n} for reason, n in self.rejections],
        }


def zone_of(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``, or ``InvalidInput`` saying so.

    Example:
        >>> zone_of("Europe/Rome").key
        'Europe/Rome'
    """
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"{name!r} is not a known time zone: use an IANA name such as 'Europe/Rome'"
        ) from exc


def day_bounds(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """UTC milliseconds of local midnight starting ``day`` and the next local midnight.

    Example:
        >>> start, end = day_bounds(date(2026, 3, 29), ZoneInfo("Europe/Rome"))
        >>> (end - start) // 3_600_000  # the clocks go forward: a 23-hour day
        23
    """
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def day_report(
    store: Store, *, timezone: str = "UTC", day: date | None = None, now: int | None = None
) -> DayReport:
    """Count one local day of ``store``'s events (today in ``timezone`` unless ``day``).

    Example:
        >>> from shelfwise.store.connection import Store
        >>> with Store(":memory:") as store:
        ...     day_report(store, day=date(2026, 1, 5)).funnel[0]
        ('scan', 0)
    """
    zone = zone_of(timezone)
    if day is None:
        stamp = now_ms() if now is None else now
        day = datetime.fromtimestamp(stamp / 1000, zone).date()
    start, end = day_bounds(day, zone)
    hours = [0] * 24
    scan_marks = ", ".join("?" * len(SCAN_EVENTS))
    for (ts_ms,) in store.rows(
        f"SELECT ts_ms FROM events WHERE ts_ms >= ? AND ts_ms < ? AND type IN ({scan_marks})",
        [start, end, *SCAN_EVENTS],
    ):
        hours[datetime.fromtimestamp(ts_ms / 1000, zone).hour] += 1
    step_marks = ", ".join("?" * len(FUNNEL_STEPS))
    counts = dict(
        store.rows(
            f"SELECT type, count(*) FROM events WHERE ts_ms >= ? AND ts_ms < ? "
            f"AND type IN ({step_marks}) GROUP BY type",
            [start, end, *FUNNEL_STEPS],
        )
    )
    rejections = store.rows(
        "SELECT coalesce(json_extract(payload, '$.reason'), 'unknown') AS reason, count(*) AS n "
        "FROM events WHERE ts_ms >= ? AND ts_ms < ? AND type = 'offer_rejected' "
        "GROUP BY reason ORDER BY n DESC, reason",
        [start, end],
    )
    return DayReport(
        day=day,
        timezone=zone.key,
        start_ms=start,
        end_ms=end,
        scans_by_hour=tuple(hours),
        funnel=tuple((step, int(counts.get(step, 0))) for step in FUNNEL_STEPS),
        rejections=tuple((str(reason), int(n)) for reason, n in rejections),
    )


__all__ = ["FUNNEL_STEPS", "DayReport", "day_bounds", "day_report", "zone_of"]
