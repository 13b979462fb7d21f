"""Offers and promotions: validated definitions, targeting rules, budgets, codes, redemption.

An offer is a frozen ``Offer`` parsed from JSON or YAML (``parse_offer`` says exactly which
field is wrong). ``evaluate`` is the whole rules engine as one pure function of the offer, an
``OfferContext`` (who, where, when, cart) and ``OfferUsage`` (the counters): it returns a
``Decision`` with a stable reason code and a message a person can read.

``Offers`` keeps offers, codes, reservations, redemptions, impressions and experiment
assignments in the store. Redemption is reserve-with-expiry -> commit -> release; each step
is one ``BEGIN IMMEDIATE`` transaction that checks the code's state, the limits and the
budget and moves the counters together, so two checkouts (threads or processes) can never
spend one single-use code or one budget twice.

Example:
    >>> import shelfwise
    >>> sw = shelfwise.open(":memory:")
    >>> offer = sw.offers.define({"offer_id": "ten-off", "title": "10% off over 20.00",
    ...     "reward": {"type": "percent", "value": 10},
    ...     "targeting": {"cart_total_min": 20}, "codes": "unique"})
    >>> [code] = sw.offers.issue_codes("ten-off", 1)
    >>> ann, bob = sw.member("L-1"), sw.member("L-2")
    >>> ann.redeem(code, cart_total=12.5)
    Traceback (most recent call last):
    ...
    shelfwise.OfferRejected: not eligible: cart total 12.50 is below 20.00
    >>> ann.redeem(code, cart_total=30.0).amount
    3.0
    >>> bob.redeem(code, cart_total=30.0)
    Traceback (most recent call last):
    ...
    shelfwise.OfferRejected: code ... was already redeemed
    >>> sw.close()
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import InvalidInput, InvalidOffer, OfferRejected
from .._time import DAY_MS, now_ms
from ..catalog import Catalog
from ..store.connection import Store
from . import experiments
from .codes import canonical_code, check_code, new_code
from .definitions import (
    CHANNELS,
    OFFER_REASONS,
    REASONS,
    Experiment,
    Offer,
    Targeting,
    parse_minute,
    parse_offer,
    read_offer_file,
)
from .rules import (
    CartLine,
    Decision,
    OfferContext,
    OfferUsage,
    day_bounds,
    evaluate,
    period_starts,
    quiet_end,
)

logger = logging.getLogger(__name__)

DEFAULT_RESERVATION_S = 300
DEFAULT_TIMEZONE = "UTC"
# Prior redemption rate for ranking an offer with no history yet (Beta(1, 9): 10%).
PRIOR_REDEEMED, PRIOR_SHOWN = 1.0, 10.0
PARSE_CACHE_SIZE = 4096  # parsed definitions kept per process (a store has a few hundred)
IN_CHUNK = 500  # offer ids per ``IN (...)`` list, far below SQLite's variable limit


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
        )


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield list(ids[start : start + IN_CHUNK])


def usage_snapshot(
    db: Any, offer_ids: Sequence[str], shopper_id: str, ctx: OfferContext
) -> UsageSnapshot:
    """Read every limit counter of ``offer_ids`` for ``shopper_id`` with one grouped query per
    counter kind (offer-wide totals, offer-wide today, the shopper's uses, the shopper's
    impressions) instead of six queries per offer.

    ``db`` is the caller's connection: a reader for showing offers, the writer inside the
    ``BEGIN IMMEDIATE`` transaction of a reservation (so the limits it checks cannot move).
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
        for offer_id, n in db.execute(
            "SELECT offer_id, count(*) FROM ("
            f"SELECT offer_id FROM redemptions WHERE offer_id IN ({marks}) AND ts_ms >= ? "
            f"UNION ALL SELECT offer_id FROM reservations WHERE offer_id IN ({marks}) "
            "AND state = 'held' AND expires_ms > ? AND created_ms >= ?) GROUP BY offer_id",
            [*ids, day_start, *ids, live, day_start],
        ).fetchall():
            today[offer_id] = int(n)
    customer: dict[str, tuple[int, int, int]] = {}
    shown: dict[str, tuple[int, int]] = {}
    if shopper_id:
        wanted = set(offer_ids)
        for offer_id, total, on_day, in_week in db.execute(
            "SELECT offer_id, count(*), total(ts_ms >= ?), total(ts_ms >= ?) FROM ("
            "SELECT offer_id, ts_ms FROM redemptions WHERE shopper_id = ? "
            "UNION ALL SELECT offer_id, created_ms FROM reservations WHERE shopper_id = ? "
            "AND state = 'held' AND expires_ms > ?) GROUP BY offer_id",
            [day_start, week_start, shopper_id, shopper_id, live],
        ).fetchall():
            if offer_id in wanted:
                customer[offer_id] = (int(total), int(on_day), int(in_week))
        # Impressions older than the week (or the day, if it began earlier) never count.
        since = min(day_start, week_start)
        for offer_id, on_day, in_week in db.execute(
            "SELECT offer_id, total(ts_ms >= ?), total(ts_ms >= ?) FROM impressions "
            "WHERE shopper_id = ? AND ts_ms >= ? GROUP BY offer_id",
            [day_start, week_start, shopper_id, since],
        ).fetchall():
            if offer_id in wanted:
                shown[offer_id] = (int(on_day), int(in_week))
    return UsageSnapshot(offers, today, customer, shown, rates)


# -- the engine over the store ---------------------------------------------------------------
@dataclass(frozen=True)
class Reservation:
    """A code (or offer) held for one checkout until ``expires_ms``; commit or release it."""

    reservation_id: str
    offer_id: str
    code: str | None
    shopper_id: str
    amount: float
    expires_ms: int
    sandbox: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Redemption:
    """A committed redemption: the money off and the offer it came from."""

    redemption_id: str
    offer_id: str
    code: str | None
    shopper_id: str
    amount: float
    ts_ms: int
    sandbox: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RankedOffer:
    """An eligible offer for a shopper, with its expected value (the ranking key)."""

    offer: Offer
    decision: Decision
    expected_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer_id": self.offer.offer_id,
            "title": self.offer.title,
            "description": self.offer.description,
            "amount": self.decision.amount,
            "expected_value": round(self.expected_value, 4),
            "variant": self.decision.variant,
            "deliver_at_ms": self.decision.deliver_at_ms,
        }


class _Rollback(Exception):
    """Raised inside a sandbox transaction so nothing it did is kept."""

    def __init__(self, result: Any) -> None:
        super().__init__("sandbox rollback")
        self.result = result


def _event(
    db: Any,
    shopper_id: str | None,
    event_type: str,
    payload: Mapping[str, Any],
    ts: int,
    store_id: str,
    value: float | None = None,
) -> None:
    db.execute(
        "INSERT INTO events (event_id, shopper_id, type, value, store_id, ts_ms, payload) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            uuid.uuid4().hex,
            shopper_id,
            event_type,
            value,
            store_id,
            ts,
            json.dumps(dict(payload), sort_keys=True),
        ],
    )


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
    _event(db, shopper_id, "offer_rejected", {"offer_id": offer_id, "reason": reason}, ts, store_id)
    return True


def resolve_zone(name: str) -> dt.tzinfo | None:
    """A time zone by IANA name, or None when unknown (callers then fail closed)."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class Offers:
    """The offers of one store file: define, switch, issue codes, evaluate, redeem.

    ``sandbox=True`` (see ``Offers.sandbox()``) runs every step for real inside its
    transaction and then rolls it back: operators test offers without spending anything.
    """

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        store_id: str = "",
        sandbox: bool = False,
        cache: dict[tuple[str, bool], Offer] | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self.store_id = store_id
        self.sandboxed = sandbox
        self._cache: dict[tuple[str, bool], Offer] = {} if cache is None else cache

    def sandbox(self) -> Offers:
        """The same offers in sandbox mode: evaluations and redemptions spend nothing.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
            ...                            "reward": {"type": "amount", "value": 1}})
            ...     _ = sw.member("L-1")
            ...     sw.offers.sandbox().redeem("o", shopper_id="L-1", cart_total=5).sandbox
            True
        """
        return Offers(
            self._store, self._catalog, store_id=self.store_id, sandbox=True, cache=self._cache
        )

    # -- writes that honour the sandbox -------------------------------------------------
    def _transaction(self, work: Any) -> Any:
        try:
            with self._store.write() as db:
                result = work(db)
                if self.sandboxed:
                    raise _Rollback(result)
                return result
        except _Rollback as rollback:
            return rollback.result

    # -- settings ------------------------------------------------------------------------
    def set_timezone(self, name: str) -> None:
        """The store's IANA time zone (schedules, quiet hours, per-day limits use it)."""
        if resolve_zone(name) is None:
            raise InvalidInput(f"unknown time zone {name!r}: use an IANA name like Europe/Rome")
        self._store.set_meta("offers.timezone", name)

    def timezone(self) -> str:
        return self._store.get_meta("offers.timezone") or DEFAULT_TIMEZONE

    def set_quiet_hours(self, start: str | None, end: str | None = None) -> None:
        """No app push between ``start`` and ``end`` (store-local 'HH:MM'); None clears."""
        if start is None:
            self._store.set_meta("offers.quiet_hours", "")
            return
        a, b = parse_minute(start, "quiet hours"), parse_minute(end, "quiet hours")
        self._store.set_meta("offers.quiet_hours", f"{a}-{b}")

    def local_time(self, ts_ms: int) -> dt.datetime | None:
        """Store-local time for a UTC ms timestamp; None if the time zone is unknown."""
        zone = resolve_zone(self.timezone())
        if zone is None:
            return None
        return dt.datetime.fromtimestamp(ts_ms / 1000, tz=zone)

    def quiet_until(self, ts_ms: int) -> int | None:
        """When the quiet hours in force at ``ts_ms`` end (UTC ms), or None if not quiet."""
        setting = self._store.get_meta("offers.quiet_hours") or ""
        local = self.local_time(ts_ms)
        if not setting or local is None:
            return None
        start, end = (int(x) for x in setting.split("-"))
        return quiet_end(local, start, end)

    # -- definitions ---------------------------------------------------------------------
    def define(self, definition: Mapping[str, Any] | Offer) -> Offer:
        """Add or replace one offer (validated first; a bad one changes nothing)."""
        offer = definition if isinstance(definition, Offer) else parse_offer(definition)
        self._save([offer])
        return offer

    def load(self, path: str | Path) -> list[Offer]:
        """Add or replace every offer in a JSON/YAML file, all or nothing.

        Example: ``sw.offers.load("offers.yaml")``
        """
        offers = [parse_offer(d) for d in read_offer_file(path)]
        ids = [o.offer_id for o in offers]
        if len(set(ids)) != len(ids):
            raise InvalidOffer(f"{Path(path).name}: an offer_id appears twice")
        self._save(offers)
        return offers

    def _save(self, offers: Sequence[Offer]) -> None:
        stamp = now_ms()
        with self._store.write() as db:
            for offer in offers:
                db.execute(
                    "INSERT INTO offers (offer_id, definition, active, updated_ms) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(offer_id) DO UPDATE SET definition = excluded.definition, "
                    "active = excluded.active, updated_ms = excluded.updated_ms",
                    [offer.offer_id, json.dumps(dict(offer.source)), int(offer.active), stamp],
                )
                db.execute(
                    "INSERT OR IGNORE INTO offer_counters (offer_id) VALUES (?)", [offer.offer_id]
                )

    def get(self, offer_id: str) -> Offer:
        """One offer, or ``OfferRejected(reason="unknown_offer")``."""
        rows = self._store.query(
            "SELECT definition, active FROM offers WHERE offer_id = ?", [offer_id]
        )
        if not rows:
            raise OfferRejected(f"no offer {offer_id!r}", reason="unknown_offer")
        return self._parsed(rows[0]["definition"], rows[0]["active"])

    def all(self) -> list[Offer]:
        """Every offer, active or not, by id."""
        rows = self._store.query("SELECT definition, active FROM offers ORDER BY offer_id")
        return [self._parsed(r["definition"], r["active"]) for r in rows]

    def _parsed(self, definition: str, active: Any) -> Offer:
        """The stored definition parsed once per process (parsing is ~70 us an offer, the
        rules ~5 us): keyed by the exact JSON text, so an edit in any process is a new key."""
        key = (definition, bool(active))
        offer = self._cache.get(key)
        if offer is None:
            offer = replace(parse_offer(json.loads(definition)), active=key[1])
            if len(self._cache) >= PARSE_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = offer
        return offer

    def activate(self, offer_id: str) -> None:
        """Switch an offer on."""
        self._switch(offer_id, True)

    def deactivate(self, offer_id: str) -> None:
        """Switch an offer off: it is neither shown nor redeemable (reason ``inactive``)."""
        self._switch(offer_id, False)

    def _switch(self, offer_id: str, on: bool) -> None:
        with self._store.write() as db:
            if (
                db.execute(
                    "UPDATE offers SET active = ? WHERE offer_id = ?", [int(on), offer_id]
                ).rowcount
                == 0
            ):
                raise OfferRejected(f"no offer {offer_id!r}", reason="unknown_offer")

    def issue_codes(
        self,
        offer_id: str,
        count: int,
        *,
        shopper_id: str | None = None,
        expires_ms: int | None = None,
    ) -> list[str]:
        """Create ``count`` single-use codes for an offer (optionally bound to one member)."""
        offer = self.get(offer_id)
        if offer.codes != "unique":
            raise InvalidInput(f"offer {offer_id} is applied without codes (codes: none)")
        if not 1 <= count <= 100_000:
            raise InvalidInput("count must be between 1 and 100000")
        codes = [new_code() for _ in range(count)]
        stamp = now_ms()

        def work(db: Any) -> list[str]:
            db.table("offer_codes").insert_all(
                [
                    {
                        "code": c,
                        "offer_id": offer_id,
                        "shopper_id": shopper_id,
                        "state": "available",
                        "issued_ms": stamp,
                        "expires_ms": expires_ms,
                    }
                    for c in codes
                ]
            )
            return codes

        result: list[str] = self._transaction(work)
        return result

    # -- context & usage ---------------------------------------------------------------
    def context(
        self,
        shopper_id: str | None,
        *,
        channel: str | None = None,
        cart: Sequence[Any] | None = None,
        cart_total: float | None = None,
        item_id: str | None = None,
        geofence: tuple[str, str] | None = None,
        now: int | None = None,
        purpose: str = "show",
    ) -> OfferContext:
        """Build the rules' view of a shopper from the store (cart from the store if None)."""
        from ..identity import consents_of, get_shopper, segment_of

        stamp = now_ms() if now is None else now
        if channel is not None and channel not in CHANNELS:
            raise InvalidInput(f"channel {channel!r} is not one of: {', '.join(sorted(CHANNELS))}")
        info = get_shopper(self._store, shopper_id) if shopper_id else None
        lines = self._cart_lines(shopper_id, cart)
        anchor = self._catalog.get(item_id) if item_id else None
        last = None
        if info is not None:
            rows = self._store.query(
                "SELECT max(ts_ms) AS last FROM events WHERE shopper_id = ? AND type = 'purchase'",
                [info.shopper_id],
            )
            last = rows[0]["last"]
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
            local=self.local_time(stamp),
            shopper_id=shopper_id or "",
            is_member=bool(info and info.is_member),
            consented=True
            if info is None
            else (consents_of(self._store, info)["offers"] or not info.is_member),
            segment=segment_of(self._store, info, stamp) if info else "new",
            days_since_purchase=None if last is None else (stamp - last) / DAY_MS,
            attributes=dict(info.attributes) if info else {},
            member_since=member_since,
            cart=lines,
            cart_total=cart_total,
            store_id=(info.store_id if info and info.store_id else self.store_id),
            channel=channel,
            item_id=anchor.item_id if anchor else None,
            item_category=anchor.category if anchor else None,
            item_price=anchor.price if anchor else None,
            geofence=geofence,
            quiet_until_ms=self.quiet_until(stamp),
            purpose=purpose,
        )

    def _cart_lines(
        self, shopper_id: str | None, cart: Sequence[Any] | None
    ) -> tuple[CartLine, ...]:
        pairs: list[tuple[str, int]] = []
        if cart is None:
            if shopper_id:
                rows = self._store.query(
                    "SELECT item_id, quantity FROM carts WHERE shopper_id = ?", [shopper_id]
                )
                pairs = [(r["item_id"], r["quantity"]) for r in rows]
        else:
            for entry in cart:
                if isinstance(entry, str):
                    pairs.append((entry, 1))
                elif isinstance(entry, CartLine):
                    pairs.append((entry.item_id, 1))
                else:
                    pairs.append(
                        (
                            str(getattr(entry, "item_id", entry[0])),
                            int(getattr(entry, "quantity", 1)),
                        )
                    )
        items = self._catalog.get_many([p[0] for p in pairs])
        return tuple(
            CartLine(i, items[i].category, round((items[i].price or 0.0) * q, 2))
            if i in items
            else CartLine(i)
            for i, q in pairs
        )

    def _usage(self, db: Any, offer_id: str, shopper_id: str, ctx: OfferContext) -> OfferUsage:
        return usage_snapshot(db, [offer_id], shopper_id, ctx).usage(offer_id)

    @staticmethod
    def _period_starts(ctx: OfferContext) -> tuple[int, int]:
        return period_starts(ctx)

    # -- evaluation ----------------------------------------------------------------------
    def explain(self, offer_id: str, ctx: OfferContext, *, record: bool = False) -> Decision:
        """Why an offer is or is not available in ``ctx``.

        Reads only, unless ``record=True``: the shopper asked for this offer (tapped it, typed
        its id, asked why not), so a rejection feeds the offer funnel as one ``offer_rejected``
        event per shopper, offer and reason per store-local day (repeats that day add nothing).
        Operators checking an offer leave ``record`` off.

        Example: ``sw.offers.explain("ten-off", shopper.offer_context(), record=True).message``
        """
        offer = self.get(offer_id)
        db = self._store.read()
        decision = evaluate(offer, ctx, self._usage(db, offer_id, ctx.shopper_id, ctx))
        if record and not decision.eligible and ctx.shopper_id:
            self._transaction(
                lambda w: record_rejection(
                    w,
                    ctx.shopper_id,
                    offer_id,
                    decision.reason,
                    ctx.now_ms,
                    ctx.store_id,
                    day_bounds(ctx),
                )
            )
        return decision

    def eligible(
        self, ctx: OfferContext, *, limit: int = 5, record: bool = True
    ) -> list[RankedOffer]:
        """Eligible offers ranked by expected value for this shopper; shown ones are recorded.

        Recording writes an impression (frequency caps read them), an ``offer_shown`` event
        and, for experiments, the shopper's first exposure (control group included).
        """
        offers = [o for o in self.all() if o.active]
        if not offers:
            return []
        # Every counter of every offer for this shopper in four grouped queries, not six
        # small queries an offer (33-80 ms a request at 200 offers; see the benchmark).
        snapshot = usage_snapshot(
            self._store.read(), [o.offer_id for o in offers], ctx.shopper_id, ctx
        )
        rates = snapshot.rates
        affinity = self._affinity(ctx.shopper_id)
        ranked: list[RankedOffer] = []
        exposures: list[tuple[Offer, Decision]] = []
        for offer in offers:
            decision = evaluate(offer, ctx, snapshot.usage(offer.offer_id))
            if offer.experiment is not None and decision.reason in {
                "eligible",
                "experiment_control",
            }:
                exposures.append((offer, decision))
            if not decision.eligible:
                continue
            redeemed, shown = rates.get(offer.offer_id, (0, 0))
            p = (redeemed + PRIOR_REDEEMED) / (shown + PRIOR_SHOWN)
            value = decision.amount or offer.reward.value * (
                0.01 if offer.reward.type == "percent" else 1
            )
            boost = 2.0 if affinity & (offer.targeting.items | offer.targeting.categories) else 1.0
            ranked.append(RankedOffer(offer, decision, p * value * boost))
        ranked.sort(key=lambda r: (-r.expected_value, r.offer.offer_id))
        shown_offers = ranked[:limit]
        if record and (shown_offers or exposures) and ctx.shopper_id:
            self._transaction(lambda w: self._record_shown(w, ctx, shown_offers, exposures))
        return shown_offers

    def _affinity(self, shopper_id: str) -> set[str]:
        if not shopper_id:
            return set()
        rows = self._store.query(
            "SELECT DISTINCT e.item_id, i.category FROM events e JOIN items i ON i.item_id = e.item_id "
            "WHERE e.shopper_id = ? ORDER BY e.seq DESC LIMIT 50",
            [shopper_id],
        )
        return {r["item_id"] for r in rows} | {r["category"] for r in rows if r["category"]}

    def _record_shown(
        self,
        db: Any,
        ctx: OfferContext,
        shown: Sequence[RankedOffer],
        exposures: Sequence[tuple[Offer, Decision]],
    ) -> None:
        for ranked in shown:
            db.execute(
                "INSERT INTO impressions (shopper_id, offer_id, channel, ts_ms) VALUES (?, ?, ?, ?)",
                [ctx.shopper_id, ranked.offer.offer_id, ctx.channel or "", ctx.now_ms],
            )
            db.execute(
                "UPDATE offer_counters SET impressions = impressions + 1 WHERE offer_id = ?",
                [ranked.offer.offer_id],
            )
            payload = {"offer_id": ranked.offer.offer_id, "channel": ctx.channel or ""}
            if ranked.decision.variant:
                payload["variant"] = ranked.decision.variant
            _event(db, ctx.shopper_id, "offer_shown", payload, ctx.now_ms, ctx.store_id)
        experiments.record_exposures(
            db,
            ctx.shopper_id,
            [(offer, decision.variant) for offer, decision in exposures],
            ts=ctx.now_ms,
            store_id=ctx.store_id,
        )

    def record_purchase(self, db: Any, shopper_id: str, purchases: Sequence[Any]) -> int:
        """Record experiment conversions for purchases, in the caller's transaction.

        ``Shopper.checkout`` (and ``track("purchase", ...)``) call this inside the transaction
        that writes the purchase events, so the ``experiment_conversion`` events exist as soon
        as the purchase does and the next sync summary counts them. ``purchases`` are
        ``Event``-like (``item_id``, ``ts_ms``, ``store_id``), in the order they were bought.
        Only the first matching purchase after exposure converts (``converted_ms`` is set
        once); returns how many conversions were new.

        Example: ``sw.offers.record_purchase(db, "L-1", events)`` inside ``sw.store.write()``.
        """
        return experiments.record_purchase(
            db, shopper_id, purchases, targeting_of=self._targeting_in, store_id=self.store_id
        )

    def _targeting_in(self, db: Any, offer_id: str) -> Targeting | None:
        """An offer's targeting read through ``db`` (None once the offer was deleted)."""
        rows = list(
            db.query("SELECT definition, active FROM offers WHERE offer_id = ?", [offer_id])
        )
        return self._parsed(rows[0]["definition"], rows[0]["active"]).targeting if rows else None

    def record_conversions(self, *, shopper_id: str | None = None) -> int:
        """Catch up on conversions from purchases recorded without the checkout hook (e.g.
        written by an older version); return how many were new. Idempotent.

        A conversion is the first purchase after exposure of an item the offer targets (any
        item for an offer without item targeting), counted once per shopper and experiment,
        in both arms, so lift = conversion rate(treatment) / conversion rate(control). Each
        becomes an ``experiment_conversion`` event, which the synced summaries count.
        ``experiment_report`` runs it first.
        """
        rows = experiments.pending_conversions(self._store, shopper_id)
        if not rows:
            return 0
        result: int = self._transaction(
            lambda db: experiments.convert_pending(
                db, rows, targeting_of=self._targeting_in, store_id=self.store_id
            )
        )
        return result

    def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        """Exposed and converted shoppers per variant, conversion rates and the lift.

        Computed from the ``experiment_exposure``/``experiment_conversion`` event counts, the
        same counts the synced summaries carry.
        """
        self.record_conversions()
        return experiments.report(self._store, experiment_id)

    # -- redemption ----------------------------------------------------------------------
    def reserve(
        self,
        code_or_offer: str,
        *,
        shopper_id: str,
        ctx: OfferContext | None = None,
        cart_total: float | None = None,
        ttl_s: float = DEFAULT_RESERVATION_S,
        now: int | None = None,
    ) -> Reservation:
        """Hold a code (or a code-less offer) for this checkout; ``OfferRejected`` says why not.

        The code's state, the offer's limits and budget and the counters change in one
        transaction: of two checkouts racing for one single-use code exactly one gets it.
        """
        if not 1 <= ttl_s <= 86_400:
            raise InvalidInput("ttl_s must be between 1 second and a day")
        stamp = now_ms() if now is None else now
        if ctx is None:
            ctx = self.context(shopper_id, cart_total=cart_total, now=stamp, purpose="redeem")
        else:
            ctx = replace(ctx, purpose="redeem", shopper_id=shopper_id)
        return self._reserve(code_or_offer, shopper_id, ctx, int(ttl_s * 1000))

    def _reserve(
        self, code_or_offer: str, shopper_id: str, ctx: OfferContext, ttl_ms: int
    ) -> Reservation:
        stamp = ctx.now_ms
        rows = self._store.query("SELECT 1 FROM offers WHERE offer_id = ?", [code_or_offer])
        code = None if rows else check_code_or_reject(self, code_or_offer, shopper_id, ctx)

        def work(db: Any) -> Reservation | OfferRejected:
            _expire(db, stamp)
            if code is None:
                offer = self.get(code_or_offer)
                if offer.codes == "unique":
                    return OfferRejected(
                        f"offer {offer.offer_id} needs a code", reason="code_required"
                    )
            else:
                found = list(db.query("SELECT * FROM offer_codes WHERE code = ?", [code]))
                if not found:
                    return OfferRejected(f"code {code} does not exist", reason="code_unknown")
                row = found[0]
                if row["state"] == "redeemed":
                    return OfferRejected(f"code {code} was already redeemed", reason="code_used")
                if row["state"] == "reserved":
                    return OfferRejected(
                        f"code {code} is held by another checkout", reason="code_reserved"
                    )
                if row["expires_ms"] is not None and row["expires_ms"] <= stamp:
                    return OfferRejected(f"code {code} expired", reason="code_expired")
                if row["shopper_id"] and row["shopper_id"] != shopper_id:
                    return OfferRejected(
                        f"code {code} belongs to another member", reason="code_other_shopper"
                    )
                offer = self.get(row["offer_id"])
            decision = evaluate(offer, ctx, self._usage(db, offer.offer_id, shopper_id, ctx))
            if not decision.eligible:
                return OfferRejected(decision.message, reason=decision.reason)
            if code is not None:
                moved = db.execute(
                    "UPDATE offer_codes SET state = 'reserved' WHERE code = ? AND state = 'available'",
                    [code],
                ).rowcount
                if moved != 1:  # pragma: no cover - the write lock makes this impossible
                    return OfferRejected(
                        f"code {code} is held by another checkout", reason="code_reserved"
                    )
            reservation = Reservation(
                uuid.uuid4().hex,
                offer.offer_id,
                code,
                shopper_id,
                decision.amount,
                stamp + ttl_ms,
                self.sandboxed,
            )
            db.execute(
                "INSERT INTO reservations (reservation_id, offer_id, code, shopper_id, amount, created_ms, "
                "expires_ms, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'held')",
                [
                    reservation.reservation_id,
                    offer.offer_id,
                    code,
                    shopper_id,
                    decision.amount,
                    stamp,
                    reservation.expires_ms,
                ],
            )
            db.execute(
                "UPDATE offer_counters SET reserved = reserved + 1, reserved_amount = reserved_amount + ? "
                "WHERE offer_id = ?",
                [decision.amount, offer.offer_id],
            )
            return reservation

        result = self._transaction(work)
        if isinstance(result, OfferRejected):
            self._log_rejection(shopper_id, code_or_offer, result, ctx)
            raise result
        assert isinstance(result, Reservation)
        return result

    def _log_rejection(
        self, shopper_id: str, code_or_offer: str, error: OfferRejected, ctx: OfferContext
    ) -> None:
        offer_id = code_or_offer
        rows = self._store.query(
            "SELECT offer_id FROM offer_codes WHERE code = ?", [canonical_code(code_or_offer)]
        )
        if rows:
            offer_id = rows[0]["offer_id"]
        elif not self._store.query("SELECT 1 FROM offers WHERE offer_id = ?", [code_or_offer]):
            offer_id = "?"  # never log what a shopper typed: it may be someone else's code
        self._transaction(
            lambda db: record_rejection(
                db, shopper_id, offer_id, error.reason, ctx.now_ms, ctx.store_id, day_bounds(ctx)
            )
        )

    def commit(self, reservation_id: str, *, now: int | None = None) -> Redemption:
        """Spend a held reservation (payment went through): the code is used for good."""
        stamp = now_ms() if now is None else now

        def work(db: Any) -> Redemption | OfferRejected:
            row = _held(db, reservation_id)
            if isinstance(row, OfferRejected):
                return row
            if row["expires_ms"] <= stamp:
                _release(db, row, "expired")
                local = self.local_time(stamp)
                record_rejection(
                    db,
                    row["shopper_id"],
                    row["offer_id"],
                    "reservation_expired",
                    stamp,
                    self.store_id,
                    day_bounds(OfferContext(now_ms=stamp, local=local)),
                )
                return OfferRejected(
                    "the reservation expired and was released: reserve again",
                    reason="reservation_expired",
                )
            db.execute(
                "UPDATE reservations SET state = 'committed' WHERE reservation_id = ?",
                [reservation_id],
            )
            if row["code"]:
                db.execute(
                    "UPDATE offer_codes SET state = 'redeemed', redeemed_ms = ? WHERE code = ?",
                    [stamp, row["code"]],
                )
            db.execute(
                "UPDATE offer_counters SET reserved = reserved - 1, reserved_amount = reserved_amount - ?, "
                "redemptions = redemptions + 1, spent = spent + ? WHERE offer_id = ?",
                [row["amount"], row["amount"], row["offer_id"]],
            )
            redemption = Redemption(
                uuid.uuid4().hex,
                row["offer_id"],
                row["code"],
                row["shopper_id"],
                row["amount"],
                stamp,
                self.sandboxed,
            )
            db.execute(
                "INSERT INTO redemptions (redemption_id, offer_id, code, shopper_id, amount, ts_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    redemption.redemption_id,
                    row["offer_id"],
                    row["code"],
                    row["shopper_id"],
                    row["amount"],
                    stamp,
                ],
            )
            _event(
                db,
                row["shopper_id"],
                "offer_redeemed",
                {"offer_id": row["offer_id"]},
                stamp,
                self.store_id,
                row["amount"],
            )
            return redemption

        result = self._transaction(work)
        if isinstance(result, OfferRejected):
            raise result
        assert isinstance(result, Redemption)
        return result

    def release(self, reservation_id: str) -> None:
        """Give a held code back (payment failed or the cart changed)."""

        def work(db: Any) -> OfferRejected | None:
            row = _held(db, reservation_id)
            if isinstance(row, OfferRejected):
                return row
            _release(db, row, "released")
            return None

        result = self._transaction(work)
        if isinstance(result, OfferRejected):
            raise result

    def redeem(
        self,
        code_or_offer: str,
        *,
        shopper_id: str,
        ctx: OfferContext | None = None,
        cart_total: float | None = None,
        now: int | None = None,
    ) -> Redemption:
        """Reserve and commit in one transaction (a checkout with no separate payment step)."""
        stamp = now_ms() if now is None else now
        # Two transactions: the reservation already owns the code, so nobody can take it in
        # between, and a crash in between only leaves a hold that expires.
        held = self.reserve(
            code_or_offer, shopper_id=shopper_id, ctx=ctx, cart_total=cart_total, now=stamp
        )
        if self.sandboxed:  # nothing was kept: the commit would succeed with these numbers
            return Redemption(
                uuid.uuid4().hex, held.offer_id, held.code, shopper_id, held.amount, stamp, True
            )
        return self.commit(held.reservation_id, now=stamp)

    def sweep(self, *, now: int | None = None) -> int:
        """Release every expired reservation; return how many (reserve does this too)."""
        stamp = now_ms() if now is None else now
        result: int = self._transaction(lambda db: _expire(db, stamp))
        return result

    def stats(self, offer_id: str) -> dict[str, Any]:
        """The offer's counters: redemptions, money spent, held reservations, impressions."""
        self.get(offer_id)
        row = self._store.query("SELECT * FROM offer_counters WHERE offer_id = ?", [offer_id])[0]
        return dict(row)


def check_code_or_reject(offers: Offers, text: str, shopper_id: str, ctx: OfferContext) -> str:
    """``check_code`` that also logs the rejection (a mistyped code is a rejection too)."""
    try:
        return check_code(text)
    except OfferRejected as exc:
        offers._log_rejection(shopper_id, "?", exc, ctx)
        raise


def _held(db: Any, reservation_id: str) -> dict[str, Any] | OfferRejected:
    rows = list(db.query("SELECT * FROM reservations WHERE reservation_id = ?", [reservation_id]))
    if not rows:
        return OfferRejected(f"no reservation {reservation_id!r}", reason="reservation_unknown")
    row: dict[str, Any] = rows[0]
    if row["state"] == "expired":
        return OfferRejected(
            "the reservation expired and was released: reserve again", reason="reservation_expired"
        )
    if row["state"] != "held":
        return OfferRejected(
            f"the reservation was already {row['state']}", reason="reservation_closed"
        )
    return row


def _release(db: Any, row: Mapping[str, Any], state: str) -> None:
    db.execute(
        "UPDATE reservations SET state = ? WHERE reservation_id = ?", [state, row["reservation_id"]]
    )
    if row["code"]:
        db.execute(
            "UPDATE offer_codes SET state = 'available' WHERE code = ? AND state = 'reserved'",
            [row["code"]],
        )
    db.execute(
        "UPDATE offer_counters SET reserved = reserved - 1, reserved_amount = reserved_amount - ? WHERE offer_id = ?",
        [row["amount"], row["offer_id"]],
    )


def release_holds_of(db: Any, shopper_id: str) -> int:
    """Release every live hold of a shopper who is being forgotten; return how many.

    Deleting the rows instead would leave the offer's reserved counters and codes stuck.
    """
    rows = list(
        db.query("SELECT * FROM reservations WHERE shopper_id = ? AND state = 'held'", [shopper_id])
    )
    for row in rows:
        _release(db, row, "released")
    return len(rows)


def _expire(db: Any, stamp: int) -> int:
    rows = list(
        db.query("SELECT * FROM reservations WHERE state = 'held' AND expires_ms <= ?", [stamp])
    )
    for row in rows:
        _release(db, row, "expired")
    return len(rows)


__all__ = [
    "OFFER_REASONS",
    "REASONS",
    "CartLine",
    "Decision",
    "Experiment",
    "Offer",
    "OfferContext",
    "OfferUsage",
    "Offers",
    "RankedOffer",
    "Redemption",
    "Reservation",
    "UsageSnapshot",
    "evaluate",
    "parse_offer",
    "usage_snapshot",
]
