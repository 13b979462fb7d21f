"""Baselines evaluated in the same run and table as the model.

All share one shape (like ``implicit``): ``fit(sequences, num_items)`` on training sequences of
model indices, then ``score(histories) -> [batch, num_items + 1]`` numpy scores. Count-based
scorers break their many ties by popularity (a 1e-6 nudge), which makes them stronger than
raw counts under "ties count against the model".

Example:
    >>> pop = Popularity().fit([[1, 2, 2], [2, 3]], num_items=3)
    >>> pop.score([[1]]).argmax(axis=1).tolist()
    [2]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)
TIE_BREAK = 1e-6


def item_popularity(sequences: Sequence[Sequence[int]], num_items: int) -> np.ndarray:
    counts = np.bincount(
        np.fromiter((i for s in sequences for i in s), dtype=np.int64), minlength=num_items + 1
    ).astype(np.float64)
    counts[0] = 0.0
    return counts / max(counts.max(), 1.0)


class Popularity:
    """Most bought items overall."""

    name = "popularity"

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> Popularity:
        self.pop = item_popularity(sequences, num_items)
        return self

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return np.tile(self.pop, (len(histories), 1))


class _SparseRows:
    """Scores = sum over (weighted) history items of a sparse item x item matrix's rows."""

    matrix: sp.csr_matrix
    pop: np.ndarray

    def _weights(self, history: Sequence[int]) -> dict[int, float]:
        raise NotImplementedError

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        rows, cols, vals = [], [], []
        for row, history in enumerate(histories):
            for item, weight in self._weights(history).items():
                rows.append(row)
                cols.append(item)
                vals.append(weight)
        n = self.matrix.shape[0]
        users = sp.csr_matrix((vals, (rows, cols)), shape=(len(histories), n))
        scores = np.asarray((users @ self.matrix).todense(), dtype=np.float64)
        return scores + TIE_BREAK * self.pop


class Markov(_SparseRows):
    """First-order transitions: what followed the last item, counted over training sequences."""

    name = "markov (first-order transitions)"

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> Markov:
        src = [a for s in sequences for a in s[:-1]]
        dst = [b for s in sequences for b in s[1:]]
        n = num_items + 1
        self.matrix = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
        self.pop = item_popularity(sequences, num_items)
        return self

    def _weights(self, history: Sequence[int]) -> dict[int, float]:
        return {history[-1]: 1.0} if history else {}


class CoOccurrence(_SparseRows):
    """Item-to-item: items that appear in the same user's sequence, cosine-normalised,
    summed over the user's most recent items with recency weights."""

    name = "item-to-item co-occurrence"
    recent = 5

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> CoOccurrence:
        n = num_items + 1
        rows = [r for r, s in enumerate(sequences) for _ in s]
        cols = [i for s in sequences for i in s]
        users = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(sequences), n))
        users.data[:] = 1.0  # presence, not repeat counts
        co = (users.T @ users).tocsr().astype(np.float64)
        co.setdiag(0.0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(users.sum(axis=0)).ravel()) + 1e-9
        scale = sp.diags(1.0 / norms)
        self.matrix = (scale @ co @ scale).tocsr()
        self.pop = item_popularity(sequences, num_items)
        return self

    def _weights(self, history: Sequence[int]) -> dict[int, float]:
        weights: dict[int, float] = {}
        for age, item in enumerate(reversed(history)):
            if len(weights) >= self.recent:
                break
            weights.setdefault(item, 0.5**age)
        return weights


class EASE:
    """EASE (Steck 2019): a closed-form item-item linear model, a strong non-neural baseline.

    B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1, over user x item presence.
    """

    name = "EASE"

    def __init__(self, l2: float = 100.0) -> None:
        self.l2 = l2

    def fit(self, sequences: Sequence[Sequence[int]], num_items: int) -> EASE:
        import torch  # float32 inverse on all cores; numpy's float64 one is ~4x slower here

        n = num_items + 1
        rows = [r for r, s in enumerate(sequences) for _ in s]
        cols = [i for s in sequences for i in s]
        users = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(sequences), n))
        users.data[:] = 1.0
        gram = torch.from_numpy((users.T @ users).toarray().astype(np.float32))
        gram += self.l2 * torch.eye(n)
        p = torch.linalg.inv(gram)
        b = -p / torch.diagonal(p)
        b.fill_diagonal_(0.0)
        self.matrix = b.numpy()
        self.pop = item_popularity(sequences, num_items)
        return self

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        scores = np.zeros((len(histories), self.matrix.shape[0]), dtype=np.float64)
        for row, history in enumerate(histories):
            if history:
                scores[row] = self.matrix[np.unique(np.asarray(history))].sum(axis=0)
        return scores + TIE_BREAK * self.pop


def all_baselines(ease_l2: float = 100.0) -> list[Popularity | Markov | CoOccurrence | EASE]:
    """The baselines every evaluation reports."""
    return [Popularity(), CoOccurrence(), Markov(), EASE(ease_l2)]
