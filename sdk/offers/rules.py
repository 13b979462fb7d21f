"""The rules: whether one offer applies to one shopper at one moment, as a pure function.

``evaluate(offer, ctx, usage)`` reads an ``Offer``, an ``OfferContext`` (who, where, when,
cart) and ``OfferUsage`` (the counters its limits read) and returns a ``Decision``: eligible
with the money off, or the first failing rule's stable reason code and a message a person
can read. Nothing here touches the store, the clock or the network, so every rule can be
tested on plain values; the ``Offers`` engine gathers the context and the counters.

Example:
    >>> from shelfwise.offers.definitions import parse_offer
    >>> offer = parse_offer({"offer_id": "o", "title": "O", "reward": {"type": "amount",
    ...     "value": 2}, "schedule": {"hours": ["08:00", "20:00"]}})
    >>> evening = OfferContext(now_ms=0, local=dt.datetime(2025, 1, 6, 21), consented=True)
    >>> evaluate(offer, evening).reason, evaluate(offer, evening).message
    ('outside_hours', 'the offer runs 08:00-20:00 only')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import OfferRejected
from ..clock import DAY_MS
from .definitions import DAYS, REASONS, Offer, Targeting
from .experiments import assign_variant
from .rewards import Basket, applications, apply, reward_lines
from .stacking import targeted_lines


@dataclass(frozen=True)
class CartLine:
    """A cart line as the rules see it: item, category, line total, units."""

    item_id: str
    category: str = ""
    amount: float = 0.0
    quantity: int = 1


@dataclass(frozen=True)
class OfferContext:
    """Everything the rules may know about one evaluation. ``local`` is the store's local
    time (None when the time zone is unknown: every time rule then fails closed)."""

    now_ms: int
    local: dt.datetime | None
    shopper_id: str = ""
    is_member: bool = False
    consented: bool = False
    segment: str = "new"
    days_since_purchase: float | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    member_since: dt.date | None = None
    cart: tuple[CartLine, ...] = ()
    cart_total: float | None = None
    store_id: str = ""
    channel: str | None = None
    item_id: str | None = None
    item_category: str | None = None
    item_price: float | None = None
    geofence: tuple[str, str] | None = None  # (fence_id, enter|dwell|exit)
    quiet_until_ms: int | None = None  # set while the store's quiet hours last
    purpose: str = "show"  # show | redeem (one offer) | order (an order's candidates)
    points: int | None = None  # the member's loyalty points, when read (orders read them)
    triggered: frozenset[str] = frozenset()  # offers a trigger opened to this shopper
    confirmed_ms: int | None = None  # when the member's uses elsewhere were last confirmed
    # The member's uses of an offer in the whole fleet, as the collector counted them just now
    # (a central check: shelfwise.offers.central), before this redemption.
    central_uses: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        if self.cart_total is not None:
            return self.cart_total
        return round(sum(line.amount for line in self.cart), 2)

    def basket(self) -> Basket:
        """The cart as rewards price it (the item in hand alone when there is no cart)."""
        if self.cart:
            return Basket(
                tuple(line.item_id for line in self.cart),
                tuple(line.category for line in self.cart),
                tuple(line.quantity for line in self.cart),
                tuple(line.amount for line in self.cart),
            )
        if self.item_id is not None:
            return Basket(
                (self.item_id,), (self.item_category or "",), (1,), (self.item_price or 0.0,)
            )
        return Basket((), (), (), ())


@dataclass(frozen=True)
class FleetShare:
    """This device's share of a fleet-wide limit (``shelfwise.offers.leases``): what it may
    have redeemed and spent in all, held reservations included, while ``live``."""

    redemptions: int | None = None
    budget: float | None = None
    live: bool = False


@dataclass(frozen=True)
class OfferUsage:
    """The counters the limits read (reserved counts as spent until released)."""

    redemptions: int = 0
    spent: float = 0.0
    today: int = 0
    customer_total: int = 0
    customer_today: int = 0
    customer_week: int = 0
    shown_today: int = 0
    shown_week: int = 0
    share: FleetShare | None = None  # for a fleet-wide offer: the share leased to this device


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one offer: eligible or the reason it is not."""

    offer_id: str
    eligible: bool
    reason: str
    message: str
    amount: float = 0.0
    variant: str | None = None
    deliver_at_ms: int | None = None

    def raise_if_rejected(self) -> Decision:
        if not self.eligible:
            raise OfferRejected(self.message, reason=self.reason)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer_id,
            "eligible": self.eligible,
            "reason": self.reason,
            "message": self.message,
            "amount": self.amount,
            "variant": self.variant,
        }


def discount_base(offer: Offer, ctx: OfferContext) -> float:
    """The amount the reward applies to: matching cart lines, the whole cart, or the item."""
    t = offer.targeting
    if t.items or t.categories:
        lines = [
            line.amount
            for line in ctx.cart
            if line.item_id in t.items or line.category in t.categories
        ]
        if lines:
            return round(sum(lines), 2)
        if ctx.item_id and (ctx.item_id in t.items or ctx.item_category in t.categories):
            return ctx.item_price or 0.0
        return 0.0
    if ctx.cart or ctx.cart_total is not None:
        return ctx.total
    return ctx.item_price or 0.0


def reward_amount(offer: Offer, ctx: OfferContext) -> float:
    """The offer's money off on its own for ``ctx``: percent and amount rewards on the
    ``discount_base``, other rewards on the cart's units (as often as ``per_order`` allows)."""
    reward = offer.reward
    if reward.type in {"percent", "amount"}:
        return reward.discount(discount_base(offer, ctx))
    if not reward.gives_money:
        return 0.0
    basket = ctx.basket()
    lines = reward_lines(reward, basket, targeted_lines(offer, basket))
    times = min(offer.stacking.per_order, applications(reward, basket, lines))
    return round(sum(apply(reward, basket, lines, basket.amounts, times)), 2)


def personal(offer: Offer) -> bool:
    """Does the offer pick shoppers by who they are (so applying it unasked needs consent)?

    Example:
        >>> from shelfwise.offers.definitions import parse_offer
        >>> personal(parse_offer({"offer_id": "o", "title": "O", "reward": {"type": "amount",
        ...     "value": 1}, "targeting": {"segments": ["lapsed"]}}))
        True
    """
    t = offer.targeting
    return bool(
        t.segments
        or t.members_only
        or t.min_days_since_purchase is not None
        or t.attributes
        or t.calendar
        or t.geofences
        or offer.trigger is not None
    )


def _reject(offer: Offer, reason: str, message: str, variant: str | None = None) -> Decision:
    return Decision(offer.offer_id, False, reason, message, variant=variant)


def _within_days(today: dt.date, month_day: tuple[int, int], window: int) -> bool:
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = dt.date(year, *month_day)
        except ValueError:  # 29 February in a common year: celebrate on the 28th
            day = dt.date(year, month_day[0], 28)
        if abs((today - day).days) <= window:
            return True
    return False


def _calendar_ok(t: Targeting, ctx: OfferContext, today: dt.date) -> bool:
    window = t.calendar_window_days
    if "birthday" in t.calendar:
        raw = str(ctx.attributes.get("birthday") or "")
        try:
            born = dt.date.fromisoformat(raw if len(raw) == 10 else f"2000-{raw}")
        except ValueError:
            born = None
        if born and _within_days(today, (born.month, born.day), window):
            return True
    if "anniversary" in t.calendar and ctx.member_since is not None:
        since = ctx.member_since
        if since.year < today.year and _within_days(today, (since.month, since.day), window):
            return True
    if "holiday" in t.calendar:
        for day in t.holidays:
            if len(day) == 10:
                if abs((today - dt.date.fromisoformat(day)).days) <= window:
                    return True
            elif _within_days(today, (int(day[:2]), int(day[3:5])), window):
                return True
    return False


def _beyond_share(offer: Offer, usage: OfferUsage, amount: float) -> Decision | None:
    """A fleet-wide offer redeems only inside the share the collector leased this device."""
    share = usage.share
    if share is None or not share.live:
        return _reject(
            offer,
            "fleet_share_missing",
            "this device holds no live share of the offer's fleet-wide limit: sync first",
        )
    if share.redemptions is not None and usage.redemptions >= share.redemptions:
        return _reject(offer, "fleet_share_used", "this device's share of the offer is used up")
    if share.budget is not None and usage.spent + amount > share.budget + 1e-9:
        return _reject(
            offer, "fleet_share_used", "this device's share of the offer's budget is used up"
        )
    return None


def evaluate(offer: Offer, ctx: OfferContext, usage: OfferUsage = OfferUsage()) -> Decision:
    """Run every rule of ``offer`` for ``ctx``; the first failing rule is the reason.

    Pure: reads nothing, writes nothing; the ``Offers`` engine supplies the usage counters.

    Example:
        >>> from shelfwise.offers.definitions import parse_offer
        >>> offer = parse_offer({"offer_id": "o", "title": "O", "reward": {"type": "amount",
        ...     "value": 2}, "targeting": {"cart_total_min": 20}})
        >>> ctx = OfferContext(now_ms=0, local=dt.datetime(2025, 1, 6, 12), cart_total=15.0,
        ...     consented=True)
        >>> evaluate(offer, ctx).message
        'not eligible: cart total 15.00 is below 20.00'
    """
    t, s, lim = offer.targeting, offer.schedule, offer.limits
    showing = ctx.purpose == "show"
    paying = not showing
    loyalty = bool(offer.points_cost) or offer.reward.type == "points"
    if not offer.active:
        return _reject(offer, "inactive", f"offer {offer.offer_id} is switched off")
    # Targeting needs consent; a code in hand does not, nor a store-wide deal on an order.
    if (showing or (ctx.purpose == "order" and personal(offer))) and not ctx.consented:
        return _reject(offer, "consent_required", "the shopper has not consented to offers")
    if ctx.purpose == "redeem" and loyalty:
        return _reject(offer, "order_required", "points are earned and spent with an order")
    members = t.members_only or lim.per_customer_limited or t.calendar or offer.trigger
    if (members or loyalty) and not ctx.is_member:
        return _reject(
            offer,
            "member_required",
            "not eligible: this offer is for loyalty members (scan your card)",
        )
    if offer.trigger is not None and offer.offer_id not in ctx.triggered:
        return _reject(offer, "not_triggered", f"opens only after a {offer.trigger.type} trigger")
    if showing and t.channels and ctx.channel not in t.channels:
        return _reject(offer, "channel", f"not offered on {ctx.channel or 'this channel'}")
    if t.stores and ctx.store_id not in t.stores:
        return _reject(offer, "store", f"not offered in store {ctx.store_id or '?'}")
    needs_time = bool(s.starts or s.ends or s.days or s.start_minute is not None or t.calendar)
    needs_time = needs_time or any(
        x is not None for x in (lim.per_day, lim.per_customer_per_day, lim.per_customer_per_week)
    )
    if ctx.local is None and (needs_time or (showing and ctx.channel == "app_push")):
        return _reject(offer, "timezone_unknown", REASONS["timezone_unknown"])
    if ctx.local is not None:
        local = ctx.local.replace(tzinfo=None)
        if s.starts and local < dt.datetime.fromisoformat(s.starts):
            return _reject(offer, "not_started", f"the offer starts {s.starts.replace('T', ' ')}")
        if s.ends and local >= dt.datetime.fromisoformat(s.ends):
            return _reject(offer, "expired", f"the offer ended {s.ends.replace('T', ' ')}")
        if s.days and local.weekday() not in s.days:
            names = ", ".join(DAYS[d] for d in sorted(s.days))
            return _reject(offer, "wrong_day", f"the offer runs on {names} only")
        start, end = s.start_minute, s.end_minute
        if (
            start is not None
            and end is not None
            and not in_window(local.hour * 60 + local.minute, start, end)
        ):
            window = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
            return _reject(offer, "outside_hours", f"the offer runs {window} only")
    if t.segments and ctx.segment not in t.segments:
        return _reject(
            offer,
            "segment",
            f"not eligible: the offer is for {', '.join(sorted(t.segments))} shoppers",
        )
    if t.min_days_since_purchase is not None and (
        ctx.days_since_purchase is None or ctx.days_since_purchase < t.min_days_since_purchase
    ):
        return _reject(
            offer,
            "lapsed_days",
            f"not eligible: the offer is for members who last bought {t.min_days_since_purchase:g}+ days ago",
        )
    for name, allowed in t.attributes.items():
        if ctx.attributes.get(name) not in allowed:
            shown = allowed[0] if len(allowed) == 1 else list(allowed)
            return _reject(
                offer, "attribute", f"not eligible: member attribute {name} must be {shown}"
            )
    if t.calendar and (ctx.local is None or not _calendar_ok(t, ctx, ctx.local.date())):
        return _reject(
            offer,
            "calendar",
            f"not eligible: only on the shopper's {' / '.join(sorted(t.calendar))}",
        )
    total = ctx.total
    if t.cart_total_min is not None and total < t.cart_total_min:
        return _reject(
            offer,
            "cart_total_below",
            f"not eligible: cart total {total:.2f} is below {t.cart_total_min:.2f}",
        )
    if t.cart_total_max is not None and total > t.cart_total_max:
        return _reject(
            offer,
            "cart_total_above",
            f"not eligible: cart total {total:.2f} is above {t.cart_total_max:.2f}",
        )
    cart_items = {line.item_id for line in ctx.cart}
    cart_categories = {line.category for line in ctx.cart}
    if t.cart_items_any and not cart_items & t.cart_items_any:
        return _reject(
            offer,
            "cart_items",
            f"not eligible: the cart needs one of {', '.join(sorted(t.cart_items_any))}",
        )
    if t.cart_categories_any and not cart_categories & t.cart_categories_any:
        return _reject(
            offer,
            "cart_items",
            f"not eligible: the cart needs something from {', '.join(sorted(t.cart_categories_any))}",
        )
    on_item = ctx.item_id in t.items or ctx.item_category in t.categories
    if showing and ctx.item_id is not None and (t.items or t.categories) and not on_item:
        return _reject(offer, "item", "the offer is not on this item")
    if showing and t.geofences:
        fence = ctx.geofence
        if fence is None or fence[0] not in t.geofences or fence[1] not in t.geofence_events:
            return _reject(
                offer,
                "geofence",
                f"not eligible: needs a visit to {', '.join(sorted(t.geofences))}",
            )
    reward = offer.reward
    linear = reward.type == "percent" or reward.type == "amount"
    amount = reward.discount(discount_base(offer, ctx)) if linear else reward_amount(offer, ctx)
    if paying and amount <= 0 and offer.reward.gives_money:
        return _reject(offer, "nothing_to_discount", "the cart holds nothing this offer discounts")
    if offer.points_cost and ctx.points is not None and ctx.points < offer.points_cost:
        return _reject(
            offer, "points_insufficient", f"needs {offer.points_cost} points ({ctx.points} held)"
        )
    if lim.scope == "fleet":
        refused = _beyond_share(offer, usage, amount if paying else 0.0)
        if refused is not None:
            return refused
    if lim.total_redemptions is not None and usage.redemptions >= lim.total_redemptions:
        return _reject(offer, "redemptions_exhausted", "the offer is fully redeemed")
    if lim.budget is not None and usage.spent + (amount if paying else 0.0) > lim.budget + 1e-9:
        remaining = max(0.0, lim.budget - usage.spent)
        return _reject(
            offer, "budget_exhausted", f"the offer's budget is used up ({remaining:.2f} left)"
        )
    if lim.per_day is not None and usage.today >= lim.per_day:
        return _reject(offer, "daily_limit", "the offer's redemptions for today are used up")
    central = ctx.central_uses.get(offer.offer_id)
    uses = usage.customer_total if central is None else max(usage.customer_total, central)
    unsure = lim.offline != "allow" and lim.per_customer_limited and not _confirmed(lim, ctx)
    unsure = unsure and central is None
    if unsure and (lim.offline == "deny" or uses >= (lim.offline_uses or 0)):
        return _reject(
            offer,
            "customer_unconfirmed",
            "this device cannot confirm the member's uses on other devices: sync first",
        )
    if lim.per_customer is not None and uses >= lim.per_customer:
        return _reject(offer, "customer_limit", f"already used {uses} of {lim.per_customer} times")
    if lim.per_customer_per_day is not None and usage.customer_today >= lim.per_customer_per_day:
        return _reject(offer, "customer_daily_limit", "already used today")
    if lim.per_customer_per_week is not None and usage.customer_week >= lim.per_customer_per_week:
        return _reject(offer, "customer_weekly_limit", "already used this week")
    deliver_at = None
    if showing:
        if lim.impressions_per_day is not None and usage.shown_today >= lim.impressions_per_day:
            return _reject(offer, "frequency_cap", f"already shown {usage.shown_today} times today")
        if lim.impressions_per_week is not None and usage.shown_week >= lim.impressions_per_week:
            return _reject(
                offer, "frequency_cap", f"already shown {usage.shown_week} times this week"
            )
        if ctx.channel == "app_push" and ctx.quiet_until_ms is not None:
            if offer.perishable:
                return _reject(
                    offer, "quiet_hours", "quiet hours: a location offer is dropped, not delayed"
                )
            deliver_at = ctx.quiet_until_ms
    variant = None
    if offer.experiment is not None:
        variant, holdout = assign_variant(offer.experiment, ctx.shopper_id)
        if holdout:
            return _reject(
                offer,
                "experiment_control",
                f"held out by experiment {offer.experiment.experiment_id}",
                variant,
            )
    return Decision(
        offer.offer_id,
        True,
        "eligible",
        f"{offer.title}: {amount:.2f} off",
        amount,
        variant,
        deliver_at,
    )


def _confirmed(lim: Any, ctx: OfferContext) -> bool:
    """Were the member's uses on other devices confirmed recently enough for these limits?"""
    seen = ctx.confirmed_ms
    return seen is not None and ctx.now_ms - seen <= lim.confirm_within_s * 1000


def within_central_limit(offer: Offer, central_uses: int) -> bool:
    """Whether the collector's count of a member's uses of ``offer`` leaves room for one more.

    ``evaluate`` counts the larger of the local and the central count, so an offer that
    qualified without the central count still qualifies with it exactly when this holds, and
    one left out only because the member's uses were unconfirmed can qualify only when it holds.
    """
    limit = offer.limits.per_customer
    return limit is None or central_uses < limit


def period_starts(ctx: OfferContext) -> tuple[int, int]:
    """UTC ms of the store-local midnight and Monday midnight the per-day/week limits count from
    (the last 24 h / 7 days when the time zone is unknown)."""
    if ctx.local is None:
        return ctx.now_ms - DAY_MS, ctx.now_ms - 7 * DAY_MS
    midnight = ctx.local.replace(hour=0, minute=0, second=0, microsecond=0)
    monday = midnight - dt.timedelta(days=midnight.weekday())
    return int(midnight.timestamp() * 1000), int(monday.timestamp() * 1000)


def day_bounds(ctx: OfferContext) -> tuple[int, int]:
    """[start, end) UTC ms of the store-local day of ``ctx`` (the last 24 h if the zone is
    unknown); a DST day is 23 or 25 hours long."""
    if ctx.local is None:
        return ctx.now_ms - DAY_MS, ctx.now_ms + 1
    midnight = ctx.local.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = midnight + dt.timedelta(days=1)  # wall-clock arithmetic: the next midnight
    return int(midnight.timestamp() * 1000), int(tomorrow.timestamp() * 1000)


def in_window(minute: int, start: int, end: int) -> bool:
    """Is ``minute`` (after local midnight) inside [start, end)? A window whose end is before
    its start wraps midnight (22:00-06:00).

    Example:
        >>> in_window(23 * 60, 22 * 60, 6 * 60), in_window(12 * 60, 22 * 60, 6 * 60)
        (True, False)
    """
    return start <= minute < end if start < end else minute >= start or minute < end


def quiet_end(local: dt.datetime, start: int, end: int) -> int | None:
    """When the quiet hours [start, end) (store-local minutes) in force at ``local`` end, in
    UTC ms; None when ``local`` is not inside them.

    Example:
        >>> night = dt.datetime(2025, 1, 6, 23, 30, tzinfo=dt.UTC)
        >>> quiet_end(night, 21 * 60, 8 * 60) == int(dt.datetime(2025, 1, 7, 8, tzinfo=dt.UTC).timestamp() * 1000)
        True
        >>> quiet_end(night.replace(hour=12), 21 * 60, 8 * 60) is None
        True
    """
    if not in_window(local.hour * 60 + local.minute, start, end):
        return None
    ends = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(minutes=end)
    if ends <= local:
        ends += dt.timedelta(days=1)
    return int(ends.timestamp() * 1000)


__all__ = [
    "CartLine",
    "Decision",
    "FleetShare",
    "OfferContext",
    "OfferUsage",
    "day_bounds",
    "discount_base",
    "evaluate",
    "in_window",
    "period_starts",
    "personal",
    "quiet_end",
    "reward_amount",
    "within_central_limit",
]
