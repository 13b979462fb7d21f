"""The facade a kiosk backend holds: ``shelfwise.open(...)`` and the ``Shopper`` it hands out.

It delegates: each concept lives in its own module (identity, events, cart, catalog, recommend,
scan, offers, geo, sync) and the facade only strings a call together, with one transaction
where a change touches several of them.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:", store_id="store-12") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "milk", "name": "Milk", "price": 1.2}])
    ...     shopper = sw.start_session()
    ...     _ = shopper.add_to_cart("milk")
    ...     [line.item_id for line in shopper.cart()]
    ['milk']
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import cart as carts
from . import events, identity
from ._compat import warn_renamed
from ._errors import ConsentRequired, InvalidEvent, InvalidInput
from ._time import DAY_MS, now_ms
from .barcode.layout import InStoreLayout, in_store_layout, set_in_store_layout
from .cart import CartLine
from .catalog import Catalog, Item
from .events import Event, validate_event
from .geo.tracker import GeofenceEvent, Geofences
from .identity import ShopperInfo, check_purpose, consents_of, get_shopper, segment_of
from .model.runtime import LoadedModel, ModelHandle
from .offers.engine import (
    OfferContext,
    Offers,
    RankedOffer,
    Redemption,
    Reservation,
    release_holds_of,
)
from .recommend import Context, Recommendation, Recommender, build_context, rerank_search
from .scan import ScanCard, scan
from .store.connection import Store
from .sync.outbox import OutboxStatus, ReleaseInfo, outbox_status
from .sync.privacy import PrivacyPolicy
from .sync.upload import Credentials, SyncReport, summarise_store, sync_store

logger = logging.getLogger(__name__)

DEFAULT_IDLE_S = 120


class Shelfwise:
    """An open store file plus the served model bundle. Use ``shelfwise.open``."""

    def __init__(
        self,
        db_path: str | Path,
        *,
        bundle: str | Path | None = None,
        store_id: str = "",
        public_key: bytes | None = None,
        utc_offset_minutes: int = 0,
        threads: int | None = None,
        synchronous: str = "FULL",
    ) -> None:
        self.store = Store(db_path, synchronous=synchronous)
        self.store_id = store_id
        self.utc_offset_minutes = utc_offset_minutes
        self.catalog = Catalog(self.store)
        self.model = ModelHandle(public_key=public_key, threads=threads)
        self.recommender = Recommender(self.store, self.catalog, self.model)
        self.offers = Offers(self.store, self.catalog, store_id=store_id)
        self.geo = Geofences(self.store)
        # Anonymous sessions idle this long are forgotten when the next one starts (0: never).
        self.session_idle_s: float = DEFAULT_IDLE_S
        if bundle is not None:
            try:
                self.model.swap(bundle)
            except BaseException:
                self.store.close()
                raise

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store. Idempotent."""
        self.store.close()

    def __enter__(self) -> Shelfwise:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- model ----------------------------------------------------------------------------
    def load_bundle(self, path: str | Path) -> LoadedModel:
        """Hot-swap to the bundle at ``path``; on failure the old bundle keeps serving.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.load_bundle("/no/such/bundle")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            shelfwise.BundleVerificationError: /no/such/bundle is not a bundle: ...
        """
        return self.model.swap(path)

    @property
    def model_version(self) -> str | None:
        """``name@version`` of the served bundle, or None before one is loaded."""
        return self.model.version

    # -- identities (logic in shelfwise.identity) -----------------------------------------
    def start_session(self, *, store_id: str | None = None) -> Shopper:
        """A new anonymous kiosk session; ``Shopper.end()`` forgets it.

        Sessions left idle for ``session_idle_s`` seconds (default 120) are ended here too, so
        a kiosk forgets a shopper who walked away without pressing "done".

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.start_session().is_member
            False
        """
        if self.session_idle_s:
            self.end_idle_sessions(self.session_idle_s)
        with self.store.write() as db:
            shopper_id = identity.insert_session(db, store_id or self.store_id, now_ms())
        return Shopper(self, shopper_id)

    def member(
        self,
        loyalty_id: str,
        *,
        consents: Mapping[str, bool] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Shopper:
        """The loyalty member with this id, created on first sight; consents are recorded.

        The loyalty id is the member's key (never an editable field such as an email).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.member("L-1", consents={"personalization": True}).has_consent("personalization")
            True
        """
        loyalty_id = identity.check_loyalty_id(loyalty_id)
        for purpose in consents or {}:
            check_purpose(purpose)
        with self.store.write() as db:
            identity.upsert_member(db, loyalty_id, self.store_id, attributes or {}, now_ms())
            if consents:
                identity.write_consents(self.store, loyalty_id, consents)
        return Shopper(self, loyalty_id)

    def shopper(self, shopper_id: str) -> Shopper:
        """An existing shopper or session, or ``UnknownShopper``."""
        get_shopper(self.store, shopper_id)
        return Shopper(self, shopper_id)

    def end_idle_sessions(self, idle_s: float = DEFAULT_IDLE_S, *, now: int | None = None) -> int:
        """End (and forget) anonymous sessions idle for ``idle_s`` seconds; return how many.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.start_session()
            ...     sw.end_idle_sessions(0, now=2**50)
            1
        """
        cutoff = (now_ms() if now is None else now) - int(idle_s * 1000)
        return sum(
            self._end_anonymous(shopper_id, idle_before=cutoff)
            for shopper_id in identity.idle_sessions(self.store, cutoff)
        )

    def expire_idle_sessions(
        self, idle_s: float = DEFAULT_IDLE_S, *, now: int | None = None
    ) -> int:
        """Deprecated: ``end_idle_sessions``."""
        warn_renamed("Shelfwise.expire_idle_sessions", "Shelfwise.end_idle_sessions")
        return self.end_idle_sessions(idle_s, now=now)

    def _end_anonymous(self, shopper_id: str, *, idle_before: int | None = None) -> int:
        """Forget an anonymous session; with ``idle_before``, only if it is still idle."""
        with self.store.write() as db:
            # Checked again inside the transaction: the shopper may have just come back.
            cutoff = idle_before if idle_before is not None else 2**62
            if not identity.is_idle_session(db, shopper_id, cutoff):
                return 0
            self._forget_rows(db, shopper_id, keep_anonymous_events=True)
        return 1

    def _forget_rows(self, db: Any, shopper_id: str, *, keep_anonymous_events: bool) -> int:
        """Remove a shopper from every table in the caller's transaction; return rows removed.

        With ``keep_anonymous_events`` (an ended kiosk session) the events stay as store-level
        counts with no link to anyone; a member's erase deletes them.
        """
        release_holds_of(db, shopper_id)
        tables = identity.shopper_tables(self.store)
        if keep_anonymous_events:
            events.unlink_shopper(db, shopper_id)
            tables = [table for table in tables if table != "events"]
        return identity.delete_rows(db, tables, shopper_id)

    # -- privacy --------------------------------------------------------------------------
    def export_shopper(self, shopper_id: str) -> dict[str, Any]:
        """Everything held about a shopper, as JSON-ready data (for a data-access request).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.member("L-1")
            ...     sw.export_shopper("L-1")["kind"]
            'member'
        """
        return identity.export_rows(self.store, shopper_id)

    def shopper_tables(self) -> list[str]:
        """Every table keyed by ``shopper_id`` (other modules' tables included)."""
        return identity.shopper_tables(self.store)

    def forget_shopper(self, shopper_id: str) -> int:
        """Delete a shopper and every row about them in one transaction; return rows removed.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.member("L-1", consents={"personalization": True})
            ...     sw.forget_shopper("L-1") >= 1
            True
        """
        get_shopper(self.store, shopper_id)
        with self.store.write() as db:
            removed = self._forget_rows(db, shopper_id, keep_anonymous_events=False)
        logger.info("erased a shopper (%d rows)", removed)
        return removed

    def erase_shopper(self, shopper_id: str) -> int:
        """Deprecated: ``forget_shopper``."""
        warn_renamed("Shelfwise.erase_shopper", "Shelfwise.forget_shopper")
        return self.forget_shopper(shopper_id)

    def forget_events(self, *, older_than_days: float, now: int | None = None) -> int:
        """Retention: delete raw events older than the given age; return how many.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.forget_events(older_than_days=90)
            0
        """
        if (
            isinstance(older_than_days, bool)
            or not isinstance(older_than_days, int | float)
            or not 0 < older_than_days < 100_000
        ):
            raise InvalidInput("older_than_days must be a positive number of days")
        cutoff = (now_ms() if now is None else now) - int(older_than_days * DAY_MS)
        with self.store.write() as db:
            return events.delete_before(db, cutoff)

    def purge_events(self, *, older_than_days: float, now: int | None = None) -> int:
        """Deprecated: ``forget_events``."""
        warn_renamed("Shelfwise.purge_events", "Shelfwise.forget_events")
        return self.forget_events(older_than_days=older_than_days, now=now)

    # -- stateless recommendations (operators, CLI, app backends that keep their own history)
    def recommend(
        self,
        *,
        history: Sequence[str] = (),
        surface: str = "for-you",
        limit: int = 10,
        item: str | None = None,
        category: str | None = None,
        cart: Sequence[str] = (),
        k: int | None = None,
    ) -> list[Recommendation]:
        """Recommendations for a given history of item ids (oldest first), no shopper needed.

        ``k`` is the deprecated name of ``limit``.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.recommend(history=[], surface="trending")
            []
        """
        if k is not None:
            warn_renamed("recommend(k=...)", "recommend(limit=...)")
            limit = k
        known = self.catalog.get_many(list(history))
        # Unknown ids are an error (a typo or the wrong store), GTINs are resolved to ids.
        resolved = [i if i in known else self.catalog.lookup(i).item_id for i in history]
        stamp = now_ms()
        context = Context(
            history=[(i, "view", stamp) for i in resolved],
            cart=frozenset(cart),
            store_id=self.store_id,
            now_ms=stamp,
            utc_offset_minutes=self.utc_offset_minutes,
        )
        return self.recommender.recommend(
            surface, context, limit=limit, item=item, category=category
        )

    # -- the store's in-store barcode layout (logic in shelfwise.barcode.layout) ------------
    def barcode_layout(self) -> InStoreLayout:
        """The in-store (prefix 20-29) barcode layout every scan of this store uses."""
        return in_store_layout(self.store)

    def set_barcode_layout(self, layout: InStoreLayout | Mapping[str, Any] | None) -> InStoreLayout:
        """Set the store's in-store barcode layout (kept in the store file); None: the default.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.set_barcode_layout({"weight_prefixes": ["21"], "price_prefixes": ["22"]})
            ...     sw.barcode_layout().price_prefixes
            ('22',)
        """
        return set_in_store_layout(self.store, layout)

    # -- geofences without a new fix (logic in shelfwise.geo) -------------------------------
    def tick_geofences(self, *, now: int | None = None) -> list[tuple[str, GeofenceEvent]]:
        """Dwell events that fell due without a new fix (``Geofences.tick``), each with the
        offers it triggered: (shopper id, event) pairs to push. Call every 30-60 s.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.tick_geofences()
            []
        """
        return [(who, Shopper(self, who)._with_offers(e)) for who, e in self.geo.tick(now)]

    # -- sync upstream (logic in shelfwise.sync.upload / _outbox) ---------------------------------
    def summarise(
        self,
        *,
        device_id: str | None = None,
        k: int | None = None,
        policy: PrivacyPolicy | None = None,
        include_open_hour: bool = False,
    ) -> list[ReleaseInfo]:
        """Turn unsummarised events into private summaries queued in the outbox.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.summarise(device_id="kiosk-1")
            []
        """
        return summarise_store(
            self.store,
            self.model,
            device_id=device_id,
            k=k,
            policy=policy,
            include_open_hour=include_open_hour,
        )

    def sync(
        self,
        url: str,
        credentials: Credentials,
        *,
        summarise_first: bool = True,
        k: int | None = None,
        policy: PrivacyPolicy | None = None,
        fleet: bool = True,
        bundles_dir: str | Path | None = None,
        public_key: bytes | None = None,
        documents: Sequence[str] = ("catalog", "offers"),
        deadline_s: float | None = None,
        timeout_s: float = 30.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncReport:
        """Summarise, upload the outbox, then pull what comes down; never raises because
        upstream is down or misbehaving: see ``SyncReport.error`` and ``sync_status()``.

        - ``summarise_first``, ``k``, ``policy``: summarise new events first, with this
          privacy threshold or policy (see ``summarise``);
        - ``fleet``: pull the region's trending table;
        - ``documents``: the signed documents to pull (``"catalog"``, ``"offers"``), verified
          with ``public_key`` (default: the key pinned at ``shelfwise.open``);
        - ``bundles_dir``: also pull a signed bundle and install it there;
        - ``deadline_s``: stop retrying after this many seconds (None: until sent);
          ``timeout_s``: per request; ``progress(done, total)``: called per batch.

        Example:
            >>> import shelfwise
            >>> creds = shelfwise.Credentials("kiosk-1", b"0" * 32)
            >>> with shelfwise.open(":memory:") as sw:
            ...     report = sw.sync("http://127.0.0.1:9", creds, k=5, deadline_s=0)
            >>> report.remaining, report.error.split(":")[0]  # nobody listens on port 9
            (0, 'fleet tables')
        """
        return sync_store(
            self.store,
            self.model,
            url,
            credentials,
            summarise_first=summarise_first,
            k=k,
            policy=policy,
            fleet=fleet,
            bundles_dir=bundles_dir,
            public_key=public_key or self.model.public_key,
            deadline_s=deadline_s,
            progress=progress,
            timeout_s=timeout_s,
            documents=documents,
            catalog=self.catalog,
            offers=self.offers,
        )

    def sync_status(self) -> OutboxStatus:
        """Queued releases and bytes, last success, last error; reads only the local store.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.sync_status().queued
            0
        """
        return outbox_status(self.store)


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
        return [self._with_offers(event) for event in events]

    def _with_offers(self, event: GeofenceEvent) -> GeofenceEvent:
        if event.kind == "exit" or not self._sw.offers.all():
            return event
        ctx = self._sw.offers.context(
            self.shopper_id,
            channel="app_push",
            geofence=(event.fence_id, event.kind),
            now=event.ts_ms,
        )
        ranked = self._sw.offers.eligible(ctx, limit=1, record=True)
        return replace(event, offers=tuple(ranked))

    # -- leaving -------------------------------------------------------------------------
    def end(self) -> None:
        """The shopper leaves. An anonymous session is forgotten; a member's history stays."""
        if self.info().is_member:
            return
        self._sw._end_anonymous(self.shopper_id)

    def forget(self) -> int:
        """Erase everything held about this shopper now ("forget me"); return rows removed."""
        return self._sw.forget_shopper(self.shopper_id)

    def export(self) -> dict[str, Any]:
        """Everything held about this shopper as JSON-ready data."""
        return self._sw.export_shopper(self.shopper_id)


def open(
    db_path: str | Path,
    *,
    bundle: str | Path | None = None,
    store_id: str = "",
    public_key: bytes | None = None,
    utc_offset_minutes: int = 0,
    threads: int | None = None,
    synchronous: str = "FULL",
) -> Shelfwise:
    """Open a store file (created and migrated if new) and, optionally, a model bundle.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:", store_id="store-12") as sw:
        ...     sw.model_version is None
        True
    """
    return Shelfwise(
        db_path,
        bundle=bundle,
        store_id=store_id,
        public_key=public_key,
        utc_offset_minutes=utc_offset_minutes,
        threads=threads,
        synchronous=synchronous,
    )


__all__ = ["Shelfwise", "Shopper", "open"]
