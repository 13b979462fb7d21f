"""Shopper events: validated, then written with their side effects in one transaction.

Example:
    >>> e = validate_event({"type": "view", "item_id": "milk", "ts_ms": 1_700_000_000_000})
    >>> e.type, e.quantity
    ('view', 1)
    >>> validate_event({"type": "teleport"})
    Traceback (most recent call last):
    ...
    shelfwise.InvalidEvent: event type 'teleport' is not one of: cart_add, cart_remove, experiment_conversion, experiment_exposure, geofence_dwell, geofence_enter, geofence_exit, offer_redeemed, offer_rejected, offer_shown, offer_voided, purchase, recommendation_clicked, recommendation_conversion, recommendation_shown, scan, scan_miss, search, view
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidEvent
from .clock import now_ms

ITEM_EVENTS = frozenset(
    {"view", "scan", "cart_add", "cart_remove", "purchase", "recommendation_clicked"}
)
# What each non-item event must carry in its payload.
PAYLOAD_KEYS = {
    "scan_miss": "code",
    "search": "query",
    "offer_shown": "offer_id",
    "offer_redeemed": "offer_id",
    # Offers and geofences (shelfwise.offers, shelfwise.geo.tracker). Geofence events carry the
    # fence id only, never a coordinate; rejections carry the stable reason code too.
    "offer_rejected": "offer_id",
    "offer_voided": "offer_id",  # an order voided: its offer given back (shelfwise.offers)
    "experiment_exposure": "experiment_id",
    "experiment_conversion": "experiment_id",
    "geofence_enter": "fence_id",
    "geofence_dwell": "fence_id",
    "geofence_exit": "fence_id",
    # What recommendations were shown on which surface, and which one was taken: the
    # click-through a store can measure per surface (and per model or experiment arm).
    "recommendation_shown": "surface",
    "recommendation_clicked": "surface",
    # A purchase of an item a recommender experiment showed (shelfwise.recommend.experiments).
    "recommendation_conversion": "experiment",
}
EVENT_TYPES = frozenset(ITEM_EVENTS | PAYLOAD_KEYS.keys())
# Events that say what a shopper is interested in, as the model reads them.
INTEREST_EVENTS = ("view", "scan", "cart_add", "purchase")

EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything earlier is a unit mistake (seconds?)
MAX_FUTURE_MS = 24 * 3_600_000  # device clocks drift; a day ahead is not a real event
MAX_QUANTITY = 1000
# A payload names what an event is about (a code, a query, an offer id): never a document.
MAX_PAYLOAD_BYTES = 4096


@dataclass(frozen=True)
class Event:
    """One validated shopper event (timestamps are UTC milliseconds)."""

    type: str
    ts_ms: int
    item_id: str | None = None
    quantity: int = 1
    value: float | None = None
    store_id: str = ""
    event_id: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


def _field(raw: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = raw.get(name, default)
    return default if value is None else value


def validate_event(raw: Mapping[str, Any], *, now: int | None = None) -> Event:
    """Check an event's fields and return it as an ``Event``; raise ``InvalidEvent``.

    Example: see the module docstring.
    """
    if not isinstance(raw, Mapping):
        raise InvalidEvent(f"an event must be a mapping, not {type(raw).__name__}")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise InvalidEvent(
            f"event type {event_type!r} is not one of: {', '.join(sorted(EVENT_TYPES))}"
        )
    item_id = raw.get("item_id")
    if event_type in ITEM_EVENTS and (not isinstance(item_id, str) or not item_id.strip()):
        raise InvalidEvent(f"a {event_type} event needs an item_id")
    if item_id is not None and not isinstance(item_id, str):
        raise InvalidEvent(f"item_id must be a string, not {type(item_id).__name__}")
    if item_id is not None:
        item_id = _check_text(item_id, "item_id")
    payload = _field(raw, "payload", {})
    if not isinstance(payload, Mapping):
        raise InvalidEvent("payload must be a mapping")
    needed = PAYLOAD_KEYS.get(event_type)
    if needed and not str(payload.get(needed) or "").strip():
        raise InvalidEvent(f"a {event_type} event needs payload[{needed!r}]")
    try:
        # allow_nan=False: NaN is not JSON; sort_keys also refuses keys of mixed types.
        encoded = json.dumps(dict(payload), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(f"payload must be JSON-serialisable: {exc}") from exc
    if len(encoded.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent(
            f"payload is larger than {MAX_PAYLOAD_BYTES} bytes: keep codes and ids, not documents"
        )
    return Event(
        type=event_type,
        ts_ms=_check_ts(raw.get("ts_ms"), now),
        item_id=item_id or None,
        quantity=_check_quantity(_field(raw, "quantity", 1)),
        value=_check_value(raw.get("value")),
        store_id=_check_text(_field(raw, "store_id", ""), "store_id"),
        event_id=_check_text(_field(raw, "event_id", ""), "event_id") or uuid.uuid4().hex,
        payload=dict(payload),
    )


def _check_ts(ts: Any, now: int | None) -> int:
    current = now_ms() if now is None else now
    if ts is None:
        return current
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidEvent(f"ts_ms must be integer UTC milliseconds, not {ts!r}")
    if ts < EARLIEST_MS:
        raise InvalidEvent(f"ts_ms {ts} is before 2000-01-01: was it given in seconds?")
    if ts > current + MAX_FUTURE_MS:
        raise InvalidEvent(f"ts_ms {ts} is more than a day in the future")
    return ts


def _check_quantity(quantity: Any) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidEvent(f"quantity must be an integer, not {quantity!r}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidEvent(f"quantity {quantity} must be between 1 and {MAX_QUANTITY}")
    return quantity


def _check_value(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"value must be a finite number, not {value!r}")
    try:
        number = float(value)
    except OverflowError as exc:  # an int too large for a float
        raise InvalidEvent("value is too large") from exc
    if not math.isfinite(number):
        raise InvalidEvent(f"value must be a finite number, not {value!r}")
    return number


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidEvent(f"{name} must be a string of at most 200 characters")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidEvent(f"{name} must not hold control characters (NUL, newlines, escapes)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(f"{name} is not valid Unicode text") from exc
    return value.strip()


def event_record(event: Event, shopper_id: str | None) -> dict[str, Any]:
    """The ``events`` table row for an event."""
    return {
        "event_id": event.event_id,
        "shopper_id": shopper_id,
        "type": event.type,
        "item_id": event.item_id,
        "quantity": event.quantity,
        "value": event.value,
        "store_id": event.store_id,
        "ts_ms": event.ts_ms,
        "payload": json.dumps(dict(event.payload), sort_keys=True),
    }


_INSERT = (
    "INSERT OR IGNORE INTO events (event_id, shopper_id, type, item_id, quantity, value, "
    "store_id, ts_ms, payload) VALUES (:event_id, :shopper_id, :type, :item_id, :quantity, "
    ":value, :store_id, :ts_ms, :payload)"
)


def insert_event(db: Any, shopper_id: str | None, event: Event) -> bool:
    """Write one validated event in the caller's transaction; False if its id was already there.

    Re-sending an ``event_id`` is a no-op, which makes retries safe.
    """
    return bool(db.execute(_INSERT, event_record(event, shopper_id)).rowcount)


def stored_event(db: Any, event_id: str) -> tuple[str | None, Event] | None:
    """The event recorded under ``event_id`` and its shopper, read in the caller's transaction."""
    rows = list(db.query("SELECT * FROM events WHERE event_id = ?", [event_id]))
    if not rows:
        return None
    row = rows[0]
    event = Event(
        type=row["type"],
        ts_ms=row["ts_ms"],
        item_id=row["item_id"],
        quantity=row["quantity"],
        value=row["value"],
        store_id=row["store_id"] or "",
        event_id=row["event_id"],
        payload=json.loads(row["payload"] or "{}"),
    )
    return row["shopper_id"], event


def same_event(a: Event, b: Event) -> bool:
    """Whether a retry carries the same event (its time may be restamped when it had none)."""
    return (a.type, a.item_id, a.quantity, a.value, a.store_id, dict(a.payload)) == (
        b.type,
        b.item_id,
        b.quantity,
        b.value,
        b.store_id,
        dict(b.payload),
    )


def recent_interests(store: Any, shopper_id: str, limit: int) -> list[tuple[str, str, int]]:
    """The shopper's latest interest events as (item id, type, ts_ms), oldest first."""
    marks = ",".join("?" * len(INTEREST_EVENTS))
    # Plain tuples (Store.rows): on every recommendation, dicts per row cost time.
    rows = store.rows(
        f"SELECT item_id, type, ts_ms FROM events WHERE shopper_id = ? AND type IN ({marks}) "
        "ORDER BY ts_ms DESC, seq DESC LIMIT ?",
        [shopper_id, *INTEREST_EVENTS, limit],
    )
    rows.reverse()  # the rows are (item id, type, ts_ms) tuples already
    return rows


def purchases_of(store: Any, shopper_id: str) -> list[tuple[str, int]]:
    """Every purchase of the shopper as (item id, ts_ms)."""
    rows = store.rows(
        "SELECT item_id, ts_ms FROM events WHERE shopper_id = ? AND type = 'purchase'",
        [shopper_id],
    )
    return [(r[0], r[1]) for r in rows]


def delete_before(db: Any, cutoff_ms: int) -> int:
    """Retention: delete raw events older than ``cutoff_ms`` in the caller's transaction."""
    return int(db.execute("DELETE FROM events WHERE ts_ms < ?", [cutoff_ms]).rowcount)


def unlink_shopper(db: Any, shopper_id: str) -> None:
    """Keep a shopper's events as store-level counts with no link to anyone (ended session)."""
    db.execute("UPDATE events SET shopper_id = NULL WHERE shopper_id = ?", [shopper_id])


def reassign(db: Any, from_shopper: str, to_shopper: str) -> int:
    """Give every event of one shopper to another (a guest who signed in), caller's transaction."""
    return int(
        db.execute(
            "UPDATE events SET shopper_id = ? WHERE shopper_id = ?", [to_shopper, from_shopper]
        ).rowcount
    )
