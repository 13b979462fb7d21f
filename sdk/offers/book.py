"""The offer book: one store's offer definitions and offer settings, read and written.

``OfferBook`` keeps the definitions in the store (this module owns the ``offers`` table) and
parses each once per process; switches offers on and off; issues codes; holds the store's
offer settings (time zone, quiet hours); and runs writes in sandbox mode when asked. The
``Offers`` engine (``sw.offers``) builds on it with evaluation, redemption and orders.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
    ...                            "reward": {"type": "amount", "value": 1}})
    ...     sw.offers.deactivate("o")
    ...     [(o.offer_id, o.active) for o in sw.offers.all()]
    [('o', False)]
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self, TypeVar, cast

from .._compat import warn_renamed
from .._errors import InvalidInput, InvalidOffer, OfferRejected
from ..catalog import Catalog
from ..clock import now_ms
from ..store.connection import Store
from . import codes, context, usage
from .central import AuthorityLike
from .definitions import Offer, Targeting, parse_offer, read_offer_file

PARSE_CACHE_SIZE = 4096  # parsed definitions kept per process (a store has a few hundred)

T = TypeVar("T")


class Rollback(Exception):
    """Raised inside a transaction so nothing it did is kept (the sandbox, a priced order
    with central codes staged); carries the result out."""

    def __init__(self, result: Any) -> None:
        super().__init__("sandbox rollback")
        self.result = result


class OfferBook:
    """The offers of one store file as definitions and settings (``Offers`` builds on it).

    ``sandbox=True`` (see ``sandbox()``) runs every step for real inside its transaction and
    then rolls it back: operators test offers without spending anything.
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
        self.collector: AuthorityLike | None = None  # see Offers.use_collector

    def sandbox(self) -> Self:
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
        return type(self)(
            self._store, self._catalog, store_id=self.store_id, sandbox=True, cache=self._cache
        )

    # -- writes that honour the sandbox -------------------------------------------------
    def _transaction(self, work: Callable[[Any], T]) -> T:
        try:
            with self._store.write() as db:
                result = work(db)
                if self.sandboxed:
                    raise Rollback(result)
                return result
        except Rollback as rollback:
            return cast(T, rollback.result)

    # -- settings (kept in the store: shelfwise.offers.context) ---------------------------
    def set_timezone(self, name: str) -> None:
        """The store's IANA time zone (schedules, quiet hours, per-day limits use it)."""
        context.set_timezone(self._store, name)

    def timezone(self) -> str:
        """The store's IANA time zone name (UTC until ``set_timezone``)."""
        return context.timezone(self._store)

    def set_quiet_hours(self, start: str | None, end: str | None = None) -> None:
        """No app push between ``start`` and ``end`` (store-local 'HH:MM'); None clears."""
        context.set_quiet_hours(self._store, start, end)

    def local_time(self, now: int | None = None, *, ts_ms: int | None = None) -> dt.datetime | None:
        """Store-local time at ``now`` (UTC ms; the clock if None); None if the time zone is
        unknown. ``ts_ms`` is the deprecated name of ``now``.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.offers.set_timezone("Asia/Tokyo")
            ...     sw.offers.local_time(0).isoformat()
            '1970-01-01T09:00:00+09:00'
        """
        if ts_ms is not None:
            warn_renamed("Offers.local_time(ts_ms=...)", "Offers.local_time(now=...)")
            now = ts_ms
        return context.local_time(self._store, now_ms() if now is None else now)

    def quiet_until(self, now: int | None = None, *, ts_ms: int | None = None) -> int | None:
        """When the quiet hours in force at ``now`` (UTC ms; the clock if None) end, in UTC
        ms, or None if it is not quiet then. ``ts_ms`` is the deprecated name of ``now``.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.offers.set_quiet_hours("21:00", "08:00")
            ...     sw.offers.quiet_until(22 * 3_600_000) == 32 * 3_600_000
            True
        """
        if ts_ms is not None:
            warn_renamed("Offers.quiet_until(ts_ms=...)", "Offers.quiet_until(now=...)")
            now = ts_ms
        return context.quiet_until(self._store, now_ms() if now is None else now)

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
                usage.open_counters(db, offer.offer_id)

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

    def _targeting_in(self, db: Any, offer_id: str) -> Targeting | None:
        """An offer's targeting read through ``db`` (None once the offer was deleted)."""
        rows = list(
            db.query("SELECT definition, active FROM offers WHERE offer_id = ?", [offer_id])
        )
        return self._parsed(rows[0]["definition"], rows[0]["active"]).targeting if rows else None

    def _exists(self, offer_id: str) -> bool:
        return bool(self._store.query("SELECT 1 FROM offers WHERE offer_id = ?", [offer_id]))

    def activate(self, offer_id: str) -> None:
        """Switch an offer on."""
        self._switch(offer_id, True)

    def deactivate(self, offer_id: str) -> None:
        """Switch an offer off: it is neither shown nor redeemable (reason ``inactive``)."""
        self._switch(offer_id, False)

    def _switch(self, offer_id: str, on: bool) -> None:
        with self._store.write() as db:
            moved = db.execute(
                "UPDATE offers SET active = ? WHERE offer_id = ?", [int(on), offer_id]
            ).rowcount
            if moved == 0:
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
        issued = [codes.new_code() for _ in range(count)]
        stamp = now_ms()

        def work(db: Any) -> list[str]:
            codes.insert_codes(
                db, offer_id, issued, shopper_id=shopper_id, expires_ms=expires_ms, stamp=stamp
            )
            return issued

        return self._transaction(work)

    def stats(self, offer_id: str) -> dict[str, Any]:
        """The offer's counters: redemptions, money spent, held reservations, impressions."""
        self.get(offer_id)
        return usage.counters(self._store, offer_id)


__all__ = ["PARSE_CACHE_SIZE", "OfferBook", "Rollback"]
