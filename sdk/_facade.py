"""The facade a kiosk backend holds: ``shelfwise.open(...)`` and the ``Shopper`` it hands out.

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

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ._errors import ConsentRequired, InvalidEvent, InvalidInput
from ._time import now_ms
from .barcode.gtin import InStoreLayout
from .catalog import Catalog, Item
from .events import INTEREST_EVENTS, Event, event_record, validate_event
from .geo.tracker import GeofenceEvent, Geofences
from .identity import (
    DAY_MS,
    ShopperInfo,
    check_purpose,
    consents_of,
    get_shopper,
    new_session_id,
    segment_of,
    write_consents,
)
from .model.runtime import LoadedModel, ModelHandle
from .offers.engine import (
    OfferContext,
    Offers,
    RankedOffer,
    Redemption,
    Reservation,
    release_holds_of,
)
from .recommend.recommender import Context, Recommendation, Recommender, rerank_search
from .scan import ScanCard, in_store_layout, scan, set_in_store_layout
from .store.connection import Store
from .sync.outbox import OutboxStatus, ReleaseInfo, outbox_status
from .sync.privacy import PrivacyPolicy
from .sync.upload import Credentials, SyncReport, summarise_store, sync_store

logger = logging.getLogger(__name__)

HISTORY_EVENTS = 200  # the most recent interest events a request reads
DEFAULT_IDLE_S = 120


@dataclass(frozen=True)
class CartLine:
    """One line of a shopper's cart."""

    item_id: str
    quantity: int
    added_ms: int


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

    # -- identities -----------------------------------------------------------------------
    def start_session(self, *, store_id: str | None = None) -> Shopper:
        """A new anonymous kiosk session; ``Shopper.end()`` forgets it.

        Sessions left idle for ``session_idle_s`` seconds (default 120) are ended here too, so
        a kiosk forgets a shopper who walked away without pressing "done".
        """
        if self.session_idle_s:
            self.expire_idle_sessions(self.session_idle_s)
        shopper_id = new_session_id()
        stamp = now_ms()
        with self.store.write() as db:
            db.table("shoppers").insert(
                {
                    "shopper_id": shopper_id,
                    "kind": "anonymous",
                    "store_id": store_id or self.store_id,
                    "created_ms": stamp,
                    "last_seen_ms": stamp,
                    "attributes": "{}",
                }
            )
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
        """
        loyalty_id = str(loyalty_id).strip()
        if not loyalty_id or len(loyalty_id) > 64:
            raise InvalidInput("a loyalty id must be 1 to 64 characters")
        for purpose in consents or {}:
            check_purpose(purpose)
        stamp = now_ms()
        with self.store.write() as db:
            existing = list(
                db.query("SELECT attributes FROM shoppers WHERE shopper_id = ?", [loyalty_id])
            )
            merged = {
                **(json.loads(existing[0]["attributes"]) if existing else {}),
                **(attributes or {}),
            }
            if existing:
                db.execute(
                    "UPDATE shoppers SET last_seen_ms = ?, attributes = ? WHERE shopper_id = ?",
                    [stamp, json.dumps(merged), loyalty_id],
                )
            else:
                db.table("shoppers").insert(
                    {
                        "shopper_id": loyalty_id,
                        "kind": "member",
                        "store_id": self.store_id,
                        "created_ms": stamp,
                        "last_seen_ms": stamp,
                        "attributes": json.dumps(merged),
                    }
                )
            if consents:
                write_consents(self.store, loyalty_id, consents)
        return Shopper(self, loyalty_id)

    def shopper(self, shopper_id: str) -> Shopper:
        """An existing shopper or session, or ``UnknownShopper``."""
        get_shopper(self.store, shopper_id)
        return Shopper(self, shopper_id)

    def expire_idle_sessions(
        self, idle_s: float = DEFAULT_IDLE_S, *, now: int | None = None
    ) -> int:
        """End (and forget) anonymous sessions idle for ``idle_s`` seconds; return how many."""
        cutoff = (now_ms() if now is None else now) - int(idle_s * 1000)
        idle = self.store.query(
            "SELECT shopper_id FROM shoppers WHERE kind = 'anonymous' AND last_seen_ms < ?",
            [cutoff],
        )
        ended = 0
        for row in idle:
            ended += self._end_anonymous(row["shopper_id"], idle_before=cutoff)
        return ended

    def _end_anonymous(self, shopper_id: str, *, idle_before: int | None = None) -> int:
        """Forget an anonymous session; with ``idle_before``, only if it is still idle."""
        with self.store.write() as db:
            # Checked again inside the transaction: the shopper may have just come back.
            still = list(
                db.query(
                    "SELECT 1 FROM shoppers WHERE shopper_id = ? AND kind = 'anonymous' "
                    "AND last_seen_ms < ?",
                    [shopper_id, idle_before if idle_before is not None else 2**62],
                )
            )
            if not still:
                return 0
            self._forget_rows(db, shopper_id, keep_anonymous_events=True)
        return 1

    def _forget_rows(self, db: Any, shopper_id: str, *, keep_anonymous_events: bool) -> int:
        """Remove a shopper from every table in the caller's transaction; return rows removed.

        With ``keep_anonymous_events`` (an ended kiosk session) the events stay as store-level
        counts with no link to anyone; a member's erase deletes them.
        """
        release_holds_of(db, shopper_id)
        removed = 0
        for table in self.shopper_tables():
            if table == "events" and keep_anonymous_events:
                db.execute("UPDATE events SET shopper_id = NULL WHERE shopper_id = ?", [shopper_id])
                continue
            removed += db.execute(
                f"DELETE FROM [{table}] WHERE shopper_id = ?", [shopper_id]
            ).rowcount
        removed += db.execute("DELETE FROM shoppers WHERE shopper_id = ?", [shopper_id]).rowcount
        return removed

    # -- privacy --------------------------------------------------------------------------
    def export_shopper(self, shopper_id: str) -> dict[str, Any]:
        """Everything held about a shopper, as JSON-ready data (for a data-access request)."""
        info = get_shopper(self.store, shopper_id)
        tables: dict[str, list[dict[str, Any]]] = {}
        for table in self.shopper_tables():
            tables[table] = self.store.query(
                f"SELECT * FROM [{table}] WHERE shopper_id = ? ORDER BY rowid", [shopper_id]
            )
        return {
            "shopper_id": info.shopper_id,
            "kind": info.kind,
            "created_ms": info.created_ms,
            "last_seen_ms": info.last_seen_ms,
            "attributes": dict(info.attributes),
            "consents": consents_of(self.store, info),
            "tables": tables,
        }

    def shopper_tables(self) -> list[str]:
        """Every table keyed by ``shopper_id`` (other modules' tables included)."""
        names = []
        for table in self.store.read().tables:
            if table.name != "shoppers" and "shopper_id" in table.columns_dict:
                names.append(table.name)
        return sorted(names)

    def erase_shopper(self, shopper_id: str) -> int:
        """Delete a shopper and every row about them in one transaction; return rows removed.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.member("L-1", consents={"personalization": True})
            ...     sw.erase_shopper("L-1") >= 1
            True
        """
        get_shopper(self.store, shopper_id)
        with self.store.write() as db:
            removed = self._forget_rows(db, shopper_id, keep_anonymous_events=False)
        logger.info("erased a shopper (%d rows)", removed)
        return removed

    def purge_events(self, *, older_than_days: float, now: int | None = None) -> int:
        """Retention: delete raw events older than the given age; return how many."""
        if not isinstance(older_than_days, int | float) or not 0 < older_than_days < 100_000:
            raise InvalidInput("older_than_days must be a positive number of days")
        cutoff = (now_ms() if now is None else now) - int(older_than_days * DAY_MS)
        with self.store.write() as db:
            return db.execute("DELETE FROM events WHERE ts_ms < ?", [cutoff]).rowcount

    # -- stateless recommendations (operators, CLI, app backends that keep their own history)
    def recommend(
        self,
        *,
        history: Sequence[str] = (),
        surface: str = "for-you",
        k: int = 10,
        item: str | None = None,
        category: str | None = None,
        cart: Sequence[str] = (),
    ) -> list[Recommendation]:
        """Recommendations for a given history of item ids (oldest first), no shopper needed.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.recommend(history=[], surface="trending")
            []
        """
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
        return self.recommender.recommend(surface, context, k=k, item=item, category=category)

    # -- the store's in-store barcode layout (logic in shelfwise.scan) ---------------------
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

    # -- geofences without a new fix (logic in shelfwise.geo.tracker) -----------------------------
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

    def sync(self, url: str, credentials: Credentials, **options: Any) -> SyncReport:
        """Summarise, upload the outbox and pull fleet tables (and bundles); never raises
        because upstream is down: see ``SyncReport.error`` and ``sync_status()``.

        Example:
            >>> import shelfwise
            >>> creds = shelfwise.Credentials("kiosk-1", b"0" * 32)
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.sync("http://127.0.0.1:9", creds, deadline_s=0).remaining
            0
        """
        defaults = {
            "catalog": self.catalog,
            "offers": self.offers,
            "public_key": self.model.public_key,
        }
        return sync_store(self.store, self.model, url, credentials, **{**defaults, **options})

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

    # -- state ---------------------------------------------------------------------------
    def info(self) -> ShopperInfo:
        """The shopper row (``UnknownShopper`` once a session ended)."""
        return get_shopper(self._sw.store, self.shopper_id)

    @property
    def is_member(self) -> bool:
        return self.info().is_member

    def consents(self) -> dict[str, bool]:
        """Every consent purpose with this shopper's current answer."""
        return consents_of(self._sw.store, self.info())

    def has_consent(self, purpose: str) -> bool:
        return self.consents()[check_purpose(purpose)]

    def require_consent(self, purpose: str) -> None:
        """Raise ``ConsentRequired`` unless the shopper consented to ``purpose``."""
        if not self.has_consent(purpose):
            raise ConsentRequired(f"the shopper has not consented to {purpose}", purpose=purpose)

    def set_consent(self, purpose: str, granted: bool) -> None:
        """Give or withdraw consent for one purpose (stored with a timestamp)."""
        self.info()
        write_consents(self._sw.store, self.shopper_id, {purpose: granted})

    def segment(self, *, now: int | None = None) -> str:
        """new / returning / loyal / lapsed (see ``shelfwise.identity.segment_of``)."""
        return segment_of(self._sw.store, self.info(), now)

    # -- events --------------------------------------------------------------------------
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
        raw: dict[str, Any] = {"type": event_type, **fields}
        if "store_id" not in fields:
            raw["store_id"] = self._sw.store_id
        if item is not None:
            raw["item_id"] = self._sw.catalog.lookup(item).item_id
        event = validate_event(raw)
        if event.item_id is not None and item is None:
            self._sw.catalog.get(event.item_id)
        with self._sw.store.write() as db:
            self.info()
            inserted = db.execute(
                "INSERT OR IGNORE INTO events (event_id, shopper_id, type, item_id, quantity, "
                "value, store_id, ts_ms, payload) VALUES (:event_id, :shopper_id, :type, "
                ":item_id, :quantity, :value, :store_id, :ts_ms, :payload)",
                event_record(event, self.shopper_id),
            ).rowcount
            if inserted:
                self._apply_to_cart(db, event)
                if event.type == "purchase":
                    self._sw.offers.record_purchase(db, self.shopper_id, [event])
            db.execute(
                "UPDATE shoppers SET last_seen_ms = max(last_seen_ms, ?) WHERE shopper_id = ?",
                [now_ms(), self.shopper_id],
            )
        return event

    def _apply_to_cart(self, db: Any, event: Event) -> None:
        if event.type == "cart_add":
            db.execute(
                "INSERT INTO carts (shopper_id, item_id, quantity, added_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(shopper_id, item_id) DO UPDATE SET quantity = quantity + excluded.quantity",
                [self.shopper_id, event.item_id, event.quantity, event.ts_ms],
            )
        elif event.type == "cart_remove":
            db.execute(
                "UPDATE carts SET quantity = quantity - ? WHERE shopper_id = ? AND item_id = ? "
                "AND quantity > ?",
                [event.quantity, self.shopper_id, event.item_id, event.quantity],
            )
            db.execute(
                "DELETE FROM carts WHERE shopper_id = ? AND item_id = ? AND quantity <= ?",
                [self.shopper_id, event.item_id, event.quantity],
            )

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
        rows = self._sw.store.query(
            "SELECT item_id, quantity, added_ms FROM carts WHERE shopper_id = ? ORDER BY rowid",
            [self.shopper_id],
        )
        return [CartLine(**row) for row in rows]

    def checkout(self) -> list[Event]:
        """Record a purchase of every cart line and empty the cart, in one transaction."""
        with self._sw.store.write() as db:
            # The cart is read inside the transaction: two concurrent checkouts of the same
            # cart must not both record the purchase.
            self.info()
            lines = self.cart()
            if not lines:
                raise InvalidEvent("the cart is empty: nothing to check out")
            items = self._sw.catalog.get_many([line.item_id for line in lines])
            stamp = now_ms()
            events = [
                validate_event(
                    {
                        "type": "purchase",
                        "item_id": line.item_id,
                        "quantity": line.quantity,
                        "value": (items[line.item_id].price or 0.0) * line.quantity
                        if line.item_id in items
                        else None,
                        "store_id": self._sw.store_id,
                        "ts_ms": stamp,
                    }
                )
                for line in lines
            ]
            db.table("events").insert_all([event_record(e, self.shopper_id) for e in events])
            # Experiment conversions commit with the purchase (shelfwise.offers.engine).
            self._sw.offers.record_purchase(db, self.shopper_id, events)
            db.execute("DELETE FROM carts WHERE shopper_id = ?", [self.shopper_id])
            db.execute(
                "UPDATE shoppers SET last_seen_ms = max(last_seen_ms, ?) WHERE shopper_id = ?",
                [stamp, self.shopper_id],
            )
        return events

    def search(self, query: str, *, limit: int = 20) -> list[Item]:
        """Full-text search, re-ranked by this shopper's taste when consented; recorded."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the search query is empty")
        # Over-fetch so a result the shopper's taste favours can move up from just below.
        scored = self._sw.catalog.search_scored(query, limit=limit * 2)
        self.track("search", payload={"query": query[:200], "results": min(len(scored), limit)})
        ranked = rerank_search(
            self._sw.recommender,
            self.context(),
            [item for item, _ in scored],
            [relevance for _, relevance in scored],
        )
        return ranked[:limit]

    # -- recommendations -----------------------------------------------------------------
    def context(self, *, now: int | None = None) -> Context:
        """What the surfaces may use about this shopper, read from the store now."""
        info = self.info()
        consents = consents_of(self._sw.store, info)
        personal = consents.get("personalization", False)
        store = self._sw.store
        history: list[tuple[str, str, int]] = []
        purchases: list[tuple[str, int]] = []
        if personal:
            marks = ",".join("?" * len(INTEREST_EVENTS))
            # Plain tuples (Store.rows): on every recommendation, dicts per row cost time.
            rows = store.rows(
                f"SELECT item_id, type, ts_ms FROM events WHERE shopper_id = ? AND type IN ({marks}) "
                "ORDER BY ts_ms DESC, seq DESC LIMIT ?",
                [self.shopper_id, *INTEREST_EVENTS, HISTORY_EVENTS],
            )
            history = [(r[0], r[1], r[2]) for r in reversed(rows)]
            purchases = [
                (r[0], r[1])
                for r in store.rows(
                    "SELECT item_id, ts_ms FROM events WHERE shopper_id = ? AND type = 'purchase'",
                    [self.shopper_id],
                )
            ]
        cart = frozenset(line.item_id for line in self.cart())
        # The purchases just read give the segment its purchase days (one query fewer).
        purchase_ms = [ts for _, ts in purchases] if personal else None
        return Context(
            history=history,
            cart=cart,
            purchases=purchases,
            consents=frozenset(p for p, ok in consents.items() if ok),
            age_verified=bool(info.attributes.get("age_verified")) and info.is_member,
            segment=segment_of(store, info, now, purchase_ms=purchase_ms),
            store_id=info.store_id or self._sw.store_id,
            now_ms=now_ms() if now is None else now,
            utc_offset_minutes=self._sw.utc_offset_minutes,
        )

    def recommend(
        self,
        surface: str = "for-you",
        *,
        k: int = 10,
        item: str | None = None,
        category: str | None = None,
        now: int | None = None,
    ) -> list[Recommendation]:
        """Recommendations on one surface, business filters applied, each with a reason.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.start_session().recommend("recently-viewed")
            []
        """
        return self._sw.recommender.recommend(
            surface, self.context(now=now), k=k, item=item, category=category
        )

    # -- scan, offers, location (logic in _scan, _offers, _geo) ------------------------
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
        return scan(self, code, symbology=symbology, channel=channel)

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
        return self._sw.erase_shopper(self.shopper_id)

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


__all__ = ["CartLine", "Shelfwise", "Shopper", "open"]
