"""Personal re-ranking of full-text search results.

Example:
    >>> from shelfwise.catalog import Item
    >>> from shelfwise.recommend.context import Context
    >>> [i.item_id for i in rerank_search(None, Context(), [Item("a", "A"), Item("b", "B")])]
    ['a', 'b']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..catalog import Item
from ..model.runtime import LoadedModel
from .context import Context

# How far taste can move a search result: a full cosine match is worth half the best text score.
SEARCH_TASTE_WEIGHT = 0.5


def rerank_search(
    model: LoadedModel | None,
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
