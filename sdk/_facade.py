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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from . import events, identity
from ._compat import warn_renamed
from ._errors import InvalidInput, UnknownShopper
from ._shopper import Shopper
from .auth import AuditEntry, Backoff, Throttle, audit_log, record_audit
from .barcode.layout import InStoreLayout, in_store_layout, set_in_store_layout
from .catalog import Catalog
from .clock import DAY_MS, now_ms
from .geo import GeofenceEvent, Geofences
from .identity import check_purpose, get_shopper
from .model.runtime import LoadedModel, ModelHandle
from .notifications import Notifications
from .offers import Offers
from .offers.orders import SALE_TABLES, unlink_sales
from .offers.redemption import release_holds_of
from .profile.local import record_tombstone
from .profile.sealing import blind_member_id
from .recommend import Context, Recommendation, Recommender
from .recommend.experiment_report import ExperimentReport, experiment_report
from .recommend.experiments import RecommendExperiments
from .recommend.filters import ItemFilter
from .reports import DayReport, day_report
from .store.connection import Store
from .sync.fleet import Fleet
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
        chain_secret: bytes | None = None,
    ) -> None:
        self.store = Store(db_path, synchronous=synchronous)
        # The retailer's fleet secret: blinds loyalty ids for the collector. Held in memory only.
        self._chain_secret = chain_secret
        self.store_id = store_id
        self.utc_offset_minutes = utc_offset_minutes
        self.catalog = Catalog(self.store)
        self.model = ModelHandle(public_key=public_key, threads=threads)
        self.recommender = Recommender(self.store, self.catalog, self.model)
        # A/B splits and interleaving of two recommender strategies (docs/runtime.md).
        self.recommend_experiments = RecommendExperiments(self.store, self.recommender)
        self.offers = Offers(self.store, self.catalog, store_id=store_id)
        self.geo = Geofences(self.store)
        # Fired triggers queued for the shopper's app (shelfwise.notifications).
        self.notifications = Notifications(self.store)
        # Members across the fleet: erasures and sealed profiles through the collector.
        self.fleet = Fleet(self.store, chain_secret)
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

    def end_session(self, shopper_id: str) -> bool:
        """End an anonymous session now: it is forgotten (a member is not affected).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.end_session(sw.start_session().shopper_id)
            True
        """
        return bool(self._end_anonymous(shopper_id))

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

        With ``keep_anonymous_events`` (an ended kiosk session) the events, orders and redemptions
        stay as store-level counts with no link to anyone, and so do the one-time codes those
        sales used (a till's void gives them back); the guest's unused codes go with the rest.
        A member's erase deletes all of it.
        """
        release_holds_of(db, shopper_id)
        tables = identity.shopper_tables(self.store)
        if keep_anonymous_events:
            events.unlink_shopper(db, shopper_id)
            unlink_sales(db, shopper_id)
            kept = {"events", *SALE_TABLES}
            tables = [table for table in tables if table not in kept]
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
        info = get_shopper(self.store, shopper_id)
        with self.store.write() as db:
            removed = self._forget_rows(db, shopper_id, keep_anonymous_events=False)
            if info.is_member and self._chain_secret is not None:
                # Every other device erases the member on its next sync (docs/fleet.md).
                record_tombstone(db, self.blinded_id(shopper_id), now_ms(), uploaded=False)
        logger.info("erased a shopper (%d rows)", removed)
        return removed

    # -- the fleet (logic in shelfwise.profile) ------------------------------------------------
    def blinded_id(self, loyalty_id: str) -> str:
        """The id the collector knows a member by (a keyed hash; needs ``chain_secret``).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:", chain_secret=b"s" * 32) as sw:
            ...     len(sw.blinded_id("2990001234566"))
            64
        """
        if self._chain_secret is None:
            raise InvalidInput("open the store with chain_secret=... to take part in a fleet")
        return blind_member_id(self._chain_secret, loyalty_id)

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
        filters: ItemFilter | Mapping[str, Any] | None = None,
    ) -> list[Recommendation]:
        """Recommendations for a given history of item ids (oldest first), no shopper needed.

        ``filters``: see ``shelfwise.ItemFilter``. ``k`` is the deprecated name of ``limit``.

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
            surface,
            context,
            limit=limit,
            item=item,
            category=category,
            filters=ItemFilter.of(filters),
        )

    def recommend_experiment_report(self, experiment_id: str) -> ExperimentReport:
        """Impressions, clicks, CTR, conversions and conversion rate per arm of a recommender
        experiment, the lift, and (interleaved) wins/losses/ties with a sign-test p-value.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.recommend_experiment_report("nothing-yet")
            Traceback (most recent call last):
            ...
            shelfwise.InvalidInput: no recommender experiment 'nothing-yet'
        """
        return experiment_report(self.store, self.recommend_experiments.get(experiment_id))

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
        return [(who, self.attach_geofence_offers(who, e)) for who, e in self.geo.tick(now)]

    def attach_geofence_offers(self, shopper_id: str, event: GeofenceEvent) -> GeofenceEvent:
        """The event with the best offer it triggers for the shopper (recorded as shown)."""
        if event.kind == "exit" or not self.offers.all():
            return event
        ctx = self.offers.context(
            shopper_id, channel="app_push", geofence=(event.fence_id, event.kind), now=event.ts_ms
        )
        return replace(event, offers=tuple(self.offers.eligible(ctx, limit=1, record=True)))

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
        members: bool = True,
    ) -> SyncReport:
        """Summarise, upload the outbox, then pull what comes down; never raises because
        upstream is down or misbehaving: see ``SyncReport.error`` and ``sync_status()``.

        - ``summarise_first``, ``k``, ``policy``: summarise new events first, with this
          privacy threshold or policy (see ``summarise``);
        - ``fleet``: pull the region's trending table;
        - ``members``: with a chain secret, exchange erasures and members' sealed profiles
          first (``sw.fleet.exchange``: erasures up, the erasure feed down, copies up);
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
            members=self.fleet if members else None,
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

    # -- reports and bulk history (logic in shelfwise.reports, shelfwise.events) -------------
    def day_report(
        self, *, timezone: str = "UTC", day: date | None = None, now: int | None = None
    ) -> DayReport:
        """Today's (or ``day``'s) scans by local hour, offer funnel and refusals by reason.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     report = sw.day_report(timezone="Europe/Rome")
            ...     len(report.scans_by_hour), report.count("purchase")
            (24, 0)
        """
        return day_report(self.store, timezone=timezone, day=day, now=now)

    def import_history(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Load members' past events (a loyalty system's baskets) in one transaction.

        Each row is an event as ``Shopper.track`` takes it (with its ``ts_ms`` and a stable
        ``event_id``, so importing twice adds nothing) plus ``shopper_id``, a loyalty id: a
        member not yet known is created as first seen at their earliest event. Every row is
        validated before anything is written. Returns how many events were new.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     row = {"shopper_id": "L-1", "type": "purchase", "item_id": "tea",
            ...            "ts_ms": 1_700_000_000_000, "event_id": "till-1"}
            ...     sw.import_history([row]), sw.import_history([row])
            (1, 0)
        """
        loaded = []
        for row in rows:
            if not isinstance(row, Mapping):
                raise InvalidInput("each history row must be a mapping with a shopper_id")
            fields = {"store_id": self.store_id, **row}
            member = identity.check_loyalty_id(fields.pop("shopper_id", ""))
            loaded.append((member, events.validate_event(fields)))
        items = {event.item_id for _, event in loaded if event.item_id is not None}
        missing = items - set(self.catalog.get_many(sorted(items)))
        if missing:
            raise InvalidInput(f"history names items not in the catalog: {sorted(missing)[:10]}")
        first_seen: dict[str, int] = {}
        for member, event in loaded:
            first_seen[member] = min(first_seen.get(member, event.ts_ms), event.ts_ms)
        new_members = {m: stamp for m, stamp in first_seen.items() if not self._known(m)}
        with self.store.write() as db:
            for member, stamp in new_members.items():
                identity.upsert_member(db, member, self.store_id, {}, stamp)
            return sum(events.insert_event(db, member, event) for member, event in loaded)

    def _known(self, shopper_id: str) -> bool:
        try:
            get_shopper(self.store, shopper_id)
        except UnknownShopper:
            return False
        return True

    # -- lockouts and the audit trail (logic in shelfwise.auth) -------------------------------
    def throttle(self, scope: str, backoff: Backoff | None = None) -> Throttle:
        """Failures per key of ``scope`` kept in this store (a lockout that survives restarts).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     staff = sw.throttle("staff_pin", shelfwise.Backoff(free=3))
            ...     staff.attempt("kiosk-1")
            ...     staff.state("kiosk-1").failures
            1
        """
        return Throttle(self.store, scope, backoff)

    def record_audit(
        self, *, actor: str, action: str, device: str = "", target: str = "", detail: str = ""
    ) -> AuditEntry:
        """Append who did what, where, to the audit log kept in this store.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.record_audit(actor="staff", device="kiosk-1", action="sync").device
            'kiosk-1'
        """
        return record_audit(
            self.store, actor=actor, action=action, device=device, target=target, detail=detail
        )

    def audit_log(self, *, limit: int = 50, device: str | None = None) -> list[AuditEntry]:
        """The latest audit entries, newest first.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.audit_log()
            []
        """
        return audit_log(self.store, limit=limit, device=device)


def open(
    db_path: str | Path,
    *,
    bundle: str | Path | None = None,
    store_id: str = "",
    public_key: bytes | None = None,
    utc_offset_minutes: int = 0,
    threads: int | None = None,
    synchronous: str = "FULL",
    chain_secret: bytes | None = None,
) -> Shelfwise:
    """Open a store file (created and migrated if new) and, optionally, a model bundle.

    ``chain_secret`` (the retailer's fleet secret, from the device's provisioning) lets members'
    sealed profiles and erasures travel between devices; without it the device is an island.

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
        chain_secret=chain_secret,
    )


__all__ = ["Shelfwise", "Shopper", "open"]
