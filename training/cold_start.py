"""The item cold-start protocol: can the model recommend an item it never saw bought?

A run trained with ``cold_start=0.1`` (``shelfwise train --cold-start 0.1``) held out a random
10% of the items entirely: none of their interactions trained it, and the histories it reads
leave them out (``hold_out_items``). The test cases whose target is one of those new items can
only be ranked from the item's features. They are ranked two ways, full ranking, seen items
masked, ties against the model:

- against **every item** (what a shopper's shelf is made of: known and new items compete);
- against **the new items only** (a "new in store for you" shelf).

In the same run, two baselines that need no interaction with the new item either:
popularity within the category the shopper shops (``CategoryPopularity``; on data without a
category, an item's most widespread attribute stands in) and content-only nearest neighbours
(``ContentKNN``: tf-idf cosine between the item's features and the shopper's recent items').

Example (needs a cold-start run)::

    results = evaluate_cold_start("runs/beauty-cold")
    results["metrics"]["all items"]["shelfwise SeqRec"]["ndcg@10"]
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from shelfwise import InvalidInput
from shelfwise.model.encoding import ItemFeatures, exact_features, name_tokens

from .baselines import TIE_BREAK, Popularity, item_popularity
from .data import EvalCases, hold_out_items, make_split
from .evaluate import Scorer, evaluate
from .train import (
    item_feature_map,
    load_new_items,
    load_run,
    model_scorer,
    public_config,
    read_config_log,
)

logger = logging.getLogger(__name__)
RECENT = 5  # history items the content baseline compares with (recency weighted)


def item_categories(features: Mapping[int, ItemFeatures], num_items: int) -> np.ndarray:
    """A category code per model index (0 = none): the catalog category, else the item's
    most widespread attribute (on Beauty the broad product type, not the brand).

    Example:
        >>> feats = {1: ItemFeatures(category="dairy"), 2: ItemFeatures(attributes=("a", "b")),
        ...          3: ItemFeatures(attributes=("b",))}
        >>> item_categories(feats, 3).tolist()
        [0, 1, 2, 2]
    """
    spread = Counter(a for f in features.values() for a in f.attributes)
    codes: dict[str, int] = {}
    out = np.zeros(num_items + 1, dtype=np.int64)
    for index in range(1, num_items + 1):
        found = features.get(index)
        if found is None:
            continue
        name = found.category and f"category:{found.category.casefold()}"
        if not name and found.attributes:
            name = "attr:" + max(found.attributes, key=lambda a: (spread[a], a))
        if name:
            out[index] = codes.setdefault(name, len(codes) + 1)
    return out


class CategoryPopularity:
    """Popularity within the categories the shopper shops: the share of their recent items
    in an item's category, ties broken by the item's own popularity (0 for a new item)."""

    name = "popularity within category"

    def __init__(self, categories: np.ndarray, recent: int = 10) -> None:
        self.categories = categories
        self.recent = recent

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> CategoryPopularity:
        self.pop = item_popularity(sequences, num_items)
        return self

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        width = int(self.categories.max()) + 1
        scores = np.empty((len(histories), len(self.categories)), dtype=np.float64)
        for row, history in enumerate(histories):
            share = np.zeros(width)
            for age, item in enumerate(reversed(history[-self.recent :])):
                share[self.categories[item]] += 0.8**age
            share[0] = 0.0  # "no category" is not a category the shopper likes
            scores[row] = share[self.categories] + TIE_BREAK * self.pop
        return scores


def content_matrix(features: Mapping[int, ItemFeatures], num_items: int) -> sp.csr_matrix:
    """Items x features, tf-idf weighted, unit rows: every exact feature and name word, as
    text (no hashing, no training: any item's features count, new ones included)."""
    columns: dict[str, int] = {}
    rows, cols = [], []
    for index, found in features.items():
        names = exact_features(found) + [f"token:{t}" for t in name_tokens(found.name)]
        for name in dict.fromkeys(names):
            rows.append(index)
            cols.append(columns.setdefault(name, len(columns)))
    matrix = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(num_items + 1, max(len(columns), 1))
    )
    document_frequency = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf = np.log((num_items + 1) / (1 + document_frequency)) + 1.0
    matrix = (matrix @ sp.diags(idf)).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix).tocsr()


class ContentKNN:
    """Content-only nearest neighbours: cosine between an item's features and the shopper's
    most recent items' features, recency weighted; ties broken by popularity."""

    name = "content nearest neighbours"

    def __init__(self, matrix: sp.csr_matrix, recent: int = RECENT) -> None:
        self.matrix = matrix
        self.recent = recent

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> ContentKNN:
        self.pop = item_popularity(sequences, num_items)
        return self

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        rows, cols, vals = [], [], []
        for row, history in enumerate(histories):
            weights: dict[int, float] = {}
            for age, item in enumerate(reversed(history)):
                if len(weights) >= self.recent:
                    break
                weights.setdefault(item, 0.5**age)
            for item, weight in weights.items():
                rows.append(row)
                cols.append(item)
                vals.append(weight)
        users = sp.csr_matrix((vals, (rows, cols)), shape=(len(histories), self.matrix.shape[0]))
        profile = users @ self.matrix  # [batch, features]
        scores = np.asarray((profile @ self.matrix.T).todense(), dtype=np.float64)
        return scores + TIE_BREAK * self.pop


def only(scorer: Scorer, allowed: np.ndarray) -> Scorer:
    """``scorer`` ranking only the ``allowed`` model indices (others score -inf)."""
    blocked = np.ones(len(allowed), dtype=bool)
    blocked[allowed > 0] = False

    def score(histories: list[list[int]]) -> np.ndarray:
        scores = np.array(scorer(histories), dtype=np.float64)
        scores[:, blocked] = -np.inf
        return scores

    return score


def subset(cases: EvalCases, keep: Sequence[bool]) -> EvalCases:
    """The cases where ``keep`` is true."""
    rows = [i for i, k in enumerate(keep) if k]
    return EvalCases(
        [cases.users[i] for i in rows],
        [cases.histories[i] for i in rows],
        [cases.targets[i] for i in rows],
    )


def evaluate_cold_start(
    run_dir: str | Path, *, split_name: str = "test", progress: bool = True
) -> dict[str, Any]:
    """The cold-start tables of a run trained with ``cold_start`` (JSON-ready).

    Raises ``InvalidInput`` for a run that held out no items.
    """
    run = Path(run_dir)
    model, vocab, config = load_run(run)
    saved_new = load_new_items(run)
    if not config.cold_start or not saved_new:
        raise InvalidInput(
            f"{run} held out no items: train it with --cold-start 0.1 (a share of items that "
            "no interaction trains) to evaluate cold start"
        )
    log = read_config_log(config)
    if log.vocabulary().items != vocab.items:
        raise InvalidInput(f"{config.data} has a different item vocabulary than {run}")
    split = hold_out_items(make_split(log, vocab), len(vocab), config.cold_start, config.seed)
    if [vocab.item(i) for i in split.new_items] != saved_new:
        raise InvalidInput(f"{run}: the held-out items do not match the data; train again")
    num_items = len(vocab)
    is_new = np.zeros(num_items + 1, dtype=np.int64)
    is_new[split.new_items] = 1
    source = split.test if split_name == "test" else split.valid
    fit_on = split.train_for_test if split_name == "test" else split.train
    cold = subset(source, [any(is_new[t] for t in targets) for targets in source.targets])
    warm = subset(source, [not any(is_new[t] for t in targets) for targets in source.targets])
    features = item_feature_map(config, vocab)
    if not features:
        raise InvalidInput(f"{run} trained without item features: nothing can rank a new item")
    ours = model_scorer(model, vocab, config.max_len)
    scorers: dict[str, Scorer] = {
        "shelfwise SeqRec (features)": ours,
        CategoryPopularity.name: CategoryPopularity(item_categories(features, num_items))
        .fit(fit_on, num_items)
        .score,
        ContentKNN.name: ContentKNN(content_matrix(features, num_items))
        .fit(fit_on, num_items)
        .score,
        Popularity.name: Popularity().fit(fit_on, num_items).score,
    }
    metrics: dict[str, dict[str, dict[str, float]]] = {"all items": {}, "new items only": {}}
    for name, scorer in scorers.items():
        for pool, wrapped in (("all items", scorer), ("new items only", only(scorer, is_new))):
            metrics[pool][name] = evaluate(
                wrapped, cold, mask_seen=split.mask_seen, progress=progress, desc=name[:20]
            ).metrics
    warm_metrics = evaluate(ours, warm, mask_seen=split.mask_seen, progress=progress).metrics
    return {
        "protocol": split.protocol + f" ({split_name} split: the {len(cold)} cases whose "
        f"target is a new item, of {len(source)})",
        "split": split_name,
        "new_items": len(split.new_items),
        "items": num_items,
        "cases": len(cold),
        "metrics": metrics,
        "warm_cases": {"cases": len(warm), "shelfwise SeqRec (features)": warm_metrics},
        "model": public_config(json.loads((run / "config.json").read_text())),
    }
