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

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import auth, events, identity
from . import cart as carts
from ._compat import warn_renamed
from ._errors import ConsentRequired, InvalidEvent, InvalidInput
from ._member_profile import MemberProfileMixin
from .cart import CartLine
from .catalog import Item
from .clock import now_ms
from .events import Event, validate_event
from .geo import GeofenceEvent
from .identity import (
    ShopperInfo,
    check_purpose,
    consents_of,
    get_shopper,
    segment_of,
    shopper_state,
)
from .offers import OfferContext, Order, OrderPrice, RankedOffer, Redemption, Reservation
from .offers.watches import Watch, add_watch, check_kind, remove_watch, watches_of
from .recommend import Context, Recommendation, build_context, rerank_search
from .recommend.experiments import shown_tags
from .recommend.filters import NO_FILTER, ItemFilter
from .scan import ScanCard, scan

MAX_SHOWN_LOGGED = 50  # item ids kept in a recommendation_shown event

if TYPE_CHECKING:
    from ._facade import Shelfwise


class Shopper(MemberProfileMixin):
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
                    sw.recommend_experiments.record_purchase(db, self.shopper_id, [event])
            else:
                event = self._retried(db, event)
            identity.touch(db, self.shopper_id, now_ms())
        return event

    def _retried(self, db: Any, event: Event) -> Event:
        """A re-sent ``event_id``: the event as first recorded, or ``InvalidEvent`` if it differs."""
        stored = events.stored_event(db, event.event_id)
        if stored is None:  # pragma: no cover - the id was just found taken
            return event
        owner, first = stored
        if owner != self.shopper_id or not events.same_event(first, event):
            raise InvalidEvent(
                f"event_id {event.event_id!r} was already recorded with other content; "
                "send a new event_id for a new event"
            )
        return first

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
            sw.recommend_experiments.record_purchase(db, self.shopper_id, purchases)
            carts.empty(db, self.shopper_id)
            identity.touch(db, self.shopper_id, stamp)
        return purchases

    def search(
        self,
        query: str,
        *,
        limit: int = 20,
        filters: ItemFilter | Mapping[str, Any] | None = None,
    ) -> list[Item]:
        """Full-text search, recorded; with consent, the shopper's taste reorders the text
        matches (it never brings in an item the text did not find in the top ``limit``).

        ``filters``: see ``shelfwise.ItemFilter`` (price range, brand, category, tags, ids).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Green tea", "price": 3.0},
            ...                                 {"item_id": "teapot", "name": "Tea pot", "price": 20.0}])
            ...     [item.item_id for item in sw.start_session().search("tea", filters={"max_price": 5})]
            ['tea']
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the search query is empty")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
            raise InvalidInput(f"limit must be an integer between 1 and 200, not {limit!r}")
        wanted = ItemFilter.of(filters)
        fetch = limit if wanted == NO_FILTER else limit * 10
        scored = [
            (item, relevance)
            for item, relevance in self._sw.catalog.search_scored(query, limit=fetch)
            if wanted.allows(item)
        ][:limit]
        self.track("search", payload={"query": query[:200], "results": len(scored)})
        return rerank_search(
            self._sw.recommender.served(),
            self.context(),
            [item for item, _ in scored],
            [relevance for _, relevance in scored],
        )

    # -- recommendations (logic in shelfwise.recommend) -------------------------------------
    def context(self, *, now: int | None = None) -> Context:
        """What the surfaces may use about this shopper, read from the store now."""
        sw = self._sw
        info, consents, cart = shopper_state(sw.store, self.shopper_id)
        return build_context(
            sw.store,
            info,
            consents,
            cart,
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
        filters: ItemFilter | Mapping[str, Any] | None = None,
        record: bool = False,
    ) -> list[Recommendation]:
        """Recommendations on one surface, business filters applied, each with a reason.

        ``filters``: see ``shelfwise.ItemFilter``, e.g. ``{"max_price": 3, "brand": "Acme"}``.
        ``record=True`` records the list as shown (a ``recommendation_shown`` event) and gives
        each result a ``shown_id`` and ``position``; pass a result to ``clicked`` when the
        shopper takes it, so click-through per surface is measured (and synced as counts).
        A recommender experiment running on the surface (``sw.recommend_experiments``)
        serves the shopper's arm: each result then names its ``experiment`` and ``arm``.
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
        results = self._sw.recommend_experiments.serve(
            self.shopper_id,
            surface,
            self.context(now=now),
            limit=limit,
            item=item,
            category=category,
            filters=ItemFilter.of(filters),
        )
        if record and results:
            results = self._record_shown(surface, results)
        return results

    def _record_shown(self, surface: str, results: list[Recommendation]) -> list[Recommendation]:
        shown_id = uuid.uuid4().hex
        logged = results[:MAX_SHOWN_LOGGED]
        self.track(
            "recommendation_shown",
            payload={
                "surface": surface,
                "shown_id": shown_id,
                "items": [r.item.item_id for r in logged],
                "model": self._sw.model_version or "",
                **shown_tags(logged, self.shopper_id, now_ms()),
            },
        )
        return [replace(r, shown_id=shown_id, position=n) for n, r in enumerate(results, 1)]

    def clicked(self, recommendation: Recommendation) -> Event:
        """Record that the shopper took a shown recommendation (its surface and position).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     shopper = sw.start_session()
            ...     _ = shopper.view("tea")
            ...     [shown] = shopper.recommend("recently-viewed", record=True)
            ...     shopper.clicked(shown).payload["position"]
            1
        """
        if not isinstance(recommendation, Recommendation) or not recommendation.shown_id:
            raise InvalidInput("clicked() takes a recommendation returned with record=True")
        return self.track(
            "recommendation_clicked",
            recommendation.item.item_id,
            payload={
                "surface": recommendation.surface,
                "shown_id": recommendation.shown_id,
                "position": recommendation.position,
                # The arm the item came from: clicks count per experiment arm.
                **(
                    {"experiment": recommendation.experiment, "arm": recommendation.arm}
                    if recommendation.experiment
                    else {}
                ),
            },
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

    def price_order(
        self,
        order_id: str,
        *,
        cart: Sequence[Any] | None = None,
        codes: Sequence[str] = (),
        offers: Sequence[str] = (),
    ) -> OrderPrice:
        """Price an order (this cart if ``cart`` is None) with the best allowed offers.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 2.0}])
            ...     _ = sw.offers.define({"offer_id": "3for5", "title": "3 for 5.00",
            ...         "reward": {"type": "bundle_price", "quantity": 3, "price": 5}})
            ...     sw.start_session().price_order("till-1", cart=[("tea", 3)]).total
            5.0
        """
        self.info()
        return self._sw.offers.price_order(
            order_id, shopper_id=self.shopper_id, cart=cart, codes=codes, offers=offers
        )

    def redeem_order(
        self,
        order_id: str,
        *,
        cart: Sequence[Any] | None = None,
        codes: Sequence[str] = (),
        offers: Sequence[str] = (),
    ) -> Order:
        """Price and redeem an order, idempotent on ``order_id`` (``sw.offers.void_order``
        gives it back). Example: ``shopper.redeem_order("till-7-0042", codes=["7KQ2..."])``"""
        self.info()
        return self._sw.offers.redeem_order(
            order_id, shopper_id=self.shopper_id, cart=cart, codes=codes, offers=offers
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

    # -- watches: back in stock, price drops (logic in shelfwise.offers.watches) -------------
    def watch(self, item: str, *, kind: str = "back_in_stock") -> Watch:
        """Watch an item (id or GTIN) for ``kind`` (``back_in_stock`` or ``price_drop``): an
        offer with that trigger fires once per change. Needs the ``offers`` consent.

        Example: ``member.watch("tea", kind="price_drop").watch_price`` (see the module
        ``shelfwise.offers.watches`` for one that runs)
        """
        if not self.info().is_member:
            raise InvalidInput("only a loyalty member can watch an item (scan your card)")
        self.require_consent("offers")
        found = self._sw.catalog.lookup(item)
        return add_watch(self._sw.store, self.shopper_id, found, check_kind(kind), now_ms())

    def unwatch(self, item: str, *, kind: str | None = None) -> int:
        """Stop watching an item id (for ``kind``, or every kind); returns the watches removed.
        Example: ``member.unwatch("tea")``"""
        self.info()
        return remove_watch(
            self._sw.store, self.shopper_id, item, None if kind is None else check_kind(kind)
        )

    def watches(self) -> list[Watch]:
        """This member's watches, oldest first. Example: ``[w.item_id for w in member.watches()]``"""
        return watches_of(self._sw.store, self.shopper_id)

    # -- signing in and leaving ----------------------------------------------------------
    def sign_in(
        self,
        loyalty_id: str,
        *,
        consents: Mapping[str, bool] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Shopper:
        """A guest becomes the loyalty member: the session's scans, views and cart become the
        member's when the member consents to personalization (else they are dropped, as when a
        session ends). The guest session ends either way; use the returned member from now on.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     guest = sw.start_session()
            ...     _ = guest.add_to_cart("tea")
            ...     member = guest.sign_in("L-1", consents={"personalization": True})
            ...     [line.item_id for line in member.cart()], member.shopper_id
            (['tea'], 'L-1')
        """
        if self.info().is_member:
            raise InvalidInput("only a guest session signs in; this shopper is a member already")
        sw = self._sw
        member = sw.member(loyalty_id, consents=consents, attributes=attributes)
        keep = member.has_consent("personalization")
        with sw.store.write() as db:
            if keep:
                events.reassign(db, self.shopper_id, member.shopper_id)
                carts.merge_into(db, self.shopper_id, member.shopper_id)
                identity.touch(db, member.shopper_id, now_ms())
            sw.end_session(self.shopper_id)
        return member

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

    # -- a shared kiosk: the second factor and the visit (logic in shelfwise.auth, cart) ------
    def set_pin(self, pin: str) -> None:
        """Set this member's PIN (``WeakSecret`` if too easy); only its argon2id hash is kept.

        The member chooses it where they are already known (the phone app, the till); a
        kiosk that only saw the card must never set it.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     member = sw.member("L-1")
            ...     member.set_pin("7391")
            ...     member.has_pin()
            True
        """
        auth.set_member_pin(self._sw.store, self.shopper_id, pin)

    def has_pin(self) -> bool:
        """Whether this member has set a PIN."""
        return auth.has_member_pin(self._sw.store, self.shopper_id)

    def verify_pin(self, pin: str, *, device: str = "") -> None:
        """Check the member's PIN, throttled per card and per ``device`` (a kiosk id).

        Raises ``AuthLocked`` during a lockout (nothing is checked) and
        ``AuthenticationFailed`` (reason ``pin_wrong`` or ``no_pin``) otherwise.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     member = sw.member("L-1")
            ...     member.set_pin("7391")
            ...     member.verify_pin("7391", device="kiosk-1")
        """
        self.info()
        auth.verify_member_pin(self._sw.store, self.shopper_id, pin, device=device)

    def clear_cart(self) -> None:
        """Empty the cart without recording removals: a visit at a shared kiosk is over.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     member = sw.member("L-1")
            ...     _ = member.add_to_cart("tea")
            ...     member.clear_cart()
            ...     member.cart()
            []
        """
        self.info()
        with self._sw.store.write() as db:
            carts.empty(db, self.shopper_id)


__all__ = ["Shopper"]
