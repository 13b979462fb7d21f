"""Recommendations: run a surface, then the business filters; each result has a human reason.

Every surface returns ``Recommendation(item, score, reason, surface)``, best first, after the
same business filters: out of stock, already in the cart, sensitive items without consent,
age-restricted items for anyone not age-verified, non-repeatable items already bought, the
anchor item itself, and at most a few items per category (diversity).

Surfaces (``SURFACES``): for-you, similar, complements, buy-again, recently-viewed,
trending, best-sellers, checkout.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     sw.recommend(history=[], surface="best-sellers")
    []
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import InvalidInput
from ..catalog import Catalog, Item
from ..model.runtime import LoadedModel, ModelHandle
from ..store.connection import Store
from .context import Context
from .filters import NO_FILTER, DiversePage, ItemFilter, passes_filters
from .reasons import Reason
from .surfaces import ANCHORED, RECENT_EXCLUDED, SHALLOW_FIRST, SURFACES, Candidates, Sources


@dataclass(frozen=True)
class Recommendation:
    """One suggested item with its score and a short reason a shopper can read."""

    item: Item
    score: float
    reason: str
    surface: str
    # Set when the list was recorded as shown (``recommend(record=True)``): what a click names.
    shown_id: str = ""
    position: int = 0
    # The reason as a code with parameters (``reason`` is its English text): see ``reason_in``.
    why: Reason | None = None
    # Set when a recommender experiment served the list: its id, the arm this item came
    # from, and (interleaved) that arm's team, 0 or 1 (-1: not interleaved).
    experiment: str = ""
    arm: str = ""
    team: int = -1

    def reason_in(self, language: str) -> str:
        """The reason in ``language`` (``"en"``, ``"it"``; English for any other).

        Example:
            >>> from shelfwise.catalog import Item
            >>> from shelfwise.recommend.reasons import reason
            >>> r = Recommendation(Item("m", "Milk"), 1.0, "a best seller here", "trending",
            ...                    why=reason("best_seller"))
            >>> r.reason_in("it")
            'tra i più venduti qui'
        """
        return self.why.text(language) if self.why is not None else self.reason

    def to_dict(self) -> dict[str, object]:
        return {
            "item": self.item.to_dict(),
            "score": round(self.score, 6),
            "reason": self.reason,
            "surface": self.surface,
            **({"shown_id": self.shown_id, "position": self.position} if self.shown_id else {}),
            **({"reason_code": self.why.to_dict()} if self.why is not None else {}),
            **({"experiment": self.experiment, "arm": self.arm} if self.experiment else {}),
        }


class Recommender:
    """Computes every surface from the store, the catalog and the served model."""

    def __init__(self, store: Store, catalog: Catalog, model: ModelHandle) -> None:
        self.catalog = catalog
        self.model = model
        self.sources = Sources(store, catalog, model)

    def served(self) -> LoadedModel | None:
        """The bundle serving now (None: popularity and co-occurrence only)."""
        return self.model.current

    def recommend(
        self,
        surface: str,
        context: Context,
        *,
        limit: int = 10,
        item: str | None = None,
        category: str | None = None,
        diversity: int | None = None,
        filters: ItemFilter = NO_FILTER,
    ) -> list[Recommendation]:
        """Run one surface, then the business filters and the caller's ``filters``; at most
        ``limit`` results."""
        if surface not in SURFACES:
            raise InvalidInput(f"surface {surface!r} is not one of: {', '.join(SURFACES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
            raise InvalidInput(f"limit must be an integer between 1 and 200, not {limit!r}")
        with self.catalog.pinned():  # one version of the catalog for the whole request
            return self._recommend(surface, context, limit, item, category, diversity, filters)

    def _recommend(
        self,
        surface: str,
        context: Context,
        limit: int,
        item: str | None,
        category: str | None,
        diversity: int | None,
        filters: ItemFilter,
    ) -> list[Recommendation]:
        anchor = self.catalog.lookup(item) if item else None
        if surface in ANCHORED and anchor is None:
            raise InvalidInput(f"the {surface} surface needs an item")
        depth = limit * 4 + len(context.history) + 10
        per_category = diversity if diversity is not None else max(2, math.ceil(limit / 3))
        # Similar items are meant to be of one kind: no spreading across categories there.
        if category or surface in {"recently-viewed", "buy-again", "similar"}:
            per_category = limit
        # The model's top-k costs by k: for-you first reads as deep as a page usually needs
        # (what was just seen is left out, the rest leaves room for the filters); a page the
        # filters or diversity left short is read again at full depth, and so is one whose
        # candidates a deeper read could rank otherwise (the served model changed meanwhile).
        shallow = limit * 2 + RECENT_EXCLUDED
        first = depth
        if surface in SHALLOW_FIRST and not category and shallow < depth:
            first = shallow if SHALLOW_FIRST[surface](self.sources, context) else depth
        for wanted in dict.fromkeys((first, depth)):
            candidates = self._candidates(surface, context, wanted, anchor, category)
            page = self._allowed(candidates, context, limit, anchor, per_category, filters)
            if page.full and (wanted == depth or candidates.prefix_of_deeper):
                break
        return self._page(candidates, page, surface)

    def apply_filters(
        self,
        candidates: Candidates,
        context: Context,
        limit: int,
        surface: str,
        anchor: Item | None,
        per_category: int,
        *,
        filters: ItemFilter = NO_FILTER,
    ) -> list[Recommendation]:
        """The business filters, the caller's filters and diversity over ranked candidates."""
        page = self._allowed(candidates, context, limit, anchor, per_category, filters)
        return self._page(candidates, page, surface)

    @staticmethod
    def _page(candidates: Candidates, page: DiversePage, surface: str) -> list[Recommendation]:
        chosen = page.items()
        reasons = candidates.reasons_for([item.item_id for item in chosen])
        return [
            Recommendation(item, candidates.scores[item.item_id], why.text(), surface, why=why)
            for item, why in zip(chosen, reasons, strict=True)
        ]

    def _candidates(
        self, surface: str, context: Context, wanted: int, anchor: Item | None, category: str | None
    ) -> Candidates:
        candidates = SURFACES[surface](self.sources, context, wanted, anchor)
        if category:
            items = self.catalog.get_many(list(candidates.scores))
            kept = {i for i, it in items.items() if it.category == category}
            candidates.scores = {i: s for i, s in candidates.scores.items() if i in kept}
        return candidates

    def _allowed(
        self,
        candidates: Candidates,
        context: Context,
        limit: int,
        anchor: Item | None,
        per_category: int,
        filters: ItemFilter,
    ) -> DiversePage:
        """The ranked candidates that pass the business filters and the caller's, best first,
        on a diverse page: read from the catalog a batch at a time until the page is full."""
        ranked = candidates.ranked()
        bought = {item for item, _ in context.purchases}
        asked = None if filters == NO_FILTER else filters.allows  # most requests ask nothing
        page = DiversePage(limit, per_category)
        # A few more than a page: the cart, stock and the filters usually drop only a few.
        batch = limit + max(4, limit // 2)
        for start in range(0, len(ranked), batch):
            chunk = ranked[start : start + batch]
            items = self.catalog.get_many(chunk)
            for item_id in chunk:
                item = items.get(item_id)
                if (
                    item is not None
                    and passes_filters(item, context, bought, anchor)
                    and (asked is None or asked(item))
                ):
                    page.offer(item)
                    if page.full:
                        return page
        return page
