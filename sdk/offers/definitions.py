"""Offer definitions: what an offer is, parsed from JSON or YAML with a message naming the field.

``parse_offer`` turns one mapping into a frozen ``Offer`` (``Reward``, ``Targeting``,
``Schedule``, ``Limits``, ``Experiment``) or raises ``InvalidOffer`` saying which field is
wrong and what it should be; ``read_offer_file`` reads a file of them. ``REASONS`` (public as
``shelfwise.OFFER_REASONS``) are the stable reason codes every rejection carries.

Example:
    >>> offer = parse_offer({"offer_id": "ten-off", "title": "10% off",
    ...     "reward": {"type": "percent", "value": 10}, "schedule": {"days": ["weekend"]}})
    >>> offer.reward.discount(30.0), sorted(offer.schedule.days)
    (3.0, [5, 6])
    >>> parse_offer({"offer_id": "x", "title": "X", "reward": {"type": "amount", "value": 1},
    ...     "targeting": {"cart_totl_min": 5}})
    Traceback (most recent call last):
    ...
    shelfwise.InvalidOffer: offer x: unknown targeting field(s): cart_totl_min
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import InvalidOffer
from ..identity import SEGMENTS
from .rewards import Reward, parse_reward
from .stacking import Stacking, parse_stacking
from .triggers import Trigger, parse_trigger

CHANNELS = frozenset({"kiosk", "app_push", "app_inbox", "pos", "scan"})
CALENDAR = frozenset({"birthday", "anniversary", "holiday"})
GEOFENCE_EVENTS = frozenset({"enter", "dwell", "exit"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Stable reason codes (machine-readable, never renamed) -> what they mean.
REASONS: dict[str, str] = {
    "eligible": "the offer applies",
    "unknown_offer": "no such offer",
    "inactive": "the offer is switched off",
    "consent_required": "the shopper has not consented to offers",
    "member_required": "the offer is for loyalty members",
    "channel": "the offer is not shown on this channel",
    "store": "the offer does not run in this store",
    "timezone_unknown": "the store's time zone is unknown, so time rules fail closed",
    "not_started": "the offer has not started",
    "expired": "the offer has ended",
    "wrong_day": "the offer does not run today",
    "outside_hours": "the offer does not run at this time of day",
    "segment": "the shopper's segment is not targeted",
    "lapsed_days": "the shopper bought too recently",
    "attribute": "a member attribute does not match",
    "calendar": "not the shopper's birthday/anniversary or a holiday",
    "cart_total_below": "the cart total is below the minimum",
    "cart_total_above": "the cart total is above the maximum",
    "cart_items": "the cart does not hold the required items",
    "item": "the offer is not on this item",
    "geofence": "the shopper did not trigger the offer's geofence",
    "redemptions_exhausted": "the offer's redemptions are used up",
    "budget_exhausted": "the offer's money budget is used up",
    "daily_limit": "the offer's redemptions for today are used up",
    "customer_limit": "the shopper used this offer the allowed number of times",
    "customer_daily_limit": "the shopper used this offer the allowed times today",
    "customer_weekly_limit": "the shopper used this offer the allowed times this week",
    "frequency_cap": "the offer was shown to this shopper often enough",
    "quiet_hours": "quiet hours: a perishable offer is dropped, not delayed",
    "experiment_control": "the shopper is in an experiment's control group",
    "nothing_to_discount": "the cart holds nothing the offer discounts",
    "code_required": "the offer is redeemed with a code",
    "code_invalid": "not a valid code (spelling or check character)",
    "code_unknown": "no such code",
    "code_used": "the code was already redeemed",
    "code_reserved": "the code is held by another checkout",
    "code_expired": "the code has expired",
    "code_other_shopper": "the code belongs to another member",
    "code_unconfirmed": "a code of the chain's cannot be checked: its server is not reachable",
    "reservation_unknown": "no such reservation",
    "reservation_expired": "the reservation expired and was released",
    "reservation_closed": "the reservation was already committed or released",
    # Orders: an order applies the best allowed combination (shelfwise.offers.stacking).
    "stacking_exclusive": "an offer applied alone leaves no room for this one (or the reverse)",
    "stacking_category": "the promotion categories of this offer and an applied one do not combine",
    "stacking_limit": "the order already applies the most offers allowed",
    "per_order_limit": "the offer already applies as many times as one order allows",
    "order_discount_cap": "the order's discount is at its cap",
    "stacking_better": "a better combination of offers leaves this one out",
    "order_required": "the offer is redeemed as part of an order (price_order / redeem_order)",
    "order_unknown": "no such order",
    "order_conflict": "the order id was already used for a different order",
    "points_insufficient": "the member has too few points",
    "not_triggered": "the offer opens only when a trigger fires for the shopper",
    "customer_unconfirmed": "the device cannot confirm the member's uses on other devices now",
    "fleet_share_used": "this device's share of the offer's fleet-wide limit is used up until it syncs",
    "fleet_share_missing": "this device holds no live share of the offer's fleet-wide limit: sync",
}


OFFER_REASONS = REASONS  # the public name


@dataclass(frozen=True)
class Targeting:
    """Who, where and what an offer is for; an empty field does not restrict."""

    segments: frozenset[str] = frozenset()
    members_only: bool = False
    min_days_since_purchase: float | None = None
    attributes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    cart_total_min: float | None = None
    cart_total_max: float | None = None
    cart_items_any: frozenset[str] = frozenset()
    cart_categories_any: frozenset[str] = frozenset()
    items: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    geofences: frozenset[str] = frozenset()
    geofence_events: frozenset[str] = frozenset({"enter", "dwell"})
    channels: frozenset[str] = frozenset()
    calendar: frozenset[str] = frozenset()
    holidays: tuple[str, ...] = ()
    calendar_window_days: int = 0


@dataclass(frozen=True)
class Schedule:
    """When, in the store's local time: ISO start/end, days of week, daily hours."""

    starts: str | None = None
    ends: str | None = None
    days: frozenset[int] = frozenset()  # 0 = Monday
    start_minute: int | None = None
    end_minute: int | None = None  # may be before start_minute: the window wraps midnight


@dataclass(frozen=True)
class LeaseTerms:
    """What a device asks the collector for at a time, for a fleet-wide limit: a slice of the
    redemptions and of the budget, good for ``ttl_s`` seconds."""

    redemptions: int | None = None
    budget: float | None = None
    ttl_s: int = 3600


@dataclass(frozen=True)
class Limits:
    """Budgets and caps; None means unlimited. Per-customer limits key on the loyalty id."""

    total_redemptions: int | None = None
    budget: float | None = None
    per_day: int | None = None
    per_customer: int | None = None
    per_customer_per_day: int | None = None
    per_customer_per_week: int | None = None
    impressions_per_day: int | None = None
    impressions_per_week: int | None = None
    # When the device cannot confirm the member's uses on other devices (their profile was not
    # merged from the fleet in the last confirm_within_s): allow (what it knows), deny, or
    # allow while the uses it knows stay below offline_uses (``offline: {allow_up_to: N}``).
    offline: str = "allow"
    offline_uses: int | None = None
    confirm_within_s: int = 3600
    # "fleet": total_redemptions and budget hold across every device; a device redeems only
    # within the share the collector leased it (shelfwise.offers.leases).
    scope: str = "device"
    lease: LeaseTerms | None = None

    @property
    def per_customer_limited(self) -> bool:
        return (
            self.per_customer is not None
            or self.per_customer_per_day is not None
            or self.per_customer_per_week is not None
        )


@dataclass(frozen=True)
class Experiment:
    """An A/B test: variants with weights; a ``holdout`` variant never sees the offer."""

    experiment_id: str
    variants: tuple[tuple[str, float, bool], ...] = (
        ("control", 50.0, True),
        ("treatment", 50.0, False),
    )


@dataclass(frozen=True)
class Offer:
    """One validated offer definition."""

    offer_id: str
    title: str
    reward: Reward
    targeting: Targeting = field(default_factory=Targeting)
    schedule: Schedule = field(default_factory=Schedule)
    limits: Limits = field(default_factory=Limits)
    description: str = ""
    codes: str = "none"  # none: applied by offer id; unique: needs a one-time code
    perishable: bool = False
    active: bool = True
    experiment: Experiment | None = None
    stacking: Stacking = field(default_factory=Stacking)
    points_cost: int = 0  # loyalty points a member spends to get the reward (a burn)
    trigger: Trigger | None = None  # opened to one shopper by their events (triggers)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The definition as given (JSON-ready), with the current activation switch."""
        return {**self.source, "offer_id": self.offer_id, "active": self.active}


_OFFER_KEYS = {
    "offer_id",
    "id",
    "title",
    "description",
    "reward",
    "targeting",
    "schedule",
    "limits",
    "codes",
    "perishable",
    "active",
    "experiment",
    "stacking",
    "points_cost",
    "trigger",
}
_TARGETING_KEYS = {f for f in Targeting.__dataclass_fields__}
_LIMIT_KEYS = {f for f in Limits.__dataclass_fields__} - {"offline_uses"}
_NUMBER_LIMITS = _LIMIT_KEYS - {"offline", "confirm_within_s", "scope", "lease"}
SLICES_PER_FLEET = 20  # a default lease is this share of a fleet-wide limit
_SCHEDULE_KEYS = {"starts", "ends", "days", "hours"}


def _fail(offer_id: str, message: str) -> InvalidOffer:
    return InvalidOffer(f"offer {offer_id or '?'}: {message}")


def _strings(
    value: Any, name: str, oid: str, allowed: Iterable[str] | None = None
) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise _fail(oid, f"{name} must be a list of strings")
    if allowed is not None:
        allowed = set(allowed)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _fail(
                oid, f"{name}: {', '.join(unknown)} not one of {', '.join(sorted(allowed))}"
            )
    return frozenset(value)


def _number(value: Any, name: str, oid: str, *, integer: bool = False) -> Any:
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < 0:
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise _fail(oid, f"{name} must be {kind}, not {value!r}")
    return value if integer else float(value)


def parse_minute(text: Any, oid: str) -> int:
    """Minutes after midnight of an 'HH:MM' time of day ('24:00' is the end of the day).

    Example:
        >>> parse_minute("08:30", "o1")
        510
    """
    try:
        hour, minute = str(text).split(":")
        h, m = int(hour), int(minute)
    except ValueError as exc:
        raise _fail(oid, f"schedule hours must be 'HH:MM', not {text!r}") from exc
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
        raise _fail(oid, f"schedule hour {text!r} is not a time of day")
    return h * 60 + m


def _iso(value: Any, name: str, oid: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise _fail(
            oid, f"schedule.{name} must be an ISO date or date-time, not {value!r}"
        ) from exc
    if parsed.tzinfo is not None:
        raise _fail(oid, f"schedule.{name} is store-local time: leave out the UTC offset")
    return parsed.isoformat()


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], where: str, oid: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _fail(oid, f"unknown {where} field(s): {', '.join(extra)}")


def parse_offer(data: Mapping[str, Any]) -> Offer:
    """Validate one offer definition (a mapping from JSON/YAML); raise ``InvalidOffer``.

    Example:
        >>> parse_offer({"offer_id": "x", "title": "X", "reward": {"type": "percent", "value": 150}})
        Traceback (most recent call last):
        ...
        shelfwise.InvalidOffer: offer x: reward.value must be between 0 and 100 for a percent reward
    """
    if not isinstance(data, Mapping):
        raise InvalidOffer(f"an offer definition must be a mapping, not {type(data).__name__}")
    oid = str(data.get("offer_id") or data.get("id") or "").strip()
    if not oid or len(oid) > 64 or any(c.isspace() for c in oid):
        raise InvalidOffer("an offer needs an offer_id of 1 to 64 characters without spaces")
    _unknown_keys(data, _OFFER_KEYS, "offer", oid)
    title = str(data.get("title") or "").strip()
    if not title:
        raise _fail(oid, "title is missing")
    reward = parse_reward(data.get("reward"), oid)
    targeting = _parse_targeting(data.get("targeting") or {}, oid)
    schedule = _parse_schedule(data.get("schedule") or {}, oid)
    raw_limits = data.get("limits") or {}
    if not isinstance(raw_limits, Mapping):
        raise _fail(oid, "limits must be a mapping")
    _unknown_keys(raw_limits, _LIMIT_KEYS, "limits", oid)
    limits = Limits(
        **{
            key: _number(raw_limits.get(key), f"limits.{key}", oid, integer=key != "budget")
            for key in _NUMBER_LIMITS
        },
        **_offline_policy(raw_limits, oid),
    )
    limits = _fleet_scope(limits, raw_limits, oid)
    codes = data.get("codes", "none")
    if codes not in {"none", "unique"}:
        raise _fail(oid, "codes must be 'none' (applied by offer id) or 'unique'")
    perishable = data.get("perishable", bool(targeting.geofences))
    active = data.get("active", True)
    if not isinstance(perishable, bool) or not isinstance(active, bool):
        raise _fail(oid, "perishable and active must be true or false")
    points_cost = _number(data.get("points_cost", 0), "points_cost", oid, integer=True)
    if points_cost and reward.type == "points":
        raise _fail(oid, "a points reward earns points; it cannot cost points too")
    return Offer(
        offer_id=oid,
        title=title,
        reward=reward,
        targeting=targeting,
        schedule=schedule,
        limits=limits,
        description=str(data.get("description") or ""),
        codes=codes,
        perishable=perishable,
        active=active,
        experiment=_parse_experiment(data.get("experiment"), oid),
        stacking=parse_stacking(data.get("stacking"), oid),
        points_cost=points_cost or 0,
        trigger=parse_trigger(data.get("trigger"), oid),
        source=json.loads(json.dumps(dict(data), default=str)),
    )


def _offline_policy(raw: Mapping[str, Any], oid: str) -> dict[str, Any]:
    """``offline: deny | allow | {allow_up_to: N}`` and ``confirm_within_s``."""
    policy, within = raw.get("offline", "allow"), raw.get("confirm_within_s", 3600)
    if isinstance(within, bool) or not isinstance(within, int) or not 0 < within <= 90 * 86400:
        raise _fail(oid, "limits.confirm_within_s must be a number of seconds up to 90 days")
    uses = None
    if isinstance(policy, Mapping) and set(policy) == {"allow_up_to"}:
        uses = _number(policy["allow_up_to"], "limits.offline.allow_up_to", oid, integer=True)
        policy = "allow_up_to"
    elif policy not in {"allow", "deny"}:
        raise _fail(oid, "limits.offline must be deny, allow or {allow_up_to: N}")
    per_customer = any(
        raw.get(k) is not None
        for k in ("per_customer", "per_customer_per_day", "per_customer_per_week")
    )
    if policy != "allow" and not per_customer:
        raise _fail(oid, "limits.offline applies to per-customer limits: set one")
    return {"offline": policy, "offline_uses": uses, "confirm_within_s": within}


def _fleet_scope(limits: Limits, raw: Mapping[str, Any], oid: str) -> Limits:
    """``scope: device | fleet`` and, for a fleet, the ``lease: {redemptions, budget, ttl_s}``
    a device asks for (default: a twentieth of each fleet-wide limit, for an hour)."""
    scope = raw.get("scope", "device")
    if scope not in {"device", "fleet"}:
        raise _fail(oid, "limits.scope must be device or fleet")
    if scope == "device":
        if raw.get("lease") is not None:
            raise _fail(oid, "limits.lease applies to fleet-wide limits: set scope: fleet")
        return limits
    if limits.total_redemptions is None and limits.budget is None:
        raise _fail(oid, "a fleet-wide offer needs total_redemptions or budget to share")
    terms = raw.get("lease") or {}
    if not isinstance(terms, Mapping):
        raise _fail(oid, "limits.lease must be a mapping")
    _unknown_keys(terms, {"redemptions", "budget", "ttl_s"}, "limits.lease", oid)
    ttl = terms.get("ttl_s", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 30 * 86400:
        raise _fail(oid, "limits.lease.ttl_s must be a number of seconds from 60 to 30 days")
    total, budget = limits.total_redemptions, limits.budget
    slice_n = _number(terms.get("redemptions"), "limits.lease.redemptions", oid, integer=True)
    slice_b = _number(terms.get("budget"), "limits.lease.budget", oid)
    if slice_n == 0 or slice_b == 0:
        raise _fail(oid, "limits.lease slices must be above zero")
    if total is not None and slice_n is None:
        slice_n = max(1, -(-total // SLICES_PER_FLEET))
    if budget is not None and slice_b is None:
        slice_b = budget / SLICES_PER_FLEET
    lease = LeaseTerms(
        redemptions=None if total is None else int(slice_n or 1),
        budget=None if budget is None else float(slice_b or 0.0),
        ttl_s=ttl,
    )
    return replace(limits, scope="fleet", lease=lease)


def _parse_targeting(raw: Any, oid: str) -> Targeting:
    if not isinstance(raw, Mapping):
        raise _fail(oid, "targeting must be a mapping")
    _unknown_keys(raw, _TARGETING_KEYS, "targeting", oid)
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise _fail(oid, "targeting.attributes must map an attribute to a value or a list")
    low, high = (
        _number(raw.get("cart_total_min"), "targeting.cart_total_min", oid),
        _number(raw.get("cart_total_max"), "targeting.cart_total_max", oid),
    )
    if low is not None and high is not None and low > high:
        raise _fail(oid, "targeting.cart_total_min is above cart_total_max")
    holidays = tuple(str(h) for h in raw.get("holidays") or ())
    for day in holidays:
        try:
            dt.date.fromisoformat(day if len(day) == 10 else f"2000-{day}")
        except ValueError as exc:
            raise _fail(oid, f"holiday {day!r} must be 'MM-DD' or 'YYYY-MM-DD'") from exc
    calendar = _strings(raw.get("calendar"), "targeting.calendar", oid, CALENDAR)
    if "holiday" in calendar and not holidays:
        raise _fail(oid, "targeting.calendar has 'holiday' but targeting.holidays is empty")
    window = _number(
        raw.get("calendar_window_days", 0), "targeting.calendar_window_days", oid, integer=True
    )
    members_only = raw.get("members_only", False)
    if not isinstance(members_only, bool):
        raise _fail(oid, "targeting.members_only must be true or false")
    return Targeting(
        segments=_strings(raw.get("segments"), "targeting.segments", oid, SEGMENTS),
        members_only=members_only,
        min_days_since_purchase=_number(
            raw.get("min_days_since_purchase"), "targeting.min_days_since_purchase", oid
        ),
        attributes={
            str(k): tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in attributes.items()
        },
        cart_total_min=low,
        cart_total_max=high,
        cart_items_any=_strings(raw.get("cart_items_any"), "targeting.cart_items_any", oid),
        cart_categories_any=_strings(
            raw.get("cart_categories_any"), "targeting.cart_categories_any", oid
        ),
        items=_strings(raw.get("items"), "targeting.items", oid),
        categories=_strings(raw.get("categories"), "targeting.categories", oid),
        stores=_strings(raw.get("stores"), "targeting.stores", oid),
        geofences=_strings(raw.get("geofences"), "targeting.geofences", oid),
        geofence_events=_strings(
            raw.get("geofence_events", ["enter", "dwell"]),
            "targeting.geofence_events",
            oid,
            GEOFENCE_EVENTS,
        ),
        channels=_strings(raw.get("channels"), "targeting.channels", oid, CHANNELS),
        calendar=calendar,
        holidays=holidays,
        calendar_window_days=window or 0,
    )


def _parse_schedule(raw: Any, oid: str) -> Schedule:
    if not isinstance(raw, Mapping):
        raise _fail(oid, "schedule must be a mapping")
    _unknown_keys(raw, _SCHEDULE_KEYS, "schedule", oid)
    starts, ends = _iso(raw.get("starts"), "starts", oid), _iso(raw.get("ends"), "ends", oid)
    if starts and ends and starts >= ends:
        raise _fail(oid, "schedule.starts must be before schedule.ends")
    days = _strings(raw.get("days"), "schedule.days", oid, {*DAYS, "weekdays", "weekend"})
    day_numbers: set[int] = set()
    for day in days:
        day_numbers |= (
            {0, 1, 2, 3, 4}
            if day == "weekdays"
            else {5, 6}
            if day == "weekend"
            else {DAYS.index(day)}
        )
    hours = raw.get("hours")
    start_minute = end_minute = None
    if hours is not None:
        if not isinstance(hours, list | tuple) or len(hours) != 2:
            raise _fail(oid, "schedule.hours must be ['HH:MM', 'HH:MM']")
        start_minute, end_minute = parse_minute(hours[0], oid), parse_minute(hours[1], oid)
        if start_minute == end_minute:
            raise _fail(oid, "schedule.hours start and end are the same")
    return Schedule(starts, ends, frozenset(day_numbers), start_minute, end_minute)


def _parse_experiment(raw: Any, oid: str) -> Experiment | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not str(raw.get("id") or "").strip():
        raise _fail(oid, "experiment must be a mapping with an id")
    variants_raw = raw.get("variants") or [
        {"name": "control", "weight": 50, "holdout": True},
        {"name": "treatment", "weight": 50},
    ]
    variants = []
    for v in variants_raw:
        if not isinstance(v, Mapping) or not str(v.get("name") or "").strip():
            raise _fail(oid, "each experiment variant needs a name")
        weight = _number(v.get("weight", 1), "experiment variant weight", oid)
        variants.append((str(v["name"]), float(weight), bool(v.get("holdout", False))))
    if len({v[0] for v in variants}) != len(variants) or sum(v[1] for v in variants) <= 0:
        raise _fail(oid, "experiment variants need distinct names and a positive total weight")
    return Experiment(str(raw["id"]).strip(), tuple(variants))


def read_offer_file(path: str | Path) -> list[Mapping[str, Any]]:
    """Offer definitions from a ``.json`` or ``.yaml``/``.yml`` file (one offer or a list).

    YAML needs PyYAML (in the ``dev`` and ``demo`` extras); JSON always works.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidOffer(
                f"{path.name}: reading YAML needs PyYAML (pip install 'shelfwise[demo]'); "
                "or write the offers as JSON"
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidOffer(f"{path.name}: not valid YAML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidOffer(f"{path.name}: not valid JSON: {exc}") from exc
    if isinstance(data, Mapping) and "offers" in data:
        data = data["offers"]
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise InvalidOffer(f"{path.name}: expected an offer, a list of offers or {{offers: [...]}}")
    return data


__all__ = [
    "CALENDAR",
    "CHANNELS",
    "DAYS",
    "GEOFENCE_EVENTS",
    "OFFER_REASONS",
    "REASONS",
    "Experiment",
    "LeaseTerms",
    "Limits",
    "Offer",
    "Reward",
    "Schedule",
    "Targeting",
    "parse_minute",
    "parse_offer",
    "read_offer_file",
]
