"""Recommendation surfaces, business filters and human reasons.

Every surface returns ``Recommendation(item, score, reason, surface)``, best first, after the
same business filters: out of stock, already in the cart, sensitive items without consent,
age-restricted items for anyone not age-verified, non-repeatable items already bought, the
anchor item itself, and at most a few items per category (diversity).

Surfaces (``SURFACES``): for-you, similar, complements, buy-again, recently-viewed,
trending, best-sellers, checkout.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._errors import InvalidInput
from .._time import DAY_MS
from ..catalog import Catalog, Item
from ..model.encoding import daypart, hour_bucket
from ..model.runtime import LoadedModel, ModelHandle
from ..store.connection import Store

TRENDING_WINDOW_DAYS = 7
# How much each kind of event says about an item's popularity in this store.
POPULARITY_WEIGHTS = {"purchase": 3.0, "cart_add": 2.0, "scan": 1.0, "view": 0.5}
RECENT_EXCLUDED = 20
# How far taste can move a search result: a full cosine match is worth half the best text score.
SEARCH_TASTE_WEIGHT = 0.5
VERBS = {"view": "viewed", "scan": "scanned", "cart_add": "added", "purchase": "bought"}


@dataclass(frozen=True)
class Recommendation:
    """One suggested item with its score and a short reason a shopper can read."""

    item: Item
    score: float
    reason: str
    surface: str

    def to_dict(self) -> dict[str, object]:
        return {
            "item": self.item.to_dict(),
            "score": round(self.score, 6),
            "reason": self.reason,
            "surface": self.surface,
        }


@dataclass(frozen=True)
class Context:
    """Everything a surface may know about the shopper, read from the store per request.

    ``history`` is ``(item_id, event_type, ts_ms)``, oldest first.
    """

    history: Sequence[tuple[str, str, int]] = ()
    cart: frozenset[str] = frozenset()
    purchases: Sequence[tuple[str, int]] = ()
    consents: frozenset[str] = frozenset({"personalization"})
    age_verified: bool = False
    segment: str = "new"
    store_id: str = ""
    now_ms: int = 0
    utc_offset_minutes: int = 0

    @property
    def personal(self) -> bool:
        return "personalization" in self.consents

    def history_items(self) -> list[str]:
        return [item for item, _, _ in self.history]


@dataclass
class _Candidates:
    """Scored candidates in order, each with its reason; first reason for an item wins."""

    scores: dict[str, float] = field(default_factory=dict)
    # A reason may be a callable: it is only worked out for the items that are shown.
    reasons: dict[str, str | Callable[[], str]] = field(default_factory=dict)

    def add(self, item_id: str, score: float, reason: str | Callable[[], str]) -> None:
        if item_id not in self.scores:
            self.scores[item_id] = score
            self.reasons[item_id] = reason

    def reason(self, item_id: str) -> str:
        reason = self.reasons[item_id]
        return reason if isinstance(reason, str) else reason()

    def ranked(self) -> list[str]:
        return sorted(self.scores, key=lambda i: -self.scores[i])


SurfaceFn = Callable[["Recommender", Context, int, Item | None], _Candidates]


class Recommender:
    """Computes every surface from the store, the catalog and the served model."""

    def __init__(self, store: Store, catalog: Catalog, model: ModelHandle) -> None:
        self.store = store
        self.catalog = catalog
        self.model = model

    # -- the public entry point ---------------------------------------------------------
    def recommend(
        self,
        surface: str,
        context: Context,
        *,
        k: int = 10,
        item: str | None = None,
        category: str | None = None,
        diversity: int | None = None,
    ) -> list[Recommendation]:
        """Run one surface, then the business filters; at most ``k`` results."""
        if surface not in SURFACES:
            raise InvalidInput(f"surface {surface!r} is not one of: {', '.join(SURFACES)}")
        if not 1 <= k <= 200:
            raise InvalidInput(f"k must be between 1 and 200, not {k}")
        anchor = self.catalog.lookup(item) if item else None
        if surface in ANCHORED and anchor is None:
            raise InvalidInput(f"the {surface} surface needs an item")
        candidates = SURFACES[surface](self, context, k * 4 + len(context.history) + 10, anchor)
        if category:
            items = self.catalog.get_many(list(candidates.scores))
            kept = {i for i, it in items.items() if it.category == category}
            candidates.scores = {i: s for i, s in candidates.scores.items() if i in kept}
        per_category = diversity if diversity is not None else max(2, math.ceil(k / 3))
        if category or surface in {"recently-viewed", "buy-again"}:
            per_category = k
        return self.apply_filters(candidates, context, k, surface, anchor, per_category)

    # -- filters ----------------------------------------------------------------------
    def apply_filters(
        self,
        candidates: _Candidates,
        context: Context,
        k: int,
        surface: str,
        anchor: Item | None,
        per_category: int,
    ) -> list[Recommendation]:
        ranked = candidates.ranked()
        bought = {item for item, _ in context.purchases}
        allowed: list[Item] = []
        # Read the catalog a batch at a time: the best candidates usually fill the k slots
        # (diversity included), and every catalog row read costs time on the hot path.
        batch = max(2 * k, 16)
        for start in range(0, len(ranked), batch):
            chunk = ranked[start : start + batch]
            items = self.catalog.get_many(chunk)
            for item_id in chunk:
                item = items.get(item_id)
                if item is not None and passes_filters(item, context, bought, anchor):
                    allowed.append(item)
            if len(_pick_diverse(allowed, k, per_category)[0]) == k:
                break
        chosen = diversify(allowed, k, per_category)
        return [
            Recommendation(
                item, candidates.scores[item.item_id], candidates.reason(item.item_id), surface
            )
            for item in chosen
        ]

    # -- helpers the surfaces share -----------------------------------------------------
    def names(self, item_ids: Sequence[str]) -> dict[str, str]:
        return {i: it.name for i, it in self.catalog.get_many(list(item_ids)).items()}

    def served(self) -> LoadedModel | None:
        return self.model.current


def passes_filters(item: Item, context: Context, bought: set[str], anchor: Item | None) -> bool:
    """The business rules every surface obeys."""
    if not item.in_stock or item.item_id in context.cart:
        return False
    if anchor is not None and item.item_id == anchor.item_id:
        return False
    if item.sensitive and "sensitive" not in context.consents:
        return False
    if item.age_restricted and not context.age_verified:
        return False
    return item.repeatable or item.item_id not in bought


def _pick_diverse(
    items: Sequence[Item], k: int, per_category: int
) -> tuple[list[Item], list[Item]]:
    """Best-first items with at most ``per_category`` per category, and those left over."""
    chosen: list[Item] = []
    overflow: list[Item] = []
    counts: Counter[str] = Counter()
    for item in items:
        if len(chosen) == k:
            break
        if item.category and counts[item.category] >= per_category:
            overflow.append(item)
            continue
        counts[item.category] += 1
        chosen.append(item)
    return chosen, overflow


def diversify(items: Sequence[Item], k: int, per_category: int) -> list[Item]:
    """Best-first items with at most ``per_category`` per category; fill up if short."""
    chosen, overflow = _pick_diverse(items, k, per_category)
    if len(chosen) < k:  # a small catalog: relevance beats diversity
        chosen.extend(overflow[: k - len(chosen)])
    return chosen


# -- surfaces ---------------------------------------------------------------------------
def _ago(now_ms: int, ts_ms: int) -> str:
    days = max(0, (now_ms - ts_ms) // DAY_MS)
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    return f"{days // 7} weeks ago"


def for_you(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    model = rec.served()
    history = ctx.history_items() if ctx.personal else []
    known = [i for i in history if model is not None and i in model.vocab]
    if model is None or not known:
        return trending(rec, ctx, n, anchor)
    out = _Candidates()
    if ctx.segment == "lapsed":  # welcome back with what they used to buy
        for item_id, score in _buy_again_scores(rec, ctx)[:3]:
            out.add(item_id, 1e6 + score, "welcome back: you used to buy this")
    scored = model.score([known], k=n)[0]
    explain = _explainer(model, ctx, rec)
    just_seen = set(known[-RECENT_EXCLUDED:])  # showing what they just scanned helps nobody
    for item_id, score in zip(scored.items, scored.scores, strict=True):
        if item_id not in just_seen:
            out.add(item_id, score, functools.partial(explain, item_id))
    return out


def _explainer(model: LoadedModel, ctx: Context, rec: Recommender) -> Callable[[str], str]:
    """ "because you scanned X": X is the history item closest to the suggestion."""
    recent = list(dict.fromkeys(reversed(ctx.history_items())))[:10]
    recent = [i for i in recent if i in model.vocab]
    verbs = {item: VERBS.get(kind, "viewed") for item, kind, _ in ctx.history}
    names = rec.names(recent)
    vectors = model.normalised_vectors()
    # The recent items' vectors, gathered once per request rather than once per shown item.
    rows = vectors[[model.vocab.index(i) for i in recent]] if vectors is not None else None

    def explain(item_id: str) -> str:
        anchor = recent[0]
        if vectors is not None and rows is not None and len(recent) > 1 and item_id in model.vocab:
            target = vectors[model.vocab.index(item_id)]
            anchor = recent[int(np.argmax(rows @ target))]
        return f"because you {verbs.get(anchor, 'viewed')} {names.get(anchor, anchor)}"

    return explain


def similar(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    assert anchor is not None
    out = _Candidates()
    model = rec.served()
    vectors = model.normalised_vectors() if model else None
    if model is not None and vectors is not None and anchor.item_id in model.vocab:
        sims = vectors @ vectors[model.vocab.index(anchor.item_id)]
        sims[0] = -np.inf
        top = np.argpartition(-sims, min(n, len(sims) - 1))[:n]
        for index in top[np.argsort(-sims[top])]:
            if index == 0:
                continue
            out.add(model.vocab.item(int(index)), float(sims[index]), f"similar to {anchor.name}")
    else:
        for other, lift, _ in _pairs(model, anchor.item_id)[:n]:
            out.add(other, lift, f"shoppers who look at {anchor.name} also pick this")
    return out


def _pairs(model: LoadedModel | None, item_id: str) -> list[tuple[str, float, int]]:
    if model is None:
        return []
    return list(model.side_tables.cooccurrence.get(item_id, []))


def complements(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    model = rec.served()
    sources = [anchor.item_id] if anchor else list(dict.fromkeys(reversed(ctx.history_items())))[:5]
    names = rec.names(sources)
    out = _Candidates()
    for source in sources:
        for other, lift, count in _pairs(model, source)[:n]:
            out.add(
                other, lift * math.log1p(count), f"often bought with {names.get(source, source)}"
            )
    return out


def checkout(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    model = rec.served()
    names = rec.names(sorted(ctx.cart))
    totals: dict[str, float] = {}
    reason: dict[str, str] = {}
    for source in sorted(ctx.cart):
        for other, lift, count in _pairs(model, source)[:n]:
            score = lift * math.log1p(count)
            totals[other] = totals.get(other, 0.0) + score
            if score >= max(totals[other] - score, 0.0):
                reason[other] = f"goes with the {names.get(source, source)} in your cart"
    out = _Candidates()
    for other in sorted(totals, key=lambda i: -totals[i]):
        out.add(other, totals[other], reason[other])
    if not out.scores:
        return best_sellers(rec, ctx, n, anchor)
    return out


def _buy_again_scores(rec: Recommender, ctx: Context) -> list[tuple[str, float]]:
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


def buy_again(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    out = _Candidates()
    if not ctx.personal:
        return out
    model = rec.served()
    repeat = model.side_tables.repeat_days if model else {}
    last = {item_id: ts for item_id, ts in sorted(ctx.purchases, key=lambda p: p[1])}
    for item_id, score in _buy_again_scores(rec, ctx)[:n]:
        cycle = repeat.get(item_id)
        when = _ago(ctx.now_ms, last[item_id])
        reason = f"you bought this {when}"
        if cycle:
            reason += f"; you usually buy it every {round(float(cycle))} days"
        out.add(item_id, score, reason)
    return out


def recently_viewed(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    out = _Candidates()
    if not ctx.personal:
        return out
    for item_id, kind, ts in reversed(ctx.history):
        if kind in {"view", "scan"}:
            out.add(item_id, float(ts), f"you {VERBS[kind]} this {_ago(ctx.now_ms, ts)}")
    return out


def trending(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    """This store's recent events (decayed by age), then the fleet's, then the bundle's prior."""
    since = ctx.now_ms - TRENDING_WINDOW_DAYS * DAY_MS
    rows = rec.store.query(
        "SELECT item_id, type, ts_ms FROM events WHERE ts_ms >= ? AND item_id IS NOT NULL "
        "AND type IN ('purchase', 'cart_add', 'scan', 'view') AND (? = '' OR store_id = ?)",
        [since, ctx.store_id, ctx.store_id],
    )
    local: Counter[str] = Counter()
    for row in rows:
        age_days = (ctx.now_ms - row["ts_ms"]) / DAY_MS
        local[row["item_id"]] += POPULARITY_WEIGHTS[row["type"]] * 0.5 ** (age_days / 2)
    out = _Candidates()
    for item_id, score in local.most_common(n):
        out.add(item_id, 1000.0 + score, "trending in this store this week")
    # Fleet tables synced down from upstream (shelfwise.sync.upload.pull_fleet): below this store's
    # own signal, above the bundle's prior.
    fleet = rec.store.query(
        "SELECT item_id, score FROM fleet_trending ORDER BY score DESC, item_id LIMIT ?", [n]
    )
    top = max((row["score"] for row in fleet), default=0.0) or 1.0
    for row in fleet:
        out.add(row["item_id"], 500.0 + row["score"] / top, "trending in stores near you")
    hour = hour_bucket(ctx.now_ms, ctx.utc_offset_minutes)
    for item_id, share in _popular(rec.served(), f"hour:{hour:02d}", n):
        out.add(item_id, share, f"popular in this store in the {daypart(hour)}")
    return out if out.scores else best_sellers(rec, ctx, n, anchor)


def _popular(model: LoadedModel | None, scope: str, n: int) -> list[tuple[str, float]]:
    if model is None:
        return []
    table = model.side_tables.popularity.get(scope, {})
    total = sum(table.values()) or 1.0
    ranked = sorted(table.items(), key=lambda pair: -pair[1])[:n]
    return [(item_id, count / total) for item_id, count in ranked]


def best_sellers(rec: Recommender, ctx: Context, n: int, anchor: Item | None) -> _Candidates:
    out = _Candidates()
    scope = f"category:{anchor.category}" if anchor and anchor.category else "all"
    label = (
        f"a best seller in {anchor.category}" if scope != "all" and anchor else "a best seller here"
    )
    for item_id, share in _popular(rec.served(), scope, n):
        out.add(item_id, share, label)
    if not out.scores:  # no bundle: count this store's purchases
        for row in rec.store.query(
            "SELECT item_id, sum(quantity) AS n FROM events WHERE type = 'purchase' "
            "GROUP BY item_id ORDER BY n DESC LIMIT ?",
            [n],
        ):
            out.add(row["item_id"], float(row["n"]), "a best seller here")
    return out


SURFACES: dict[str, SurfaceFn] = {
    "for-you": for_you,
    "similar": similar,
    "complements": complements,
    "buy-again": buy_again,
    "recently-viewed": recently_viewed,
    "trending": trending,
    "best-sellers": best_sellers,
    "checkout": checkout,
}
ANCHORED = frozenset({"similar"})


def rerank_search(
    rec: Recommender,
    ctx: Context,
    results: Sequence[Item],
    relevance: Sequence[float] | None = None,
) -> list[Item]:
    """Search results re-ordered by the shopper's taste, text relevance kept as the base.

    ``relevance`` is each result's text score (higher is better, e.g. negated BM25); without
    it the rank stands in. Scores are scaled so the best text match is 1.0, and each result
    gains ``SEARCH_TASTE_WEIGHT`` x its cosine similarity to the shopper's taste (the mean of
    their recent items' vectors): equally relevant results follow taste, a much weaker text
    match does not jump ahead. Without consent, history or vectors the text order stands.
    """
    model = rec.served()
    vectors = model.normalised_vectors() if model else None
    history = [i for i in ctx.history_items() if model is not None and i in model.vocab]
    if not ctx.personal or model is None or vectors is None or not history or len(results) < 2:
        return list(results)
    taste = vectors[[model.vocab.index(i) for i in history[-20:]]].mean(axis=0)
    taste = taste / max(float(np.linalg.norm(taste)), 1e-12)
    text = (
        list(relevance) if relevance is not None else [1.0 / (1 + r) for r in range(len(results))]
    )
    best = max(text) if text and max(text) > 0 else 1.0
    scored = []
    for rank, item in enumerate(results):
        personal = (
            float(vectors[model.vocab.index(item.item_id)] @ taste)
            if item.item_id in model.vocab
            else 0.0
        )
        scored.append((text[rank] / best + SEARCH_TASTE_WEIGHT * personal, rank, item))
    return [item for _, _, item in sorted(scored, key=lambda t: (-t[0], t[1]))]


__all__ = ["SURFACES", "Context", "Recommendation", "Recommender", "rerank_search"]
