"""The rules' view of a shopper (an ``OfferContext`` read from the store) and the store's clock.

Offers run in the store's local time: its IANA time zone and its quiet hours are settings in
the store (``offers.timezone``, ``offers.quiet_hours``), so every process over one store file
agrees. An unknown time zone gives ``local`` None and every time rule fails closed.
``build_context`` gathers who the shopper is (membership, consent, segment, attributes, days
since the last purchase), the cart priced from the catalog, the item in hand and the geofence.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "category": "drinks",
    ...                                  "price": 2.5}])
    ...     ctx = build_context(sw.store, sw.catalog, None, cart=["tea", "tea"], now=0)
    ...     ctx.total, ctx.local.isoformat()
    (5.0, '1970-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Sequence
from typing import Any

from .._errors import InvalidInput
from ..cart import cart_lines
from ..catalog import Catalog
from ..clock import DAY_MS, now_ms
from ..identity import consents_of, get_shopper, segment_of
from ..store.connection import Store
from . import loyalty
from .definitions import CHANNELS, parse_minute
from .rules import CartLine, OfferContext, quiet_end

DEFAULT_TIMEZONE = "UTC"
TIMEZONE_KEY, QUIET_HOURS_KEY = "offers.timezone", "offers.quiet_hours"


def resolve_zone(name: str) -> dt.tzinfo | None:
    """A time zone by IANA name, or None when unknown (callers then fail closed).

    Example:
        >>> resolve_zone("Europe/Rome") is not None, resolve_zone("Mars/Olympus_Mons")
        (True, None)
    """
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def timezone(store: Store) -> str:
    """The store's IANA time zone name (UTC until one is set)."""
    return store.get_meta(TIMEZONE_KEY) or DEFAULT_TIMEZONE


def set_timezone(store: Store, name: str) -> None:
    """Set the store's time zone; ``InvalidInput`` for a name no time zone database knows."""
    if resolve_zone(name) is None:
        raise InvalidInput(f"unknown time zone {name!r}: use an IANA name like Europe/Rome")
    store.set_meta(TIMEZONE_KEY, name)


def set_quiet_hours(store: Store, start: str | None, end: str | None = None) -> None:
    """No app push between ``start`` and ``end`` (store-local 'HH:MM'); None clears."""
    if start is None:
        store.set_meta(QUIET_HOURS_KEY, "")
        return
    a, b = parse_minute(start, "quiet hours"), parse_minute(end, "quiet hours")
    store.set_meta(QUIET_HOURS_KEY, f"{a}-{b}")


def local_time(store: Store, now: int) -> dt.datetime | None:
    """Store-local time at ``now`` (UTC ms); None if the time zone is unknown."""
    zone = resolve_zone(timezone(store))
    if zone is None:
        return None
    return dt.datetime.fromtimestamp(now / 1000, tz=zone)


def quiet_until(store: Store, now: int) -> int | None:
    """When the quiet hours in force at ``now`` end (UTC ms), or None if it is not quiet then."""
    setting = store.get_meta(QUIET_HOURS_KEY) or ""
    local = local_time(store, now)
    if not setting or local is None:
        return None
    start, end = (int(x) for x in setting.split("-"))
    return quiet_end(local, start, end)


def build_context(
    store: Store,
    catalog: Catalog,
    shopper_id: str | None,
    *,
    channel: str | None = None,
    cart: Sequence[Any] | None = None,
    cart_total: float | None = None,
    item_id: str | None = None,
    geofence: tuple[str, str] | None = None,
    now: int | None = None,
    purpose: str = "show",
    store_id: str = "",
) -> OfferContext:
    """The rules' view of a shopper from the store (the stored cart when ``cart`` is None);
    ``store_id`` is the store's own id, used when the shopper has none."""
    stamp = now_ms() if now is None else now
    settings = _settings(store)
    local, quiet = _clock(settings, stamp)
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"channel {channel!r} is not one of: {', '.join(sorted(CHANNELS))}")
    info = get_shopper(store, shopper_id) if shopper_id else None
    lines = _cart_lines(store, catalog, shopper_id, cart)
    anchor = catalog.get(item_id) if item_id else None
    last = None
    if info is not None:
        rows = store.query(
            "SELECT max(ts_ms) AS last FROM events WHERE shopper_id = ? AND type = 'purchase'",
            [info.shopper_id],
        )
        last = rows[0]["last"]
    triggered, confirmed = (
        _member_state(store, info.shopper_id, stamp)
        if info is not None and info.is_member
        else (frozenset[str](), None)
    )
    since = info.attributes.get("member_since") if info else None
    member_since = None
    if info is not None and info.is_member:
        try:
            member_since = (
                dt.date.fromisoformat(str(since))
                if since
                else dt.datetime.fromtimestamp(info.created_ms / 1000, tz=dt.UTC).date()
            )
        except ValueError:
            member_since = None
    return OfferContext(
        now_ms=stamp,
        local=local,
        shopper_id=shopper_id or "",
        is_member=bool(info and info.is_member),
        consented=True
        if info is None
        else (consents_of(store, info)["offers"] or not info.is_member),
        segment=segment_of(store, info, stamp) if info else "new",
        days_since_purchase=None if last is None else (stamp - last) / DAY_MS,
        attributes=_attributes(store, info, stamp, settings.get(loyalty.PROGRAM_KEY)),
        member_since=member_since,
        cart=lines,
        cart_total=cart_total,
        store_id=(info.store_id if info and info.store_id else store_id),
        channel=channel,
        item_id=anchor.item_id if anchor else None,
        item_category=anchor.category if anchor else None,
        item_price=anchor.price if anchor else None,
        geofence=geofence,
        quiet_until_ms=quiet,
        purpose=purpose,
        triggered=triggered,
        confirmed_ms=confirmed,
    )


def _settings(store: Store) -> dict[str, str]:
    """The offer settings a context needs, in one read: time zone, quiet hours, points program."""
    keys = [TIMEZONE_KEY, QUIET_HOURS_KEY, loyalty.PROGRAM_KEY]
    return dict(store.rows("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", keys))


def _clock(settings: dict[str, str], now: int) -> tuple[dt.datetime | None, int | None]:
    """Store-local time at ``now`` and when the quiet hours in force then end (see
    ``local_time`` and ``quiet_until``, which read the settings themselves)."""
    zone = resolve_zone(settings.get(TIMEZONE_KEY) or DEFAULT_TIMEZONE)
    if zone is None:
        return None, None
    local = dt.datetime.fromtimestamp(now / 1000, tz=zone)
    quiet = settings.get(QUIET_HOURS_KEY) or ""
    if not quiet:
        return local, None
    start, end = (int(x) for x in quiet.split("-"))
    return local, quiet_end(local, start, end)


def _member_state(store: Store, shopper_id: str, now: int) -> tuple[frozenset[str], int | None]:
    """The offers triggers opened to a member (``firing`` owns the fires) and when their uses
    elsewhere were last confirmed (``usage`` owns that), in one read."""
    row = store.rows(
        "SELECT (SELECT group_concat(offer_id, char(31)) FROM trigger_fires WHERE shopper_id = ? "
        "AND until_ms > ? AND fired_ms <= ?), "
        "(SELECT confirmed_ms FROM fleet_confirmations WHERE shopper_id = ?)",
        [shopper_id, now, now, shopper_id],
    )[0]
    return frozenset(row[0].split(chr(31)) if row[0] else ()), row[1]


def _attributes(store: Store, info: Any, stamp: int, program: str | None) -> dict[str, Any]:
    """The member's attributes, with their points tier when the store's program has tiers
    (so offers can target ``attributes: {tier: gold}``)."""
    attributes = dict(info.attributes) if info else {}
    if info is None or not info.is_member or "tier" in attributes or not program:
        return attributes
    if loyalty.parse_program(json.loads(program)).tiers:
        attributes["tier"] = loyalty.read_points(store, info.shopper_id, stamp).tier
    return attributes


def _cart_lines(
    store: Store, catalog: Catalog, shopper_id: str | None, cart: Sequence[Any] | None
) -> tuple[CartLine, ...]:
    """Cart entries (item ids, offer ``CartLine``s, cart lines or (item id, quantity) pairs)
    priced from the catalog; the stored cart (``shelfwise.cart`` owns it) when ``cart`` is None."""
    pairs: list[tuple[str, int]] = []
    if cart is None:
        if shopper_id:
            pairs = [(line.item_id, line.quantity) for line in cart_lines(store, shopper_id)]
    else:
        for entry in cart:
            if isinstance(entry, str):
                pairs.append((entry, 1))
            elif isinstance(entry, CartLine):
                pairs.append((entry.item_id, entry.quantity))
            elif isinstance(entry, tuple | list):  # (item id, quantity)
                pairs.append((str(entry[0]), int(entry[1]) if len(entry) > 1 else 1))
            else:  # a cart line: item_id and quantity attributes
                pairs.append((str(entry.item_id), int(getattr(entry, "quantity", 1))))
    items = catalog.get_many([p[0] for p in pairs])
    return tuple(
        CartLine(i, items[i].category, round((items[i].price or 0.0) * q, 2), q)
        if i in items
        else CartLine(i, quantity=q)
        for i, q in pairs
    )


__all__ = [
    "DEFAULT_TIMEZONE",
    "build_context",
    "local_time",
    "quiet_until",
    "resolve_zone",
    "set_quiet_hours",
    "set_timezone",
    "timezone",
]
