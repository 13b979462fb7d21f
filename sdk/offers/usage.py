"""Usage: the counters an offer's limits read, and what the funnel counts (shown, refused).

This module owns ``offer_counters`` (per offer: redemptions, money spent, live holds and their
amount, impressions), ``impressions`` (one row per offer shown to a shopper, which the
frequency caps count) and ``fleet_confirmations`` (when a member's uses on other devices were
last confirmed). A member's uses of per-customer-limited offers on every device arrive in
their profile counters (``offer:<offer id>``), read here with the ledger. ``usage_snapshot`` reads every limit counter of many offers for one
shopper in four grouped queries; the write helpers move the counters inside the caller's
transaction, so a counter never disagrees with the code or reservation it counts.
``offer_shown``, ``offer_redeemed`` and ``offer_rejected`` events (the synced funnel) are
written here too, through ``shelfwise.events``.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
    ...                            "reward": {"type": "amount", "value": 1}})
    ...     _ = sw.member("L-1").redeem("o", cart_total=5)
    ...     ctx = sw.offers.context("L-1")
    ...     usage_snapshot(sw.store.read(), ["o"], "L-1", ctx).usage("o").customer_total
    1
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, insert_event
from .definitions import Offer
from .leases import read_shares
from .rules import FleetShare, OfferContext, OfferUsage, period_starts

IN_CHUNK = 500  # offer ids per ``IN (...)`` list, far below SQLite's variable limit
USES = "offer:"  # + offer id: a member's uses of a per-customer-limited offer, fleet-wide


@dataclass(frozen=True)
class UsageSnapshot:
    """The limit counters of many offers for one shopper at one moment (see ``usage_snapshot``).

    ``offers``: offer id -> (redemptions, money spent), held reservations included;
    ``today``: offer id -> redemptions + live holds since the store-local midnight;
    ``customer``: offer id -> this shopper's (all-time, today, this week) uses, holds included;
    ``shown``: offer id -> impressions to this shopper (today, this week);
    ``rates``: offer id -> (committed redemptions, impressions), the ranking's evidence.
    """

    offers: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    today: Mapping[str, int] = field(default_factory=dict)
    customer: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    shown: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    rates: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    shares: Mapping[str, FleetShare] = field(default_factory=dict)

    def usage(self, offer_id: str) -> OfferUsage:
        """The counters ``evaluate`` reads for one offer (zeros for one never used)."""
        redemptions, spent = self.offers.get(offer_id, (0, 0.0))
        total, today, week = self.customer.get(offer_id, (0, 0, 0))
        shown_today, shown_week = self.shown.get(offer_id, (0, 0))
        return OfferUsage(
            redemptions=redemptions,
            spent=spent,
            today=self.today.get(offer_id, 0),
            customer_total=total,
            customer_today=today,
            customer_week=week,
            shown_today=shown_today,
            shown_week=shown_week,
            share=self.shares.get(offer_id),
        )


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield list(ids[start : start + IN_CHUNK])


def per_day_limited(offers: Iterable[Offer]) -> set[str]:
    """The ids of the offers with a per-day limit (``usage_snapshot``'s ``per_day``).

    Example:
        >>> from shelfwise.offers.definitions import parse_offer
        >>> capped = parse_offer({"offer_id": "o", "title": "O", "limits": {"per_day": 5},
        ...                       "reward": {"type": "amount", "value": 1}})
        >>> per_day_limited([capped])
        {'o'}
    """
    return {offer.offer_id for offer in offers if offer.limits.per_day is not None}


def usage_snapshot(
    db: Any,
    offer_ids: Sequence[str],
    shopper_id: str,
    ctx: OfferContext,
    *,
    fleet_uses: bool = True,
    per_day: Collection[str] | None = None,
) -> UsageSnapshot:
    """Read every limit counter of ``offer_ids`` for ``shopper_id`` with one grouped query per
    counter kind (offer-wide totals, offer-wide today, the shopper's uses, the shopper's
    impressions) instead of six queries per offer.

    ``db`` is the caller's connection: a reader for showing offers, the writer inside the
    ``BEGIN IMMEDIATE`` transaction of a reservation (so the limits it checks cannot move).
    ``fleet_uses=False`` skips the member's profile counters (no offer asked for has a
    per-customer limit). ``per_day``: the offers whose per-day limit needs today's count (it
    reads each of the day's redemptions; ``None``: all), the others' ``today`` stays 0.
    """
    day_start, week_start = period_starts(ctx)
    live = ctx.now_ms
    offers: dict[str, tuple[int, float]] = {}
    rates: dict[str, tuple[int, int]] = {}
    today: dict[str, int] = {}
    for ids in _chunks(list(dict.fromkeys(offer_ids))):
        marks = ",".join("?" * len(ids))
        for r in db.execute(
            "SELECT offer_id, redemptions, spent, reserved, reserved_amount, impressions "
            f"FROM offer_counters WHERE offer_id IN ({marks})",
            ids,
        ).fetchall():
            offers[r[0]] = (int(r[1] + r[3]), float(r[2] + r[4]))
            rates[r[0]] = (int(r[1]), int(r[5]))
        # Today's count reads every redemption of the day: only where a per-day limit asks.
        daily = [i for i in ids if per_day is None or i in per_day]
        if not daily:
            continue
        marks = ",".join("?" * len(daily))
        for offer_id, n in db.execute(
            "SELECT offer_id, count(*) FROM ("
            f"SELECT offer_id FROM redemptions WHERE offer_id IN ({marks}) AND ts_ms >= ? "
            f"UNION ALL SELECT offer_id FROM reservations WHERE offer_id IN ({marks}) "
            "AND state = 'held' AND expires_ms > ? AND created_ms >= ?) GROUP BY offer_id",
            [*daily, day_start, *daily, live, day_start],
        ).fetchall():
            today[offer_id] = int(n)
    customer: dict[str, tuple[int, int, int]] = {}
    shown: dict[str, tuple[int, int]] = {}
    if shopper_id:
        wanted = set(offer_ids)
        # Uses on other devices arrive in the member's profile counters (``USES`` + offer id,
        # counted on every device that redeems): all-time uses are the larger of what this
        # device's ledger and the fleet's counter say, plus the holds here.
        fleet = (
            {}
            if not fleet_uses
            else {
                name[len(USES) :]: int(value)
                for name, value in db.execute(
                    "SELECT name, total(up) - total(down) FROM profile_counters "
                    "WHERE shopper_id = ? AND name >= ? AND name < ? GROUP BY name",
                    [shopper_id, USES, USES[:-1] + chr(ord(USES[-1]) + 1)],
                ).fetchall()
            }
        )
        for offer_id, total, on_day, in_week, held in db.execute(
            "SELECT offer_id, count(*), total(ts_ms >= ?), total(ts_ms >= ?), total(held) FROM ("
            "SELECT offer_id, ts_ms, 0 AS held FROM redemptions WHERE shopper_id = ? "
            "UNION ALL SELECT offer_id, created_ms, 1 FROM reservations WHERE shopper_id = ? "
            "AND state = 'held' AND expires_ms > ?) GROUP BY offer_id",
            [day_start, week_start, shopper_id, shopper_id, live],
        ).fetchall():
            if offer_id in wanted:
                used = max(int(total - held), fleet.pop(offer_id, 0)) + int(held)
                customer[offer_id] = (used, int(on_day), int(in_week))
        for offer_id, used in fleet.items():
            if offer_id in wanted and used > 0:
                customer[offer_id] = (used, 0, 0)
        # Impressions older than the week (or the day, if it began earlier) never count.
        since = min(day_start, week_start)
        for offer_id, on_day, in_week in db.execute(
            "SELECT offer_id, total(ts_ms >= ?), total(ts_ms >= ?) FROM impressions "
            "WHERE shopper_id = ? AND ts_ms >= ? GROUP BY offer_id",
            [day_start, week_start, shopper_id, since],
        ).fetchall():
            if offer_id in wanted:
                shown[offer_id] = (int(on_day), int(in_week))
    shares = read_shares(db, list(dict.fromkeys(offer_ids)), live)
    return UsageSnapshot(offers, today, customer, shown, rates, shares)


def confirm_member(db: Any, shopper_id: str, stamp: int) -> None:
    """The member's uses on other devices were confirmed at ``stamp`` (their profile was just
    merged from the fleet, or a central check answered); this module owns the table."""
    db.execute(
        "INSERT INTO fleet_confirmations (shopper_id, confirmed_ms) VALUES (?, ?) "
        "ON CONFLICT(shopper_id) DO UPDATE SET confirmed_ms = max(confirmed_ms, excluded.confirmed_ms)",
        [shopper_id, stamp],
    )


def open_counters(db: Any, offer_id: str) -> None:
    """Give a new offer its counter row (an existing one keeps its counts)."""
    db.execute("INSERT OR IGNORE INTO offer_counters (offer_id) VALUES (?)", [offer_id])


def counters(store: Any, offer_id: str) -> dict[str, Any]:
    """The offer's counter row: redemptions, spent, reserved, reserved_amount, impressions."""
    rows = store.query("SELECT * FROM offer_counters WHERE offer_id = ?", [offer_id])
    return dict(rows[0])


def hold(db: Any, offer_id: str, amount: float) -> None:
    """A reservation now holds ``amount`` of the offer (it counts as spent until released)."""
    db.execute(
        "UPDATE offer_counters SET reserved = reserved + 1, reserved_amount = reserved_amount + ? "
        "WHERE offer_id = ?",
        [amount, offer_id],
    )


def unhold(db: Any, offer_id: str, amount: float) -> None:
    """A hold of ``amount`` was released or expired."""
    db.execute(
        "UPDATE offer_counters SET reserved = reserved - 1, reserved_amount = reserved_amount - ? WHERE offer_id = ?",
        [amount, offer_id],
    )


def spend(db: Any, offer_id: str, amount: float) -> None:
    """A hold of ``amount`` was committed: it moves from reserved to redeemed and spent."""
    db.execute(
        "UPDATE offer_counters SET reserved = reserved - 1, reserved_amount = reserved_amount - ?, "
        "redemptions = redemptions + 1, spent = spent + ? WHERE offer_id = ?",
        [amount, amount, offer_id],
    )


def count_spent(db: Any, offer_id: str, amount: float, redemptions: int) -> None:
    """Redemptions and money spent that never were a hold (an order's offers; negative when
    a voided order gives them back)."""
    db.execute(
        "UPDATE offer_counters SET redemptions = redemptions + ?, spent = spent + ? "
        "WHERE offer_id = ?",
        [redemptions, amount, offer_id],
    )


def log_event(
    db: Any,
    shopper_id: str | None,
    event_type: str,
    payload: Mapping[str, Any],
    ts: int,
    store_id: str,
    value: float | None = None,
) -> None:
    """Write one funnel event (``offer_shown``, ``offer_redeemed``, ``offer_rejected``) in the
    caller's transaction."""
    event = Event(
        event_type,
        ts,
        value=value,
        store_id=store_id,
        event_id=uuid.uuid4().hex,
        payload=dict(payload),
    )
    insert_event(db, shopper_id, event)


def record_shown(db: Any, ctx: OfferContext, shown: Sequence[tuple[str, str | None]]) -> None:
    """Record (offer id, experiment variant) pairs as shown to ``ctx``'s shopper: an impression
    (the frequency caps count them), the offer's impression counter, an ``offer_shown`` event."""
    for offer_id, variant in shown:
        db.execute(
            "INSERT INTO impressions (shopper_id, offer_id, channel, ts_ms) VALUES (?, ?, ?, ?)",
            [ctx.shopper_id, offer_id, ctx.channel or "", ctx.now_ms],
        )
        db.execute(
            "UPDATE offer_counters SET impressions = impressions + 1 WHERE offer_id = ?",
            [offer_id],
        )
        payload = {"offer_id": offer_id, "channel": ctx.channel or ""}
        if variant:
            payload["variant"] = variant
        log_event(db, ctx.shopper_id, "offer_shown", payload, ctx.now_ms, ctx.store_id)


def record_rejection(
    db: Any,
    shopper_id: str,
    offer_id: str,
    reason: str,
    ts: int,
    store_id: str,
    day: tuple[int, int],
) -> bool:
    """Log one ``offer_rejected`` event unless this shopper already has one for this offer
    and reason on this day; return whether it was written (in the caller's transaction).

    The funnel counts shoppers turned away per offer and reason, not button presses: a
    shopper retrying a used code five times is one rejection that day.
    """
    seen = db.execute(
        "SELECT 1 FROM events WHERE shopper_id = ? AND ts_ms >= ? AND ts_ms < ? "
        "AND type = 'offer_rejected' AND json_extract(payload, '$.offer_id') = ? "
        "AND json_extract(payload, '$.reason') = ? LIMIT 1",
        [shopper_id, day[0], day[1], offer_id, reason],
    ).fetchall()
    if seen:
        return False
    log_event(
        db, shopper_id, "offer_rejected", {"offer_id": offer_id, "reason": reason}, ts, store_id
    )
    return True


__all__ = [
    "IN_CHUNK",
    "USES",
    "confirm_member",
    "UsageSnapshot",
    "count_spent",
    "counters",
    "hold",
    "log_event",
    "open_counters",
    "record_rejection",
    "record_shown",
    "spend",
    "unhold",
    "usage_snapshot",
]
