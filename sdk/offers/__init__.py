"""Offers: definitions, the pure rules, the store engine, redemption, experiments and codes.

One module per concept: ``definitions`` (what an offer is, parsed from JSON/YAML), ``rules``
(the pure evaluation), ``rewards`` and ``stacking`` (pure pricing of an order: what each reward
takes off which lines, the best allowed combination), ``context`` (the rules' view of a
shopper, the store clock), ``usage`` (counters, impressions, the funnel), ``redemption``
(reserve/commit/release, the ledger), ``reporting`` (the redemption report and the staff
totals), ``orders`` (orders priced, redeemed and voided as a whole), ``experiments`` (A/B
assignment, exposures, conversions), ``codes`` (one-time codes), ``leases`` (shares of
fleet-wide limits), ``views`` (the reports, shares and points ``sw.offers`` shows), ``book``
(the stored definitions and settings) and ``engine`` (the ``Offers`` object a store holds,
``sw.offers``). The public names are re-exported here and, for the most used ones, from
``shelfwise`` itself.

Example:
    >>> from shelfwise.offers import OfferContext, evaluate, parse_offer
    >>> offer = parse_offer({"offer_id": "o", "title": "O",
    ...                      "reward": {"type": "percent", "value": 10}})
    >>> evaluate(offer, OfferContext(now_ms=0, local=None, consented=True, cart_total=20.0)).amount
    2.0
"""

from .definitions import (
    OFFER_REASONS,
    Experiment,
    Limits,
    Offer,
    Schedule,
    Targeting,
    parse_offer,
    read_offer_file,
)
from .engine import Offers, RankedOffer
from .experiments import assign_variant
from .leases import LeaseState
from .orders import AppliedOffer, LeftOutOffer, Order, OrderLine, OrderPrice
from .redemption import Redemption, Reservation
from .reporting import RedemptionRecord, RedemptionTotals
from .rewards import Reward, Tier
from .rules import Decision, OfferContext, OfferUsage, evaluate
from .stacking import Stacking

__all__ = [
    "OFFER_REASONS",
    "AppliedOffer",
    "Decision",
    "Experiment",
    "LeaseState",
    "LeftOutOffer",
    "Limits",
    "Offer",
    "OfferContext",
    "OfferUsage",
    "Offers",
    "Order",
    "OrderLine",
    "OrderPrice",
    "RankedOffer",
    "Redemption",
    "RedemptionRecord",
    "RedemptionTotals",
    "Reservation",
    "Reward",
    "Schedule",
    "Stacking",
    "Targeting",
    "Tier",
    "assign_variant",
    "evaluate",
    "parse_offer",
    "read_offer_file",
]
