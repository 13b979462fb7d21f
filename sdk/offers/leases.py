"""Fleet-wide limits on the device: the share of an offer's redemptions and budget leased here.

An offer with ``limits: {scope: fleet, total_redemptions: ..., budget: ...}`` holds across
every device of the chain, with no network at the till. The collector is the escrow (the
demarcation protocol): it leases each device a share of what is left, and a device redeems
only inside its share (``rules.evaluate`` refuses ``fleet_share_used`` / ``fleet_share_missing``).
The sum of the shares never exceeds the limit, so a partitioned fleet cannot overspend it.

This module owns ``offer_leases``: per offer, the all-time redemptions and money this device
may have used (its own counters, held reservations included, are compared with them), when
the share lapses, and the exchange's sequence number. A share is a total, not an increment, so
a lost or repeated answer can only be applied once (``apply_grant`` checks the sequence).

What a device asks for (``lease_asks``), at each sync:

- no share yet, or a share that lapsed: everything unused goes back (``keep=False``: the
  collector lowers the share to what was used) and a fresh slice is asked for;
- a live share running low (under a quarter of a slice left, or a quarter of its time): the
  share is kept and a slice added;
- an offer switched off or no longer fleet-wide: the unused share goes back, nothing asked.

Voided orders lower this device's counters, so a share used by a voided order is free again.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
    ...                            "reward": {"type": "amount", "value": 1},
    ...                            "limits": {"scope": "fleet", "total_redemptions": 100}})
    ...     asks = lease_asks(sw.store, sw.offers.all(), now=0)
    >>> [(a.offer_id, a.want_redemptions, a.keep) for a in asks]
    [('o', 5, False)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..store.connection import Store
from .definitions import Offer
from .rules import FleetShare

LOW_WATER = 4  # ask for more when under 1/LOW_WATER of a slice (or of its time) is left


@dataclass(frozen=True)
class LeaseAsk:
    """One offer's line in a lease request (see the module docstring)."""

    offer_id: str
    seq: int
    used_redemptions: int
    used_budget: float
    keep: bool
    want_redemptions: int
    want_budget: float


@dataclass(frozen=True)
class LeaseGrant:
    """The collector's answer for one offer: the device's new share (totals, not increments)."""

    offer_id: str
    seq: int
    redemptions: int | None
    budget: float | None
    ttl_ms: int
    status: str  # granted | resync | not_fleet


@dataclass(frozen=True)
class LeaseState:
    """An offer's share on this device, as ``sw.offers.leases()`` lists it."""

    offer_id: str
    redemptions: int | None
    budget: float | None
    used_redemptions: int
    used_budget: float
    expires_ms: int
    live: bool
    status: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_shares(db: Any, offer_ids: Sequence[str], now: int) -> dict[str, FleetShare]:
    """The shares of ``offer_ids`` held here (an offer without a row has none)."""
    shares: dict[str, FleetShare] = {}
    for start in range(0, len(offer_ids), 500):
        ids = list(offer_ids[start : start + 500])
        marks = ",".join("?" * len(ids))
        for offer_id, redemptions, budget, expires in db.execute(
            "SELECT offer_id, redemptions, budget, expires_ms FROM offer_leases "
            f"WHERE offer_id IN ({marks}) AND status = 'granted'",
            ids,
        ).fetchall():
            shares[offer_id] = FleetShare(redemptions, budget, live=now < expires)
    return shares


def _used(db: Any) -> dict[str, tuple[int, float]]:
    return {
        r[0]: (int(r[1]), round(float(r[2]), 2))
        for r in db.execute(
            "SELECT offer_id, redemptions + reserved, spent + reserved_amount FROM offer_counters"
        ).fetchall()
    }


def _leases(db: Any) -> dict[str, dict[str, Any]]:
    cursor = db.execute("SELECT * FROM offer_leases")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def lease_asks(store: Store, offers: Iterable[Offer], now: int) -> list[LeaseAsk]:
    """What to ask the collector for at ``now``, given the store's ``offers`` (see the module
    docstring); reads only."""
    fleet = {o.offer_id: o for o in offers if o.active and o.limits.scope == "fleet"}
    db = store.read()
    used, held = _used(db), _leases(db)
    asks = []
    for offer_id in sorted(set(fleet) | set(held)):
        ask = _ask(fleet.get(offer_id), held.get(offer_id), used.get(offer_id, (0, 0.0)), now)
        if ask is not None:
            asks.append(ask)
    return asks


def _ask(
    offer: Offer | None, lease: Mapping[str, Any] | None, used: tuple[int, float], now: int
) -> LeaseAsk | None:
    seq = int(lease["seq"]) if lease else 0
    share_r = lease["redemptions"] if lease else None
    share_b = lease["budget"] if lease else None
    if offer is None or offer.limits.lease is None:  # switched off or no longer fleet-wide
        if lease is None or lease["status"] != "granted":
            return None
        return LeaseAsk(lease["offer_id"], seq, used[0], used[1], False, 0, 0.0)
    terms = offer.limits.lease
    live = lease is not None and lease["status"] == "granted" and now < int(lease["expires_ms"])
    want_r, want_b = terms.redemptions or 0, terms.budget or 0.0
    if live and lease is not None:
        ttl_left = int(lease["expires_ms"]) - now
        low_time = ttl_left * LOW_WATER < terms.ttl_s * 1000
        low_r = share_r is not None and (share_r - used[0]) * LOW_WATER < want_r
        low_b = share_b is not None and (share_b - used[1]) * LOW_WATER < want_b
        if not (low_time or low_r or low_b):
            return None
    return LeaseAsk(offer.offer_id, seq, used[0], used[1], live, want_r, round(want_b, 2))


def apply_grant(db: Any, grant: LeaseGrant, asked_seq: int, now: int) -> bool:
    """Store the collector's answer, in the caller's transaction, if nothing moved since the
    ask (``asked_seq`` is still this offer's sequence); True when applied."""
    rows = db.execute("SELECT seq FROM offer_leases WHERE offer_id = ?", [grant.offer_id])
    current = rows.fetchone()
    if current is not None and int(current[0]) != asked_seq:
        return False
    status = "granted" if grant.status in {"granted", "resync"} else grant.status
    db.execute(
        "INSERT INTO offer_leases (offer_id, seq, redemptions, budget, expires_ms, status, "
        "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(offer_id) DO UPDATE SET "
        "seq = excluded.seq, redemptions = excluded.redemptions, budget = excluded.budget, "
        "expires_ms = excluded.expires_ms, status = excluded.status, "
        "updated_ms = excluded.updated_ms",
        [
            grant.offer_id,
            grant.seq,
            grant.redemptions,
            grant.budget,
            now + grant.ttl_ms,
            status,
            now,
        ],
    )
    return True


def lease_states(store: Store, now: int) -> list[LeaseState]:
    """Every share held here, with what this device used of it."""
    db = store.read()
    used, held = _used(db), _leases(db)
    return [
        LeaseState(
            offer_id,
            row["redemptions"],
            row["budget"],
            used.get(offer_id, (0, 0.0))[0],
            used.get(offer_id, (0, 0.0))[1],
            int(row["expires_ms"]),
            row["status"] == "granted" and now < int(row["expires_ms"]),
            row["status"],
        )
        for offer_id, row in sorted(held.items())
    ]


__all__ = [
    "LeaseAsk",
    "LeaseGrant",
    "LeaseState",
    "apply_grant",
    "lease_asks",
    "lease_states",
    "read_shares",
]
