"""What the offers of a store file show without pricing anything: the redemption report, the
staff totals, this device's shares of fleet-wide limits and the loyalty program, as ``Offers``
methods (``sw.offers``; the logic lives in ``reporting``, ``leases`` and ``loyalty``).

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     sw.offers.redemptions(), sw.offers.leases(), sw.offers.loyalty().tiers
    ([], [], ())
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..clock import now_ms
from . import loyalty, reporting
from .book import OfferBook
from .leases import LeaseState, lease_states
from .loyalty import LoyaltyProgram, Points
from .reporting import RedemptionRecord, RedemptionTotals


class OfferViews(OfferBook):
    """Reports, shares and points of the store's offers (``Offers`` adds pricing and
    redemption)."""

    # -- reporting (logic in shelfwise.offers.reporting) ------------------------------------
    def redemptions(
        self,
        *,
        since: int | None = None,
        until: int | None = None,
        offer_id: str | None = None,
        order_id: str | None = None,
        sandbox: bool | None = False,
    ) -> list[RedemptionRecord]:
        """Redemptions on this device, committed and voided, oldest first: from ``since``
        (UTC ms) until ``until``, of one offer or order; ``sandbox`` False (real ones), True
        (sandbox runs) or None (both). Example: see ``shelfwise.offers.reporting``."""
        return reporting.redemption_records(
            self._store, since=since, until=until, offer_id=offer_id, order_id=order_id,
            sandbox=sandbox,
        )  # fmt: skip

    def write_redemptions(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        since: int | None = None,
        until: int | None = None,
        offer_id: str | None = None,
        order_id: str | None = None,
        sandbox: bool | None = False,
    ) -> int:
        """Export ``redemptions(...)`` with the same filters to ``path`` as CSV or JSON
        (``format``, else the file's suffix); returns how many rows. Example:
        ``sw.offers.write_redemptions("redemptions.csv", since=start_ms)``"""
        chosen = reporting.format_of(path, format)  # a wrong format changes nothing
        rows = self.redemptions(
            since=since, until=until, offer_id=offer_id, order_id=order_id, sandbox=sandbox
        )
        return reporting.write_redemptions(rows, path, format=chosen)

    def redemption_totals(
        self, *, timezone: str | None = None, now: int | None = None
    ) -> RedemptionTotals:
        """Points issued and burned, discounted orders and their money off: today (the store's
        local day, or ``timezone``'s) and in all. Example:
        ``sw.offers.redemption_totals().points_issued_today``"""
        stamp = now_ms() if now is None else now
        zone = timezone or self.timezone()
        return reporting.redemption_totals(self._store, timezone=zone, now=stamp)

    def leases(self, *, now: int | None = None) -> list[LeaseState]:
        """This device's shares of fleet-wide limits (``limits.scope: fleet``), refreshed by
        ``sw.sync``: what it may redeem in all, what it used, until when.

        Example: ``[(s.offer_id, s.redemptions - s.used_redemptions) for s in sw.offers.leases()]``
        """
        return lease_states(self._store, now_ms() if now is None else now)

    # -- loyalty points (logic in shelfwise.offers.loyalty) ---------------------------------
    def set_loyalty(self, program: Mapping[str, Any] | None) -> LoyaltyProgram:
        """The store's points program: tiers and expiry (earn and burn rules are offers).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.offers.set_loyalty({"tiers": [{"name": "gold", "points": 5000,
            ...         "multiplier": 2}], "expiry_months": 24}).expiry_months
            24
        """
        return loyalty.set_program(self._store, program)

    def loyalty(self) -> LoyaltyProgram:
        """The store's points program (no tiers, no expiry until set)."""
        return loyalty.program(self._store)

    def points(self, shopper_id: str, *, now: int | None = None) -> Points:
        """A member's points as this device holds them: balance, tier, live months.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 12.0}])
            ...     _ = sw.offers.define({"offer_id": "earn", "title": "1 point per 1.00",
            ...                            "reward": {"type": "points", "points": 1}})
            ...     _ = sw.member("L-1").redeem_order("t-1", cart=["tea"])
            ...     sw.offers.points("L-1").balance
            12
        """
        return loyalty.read_points(self._store, shopper_id, now_ms() if now is None else now)


__all__ = ["OfferViews"]
