"""Redemption reporting: the ledger a till or back office reconciles, and the staff totals.

``redemption_records`` reads every redemption this device holds, whatever its state: the live
ledger (``committed``), the rows a voided order gave back (``voided``, kept in
``voided_redemptions``) and sandbox runs (``sandbox_redemptions``, which spent nothing), as
``RedemptionRecord`` rows oldest first. ``write_redemptions`` exports them as JSON or CSV;
``redemption_totals`` sums what a staff screen shows: points issued and burned, orders
discounted and the money off, today (the store-local day) and in all. Like
``shelfwise.reports`` it reads the store only; unlike it, the rows name the shopper as the
device knows them (a loyalty id or a session id), because a till reconciles per member.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:", store_id="s1") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 4.0}])
    ...     _ = sw.offers.define({"offer_id": "o", "title": "1.00 off",
    ...                           "reward": {"type": "amount", "value": 1}})
    ...     _ = sw.member("L-1").redeem_order("t-1", cart=["tea"])
    ...     _ = sw.offers.void_order("t-1")
    ...     [(r.shopper_id, r.order_id, r.amount, r.status) for r in sw.offers.redemptions()]
    [('L-1', 't-1', 1.0, 'voided')]
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import InvalidInput
from ..reports import day_bounds, zone_of
from ..store.connection import Store
from .redemption import LEDGER_COLUMNS

FORMATS = ("csv", "json")
STATUSES = ("committed", "voided")
# A spreadsheet runs a cell starting with one of these as a formula: such text is quoted.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_MS = 2**53  # the largest millisecond time every clock in shelfwise can hold


@dataclass(frozen=True)
class RedemptionRecord:
    """One offer redeemed on this device: who (``shopper_id``, as the device knows them), the
    order and store, the offer (and code), the money off, the points earned and spent, whether
    it was a sandbox run, and its status (``committed`` or ``voided``, with ``voided_ms``)."""

    redemption_id: str
    shopper_id: str
    order_id: str | None
    store_id: str
    offer_id: str
    code: str | None
    amount: float
    points_earned: int
    points_spent: int
    sandbox: bool
    status: str
    ts_ms: int
    voided_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name."""
        return asdict(self)


@dataclass(frozen=True)
class RedemptionTotals:
    """What the staff screen shows, from committed real redemptions (voids and sandbox runs
    excluded): points issued (earned) and burned (spent), orders with money off and that
    money, for the store-local day ``day`` and in all."""

    day: str
    timezone: str
    points_issued_today: int
    points_issued_total: int
    points_burned_today: int
    points_burned_total: int
    discounted_orders_today: int
    discounted_orders_total: int
    order_discount_today: float
    order_discount_total: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name."""
        return asdict(self)


def _check_ms(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
        raise InvalidInput(f"{name} must be milliseconds since 1970 (UTC), not {value!r}")
    return value


def _check_id(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string, not {value!r}")
    return value


def redemption_records(
    store: Store,
    *,
    since: int | None = None,
    until: int | None = None,
    offer_id: str | None = None,
    order_id: str | None = None,
    sandbox: bool | None = False,
) -> list[RedemptionRecord]:
    """Redemptions made from ``since`` (UTC ms, inclusive) until ``until`` (exclusive), of one
    offer or order when given, oldest first. ``sandbox``: False (default) real ones only, True
    sandbox runs only, None both. Bad filters raise ``InvalidInput``.

    Example:
        >>> with Store(":memory:") as store:
        ...     redemption_records(store, since=10, until=5)
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: since (10) is after until (5): nothing can match
    """
    start, end = _check_ms("since", since), _check_ms("until", until)
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"since ({start}) is after until ({end}): nothing can match")
    offer, order = _check_id("offer_id", offer_id), _check_id("order_id", order_id)
    if sandbox is not None and not isinstance(sandbox, bool):
        raise InvalidInput("sandbox must be True, False or None")
    where, args = ["1 = 1"], list[Any]()
    for clause, value in (
        ("ts_ms >= ?", start),
        ("ts_ms < ?", end),
        ("offer_id = ?", offer),
        ("order_id = ?", order),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    cond = " AND ".join(where)
    parts = []
    if sandbox is not True:
        parts.append(f"SELECT {LEDGER_COLUMNS}, 0 AS sandbox, NULL AS voided_ms FROM redemptions")
        parts.append(f"SELECT {LEDGER_COLUMNS}, 0 AS sandbox, voided_ms FROM voided_redemptions")
    if sandbox is not False:
        parts.append(
            f"SELECT {LEDGER_COLUMNS}, 1 AS sandbox, NULL AS voided_ms FROM sandbox_redemptions"
        )
    union = " UNION ALL ".join(f"SELECT * FROM ({p}) WHERE {cond}" for p in parts)
    rows = store.query(f"{union} ORDER BY ts_ms, redemption_id", args * len(parts))
    return [_record(row) for row in rows]


def _record(row: Any) -> RedemptionRecord:
    return RedemptionRecord(
        redemption_id=row["redemption_id"],
        shopper_id=row["shopper_id"],
        order_id=row["order_id"],
        store_id=row["store_id"] or "",
        offer_id=row["offer_id"],
        code=row["code"],
        amount=float(row["amount"]),
        points_earned=int(row["points_earned"] or 0),
        points_spent=int(row["points_spent"] or 0),
        sandbox=bool(row["sandbox"]),
        status="voided" if row["voided_ms"] is not None else "committed",
        ts_ms=int(row["ts_ms"]),
        voided_ms=row["voided_ms"],
    )


def format_of(path: str | Path, format: str | None) -> str:
    """The export format: ``format`` when given, else the file's suffix (.csv or .json).

    Example:
        >>> format_of("redemptions.csv", None), format_of("out.txt", "json")
        ('csv', 'json')
    """
    chosen = format if format is not None else Path(path).suffix.lstrip(".").lower()
    if chosen not in FORMATS:
        raise InvalidInput(
            f"cannot tell the export format of {str(path)!r}: "
            "pass format='csv' or format='json' (or name the file .csv or .json)"
        )
    return chosen


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value  # shown as text, never run as a formula
    return value


def write_redemptions(
    records: Sequence[RedemptionRecord], path: str | Path, *, format: str | None = None
) -> int:
    """Write ``records`` to ``path`` as CSV (a header, one row each) or JSON (a list of
    objects); the file appears whole or not at all. Returns how many were written.

    Example:
        >>> import tempfile
        >>> row = RedemptionRecord("r1", "L-1", "t-1", "s1", "o", None, 1.0, 0, 0, False,
        ...                        "committed", 1000)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     out = Path(folder) / "redemptions.csv"
        ...     write_redemptions([row], out), out.read_text().splitlines()[1]
        (1, 'r1,L-1,t-1,s1,o,,1.0,0,0,False,committed,1000,')
    """
    chosen = format_of(path, format)
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            if chosen == "json":
                json.dump([r.to_dict() for r in records], handle, indent=2, sort_keys=True)
                handle.write("\n")
            else:
                writer = csv.writer(handle)
                names = [f.name for f in fields(RedemptionRecord)]
                writer.writerow(names)
                for r in records:
                    writer.writerow([_cell(getattr(r, name)) for name in names])
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return len(records)


def record_sandbox(db: Any, rows: Sequence[RedemptionRecord]) -> None:
    """Keep sandbox runs (which rolled back) for the report, in the caller's transaction."""
    for r in rows:
        db.execute(
            f"INSERT INTO sandbox_redemptions ({LEDGER_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.redemption_id,
                r.offer_id,
                r.code,
                r.shopper_id,
                r.amount,
                r.ts_ms,
                r.order_id,
                r.store_id,
                r.points_earned,
                r.points_spent,
            ],
        )


def redemption_totals(store: Store, *, timezone: str, now: int) -> RedemptionTotals:
    """Points issued and burned, discounted orders and their money off: today (the local day
    of ``now`` in ``timezone``) and in all, from the committed real ledger and orders.

    Example:
        >>> with Store(":memory:") as store:
        ...     redemption_totals(store, timezone="UTC", now=0).points_issued_total
        0
    """
    zone = zone_of(timezone)
    day = datetime.fromtimestamp(now / 1000, zone).date()
    start, end = day_bounds(day, zone)
    today = "CASE WHEN {t} >= ? AND {t} < ? THEN {v} ELSE 0 END"
    [points] = store.query(
        "SELECT coalesce(sum(" + today.format(t="ts_ms", v="points_earned") + "), 0) AS earned_today, "
        "coalesce(sum(points_earned), 0) AS earned, "
        "coalesce(sum(" + today.format(t="ts_ms", v="points_spent") + "), 0) AS spent_today, "
        "coalesce(sum(points_spent), 0) AS spent FROM redemptions",
        [start, end, start, end],
    )  # fmt: skip
    [orders] = store.query(
        "SELECT coalesce(sum(" + today.format(t="created_ms", v="1") + "), 0) AS n_today, "
        "count(*) AS n, "
        "coalesce(sum(" + today.format(t="created_ms", v="discount") + "), 0) AS off_today, "
        "coalesce(sum(discount), 0) AS off "
        "FROM orders WHERE state = 'redeemed' AND discount > 0",
        [start, end, start, end],
    )  # fmt: skip
    return RedemptionTotals(
        day=day.isoformat(),
        timezone=zone.key,
        points_issued_today=int(points["earned_today"]),
        points_issued_total=int(points["earned"]),
        points_burned_today=int(points["spent_today"]),
        points_burned_total=int(points["spent"]),
        discounted_orders_today=int(orders["n_today"]),
        discounted_orders_total=int(orders["n"]),
        order_discount_today=round(float(orders["off_today"]), 2),
        order_discount_total=round(float(orders["off"]), 2),
    )


__all__ = [
    "FORMATS",
    "STATUSES",
    "RedemptionRecord",
    "RedemptionTotals",
    "format_of",
    "record_sandbox",
    "redemption_records",
    "redemption_totals",
    "write_redemptions",
]
