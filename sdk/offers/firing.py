"""Firing triggers on the device: a shopper's facts from their events, fires kept in the store.

``run`` checks the offers with a ``trigger`` (``shelfwise.offers.triggers``) for some
shoppers: members who consented to offers, whose events make the trigger fire, and who had no
fire of that offer within its ``window_days``. Each fire is evaluated like the offer itself on
the channel asked for (schedule, limits, frequency caps, quiet hours: a perishable push offer
is dropped in quiet hours and tried again later, others get ``deliver_at_ms``) and kept in
``trigger_fires`` (this module owns the table) with the time it stays open. The rules read the
open fires from ``OfferContext.triggered`` (filled by ``context.build_context``).

It runs at the shopper's next visit (``sw.offers.eligible`` fires for the shopper before
ranking) and from a timer for app push (``sw.offers.run_triggers()``). A fire on an app
channel (``app_push``, ``app_inbox``) is queued in the notification outbox
(``shelfwise.notifications``) in the same transaction: a crash keeps both or neither.
Watch triggers (``back_in_stock``, ``price_drop``) fire each watched item with a new
change once (``shelfwise.offers.watches``) and have no window.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 3.0}])
    ...     _ = sw.offers.define({"offer_id": "come-back", "title": "Your cart: 1.00 off",
    ...         "reward": {"type": "amount", "value": 1},
    ...         "trigger": {"type": "abandoned_cart", "after_hours": 2}})
    ...     member = sw.member("L-1", consents={"offers": True})
    ...     added = member.add_to_cart("tea").ts_ms
    ...     [f.offer_id for f in sw.offers.run_triggers(now=added + 3 * 3_600_000)]
    ['come-back']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .. import notifications
from ..clock import DAY_MS
from . import usage, watches
from .definitions import Offer
from .rules import OfferContext, evaluate
from .triggers import Facts, Trigger, fires


@dataclass(frozen=True)
class TriggerFire:
    """A trigger that fired: the offer is open to the shopper until ``until_ms``."""

    shopper_id: str
    offer_id: str
    item_id: str | None
    fired_ms: int
    until_ms: int
    channel: str = ""
    deliver_at_ms: int | None = None  # in quiet hours: push it then
    notification_id: str | None = None  # queued in the notification outbox (app channels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def facts(db: Any, shopper_id: str, now: int, lookback_ms: int = 0) -> Facts:
    """What the shopper's events say for the triggers (see ``triggers.Facts``)."""
    last = db.execute(
        "SELECT max(ts_ms) FROM events WHERE shopper_id = ? AND type = 'purchase'", [shopper_id]
    ).fetchone()[0]
    moved = {
        kind: (int(units or 0), latest)
        for kind, units, latest in db.execute(
            "SELECT type, sum(quantity), max(ts_ms) FROM events WHERE shopper_id = ? "
            "AND type IN ('cart_add', 'cart_remove') AND ts_ms > ? AND ts_ms <= ? GROUP BY type",
            [shopper_id, -1 if last is None else last, now],
        ).fetchall()
    }
    added, latest_add = moved.get("cart_add", (0, None))
    views: dict[str, tuple[int, int]] = {}
    bought: dict[str, int] = {}
    if lookback_ms:
        since = now - lookback_ms
        for item, n, first in db.execute(
            "SELECT item_id, count(*), min(ts_ms) FROM events WHERE shopper_id = ? "
            "AND type IN ('view', 'scan') AND ts_ms >= ? AND ts_ms <= ? AND item_id IS NOT NULL "
            "GROUP BY item_id",
            [shopper_id, since, now],
        ).fetchall():
            views[item] = (int(n), int(first))
        for item, latest in db.execute(
            "SELECT item_id, max(ts_ms) FROM events WHERE shopper_id = ? AND type = 'purchase' "
            "AND ts_ms >= ? AND ts_ms <= ? GROUP BY item_id",
            [shopper_id, since, now],
        ).fetchall():
            bought[item] = int(latest)
    return Facts(last, added - moved.get("cart_remove", (0, None))[0], latest_add, views, bought)


def members_with_history(db: Any) -> list[str]:
    """Members whose events (or watches) could fire a trigger (a sweep's candidates)."""
    rows = db.execute(
        "SELECT DISTINCT e.shopper_id FROM events e JOIN shoppers s ON s.shopper_id = e.shopper_id "
        "WHERE s.kind = 'member' AND e.type IN ('purchase', 'cart_add', 'view', 'scan') "
        "ORDER BY e.shopper_id"
    ).fetchall()
    return sorted({r[0] for r in rows} | set(watches.watchers_due(db)))


def run(
    db: Any,
    offers: Sequence[Offer],
    shoppers: Sequence[str],
    context_of: Callable[[str], OfferContext],
) -> list[TriggerFire]:
    """Fire the triggers of ``offers`` for ``shoppers`` in the caller's transaction;
    ``context_of`` builds a shopper's context (its ``now_ms`` is the moment, its channel the
    one the fires are for). A fire for the app (``app_push``, ``app_inbox``) is queued in the
    notification outbox in the same transaction. Returns the new fires."""
    out: list[TriggerFire] = []
    live = [o for o in offers if o.trigger is not None and o.active]
    if not live:
        return out
    lookback = max(o.trigger.lookback_ms for o in live if o.trigger is not None)
    for shopper_id in shoppers:
        ctx = context_of(shopper_id)
        if not (ctx.is_member and ctx.consented):
            continue
        out += _fire_for(db, live, ctx, lookback)
    return out


def _fire_for(
    db: Any, live: Sequence[Offer], ctx: OfferContext, lookback: int
) -> list[TriggerFire]:
    """The fires of one consenting member at ``ctx.now_ms``."""
    shopper_id, now = ctx.shopper_id, ctx.now_ms
    known = facts(db, shopper_id, now, lookback)
    due: dict[str, dict[str, int]] = {}
    if any(o.trigger is not None and o.trigger.watched for o in live):
        due = watches.due(db, shopper_id)
        known = replace(known, watched={kind: tuple(items) for kind, items in due.items()})
    snapshot = usage.usage_snapshot(
        db, [o.offer_id for o in live], shopper_id, ctx, per_day=usage.per_day_limited(live)
    )
    out: list[TriggerFire] = []
    for offer in live:
        trigger = offer.trigger
        assert trigger is not None
        if not trigger.watched and _fired_within(db, shopper_id, offer.offer_id, now, trigger):
            continue  # once per shopper per window
        instances = fires(trigger, known, now)
        if not instances:
            continue
        opened = replace(ctx, triggered=ctx.triggered | {offer.offer_id})
        decision = evaluate(offer, opened, snapshot.usage(offer.offer_id))
        if not decision.eligible:
            continue  # consent, quiet hours, schedule, limits: not now, maybe later
        # A watch fires every item with a new change, each once (the change is used up
        # here, so a second offer on the same kind does not fire it again); the others
        # fire their first instance once per window.
        counted = due.pop(trigger.type, {}) if trigger.watched else {}
        chosen = list(counted) if trigger.watched else instances[:1]
        for item_id in chosen:
            seq = counted.get(item_id, 0) if item_id is not None else 0
            out.append(_keep(db, offer, ctx, item_id, decision.deliver_at_ms, seq))
        if trigger.watched:
            watches.mark_fired(db, shopper_id, trigger.type, counted)
            known = replace(known, watched={**known.watched, trigger.type: ()})
    return out


def _fired_within(db: Any, shopper_id: str, offer_id: str, now: int, trigger: Trigger) -> bool:
    last = db.execute(
        "SELECT max(fired_ms) FROM trigger_fires WHERE shopper_id = ? AND offer_id = ?",
        [shopper_id, offer_id],
    ).fetchone()[0]
    return last is not None and now - last < trigger.window_days * DAY_MS


def _keep(
    db: Any,
    offer: Offer,
    ctx: OfferContext,
    item_id: str | None,
    deliver_at_ms: int | None,
    change_seq: int,
) -> TriggerFire:
    """Write one fire (and, for the app, its notification) in the caller's transaction;
    ``change_seq``: the watch's change count it fires for (0 for other triggers)."""
    assert offer.trigger is not None
    now = ctx.now_ms
    fire = TriggerFire(
        ctx.shopper_id,
        offer.offer_id,
        item_id,
        now,
        now + int(offer.trigger.valid_days * DAY_MS),
        ctx.channel or "",
        deliver_at_ms,
    )
    db.execute(
        "INSERT INTO trigger_fires (shopper_id, offer_id, item_id, channel, fired_ms, "
        "until_ms, change_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [fire.shopper_id, fire.offer_id, item_id, fire.channel, now, fire.until_ms, change_seq],
    )
    if fire.channel not in notifications.APP_CHANNELS:
        return fire
    queued = notifications.enqueue(
        db,
        shopper_id=fire.shopper_id,
        offer_id=fire.offer_id,
        item_id=item_id,
        channel=fire.channel,
        kind=offer.trigger.type,
        title=offer.title,
        body=offer.description,
        fired_ms=now,
        change_seq=change_seq,
        deliver_at_ms=now if deliver_at_ms is None else deliver_at_ms,
        until_ms=fire.until_ms,
    )
    return replace(fire, notification_id=queued)


__all__ = ["TriggerFire", "facts", "members_with_history", "run"]
