"""The recommendation surfaces: each turns a shopper's context into scored candidates with reasons.

``SURFACES`` is a read-only registry, name -> surface function; ``Recommender`` runs one and
applies the business filters.

Example:
    >>> sorted(SURFACES)[:3]
    ['best-sellers', 'buy-again', 'checkout']
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..catalog import Catalog, Item
from ..clock import DAY_MS
from ..model.encoding import ItemFeatures, daypart, hour_bucket
from ..model.runtime import CatalogVectors, LoadedModel, ModelHandle
from ..store.connection import Store
from .context import Context
from .reasons import Reason, reason, when_code
from .trending import TrendingTallies

RECENT_EXCLUDED = 20
# The action a history event names in a reason ("because you scanned ...").
VERBS = {"view": "viewed", "scan": "scanned", "cart_add": "added", "purchase": "bought"}


@dataclass
class Candidates:
    """Scored candidates in order, each with its reason; first reason for an item wins.

    A reason may be left to ``explain``: it works out the reasons of the items that are shown
    together (one matrix product for all of them, not one per candidate).
    """

    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, Reason | None] = field(default_factory=dict)
    explain: Callable[[Sequence[str]], list[Reason]] | None = None
    # True when a deeper read of the surface only adds candidates below these (a model's
    # top-k): a page these fill is the page a deeper read gives.
    prefix_of_deeper: bool = False

    def add(self, item_id: str, score: float, reason: Reason | None) -> None:
        if item_id not in self.scores:
            self.scores[item_id] = score
            self.reasons[item_id] = reason

    def add_unexplained(
        self, scored: Iterable[tuple[str, float]], leave_out: Container[str] = ()
    ) -> None:
        """``add`` each ``(item id, score)`` of a ranking (distinct ids) not in ``leave_out``,
        its reason left to ``explain``: one pass, not a call per candidate."""
        scores = self.scores
        fresh = {i: s for i, s in scored if i not in scores and i not in leave_out}
        scores.update(fresh)
        self.reasons.update(dict.fromkeys(fresh))

    def reasons_for(self, item_ids: Sequence[str]) -> list[Reason]:
        """The reasons of ``item_ids`` (candidates), in order."""
        pending = [i for i in item_ids if self.reasons[i] is None]
        worked_out: dict[str, Reason] = {}
        if pending:
            if self.explain is None:
                raise ValueError("candidates without a reason need an explain function")
            worked_out = dict(zip(pending, self.explain(pending), strict=True))
        return [self.reasons[i] or worked_out[i] for i in item_ids]

    def ranked(self) -> list[str]:
        # Stable with reverse=True too: equal scores keep the order they were added in.
        return sorted(self.scores, key=self.scores.__getitem__, reverse=True)


@dataclass(frozen=True)
class Sources:
    """What the surfaces read: the store (events, fleet tables), the catalog, the served model."""

    store: Store
    catalog: Catalog
    model: ModelHandle
    # This store's trending tallies, brought up to date per request (see trending.py).
    trend: TrendingTallies = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trend", TrendingTallies(self.store))  # frozen: set once

    def names(self, item_ids: Sequence[str]) -> dict[str, str]:
        return self.catalog.names(list(item_ids))

    def served(self) -> LoadedModel | None:
        return self.model.current

    def catalog_vectors(self, model: LoadedModel | None) -> CatalogVectors | None:
        """Vectors from features for the catalog items the served model never saw (computed
        when the bundle or the catalog changes; None when the bundle has no feature table)."""
        if model is None or model.features is None:
            return None
        return model.catalog_vectors(self.catalog.revision(), lambda: self.new_item_features(model))

    def new_item_features(self, model: LoadedModel) -> list[tuple[str, ItemFeatures]]:
        """``(item id, features)`` of the catalog items ``model`` never saw, read from the
        catalog now (what a refresh of ``catalog_vectors`` reads)."""
        # Only the items the model lacks are read whole: the others never get a vector from
        # their features, and reading them all made the refresh after an import several
        # times slower at a catalog the size of the model's.
        new = [item_id for item_id in self.catalog.ids() if item_id not in model.vocab]
        items = self.catalog.get_many(new)
        return [(item_id, ItemFeatures.of(items[item_id])) for item_id in new if item_id in items]


SurfaceFn = Callable[[Sources, Context, int, Item | None], Candidates]


# -- surfaces ---------------------------------------------------------------------------
def _readable_history(
    rec: Sources, ctx: Context
) -> tuple[LoadedModel | None, CatalogVectors | None, Iterator[str]]:
    """The served model, its vectors for new catalog items, and the history items it reads
    (lazily: asking whether there is one stops at the first)."""
    model = rec.served()
    if model is None or not ctx.personal:
        return model, None, iter(())
    extra = rec.catalog_vectors(model)
    new_items = extra.index if extra is not None else {}
    return model, extra, (i for i in ctx.history_items() if i in model.vocab or i in new_items)


def _for_you_reads_the_model(rec: Sources, ctx: Context) -> bool:
    return next(_readable_history(rec, ctx)[2], None) is not None


def for_you(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    model, extra, readable = _readable_history(rec, ctx)
    known = list(readable)
    if model is None or not known:
        return trending(rec, ctx, n, anchor)
    out = Candidates(prefix_of_deeper=True)
    if ctx.segment == "lapsed":  # welcome back with what they used to buy
        for item_id, score in _buy_again_scores(rec, ctx)[:3]:
            out.add(item_id, 1e6 + score, reason("welcome_back"))
    scored = model.score([known], k=n, extra=extra)[0]
    out.explain = functools.partial(_explain, model, ctx, rec, extra)
    just_seen = set(known[-RECENT_EXCLUDED:])  # showing what they just scanned helps nobody
    out.add_unexplained(zip(scored.items, scored.scores, strict=True), just_seen)
    return out


def _explain(
    model: LoadedModel,
    ctx: Context,
    rec: Sources,
    extra: CatalogVectors | None,
    item_ids: Sequence[str],
) -> list[Reason]:
    """ "because you scanned X" for each suggestion: X is the recent history item whose vector
    is closest to the suggestion's (the latest one with a vector when vectors cannot tell: an
    item the model cannot read played no part in the suggestions)."""
    # The 10 latest distinct history items, each with what was last done to it: one pass
    # from the end (a member's history runs to HISTORY_EVENTS events).
    verbs: dict[str, str] = {}
    for item, kind, _ in reversed(ctx.history):
        if item not in verbs:
            verbs[item] = VERBS.get(kind, "viewed")
            if len(verbs) == 10:
                break
    latest = list(verbs)
    # One gather for the history items and the suggestions: positions below len(latest) are
    # history items with a vector, the rest suggestions with one.
    found, vectors = model.unit_vectors([*latest, *item_ids], extra)
    cut = bisect.bisect_left(found, len(latest))
    fallback = latest[found[0]] if cut else latest[0] if latest else ""
    anchors = [fallback or i for i in item_ids]
    if cut > 1 and cut < len(found):
        closest = (vectors[cut:] @ vectors[:cut].T).argmax(axis=1).tolist()
        for position, best in zip(found[cut:], closest, strict=True):
            anchors[position - len(latest)] = latest[found[best]]
    names = rec.names(list(dict.fromkeys(anchors)))
    said = {
        anchor: reason(
            "because_you", action=verbs.get(anchor, "viewed"), item=names.get(anchor, anchor)
        )
        for anchor in dict.fromkeys(anchors)
    }
    return [said[anchor] for anchor in anchors]


def similar(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    """The items closest to the anchor by vector, its own category first; an item from
    another category says so in its reason. New catalog items take part through their
    feature vectors; without a vector, co-occurrence, then the category's best sellers."""
    assert anchor is not None
    out = Candidates()
    model = rec.served()
    pool = (
        model.neighbours(anchor.item_id, max(10 * n, 200), rec.catalog_vectors(model))
        if model
        else []
    )
    items = rec.catalog.get_many([other for other, _ in pool])
    for other, sim in pool:
        item = items.get(other)
        if item is None:
            continue
        if not anchor.category or item.category == anchor.category:
            out.add(other, 2.0 + sim, reason("similar_to", item=anchor.name))
        else:
            why = (
                reason("like_from_category", item=anchor.name, category=item.category)
                if item.category
                else reason("like_from_elsewhere", item=anchor.name)
            )
            out.add(other, sim - 2.0, why)
    if not out.scores:  # no vector: what shoppers who look at it pick
        for other, lift, _ in _pairs(model, anchor.item_id)[:n]:
            out.add(other, lift - 1e3, reason("also_pick", item=anchor.name))
    if anchor.category:
        for item_id, share in _popular(model, f"category:{anchor.category}", n):
            out.add(item_id, share - 1e4, reason("best_seller_in", category=anchor.category))
    if not out.scores:  # nothing is known about the item: say so rather than show nothing
        for item_id, share in _popular(model, "all", n):
            out.add(item_id, share - 1e5, reason("best_seller"))
    return out


def _pairs(model: LoadedModel | None, item_id: str) -> list[tuple[str, float, int]]:
    if model is None:
        return []
    return list(model.side_tables.cooccurrence.get(item_id, []))


def complements(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    """What goes with the anchor (or the recent items): its frequently-bought-together pairs;
    for an item with none (new, or rarely bought), what its closest items by vector are
    bought with (not items of its own category: those are substitutes); then what the model
    expects next after it."""
    model = rec.served()
    sources = [anchor.item_id] if anchor else list(dict.fromkeys(reversed(ctx.history_items())))[:5]
    known = rec.catalog.get_many(sources)
    out = Candidates()
    extra = rec.catalog_vectors(model) if model else None
    for source in sources:
        name = known[source].name if source in known else source
        pairs = _pairs(model, source)
        for other, lift, count in pairs[:n]:
            out.add(other, lift * math.log1p(count), reason("bought_with", item=name))
        if pairs or model is None:
            continue
        totals: dict[str, float] = {}
        for neighbour, sim in model.neighbours(source, 10, extra, known_only=True):
            for other, lift, count in _pairs(model, neighbour)[:n] if sim > 0 else []:
                if other != source:
                    totals[other] = totals.get(other, 0.0) + sim * lift * math.log1p(count)
        aisle = known[source].category if source in known else ""
        others = rec.catalog.get_many(list(totals)) if aisle else {}
        for other in sorted(totals, key=lambda o: -totals[o]):
            if other not in others or others[other].category != aisle:
                out.add(other, totals[other] - 1e3, reason("goes_with_like", item=name))
        readable = source in model.vocab or model.unit_vector(source, extra) is not None
        if not out.scores and readable:
            scored = model.score([[source]], k=n, extra=extra)[0]
            for other, score in zip(scored.items, scored.scores, strict=True):
                out.add(other, score - 1e6, reason("picked_after_like", item=name))
    return out


def checkout(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    model = rec.served()
    names = rec.names(sorted(ctx.cart))
    totals: dict[str, float] = {}
    why: dict[str, Reason] = {}
    for source in sorted(ctx.cart):
        for other, lift, count in _pairs(model, source)[:n]:
            score = lift * math.log1p(count)
            totals[other] = totals.get(other, 0.0) + score
            if score >= max(totals[other] - score, 0.0):
                why[other] = reason("goes_with_cart", item=names.get(source, source))
    out = Candidates()
    for other in sorted(totals, key=lambda i: -totals[i]):
        out.add(other, totals[other], why[other])
    if not out.scores:
        return best_sellers(rec, ctx, n, anchor)
    return out


def _buy_again_scores(rec: Sources, ctx: Context) -> list[tuple[str, float]]:
    model = rec.served()
    repeat = model.side_tables.repeat_days if model else {}
    last: dict[str, int] = {}
    count: Counter[str] = Counter()
    for item_id, ts in ctx.purchases:
        last[item_id] = max(ts, last.get(item_id, 0))
        count[item_id] += 1
    scored = []
    for item_id, ts in last.items():
        days = (ctx.now_ms - ts) / DAY_MS
        cycle = float(repeat.get(item_id, 14.0))
        due = math.exp(-abs(math.log((days + 1) / (cycle + 1))))  # 1.0 when exactly due
        scored.append((item_id, due * math.log1p(count[item_id])))
    return sorted(scored, key=lambda pair: -pair[1])


def buy_again(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    out = Candidates()
    if not ctx.personal:
        return out
    model = rec.served()
    repeat = model.side_tables.repeat_days if model else {}
    last = {item_id: ts for item_id, ts in sorted(ctx.purchases, key=lambda p: p[1])}
    for item_id, score in _buy_again_scores(rec, ctx)[:n]:
        cycle = repeat.get(item_id)
        when = when_code(ctx.now_ms, last[item_id])
        because = (
            reason("buy_again_cycle", when=when, days=round(float(cycle)))
            if cycle
            else reason("bought_ago", when=when)
        )
        out.add(item_id, score, because)
    return out


def recently_viewed(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    out = Candidates()
    if not ctx.personal:
        return out
    for item_id, kind, ts in reversed(ctx.history):
        if kind in {"view", "scan"}:
            out.add(
                item_id,
                float(ts),
                reason("seen_ago", action=VERBS[kind], when=when_code(ctx.now_ms, ts)),
            )
    return out


def trending(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    """This store's recent events (decayed by age), then the fleet's, then the bundle's prior."""
    out = Candidates()
    for item_id, score in rec.trend.top(ctx.store_id, ctx.now_ms, n):
        out.add(item_id, 1000.0 + score, reason("trending_store"))
    # Fleet tables synced down from upstream (shelfwise.sync.upload.pull_fleet): below this store's
    # own signal, above the bundle's prior.
    fleet = rec.store.query(
        "SELECT item_id, score FROM fleet_trending ORDER BY score DESC, item_id LIMIT ?", [n]
    )
    top = max((row["score"] for row in fleet), default=0.0) or 1.0
    for row in fleet:
        out.add(row["item_id"], 500.0 + row["score"] / top, reason("trending_fleet"))
    hour = hour_bucket(ctx.now_ms, ctx.utc_offset_minutes)
    for item_id, share in _popular(rec.served(), f"hour:{hour:02d}", n):
        out.add(item_id, share, reason("popular_daypart", daypart=daypart(hour)))
    return out if out.scores else best_sellers(rec, ctx, n, anchor)


def _popular(model: LoadedModel | None, scope: str, n: int) -> list[tuple[str, float]]:
    return model.side_tables.most_popular(scope, n) if model is not None else []


def best_sellers(rec: Sources, ctx: Context, n: int, anchor: Item | None) -> Candidates:
    out = Candidates()
    scope = f"category:{anchor.category}" if anchor and anchor.category else "all"
    label = (
        reason("best_seller_in", category=anchor.category)
        if scope != "all" and anchor
        else reason("best_seller")
    )
    for item_id, share in _popular(rec.served(), scope, n):
        out.add(item_id, share, label)
    if not out.scores:  # no bundle: count this store's purchases
        for row in rec.store.query(
            "SELECT item_id, sum(quantity) AS n FROM events WHERE type = 'purchase' "
            "GROUP BY item_id ORDER BY n DESC LIMIT ?",
            [n],
        ):
            out.add(row["item_id"], float(row["n"]), reason("best_seller"))
    return out


SURFACES: Mapping[str, SurfaceFn] = MappingProxyType(
    {
        "for-you": for_you,
        "similar": similar,
        "complements": complements,
        "buy-again": buy_again,
        "recently-viewed": recently_viewed,
        "trending": trending,
        "best-sellers": best_sellers,
        "checkout": checkout,
    }
)
# Surfaces that only make sense around one item.
ANCHORED = frozenset({"similar"})
# Surfaces whose cost grows with the depth asked (the model's top-k), read shallow first when
# the test says the shallow candidates are the start of the deeper ones: for-you when it reads
# the model (its trending fallback ranks three lists each cut at the depth, so a deeper read
# can put other items first).
SHALLOW_FIRST: Mapping[str, Callable[[Sources, Context], bool]] = MappingProxyType(
    {"for-you": _for_you_reads_the_model}
)
