"""Who is shopping: anonymous kiosk sessions and loyalty members, consents and segments.

Anonymous sessions end and forget: their cart and identity are deleted and their events
unlinked (kept only as store-level counts). Members keep a history gated by consent per
purpose, each consent stored with the time it was given or withdrawn.

Example:
    >>> sorted(PURPOSES)
    ['location', 'offers', 'personalization', 'profile_sync', 'sensitive', 'sync']
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidInput, UnknownShopper
from .clock import DAY_MS, now_ms
from .store.connection import Store

# personalization: history-based results; location: geofences; offers: targeted offers;
# sync: member data in upstream summaries; sensitive: suggestions from sensitive categories;
# profile_sync: the member's own profile travels to their other devices, sealed for them.
PURPOSES = frozenset({"personalization", "location", "offers", "sync", "sensitive", "profile_sync"})
# An anonymous session's history lives only as long as the session, so it personalizes
# within the session; everything else needs an explicit yes.
ANONYMOUS_CONSENTS = frozenset({"personalization"})

NEW_DAYS = 30
LAPSED_DAYS = 60
LOYAL_PURCHASE_DAYS = 8
LOYAL_WINDOW_DAYS = 180

SEGMENTS = ("new", "returning", "loyal", "lapsed")


@dataclass(frozen=True)
class ShopperInfo:
    """A shopper row as plain data."""

    shopper_id: str
    kind: str
    store_id: str | None
    created_ms: int
    last_seen_ms: int
    attributes: Mapping[str, Any]

    @property
    def is_member(self) -> bool:
        return self.kind == "member"


def check_purpose(purpose: str) -> str:
    """Validate a consent purpose name."""
    if purpose not in PURPOSES:
        raise InvalidInput(
            f"consent purpose {purpose!r} is not one of: {', '.join(sorted(PURPOSES))}"
        )
    return purpose


def new_session_id() -> str:
    """A fresh random id for an anonymous session (never reused)."""
    return "anon-" + uuid.uuid4().hex


def get_shopper(store: Store, shopper_id: str) -> ShopperInfo:
    """The shopper row, or ``UnknownShopper`` (also for an ended anonymous session)."""
    rows = store.rows(f"SELECT {_SHOPPER_COLUMNS} FROM shoppers WHERE shopper_id = ?", [shopper_id])
    if not rows:
        raise UnknownShopper(f"no shopper {shopper_id!r} (an ended session is forgotten)")
    return _info_from_row(rows[0])


_SHOPPER_COLUMNS = "shopper_id, kind, store_id, created_ms, last_seen_ms, attributes"


def _info_from_row(row: Any) -> ShopperInfo:
    shopper_id, kind, store_id, created_ms, last_seen_ms, attributes = row[:6]
    return ShopperInfo(
        shopper_id=shopper_id,
        kind=kind,
        store_id=store_id,
        created_ms=created_ms,
        last_seen_ms=last_seen_ms,
        attributes=json.loads(attributes),
    )


def consents_of(store: Store, shopper: ShopperInfo) -> dict[str, bool]:
    """Every purpose with the shopper's current answer (False when never asked)."""
    rows = store.rows(
        "SELECT purpose, granted FROM consents WHERE shopper_id = ?", [shopper.shopper_id]
    )
    return _consents_from(shopper, rows)


def _consents_from(shopper: ShopperInfo, answered: Iterable[Any]) -> dict[str, bool]:
    answers = {purpose: False for purpose in PURPOSES}
    if not shopper.is_member:
        answers.update({purpose: True for purpose in ANONYMOUS_CONSENTS})
    for purpose, granted in answered:
        answers[purpose] = bool(granted)
    return answers


def shopper_state(
    store: Store, shopper_id: str
) -> tuple[ShopperInfo, dict[str, bool], frozenset[str]]:
    """The shopper row, their consents (as ``consents_of``) and the item ids in their cart, in
    one read (what every recommendation request needs first).

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
        ...     shopper = sw.start_session()
        ...     _ = shopper.add_to_cart("tea")
        ...     info, consents, cart = shopper_state(sw.store, shopper.shopper_id)
        ...     info.is_member, consents["personalization"], sorted(cart)
        (False, True, ['tea'])
    """
    rows = store.rows(
        f"SELECT {_SHOPPER_COLUMNS}, "
        "(SELECT json_group_array(json_array(purpose, granted)) FROM consents "
        " WHERE consents.shopper_id = shoppers.shopper_id), "
        "(SELECT json_group_array(item_id) FROM carts "
        " WHERE carts.shopper_id = shoppers.shopper_id) "
        "FROM shoppers WHERE shopper_id = ?",
        [shopper_id],
    )
    if not rows:
        raise UnknownShopper(f"no shopper {shopper_id!r} (an ended session is forgotten)")
    info = _info_from_row(rows[0])
    consents = _consents_from(info, json.loads(rows[0][6]))
    return info, consents, frozenset(json.loads(rows[0][7]))


def write_consents(store: Store, shopper_id: str, consents: Mapping[str, bool]) -> None:
    """Record consent answers with the time they were given (in the caller's transaction)."""
    for purpose in consents:
        check_purpose(purpose)
    stamp = now_ms()
    with store.write() as db:
        db.table("consents").upsert_all(
            [
                {
                    "shopper_id": shopper_id,
                    "purpose": purpose,
                    "granted": int(bool(granted)),
                    "updated_ms": stamp,
                    "device": "",  # taken on this device
                }
                for purpose, granted in consents.items()
            ],
            pk=("shopper_id", "purpose"),
        )


def segment_of(
    store: Store,
    shopper: ShopperInfo,
    now: int | None = None,
    *,
    purchase_ms: Iterable[int] | None = None,
) -> str:
    """new / returning / loyal / lapsed, from the member's purchase days.

    - new: first seen under 30 days ago, or fewer than two purchase days
    - lapsed: last purchase over 60 days ago
    - loyal: 8+ purchase days in the last 180 days
    - returning: everyone else

    ``purchase_ms``: every purchase timestamp of the shopper, when the caller has just read
    them (a recommendation's context does), to save the query.
    """
    if not shopper.is_member:
        return "new"
    current = now_ms() if now is None else now
    if purchase_ms is not None:  # timestamps are validated positive: // matches SQLite's /
        days = sorted({ts // DAY_MS for ts in purchase_ms})
    else:
        days = [
            row["day"]
            for row in store.query(
                "SELECT DISTINCT ts_ms / ? AS day FROM events "
                "WHERE shopper_id = ? AND type = 'purchase' ORDER BY day",
                [DAY_MS, shopper.shopper_id],
            )
        ]
    today = current // DAY_MS
    first_seen_day = min([shopper.created_ms // DAY_MS, *days])
    if today - first_seen_day < NEW_DAYS or len(days) < 2:
        return "new"
    if today - days[-1] > LAPSED_DAYS:
        return "lapsed"
    recent = [d for d in days if today - d <= LOYAL_WINDOW_DAYS]
    return "loyal" if len(recent) >= LOYAL_PURCHASE_DAYS else "returning"


def insert_session(db: Any, store_id: str, stamp: int) -> str:
    """Create an anonymous session row in the caller's transaction; return its new id."""
    shopper_id = new_session_id()
    db.table("shoppers").insert(
        {
            "shopper_id": shopper_id,
            "kind": "anonymous",
            "store_id": store_id,
            "created_ms": stamp,
            "last_seen_ms": stamp,
            "attributes": "{}",
        }
    )
    return shopper_id


def check_loyalty_id(loyalty_id: Any) -> str:
    """A loyalty id as stored: text of 1 to 64 printable characters with outer spaces trimmed,
    or ``InvalidInput``.

    Control characters, invisible format characters (zero-width, direction overrides) and
    line breaks are refused, not trimmed: two ids that look the same on a till's screen or in
    an export must be the same member.

    Example:
        >>> check_loyalty_id(" L-1 ")
        'L-1'
        >>> check_loyalty_id("L-1" + chr(7))
        Traceback (most recent call last):
        ...
        shelfwise.InvalidInput: a loyalty id must be printable characters only: found U+0007 at position 4
    """
    if not isinstance(loyalty_id, str):
        raise InvalidInput(f"a loyalty id must be text, not {type(loyalty_id).__name__}")
    for position, char in enumerate(loyalty_id, start=1):
        if not char.isprintable():
            raise InvalidInput(
                "a loyalty id must be printable characters only: "
                f"found U+{ord(char):04X} at position {position}"
            )
    text = loyalty_id.strip(" ")
    if not text or len(text) > 64:
        raise InvalidInput("a loyalty id must be 1 to 64 characters (outer spaces not counted)")
    return text


def upsert_member(
    db: Any, loyalty_id: str, store_id: str, attributes: Mapping[str, Any], stamp: int
) -> None:
    """Create the member on first sight or merge ``attributes`` into theirs (caller's transaction)."""
    existing = list(db.query("SELECT attributes FROM shoppers WHERE shopper_id = ?", [loyalty_id]))
    merged = {**(json.loads(existing[0]["attributes"]) if existing else {}), **attributes}
    if existing:
        db.execute(
            "UPDATE shoppers SET last_seen_ms = ?, attributes = ? WHERE shopper_id = ?",
            [stamp, json.dumps(merged), loyalty_id],
        )
        return
    db.table("shoppers").insert(
        {
            "shopper_id": loyalty_id,
            "kind": "member",
            "store_id": store_id,
            "created_ms": stamp,
            "last_seen_ms": stamp,
            "attributes": json.dumps(merged),
        }
    )


def touch(db: Any, shopper_id: str, stamp: int) -> None:
    """Mark the shopper as seen at ``stamp`` (never moves back), in the caller's transaction."""
    db.execute(
        "UPDATE shoppers SET last_seen_ms = max(last_seen_ms, ?) WHERE shopper_id = ?",
        [stamp, shopper_id],
    )


def idle_sessions(store: Store, cutoff_ms: int) -> list[str]:
    """Anonymous sessions last seen before ``cutoff_ms``."""
    rows = store.query(
        "SELECT shopper_id FROM shoppers WHERE kind = 'anonymous' AND last_seen_ms < ?",
        [cutoff_ms],
    )
    return [row["shopper_id"] for row in rows]


def is_idle_session(db: Any, shopper_id: str, cutoff_ms: int) -> bool:
    """Whether the anonymous session is still idle, read in the caller's transaction."""
    rows = db.query(
        "SELECT 1 FROM shoppers WHERE shopper_id = ? AND kind = 'anonymous' AND last_seen_ms < ?",
        [shopper_id, cutoff_ms],
    )
    return any(True for _ in rows)


def shopper_tables(store: Store) -> list[str]:
    """Every table keyed by ``shopper_id`` besides ``shoppers`` (every module's tables)."""
    return sorted(
        table.name
        for table in store.read().tables
        if table.name != "shoppers" and "shopper_id" in table.columns_dict
    )


def delete_rows(db: Any, tables: Iterable[str], shopper_id: str) -> int:
    """Delete the shopper from ``tables`` and ``shoppers`` in the caller's transaction."""
    removed = 0
    for table in tables:
        removed += db.execute(f"DELETE FROM [{table}] WHERE shopper_id = ?", [shopper_id]).rowcount
    removed += db.execute("DELETE FROM shoppers WHERE shopper_id = ?", [shopper_id]).rowcount
    return int(removed)


def export_rows(store: Store, shopper_id: str) -> dict[str, Any]:
    """Everything held about a shopper, as JSON-ready data (for a data-access request)."""
    info = get_shopper(store, shopper_id)
    tables = {
        table: store.query(
            f"SELECT * FROM [{table}] WHERE shopper_id = ? ORDER BY rowid", [shopper_id]
        )
        for table in shopper_tables(store)
    }
    return {
        "shopper_id": info.shopper_id,
        "kind": info.kind,
        "created_ms": info.created_ms,
        "last_seen_ms": info.last_seen_ms,
        "attributes": dict(info.attributes),
        "consents": consents_of(store, info),
        "tables": tables,
    }


def consent_records(
    store: Store, shopper_id: str, this_device: str
) -> dict[str, tuple[bool, int, str]]:
    """Every answer the shopper gave: purpose -> (granted, updated_ms, device that took it)."""
    rows = store.query(
        "SELECT purpose, granted, updated_ms, device FROM consents WHERE shopper_id = ?",
        [shopper_id],
    )
    return {
        row["purpose"]: (bool(row["granted"]), row["updated_ms"], row["device"] or this_device)
        for row in rows
    }


def write_consent_if_newer(
    db: Any,
    shopper_id: str,
    purpose: str,
    answer: tuple[bool, int, str],
    this_device: str,
) -> bool:
    """Take an answer (granted, updated_ms, device) given elsewhere unless this device holds a
    later one: last writer wins, ordered by (time, device, answer) on every device alike."""
    if purpose not in PURPOSES:
        return False  # a purpose this version does not know: kept in the profile, not here
    granted, updated_ms, device = answer
    changed = db.execute(
        "INSERT INTO consents (shopper_id, purpose, granted, updated_ms, device) "
        "VALUES (:s, :p, :g, :t, :d) ON CONFLICT(shopper_id, purpose) DO UPDATE SET "
        "granted = excluded.granted, updated_ms = excluded.updated_ms, device = excluded.device "
        "WHERE (excluded.updated_ms, excluded.device, excluded.granted) > "
        "(consents.updated_ms, CASE consents.device WHEN '' THEN :here ELSE consents.device END, "
        "consents.granted)",
        {
            "s": shopper_id,
            "p": purpose,
            "g": int(bool(granted)),
            "t": updated_ms,
            "d": device,
            "here": this_device,
        },
    ).rowcount
    return bool(changed)
