"""The collector's side of offers across the fleet: the escrow of fleet-wide limits and the
reconciled ledger of every device's redemptions.

Shared by both storage backends (a mixin, like ``_members``).

- **Shares** (``device_leases``): per device and offer, the share it may have used in all
  (``redemptions``, ``budget``), what it last said it used, the exchange's sequence number.
  An offer's limits come from the latest published offers document (``limits.scope: fleet``;
  the collector reads the document it serves, it never needs the signing key). A grant is
  ``min(asked, what is left)``, where what is left is the limit minus, over every other device,
  the larger of its share and its use: the shares never add up to more than the limit, so no
  partition of the fleet can overspend it. A share that lapsed is not taken back until its
  device reports what it used (it may have redeemed offline until the last moment); a device
  that asks with ``keep=False`` returns everything it did not use. Grants of one offer take
  turns (its ``offer_pools`` row is locked), across collector processes too.
- **The ledger** (``fleet_redemptions``): every redemption each device reports, once, later
  marked voided if its order was; ``reconcile`` compares it with the offers' limits and reports
  over-redemption (fleet totals and budgets, single-use codes redeemed twice, members beyond a
  per-customer limit) with the devices involved.

Example:
    >>> from shelfwise.sync.leasing import WireAsk
    >>> from shelfwise.upstream import SqliteStorage
    >>> storage = SqliteStorage(":memory:")
    >>> _ = storage.add_device("kiosk-1")
    >>> storage.grant_leases("kiosk-1", [WireAsk("o", 0, 0, 0.0, False, 5, 0.0)])[0].status
    'not_fleet'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from shelfwise import ShelfwiseError, parse_offer
from shelfwise.clock import now_ms
from shelfwise.sync.leasing import LedgerEntry, WireAsk, WireGrant
from shelfwise.sync.protocol import published_rows

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS offer_pools (
    offer_id TEXT PRIMARY KEY,
    grants BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS device_leases (
    device_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    redemptions BIGINT,
    budget DOUBLE PRECISION,
    used_redemptions BIGINT NOT NULL,
    used_budget DOUBLE PRECISION NOT NULL,
    expires_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, offer_id)
);
CREATE TABLE IF NOT EXISTS fleet_redemptions (
    device_id TEXT NOT NULL,
    redemption_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    order_id TEXT,
    amount DOUBLE PRECISION NOT NULL,
    ts_ms BIGINT NOT NULL,
    voided INTEGER NOT NULL DEFAULT 0,
    code_hash TEXT,
    member TEXT,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, redemption_id)
);
CREATE INDEX IF NOT EXISTS fleet_redemptions_offer ON fleet_redemptions(offer_id);
CREATE INDEX IF NOT EXISTS fleet_redemptions_code ON fleet_redemptions(code_hash);
"""


@dataclass(frozen=True)
class Pool:
    """An offer's limits as the published offers document states them."""

    offer_id: str
    total_redemptions: int | None
    budget: float | None
    ttl_ms: int
    per_customer: int | None
    fleet: bool


@dataclass(frozen=True)
class OverRedemption:
    """One limit the fleet went past: ``kind`` is ``total``, ``budget``, ``code`` or
    ``customer``; ``subject`` the offer (or the code's hash, or the member's blinded id)."""

    kind: str
    offer_id: str
    subject: str
    limit: float
    used: float
    devices: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "devices": list(self.devices)}


@dataclass(frozen=True)
class ShareStatus:
    """An offer's fleet-wide limit and how it is shared out."""

    offer_id: str
    total_redemptions: int | None
    budget: float | None
    shared_redemptions: int
    shared_budget: float
    used_redemptions: int
    used_budget: float
    devices: int
    per_device: Mapping[str, tuple[int | None, int]] = field(default_factory=dict)
    # What the devices' ledgers reported (``used_*`` is what each said at its last ask).
    reported_redemptions: int = 0
    reported_budget: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "per_device": dict(self.per_device)}


def _pool(row: Any) -> Pool | None:
    try:
        offer = parse_offer(row)
    except ShelfwiseError:
        return None
    lim = offer.limits
    return Pool(
        offer.offer_id,
        lim.total_redemptions,
        lim.budget,
        (lim.lease.ttl_s if lim.lease else 3600) * 1000,
        lim.per_customer,
        lim.scope == "fleet" and offer.active,
    )


class OfferLedger:
    """Shares of fleet-wide limits and the reconciled ledger (see the module docstring)."""

    lock_suffix = ""
    _pools_cache: tuple[bytes, dict[str, Pool]] | None = None

    # provided by the backend
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def document(self, kind: str) -> bytes | None:
        raise NotImplementedError

    # -- the limits, from the published offers --------------------------------------------
    def pools(self) -> dict[str, Pool]:
        """Every offer of the latest published offers document, by id (parsed once per
        document)."""
        raw = self.document("offers") or b""
        if self._pools_cache is None or self._pools_cache[0] != raw:
            rows = published_rows(raw) if raw else []
            parsed = [_pool(row) for row in rows]
            self._pools_cache = (raw, {p.offer_id: p for p in parsed if p is not None})
        return self._pools_cache[1]

    # -- shares -------------------------------------------------------------------------------
    def grant_leases(
        self, device_id: str, asks: Sequence[WireAsk], *, now: int | None = None
    ) -> list[WireGrant]:
        """Answer a device's asks for shares, one offer at a time (see the module docstring)."""
        stamp = now_ms() if now is None else now
        pools = self.pools()
        grants = []
        for ask in asks:
            pool = pools.get(ask.offer_id)
            if pool is None or not pool.fleet:
                grants.append(WireGrant(ask.offer_id, ask.seq, None, None, 0, "not_fleet"))
                continue
            with self._tx() as cur:
                grants.append(self._grant_one(cur, device_id, pool, ask, stamp))
        return grants

    def _grant_one(
        self, cur: Any, device_id: str, pool: Pool, ask: WireAsk, stamp: int
    ) -> WireGrant:
        cur.execute(
            self._sql("INSERT INTO offer_pools (offer_id) VALUES (?) ON CONFLICT DO NOTHING"),
            [pool.offer_id],
        )
        self._rows(
            cur,
            "SELECT grants FROM offer_pools WHERE offer_id = ?" + self.lock_suffix,
            [pool.offer_id],
        )
        held = self._rows(
            cur,
            "SELECT seq, redemptions, budget, expires_ms FROM device_leases "
            "WHERE device_id = ? AND offer_id = ?",
            [device_id, pool.offer_id],
        )
        seq = int(held[0][0]) if held else ask.seq  # none held: a new device (or a new store)
        if (
            held and ask.seq != seq
        ):  # a lost answer or a crash between ask and answer: the truth again
            r, b, expires = held[0][1], held[0][2], int(held[0][3])
            return WireGrant(pool.offer_id, seq, r, b, max(0, expires - stamp), "resync")
        r, b = (held[0][1], held[0][2]) if held and ask.keep else (None, None)
        # Never less than its own ledger says (a device that understates its use, or whose
        # store was wiped, cannot get back a share it already spent).
        n, spent = self._rows(
            cur,
            "SELECT count(*), coalesce(sum(amount), 0) FROM fleet_redemptions "
            "WHERE device_id = ? AND offer_id = ? AND voided = 0",
            [device_id, pool.offer_id],
        )[0]
        used_r = max(ask.used_redemptions, int(n))
        used_b = round(max(ask.used_budget, float(spent)), 2)
        others_r, others_b = self._others(cur, device_id, pool.offer_id)
        share_r = share_b = None
        if pool.total_redemptions is not None:
            base = max(int(r or 0), used_r)
            free = max(0, pool.total_redemptions - others_r - base)
            share_r = base + min(ask.want_redemptions, free)
        if pool.budget is not None:
            base_b = max(float(b or 0.0), used_b)
            free_b = max(0.0, pool.budget - others_b - base_b)
            share_b = round(base_b + min(ask.want_budget, free_b), 2)
        params = [seq + 1, share_r, share_b, used_r, used_b, stamp + pool.ttl_ms, stamp]
        cur.execute(
            self._sql(
                "INSERT INTO device_leases (device_id, offer_id, seq, redemptions, budget, "
                "used_redemptions, used_budget, expires_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, offer_id) DO UPDATE "
                "SET seq = excluded.seq, redemptions = excluded.redemptions, "
                "budget = excluded.budget, used_redemptions = excluded.used_redemptions, "
                "used_budget = excluded.used_budget, expires_ms = excluded.expires_ms, "
                "updated_ms = excluded.updated_ms"
            ),
            [device_id, pool.offer_id, *params],
        )
        cur.execute(
            self._sql("UPDATE offer_pools SET grants = grants + 1 WHERE offer_id = ?"),
            [pool.offer_id],
        )
        return WireGrant(pool.offer_id, seq + 1, share_r, share_b, pool.ttl_ms, "granted")

    def _others(self, cur: Any, device_id: str, offer_id: str) -> tuple[int, float]:
        """What every other device holds of an offer: the larger of its share and its use."""
        row = self._rows(
            cur,
            "SELECT coalesce(sum(CASE WHEN coalesce(redemptions, 0) > used_redemptions "
            "THEN coalesce(redemptions, 0) ELSE used_redemptions END), 0), "
            "coalesce(sum(CASE WHEN coalesce(budget, 0) > used_budget "
            "THEN coalesce(budget, 0) ELSE used_budget END), 0) "
            "FROM device_leases WHERE offer_id = ? AND device_id <> ?",
            [offer_id, device_id],
        )[0]
        return int(row[0]), float(row[1])

    def shares(self) -> list[ShareStatus]:
        """Every fleet-wide offer's limit, shared out and used, per device."""
        pools = self.pools()
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT offer_id, device_id, redemptions, budget, used_redemptions, used_budget "
                "FROM device_leases ORDER BY offer_id, device_id",
            )
            reported = {
                r[0]: (int(r[1]), float(r[2]))
                for r in self._rows(
                    cur,
                    "SELECT offer_id, count(*), coalesce(sum(amount), 0) FROM fleet_redemptions "
                    "WHERE voided = 0 GROUP BY offer_id",
                )
            }
        by_offer: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_offer.setdefault(row[0], []).append(row)
        out = []
        for offer_id in sorted(set(by_offer) | {p.offer_id for p in pools.values() if p.fleet}):
            held = by_offer.get(offer_id, [])
            pool = pools.get(offer_id)
            out.append(
                ShareStatus(
                    offer_id,
                    pool.total_redemptions if pool else None,
                    pool.budget if pool else None,
                    sum(max(int(r[2] or 0), int(r[4])) for r in held),
                    round(sum(max(float(r[3] or 0), float(r[5])) for r in held), 2),
                    sum(int(r[4]) for r in held),
                    round(sum(float(r[5]) for r in held), 2),
                    len(held),
                    {r[1]: (r[2], int(r[4])) for r in held},
                    reported.get(offer_id, (0, 0.0))[0],
                    round(reported.get(offer_id, (0, 0.0))[1], 2),
                )
            )
        return out

    def settle_shares(self, device_id: str) -> list[str]:
        """Settle a device that will never come back (lost, broken, replaced): each of its
        shares drops to what its ledger reported, so the unused part returns to the fleet.
        Retire its credentials first (``retire-device`` does both): a device that still
        redeems could overspend. Redemptions it made offline and never reported are counted
        by nobody. Returns the offers settled."""
        with self._tx() as cur:
            held = self._rows(
                cur,
                "SELECT offer_id, budget FROM device_leases WHERE device_id = ?" + self.lock_suffix,
                [device_id],
            )
            for offer_id, budget in held:
                n, spent = self._rows(
                    cur,
                    "SELECT count(*), coalesce(sum(amount), 0) FROM fleet_redemptions "
                    "WHERE device_id = ? AND offer_id = ? AND voided = 0",
                    [device_id, offer_id],
                )[0]
                cur.execute(
                    self._sql(
                        "UPDATE device_leases SET redemptions = ?, budget = ?, "
                        "used_redemptions = ?, used_budget = ?, expires_ms = 0 "
                        "WHERE device_id = ? AND offer_id = ?"
                    ),
                    [int(n), None if budget is None else float(spent), int(n), float(spent),
                     device_id, offer_id],
                )  # fmt: skip
        return [row[0] for row in held]

    # -- the ledger ---------------------------------------------------------------------------
    def record_ledger(
        self, device_id: str, entries: Sequence[LedgerEntry], *, now: int | None = None
    ) -> int:
        """File a device's redemptions (a repeat is a no-op) and voids; return how many."""
        stamp = now_ms() if now is None else now
        with self._tx() as cur:
            for e in entries:
                if e.voided:
                    cur.execute(
                        self._sql(
                            "UPDATE fleet_redemptions SET voided = 1 "
                            "WHERE device_id = ? AND redemption_id = ?"
                        ),
                        [device_id, e.redemption_id],
                    )
                    continue
                cur.execute(
                    self._sql(
                        "INSERT INTO fleet_redemptions (device_id, redemption_id, offer_id, "
                        "order_id, amount, ts_ms, code_hash, member, received_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                    ),
                    [
                        device_id,
                        e.redemption_id,
                        e.offer_id,
                        e.order_id,
                        e.amount,
                        e.ts_ms,
                        e.code_hash,
                        e.member,
                        stamp,
                    ],
                )
        return len(entries)

    def reconcile(self) -> list[OverRedemption]:
        """Every limit the fleet's reported redemptions went past, with the devices involved:
        fleet-wide totals and budgets, codes redeemed more than once, members beyond their
        per-customer limit. Empty when the fleet kept every limit."""
        pools = self.pools()
        found: list[OverRedemption] = []
        with self._tx() as cur:
            live = "FROM fleet_redemptions WHERE voided = 0"
            per_offer = self._rows(
                cur, f"SELECT offer_id, device_id, count(*), sum(amount) {live} GROUP BY 1, 2"
            )
            codes = self._rows(
                cur,
                f"SELECT offer_id, code_hash, device_id, count(*) {live} "
                "AND code_hash IS NOT NULL GROUP BY 1, 2, 3",
            )
            members = self._rows(
                cur,
                f"SELECT offer_id, member, device_id, count(*) {live} "
                "AND member IS NOT NULL GROUP BY 1, 2, 3",
            )
        totals: dict[str, dict[str, tuple[int, float]]] = {}
        for offer_id, device, n, spent in per_offer:
            totals.setdefault(offer_id, {})[device] = (int(n), float(spent or 0))
        for offer_id, devices in sorted(totals.items()):
            pool = pools.get(offer_id)
            if pool is None or not pool.fleet:
                continue
            n = sum(v[0] for v in devices.values())
            spent = round(sum(v[1] for v in devices.values()), 2)
            names = tuple(sorted(devices))
            if pool.total_redemptions is not None and n > pool.total_redemptions:
                found.append(
                    OverRedemption("total", offer_id, offer_id, pool.total_redemptions, n, names)
                )
            if pool.budget is not None and spent > pool.budget + 1e-6:
                found.append(
                    OverRedemption("budget", offer_id, offer_id, pool.budget, spent, names)
                )
        found += _repeats("code", codes, lambda _: 1)
        found += _repeats("customer", members, lambda o: _per_customer(pools, o))
        return found


def _per_customer(pools: Mapping[str, Pool], offer_id: str) -> int | None:
    pool = pools.get(offer_id)
    return pool.per_customer if pool else None


def _repeats(kind: str, rows: Sequence[tuple[Any, ...]], limit_of: Any) -> list[OverRedemption]:
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for offer_id, subject, device, n in rows:
        grouped.setdefault((offer_id, subject), {})[device] = int(n)
    found = []
    for (offer_id, subject), devices in sorted(grouped.items()):
        limit = limit_of(offer_id)
        used = sum(devices.values())
        if limit is not None and used > limit:
            found.append(
                OverRedemption(kind, offer_id, subject, limit, used, tuple(sorted(devices)))
            )
    return found


__all__ = ["LEASE_SCHEMA", "OfferLedger", "OverRedemption", "Pool", "ShareStatus"]
