"""A shopper's journey through the facade: ``Shopper`` is what ``Shelfwise`` hands out.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
    ...     shopper = sw.start_session()
    ...     _ = shopper.view("tea")
    ...     [r.item.item_id for r in shopper.recommend("recently-viewed")]
    ['tea']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import cart as carts
from . import events, identity
from ._compat import warn_renamed
from ._errors import ConsentRequired, InvalidEvent, InvalidInput
from ._time import now_ms
from .cart import CartLine
from .catalog import Item
from .events import Event, validate_event
from .geo import GeofenceEvent
from .identity import ShopperInfo, check_purpose, consents_of, get_shopper, segment_of
from .offers import OfferContext, RankedOffer, Redemption, Reservation
from .recommend import Context, Recommendation, build_context, rerank_search
from .scan import ScanCard, scan

if TYPE_CHECKING:
    from ._facade import Shelfwise


class Shopper:
    """One shopper's journey: track events, keep a cart, ask for recommendations."""

    def __init__(self, sw: Shelfwise, shopper_id: str) -> None:
        self._sw = sw
        self.shopper_id = shopper_id

    def __repr__(self) -> str:
        return f"<Shopper {self.shopper_id[:9]}...>"

    # -- state (logic in shelfwise.identity) -----------------------------------------------
    def info(self) -> ShopperInfo:
        """The shopper row (``UnknownShopper`` once a session ended)."""
        return get_shopper(self._sw.store, self.shopper_id)

    @property
    def is_member(self) -> bool:
        """Whether this is a loyalty member (an anonymous session is not)."""
        return self.info().is_member

    def consents(self) -> dict[str, bool]:
        """Every consent purpose with this shopper's current answer."""
        return consents_of(self._sw.store, self.info())

    def has_consent(self, purpose: str) -> bool:
        """Whether the shopper said yes to ``purpose`` (one of ``shelfwise.PURPOSES``)."""
        return self.consents()[check_purpose(purpose)]

    def require_consent(self, purpose: str) -> None:
        """Raise ``ConsentRequired`` unless the shopper consented to ``purpose``."""
        if not self.has_consent(purpose):
            raise ConsentRequired(f"the shopper has not consented to {purpose}", purpose=purpose)

    def set_consent(self, purpose: str, granted: bool) -> None:
        """Give or withdraw consent for one purpose (stored with a timestamp)."""
        self.info()
        identity.write_consents(self._sw.store, self.shopper_id, {purpose: granted})

    def segment(self, *, now: int | None = None) -> str:
        """new / returning / loyal / lapsed (see ``shelfwise.identity.segment_of``)."""
        return segment_of(self._sw.store, self.info(), now)

    # -- events and the cart (logic in shelfwise.events, shelfwise.cart) --------------------
    def track(self, event_type: str, item: str | None = None, **fields: Any) -> Event:
        """Validate and durably record one event; nothing is written if it is invalid.

        ``item`` may be an item id or a GTIN. Re-sending an ``event_id`` already recorded
        is a no-op (safe retries).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     sw.start_session().track("view", "tea").type
            'view'
        """
        sw = self._sw
        raw: dict[str, Any] = {"type": event_type, **fields}
        if "store_id" not in fields:
            raw["store_id"] = sw.store_id
        if item is not None:
            raw["item_id"] = sw.catalog.lookup(item).item_id
        event = validate_event(raw)
        if event.item_id is not None and item is None:
            sw.catalog.get(event.item_id)
        with sw.store.write() as db:
            self.info()
            if events.insert_event(db, self.shopper_id, event):
                carts.apply_event(db, self.shopper_id, event)
                if event.type == "purchase":
                    sw.offers.record_purchase(db, self.shopper_id, [event])
            identity.touch(db, self.shopper_id, now_ms())
        return event

    def view(self, item: str) -> Event:
        """Record that the shopper looked at an item."""
        return self.track("view", item)

    def add_to_cart(self, item: str, quantity: int = 1) -> Event:
        """Put an item in the cart (and record the event)."""
        return self.track("cart_add", item, quantity=quantity)

    def remove_from_cart(self, item: str, quantity: int = 1) -> Event:
        """Take an item (or some of it) out of the cart."""
        return self.track("cart_remove", item, quantity=quantity)

    def cart(self) -> list[CartLine]:
        """The cart, oldest line first."""
        return carts.cart_lines(self._sw.store, self.shopper_id)

    def checkout(self) -> list[Event]:
        """Record a purchase of every cart line and empty the cart, in one transaction.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 2.5}])
            ...     shopper = sw.start_session()
            ...     _ = shopper.add_to_cart("tea", 2)
            ...     [(e.type, e.value) for e in shopper.checkout()]
            [('purchase', 5.0)]
        """
        sw = self._sw
        with sw.store.write() as db:
            # The cart is read inside the transaction: two concurrent checkouts of the same
            # cart must not both record the purchase.
            self.info()
            lines = carts.cart_lines(db, self.shopper_id)
            if not lines:
                raise InvalidEvent("the cart is empty: nothing to check out")
            items = sw.catalog.get_many([line.item_id for line in lines])
            stamp = now_ms()
            purchases = carts.purchase_events(lines, items, store_id=sw.store_id, stamp=stamp)
            for event in purchases:
                events.insert_event(db, self.shopper_id, event)
            # Experiment conversions commit with the purchase (shelfwise.offers).
            sw.offers.record_purchase(db, self.shopper_id, purchases)
            carts.empty(db, self.shopper_id)
            identity.touch(db, self.shopper_id, stamp)
        return purchases

    def search(self, query: str, *, limit: int = 20) -> list[Item]:
        """Full-text search, re-ranked by this shopper's taste when consented; recorded.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Green tea"}])
            ...     [item.item_id for item in sw.start_session().search("tea")]
            ['tea']
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the search query is empty")
        # Over-fetch so a result the shopper's taste favours can move up from just below.
        scored = self._sw.catalog.search_scored(query, limit=limit * 2)
        self.track("search", payload={"query": query[:200], "results": min(len(scored), limit)})
        ranked = rerank_search(
            self._sw.recommender.served(),
            self.context(),
            [item for item, _ in scored],
            [relevance for _, relevance in scored],
        )
        return ranked[:limit]

    # -- recommendations (logic in shelfwise.recommend) -------------------------------------
    def context(self, *, now: int | None = None) -> Context:
        """What the surfaces may use about this shopper, read from the store now."""
        sw = self._sw
        info = self.info()
        return build_context(
            sw.store,
            info,
            consents_of(sw.store, info),
            frozenset(line.item_id for line in self.cart()),
            store_id=sw.store_id,
            now=now_ms() if now is None else now,
            utc_offset_minutes=sw.utc_offset_minutes,
            segment_now=now,
        )

    def recommend(
        self,
        surface: str = "for-you",
        *,
        limit: int = 10,
        item: str | None = None,
        category: str | None = None,
        now: int | None = None,
        k: int | None = None,
    ) -> list[Recommendation]:
        """Recommendations on one surface, business filters applied, each with a reason.

        ``k`` is the deprecated name of ``limit``.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.start_session().recommend("recently-viewed", limit=5)
            []
        """
        if k is not None:
            warn_renamed("recommend(k=...)", "recommend(limit=...)")
            limit = k
        return self._sw.recommender.recommend(
            surface, self.context(now=now), limit=limit, item=item, category=category
        )

    # -- scan, offers, location (logic in shelfwise.scan, shelfwise.offers, shelfwise.geo) --
    def scan(self, code: str, *, symbology: str | None = None, channel: str = "kiosk") -> ScanCard:
        """Scan a barcode: the item, deals on it, goes-with, cheaper alternatives, a note.

        A bad or unknown code raises ``InvalidBarcode`` / ``UnknownItem`` and is still
        recorded as a ``scan_miss`` (with the reason) for the store summary.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.start_session().scan("036000291453")
            Traceback (most recent call last):
            ...
            shelfwise.InvalidBarcode: 036000291453 has a wrong check digit (expected 2): rescan or type it again
        """
        sw = self._sw
        return scan(
            code,
            shopper=self,
            store=sw.store,
            catalog=sw.catalog,
            recommender=sw.recommender,
            offers=sw.offers,
            symbology=symbology,
            channel=channel,
        )

    def offer_context(
        self,
        *,
        channel: str | None = None,
        cart: Sequence[Any] | None = None,
        cart_total: float | None = None,
        now: int | None = None,
    ) -> OfferContext:
        """What the offer rules see for this shopper now (cart read from the store if None)."""
        self.info()
        return self._sw.offers.context(
            self.shopper_id, channel=channel, cart=cart, cart_total=cart_total, now=now
        )

    def offers(
        self,
        *,
        channel: str = "kiosk",
        cart: Sequence[Any] | None = None,
        limit: int = 5,
        record: bool = True,
        now: int | None = None,
    ) -> list[RankedOffer]:
        """Offers this shopper is eligible for, best expected value first (shown = recorded).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.offers.define({"offer_id": "hello", "title": "1.00 off",
            ...                            "reward": {"type": "amount", "value": 1}})
            ...     [o.offer.offer_id for o in sw.start_session().offers(cart=[])]
            ['hello']
        """
        ctx = self.offer_context(channel=channel, cart=cart, now=now)
        return self._sw.offers.eligible(ctx, limit=limit, record=record)

    def reserve(
        self, code_or_offer: str, *, cart_total: float | None = None, ttl_s: float = 300
    ) -> Reservation:
        """Hold a code (or a code-less offer id) for this checkout; commit or release it.

        Example: ``held = shopper.reserve("7KQ2-...")`` then ``sw.offers.commit(held.reservation_id)``
        """
        self.info()
        return self._sw.offers.reserve(
            code_or_offer, shopper_id=self.shopper_id, cart_total=cart_total, ttl_s=ttl_s
        )

    def redeem(self, code_or_offer: str, *, cart_total: float | None = None) -> Redemption:
        """Reserve and commit at once; ``OfferRejected(reason=...)`` says why not."""
        self.info()
        return self._sw.offers.redeem(
            code_or_offer, shopper_id=self.shopper_id, cart_total=cart_total
        )

    def locate(
        self, lat: float, lon: float, accuracy_m: float, *, ts_ms: int | None = None
    ) -> list[GeofenceEvent]:
        """A location fix: geofence enter/dwell/exit events, each with the offers it triggered.

        Needs location consent (``ConsentRequired``); the coordinates are never stored.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.start_session().locate(45.46, 9.19, 10)
            Traceback (most recent call last):
            ...
            shelfwise.ConsentRequired: the shopper has not consented to location
        """
        self.require_consent("location")
        events = self._sw.geo.update(self.shopper_id, lat, lon, accuracy_m, ts_ms=ts_ms)
        return [self._sw.attach_geofence_offers(self.shopper_id, event) for event in events]

    # -- leaving -------------------------------------------------------------------------
    def end(self) -> None:
        """The shopper leaves. An anonymous session is forgotten; a member's history stays."""
        if self.info().is_member:
            return
        self._sw.end_session(self.shopper_id)

    def forget(self) -> int:
        """Erase everything held about this shopper now ("forget me"); return rows removed."""
        return self._sw.forget_shopper(self.shopper_id)

    def export(self) -> dict[str, Any]:
        """Everything held about this shopper as JSON-ready data."""
        return self._sw.export_shopper(self.shopper_id)


__all__ = ["Shopper"]
