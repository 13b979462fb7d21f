"""The offers engine: one store's offers, from definition to redemption, over the store.

``Offers`` (``sw.offers``) is what a kiosk or app backend holds. On the definitions and
settings of ``book.OfferBook`` it builds the rules' view of a shopper (``context``); ranks the
eligible offers for showing and records what was shown (``eligible``); says why an offer does
or does not apply (``explain``); runs redemption (``reserve`` -> ``commit`` / ``release``,
``redeem`` for both), orders (``price_order``, ``redeem_order``, ``void_order``) and
experiments. The work itself lives beside it: ``definitions`` (parsing), ``rules`` (the pure
evaluation), ``rewards`` and ``stacking`` (pure pricing of an order), ``orders``, ``usage``
(counters, impressions, the funnel), ``redemption``, ``experiments`` and ``codes``.

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

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from .._errors import InvalidInput, OfferRejected, UnknownItem
from ..clock import now_ms
from ..profile.local import count
from . import (
    central,
    codes,
    context,
    experiments,
    firing,
    loyalty,
    orders,
    redemption,
    reporting,
    usage,
)
from .book import Rollback
from .central import AuthorityLike, Claim
from .definitions import Offer
from .firing import TriggerFire
from .loyalty import Points
from .orders import Order, OrderPrice
from .redemption import Redemption, Reservation
from .reporting import RedemptionRecord
from .rules import Decision, OfferContext, OfferUsage, day_bounds, evaluate
from .views import OfferViews

DEFAULT_RESERVATION_S = 300
# Prior redemption rate for ranking an offer with no history yet (Beta(1, 9): 10%).
PRIOR_REDEEMED, PRIOR_SHOWN = 1.0, 10.0


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


class Offers(OfferViews):
    """The offers of one store file: define, switch, issue codes, evaluate, redeem, price and
    redeem orders (definitions and settings come from ``OfferBook``)."""

    # -- context -------------------------------------------------------------------------
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
        return context.build_context(
            self._store,
            self._catalog,
            shopper_id,
            channel=channel,
            cart=cart,
            cart_total=cart_total,
            item_id=item_id,
            geofence=geofence,
            now=now,
            purpose=purpose,
            store_id=self.store_id,
        )

    def _usage(self, db: Any, offer_id: str, shopper_id: str, ctx: OfferContext) -> OfferUsage:
        return usage.usage_snapshot(db, [offer_id], shopper_id, ctx).usage(offer_id)

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
        decision = evaluate(
            offer, ctx, self._usage(self._store.read(), offer_id, ctx.shopper_id, ctx)
        )
        if record and not decision.eligible and ctx.shopper_id:
            self._transaction(
                lambda db: usage.record_rejection(
                    db,
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
        if record and ctx.is_member and any(o.trigger is not None for o in offers):
            # The shopper's next visit: a trigger their events set off opens its offer now.
            fired = self._transaction(
                lambda db: firing.run(db, offers, [ctx.shopper_id], lambda _: ctx)
            )
            ctx = replace(ctx, triggered=ctx.triggered | {f.offer_id for f in fired})
        # Every counter of every offer for this shopper in four grouped queries, not six
        # small queries an offer (33-80 ms a request at 200 offers; see the benchmark).
        snapshot = usage.usage_snapshot(
            self._store.read(),
            [o.offer_id for o in offers],
            ctx.shopper_id,
            ctx,
            fleet_uses=any(o.limits.per_customer_limited for o in offers),
            per_day=usage.per_day_limited(offers),
        )
        rates = snapshot.rates
        affinity = self._affinity(ctx.shopper_id)
        ranked: list[RankedOffer] = []
        exposures: list[tuple[Offer, str | None]] = []
        for offer in offers:
            decision = evaluate(offer, ctx, snapshot.usage(offer.offer_id))
            if offer.experiment is not None and decision.reason in {
                "eligible",
                "experiment_control",
            }:
                exposures.append((offer, decision.variant))
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
            self._transaction(lambda db: self._record_shown(db, ctx, shown_offers, exposures))
        return shown_offers

    def run_triggers(
        self, *, shopper_id: str | None = None, channel: str = "app_push", now: int | None = None
    ) -> list[TriggerFire]:
        """Fire the offers' triggers for one member (or every member with history), for
        ``channel``; each fire opens its offer to the member and is returned to push once
        (``deliver_at_ms`` set in quiet hours). Run it from a timer, like ``tick_geofences``.
        Example: see ``shelfwise.offers.firing``."""
        stamp = now_ms() if now is None else now
        offers = [o for o in self.all() if o.active and o.trigger is not None]
        if not offers:
            return []
        who = [shopper_id] if shopper_id else firing.members_with_history(self._store.read())
        return self._transaction(
            lambda db: firing.run(
                db, offers, who, lambda s: self.context(s, channel=channel, now=stamp)
            )
        )

    def _affinity(self, shopper_id: str) -> set[str]:
        if not shopper_id:
            return set()
        rows = self._store.query(
            "SELECT DISTINCT e.item_id, i.category FROM events e JOIN items i ON i.item_id = e.item_id "
            "WHERE e.shopper_id = ? ORDER BY e.seq DESC LIMIT 50",
            [shopper_id],
        )
        return {r["item_id"] for r in rows} | {r["category"] for r in rows if r["category"]}

    @staticmethod
    def _record_shown(
        db: Any,
        ctx: OfferContext,
        shown: Sequence[RankedOffer],
        exposures: Sequence[tuple[Offer, str | None]],
    ) -> None:
        usage.record_shown(db, ctx, [(r.offer.offer_id, r.decision.variant) for r in shown])
        experiments.record_exposures(
            db, ctx.shopper_id, exposures, ts=ctx.now_ms, store_id=ctx.store_id
        )

    # -- experiments ---------------------------------------------------------------------
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
        return self._transaction(
            lambda db: experiments.convert_pending(
                db, rows, targeting_of=self._targeting_in, store_id=self.store_id
            )
        )

    def experiment_report(self, experiment_id: str) -> dict[str, Any]:
        """Exposed and converted shoppers per variant, conversion rates and the lift.

        Computed from the exposure/conversion event counts the synced summaries carry;
        ``InvalidInput`` for an experiment that no offer runs and nobody was exposed to.
        """
        experiments.check_known(self._store, experiment_id, self.all())
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

    def use_collector(self, authority: AuthorityLike | None) -> None:
        """Redeem codes the collector issued: a code unknown here is claimed from
        ``authority`` first (``shelfwise.sync.leasing.CollectorAuthority``; None: stop).
        Example: ``sw.offers.use_collector(CollectorAuthority(url, credentials))``"""
        self.collector = authority

    def _claim(self, texts: Sequence[str], shopper_id: str, ctx: OfferContext) -> list[Claim]:
        authority = None if self.sandboxed else self.collector
        try:
            return central.claim_unknown_codes(self._store, authority, texts, self._exists)
        except OfferRejected as exc:
            self._log_rejection(shopper_id, "?", exc, ctx)
            raise

    def _central_uses(
        self, request: orders.Request, ctx: OfferContext, live: Sequence[Offer]
    ) -> tuple[OfferContext, list[str]]:
        """The central check of a member's per-customer limits before an order is redeemed
        (``central.check_order_uses``); the offers counted come back to be given back if not
        applied."""
        authority = None if self.sandboxed or not ctx.is_member else self.collector
        if authority is None:
            return ctx, []

        def price(asked: OfferContext) -> OrderPrice:
            return orders.price(self._store.read(), request, asked, active=live, offer_of=self.get)

        return central.check_order_uses(
            self._store, authority, ctx, request.order_id, price, self.get
        )

    def _reserve(
        self, code_or_offer: str, shopper_id: str, ctx: OfferContext, ttl_ms: int
    ) -> Reservation:
        code = (
            None if self._exists(code_or_offer) else self._checked(code_or_offer, shopper_id, ctx)
        )
        claims = self._claim([code] if code else [], shopper_id, ctx)
        offer_id = codes.offer_of_code(self._store, code) if code else code_or_offer
        key, counted = uuid.uuid4().hex, list[str]()
        if offer_id and self._per_customer(offer_id) and ctx.is_member and not self.sandboxed:
            found, counted = central.check_member_uses(
                self._store, self.collector, shopper_id, [self.get(offer_id)], key
            )
            ctx = replace(ctx, central_uses={**ctx.central_uses, **found})
        result = self._transaction(
            lambda db: redemption.reserve(
                db,
                code=code,
                offer_id=code_or_offer,
                shopper_id=shopper_id,
                ctx=ctx,
                ttl_ms=ttl_ms,
                offer_of=self.get,
                sandbox=self.sandboxed,
            )
        )
        if isinstance(result, OfferRejected):
            central.give_back(self._store, self.collector, claims)
            central.release_uses(self._store, self.collector, shopper_id, counted, key)
            self._log_rejection(shopper_id, code_or_offer, result, ctx)
            raise result
        return result

    def _checked(self, text: str, shopper_id: str, ctx: OfferContext) -> str:
        """``check_code`` that also logs the rejection (a mistyped code is a rejection too)."""
        try:
            return codes.check_code(text)
        except OfferRejected as exc:
            self._log_rejection(shopper_id, "?", exc, ctx)
            raise

    def _log_rejection(
        self, shopper_id: str, code_or_offer: str, error: OfferRejected, ctx: OfferContext
    ) -> None:
        offer_id = codes.offer_of_code(self._store, code_or_offer)
        if offer_id is None:
            # Never log what a shopper typed: it may be someone else's code.
            offer_id = code_or_offer if self._exists(code_or_offer) else "?"
        self._transaction(
            lambda db: usage.record_rejection(
                db, shopper_id, offer_id, error.reason, ctx.now_ms, ctx.store_id, day_bounds(ctx)
            )
        )

    def commit(self, reservation_id: str, *, now: int | None = None) -> Redemption:
        """Spend a held reservation (payment went through): the code is used for good."""
        stamp = now_ms() if now is None else now

        def work(db: Any) -> Redemption | OfferRejected:
            done = redemption.commit(
                db,
                reservation_id,
                stamp=stamp,
                store_id=self.store_id,
                local_time=self.local_time,
                sandbox=self.sandboxed,
            )
            if isinstance(done, Redemption) and self.get(done.offer_id).limits.per_customer_limited:
                self._move(done.shopper_id, [(usage.USES + done.offer_id, 1)])  # fleet-wide
            return done

        result = self._transaction(work)
        if isinstance(result, OfferRejected):
            raise result
        return result

    def release(self, reservation_id: str) -> None:
        """Give a held code back (payment failed or the cart changed)."""
        refused = self._transaction(lambda db: redemption.release(db, reservation_id))
        if refused is not None:
            raise refused

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
            done = Redemption(
                uuid.uuid4().hex, held.offer_id, held.code, shopper_id, held.amount, stamp, True
            )
            self._keep_sandbox([(done.redemption_id, done.offer_id, done.code, done.amount, 0, 0)], shopper_id, None, stamp)  # fmt: skip
            return done
        return self.commit(held.reservation_id, now=stamp)

    def sweep(self, *, now: int | None = None) -> int:
        """Release every expired reservation; return how many (reserve does this too)."""
        stamp = now_ms() if now is None else now
        return self._transaction(lambda db: redemption.expire(db, stamp))

    # -- orders (logic in shelfwise.offers.orders, .stacking, .rewards) ----------------------
    def price_order(
        self,
        order_id: str,
        *,
        shopper_id: str,
        cart: Sequence[Any] | None = None,
        codes: Sequence[str] = (),
        offers: Sequence[str] = (),
        now: int | None = None,
    ) -> OrderPrice:
        """Price an order as a whole (reads only): the best allowed combination of the offers
        that apply unasked, the ``offers`` named and the ``codes`` given, and why each other
        one was left out. ``cart``: item ids or (item id, quantity) pairs (the shopper's cart
        if None). Example: see ``shelfwise.offers.orders``."""
        request = orders.check_request(order_id, codes, offers)
        ctx = self._order_context(shopper_id, cart, now)
        live = [o for o in self.all() if o.active]
        held = self._points(ctx)
        if held is not None:
            ctx = replace(ctx, points=held.balance)
        multiplier = held.multiplier if held is not None else 1.0

        def price(db: Any) -> OrderPrice:
            return orders.price(
                db, request, ctx, active=live, offer_of=self.get, multiplier=multiplier
            )

        authority = None if self.sandboxed else self.collector
        seen = central.peek_unknown_codes(self._store, authority, request.codes)
        if not seen:
            return price(self._store.read())
        try:  # central codes as the collector sees them, in a transaction that is rolled back
            with self._store.write() as db:
                central.stage_codes(db, seen, self._exists)
                raise Rollback(price(db))
        except Rollback as rollback:
            return cast(OrderPrice, rollback.result)

    def redeem_order(
        self,
        order_id: str,
        *,
        shopper_id: str,
        cart: Sequence[Any] | None = None,
        codes: Sequence[str] = (),
        offers: Sequence[str] = (),
        now: int | None = None,
    ) -> Order:
        """Price and redeem an order in one transaction; the same order id again returns the
        stored order (a till's retry), other contents under it raise ``order_conflict``.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 4.0}])
            ...     _ = sw.offers.define({"offer_id": "o", "title": "1.00 off",
            ...         "reward": {"type": "amount", "value": 1}, "limits": {"total_redemptions": 1}})
            ...     _ = sw.member("L-1")
            ...     first = sw.offers.redeem_order("t-1", shopper_id="L-1", cart=["tea"])
            ...     again = sw.offers.redeem_order("t-1", shopper_id="L-1", cart=["tea"])
            ...     _ = sw.offers.void_order("t-1")
            ...     first.price.total, again == first, sw.offers.stats("o")["redemptions"]
            (3.0, True, 0)
        """
        request = orders.check_request(order_id, codes, offers)
        ctx = self._order_context(shopper_id, cart, now)
        live = [o for o in self.all() if o.active]
        claims = self._claim(request.codes, shopper_id, ctx)
        ctx, counted = self._central_uses(request, ctx, live)
        result = self._transaction(
            lambda db: orders.redeem(
                db,
                request,
                ctx,
                active=live,
                offer_of=self.get,
                store_id=self.store_id,
                sandbox=self.sandboxed,
                points=None if not ctx.is_member else lambda: self._member_points(ctx),
                move=self._move,
            )
        )
        taken = () if isinstance(result, OfferRejected) else result.price.applied
        used = {a.code for a in taken}
        central.give_back(self._store, self.collector, [c for c in claims if c.code not in used])
        unused = [o for o in counted if o not in {a.offer_id for a in taken}]
        central.release_uses(self._store, self.collector, shopper_id, unused, order_id)
        if isinstance(result, OfferRejected):
            raise result
        if result.sandbox:  # rolled back: the report still shows what the test would have done
            applied = [(uuid.uuid4().hex, a.offer_id, a.code, a.amount, a.points, a.points_cost)
                       for a in result.price.applied]  # fmt: skip
            self._keep_sandbox(applied, result.shopper_id, order_id, result.created_ms)
        return result

    def _keep_sandbox(
        self,
        applied: Sequence[tuple[str, str, str | None, float, int, int]],
        shopper_id: str,
        order_id: str | None,
        stamp: int,
    ) -> None:
        """Keep sandbox runs apart for the report (outside the rolled-back transaction)."""
        rows = [
            RedemptionRecord(rid, shopper_id, order_id, self.store_id, offer_id, code, amount,
                             earned, spent, True, "committed", stamp)
            for rid, offer_id, code, amount, earned, spent in applied
        ]  # fmt: skip
        with self._store.write() as db:
            reporting.record_sandbox(db, rows)

    def void_order(self, order_id: str, *, now: int | None = None) -> Order:
        """Void (refund) a redeemed order: its offers' uses, budget, codes come back. Voiding
        again returns the voided order. Example: ``sw.offers.void_order("till-7-0042")``"""
        stamp = now_ms() if now is None else now
        result = self._transaction(
            lambda db: orders.void(
                db,
                order_id,
                stamp=stamp,
                move=self._move,
                sandbox=self.sandboxed,
                store_id=self.store_id,
            )
        )
        if isinstance(result, OfferRejected):
            raise result
        if self.collector is not None and not self.sandboxed:  # central uses come back too
            limited = [a.offer_id for a in result.price.applied if self._per_customer(a.offer_id)]
            central.release_uses(self._store, self.collector, result.shopper_id, limited, order_id)
        return result

    def _per_customer(self, offer_id: str) -> bool:
        return self._exists(offer_id) and self.get(offer_id).limits.per_customer is not None

    def order(self, order_id: str) -> Order:
        """A redeemed or voided order as stored (``OfferRejected(reason="order_unknown")``)."""
        found = orders.stored(self._store.read(), order_id)
        if found is None:
            raise OfferRejected(f"no order {order_id!r}", reason="order_unknown")
        return found

    def _points(self, ctx: OfferContext) -> Points | None:
        return self._member_points(ctx) if ctx.is_member else None

    def _member_points(self, ctx: OfferContext) -> Points:
        return loyalty.read_points(self._store, ctx.shopper_id, ctx.now_ms)

    def _move(self, shopper_id: str, moves: Sequence[tuple[str, int]]) -> None:
        """Change the member's travelling counters (inside the caller's transaction)."""
        for name, change in moves:
            count(self._store, shopper_id, name, change)

    def confirm_member(self, shopper_id: str, *, now: int | None = None) -> None:
        """The member's uses on other devices are confirmed now: their profile was just
        merged from the collector (``Shopper.open_profiles`` calls this) or a central check
        answered. Offers with an ``offline`` policy apply it when the last confirmation is
        older than their ``confirm_within_s``. Example: ``sw.offers.confirm_member("L-1")``"""
        stamp = now_ms() if now is None else now
        self._transaction(lambda db: usage.confirm_member(db, shopper_id, stamp))

    def _order_context(
        self, shopper_id: str, cart: Sequence[Any] | None, now: int | None
    ) -> OfferContext:
        ctx = self.context(shopper_id, cart=cart, now=now, purpose="order")
        if not ctx.cart:
            raise InvalidInput("the order has no lines: pass cart=[...] or fill the cart first")
        known = self._catalog.get_many([line.item_id for line in ctx.cart])
        for line in ctx.cart:
            if line.item_id not in known:
                raise UnknownItem(f"item {line.item_id!r} is not in the catalog", item=line.item_id)
        return ctx


__all__ = [
    "DEFAULT_RESERVATION_S",
    "PRIOR_REDEEMED",
    "PRIOR_SHOWN",
    "Offers",
    "RankedOffer",
]
