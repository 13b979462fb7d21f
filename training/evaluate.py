"""Ranking metrics over the whole catalog (and the sampled protocol, for old papers only).

Full ranking: every item in the catalog is scored; the rank of a case is the number of
other items scoring at least as high as its best target (ties count AGAINST the model, so a
scorer that gives many items the same score gains nothing from the tie). Padding is never
ranked. With ``mask_seen`` the items already in the case's history (other than the targets)
are removed from the ranking before counting.

Example:
    >>> import numpy as np
    >>> scores = np.array([[0.0, 0.9, 0.5, 0.5, 0.1]])  # column 0 is padding
    >>> ranks = full_ranks(scores, histories=[[1]], targets=[[3]], mask_seen=True)
    >>> ranks.tolist()  # item 2 ties item 3 and counts against it; item 1 is masked
    [1]
    >>> metrics_from_ranks(ranks)["ndcg@10"]
    0.6309
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .data import EvalCases

METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr")
# Scores a batch of histories (model indices, oldest first) -> [batch, num_items + 1].
Scorer = Callable[[list[list[int]]], np.ndarray]

# Published full-ranking anchors on Beauty.txt (leave-one-out), for the printed table.
PUBLISHED_BEAUTY = {
    "SASRec (S3-Rec paper, BCE)": {"hr@10": 0.0605, "ndcg@10": 0.0318},
    "SASRec + cross-entropy (history 50)": {"ndcg@10": 0.033},
}


def full_ranks(
    scores: np.ndarray,
    histories: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    mask_seen: bool,
) -> np.ndarray:
    """0-based rank of each case's best target among non-target items (ties count against)."""
    scores = np.array(scores, dtype=np.float64)  # a copy we may mask
    scores[:, 0] = -np.inf
    ranks = np.empty(len(targets), dtype=np.int64)
    for row, (history, target) in enumerate(zip(histories, targets, strict=True)):
        line = scores[row]
        wanted = np.asarray(target, dtype=np.int64)
        if mask_seen:
            seen = np.setdiff1d(np.asarray(history, dtype=np.int64), wanted)
            line[seen] = -np.inf
        best = line[wanted].max()
        # items other than the targets scoring >= the best target
        ranks[row] = int(np.count_nonzero(line >= best)) - int(
            np.count_nonzero(line[wanted] >= best)
        )
    return ranks


def sampled_ranks(
    scores: np.ndarray,
    histories: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    rng: np.random.Generator,
    negatives: int = 100,
) -> np.ndarray:
    """Rank of the first target among ``negatives`` uniformly sampled unseen items.

    Only for comparing with papers that report it: it can reverse which model looks better.
    """
    num_items = scores.shape[1] - 1
    ranks = np.empty(len(targets), dtype=np.int64)
    for row, (history, target) in enumerate(zip(histories, targets, strict=True)):
        excluded = set(history) | set(target)
        picked: list[int] = []
        while len(picked) < negatives:
            draw = rng.integers(1, num_items + 1, size=negatives * 2)
            picked.extend(int(i) for i in draw if int(i) not in excluded)
        neg = np.asarray(picked[:negatives])
        ranks[row] = int(np.count_nonzero(scores[row, neg] >= scores[row, target[0]]))
    return ranks


def metrics_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    """HR@10/20, NDCG@10/20 and MRR (full, untruncated) from 0-based ranks, 4 decimals."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in (10, 20):
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    out["mrr"] = float((1.0 / (ranks + 1.0)).mean())
    return {k: round(out[k], 4) for k in METRICS}


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one scorer on one set of cases."""

    metrics: dict[str, float]
    ranks: np.ndarray


def evaluate(
    scorer: Scorer,
    cases: EvalCases,
    *,
    mask_seen: bool,
    batch_size: int = 512,
    sampled: bool = False,
    seed: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
) -> Evaluation:
    """Score every case in batches and compute the metrics.

    Example:
        >>> import numpy as np
        >>> from shelfwise.training.data import EvalCases
        >>> cases = EvalCases(["u"], [[1]], [[2]])
        >>> pop = lambda hs: np.tile([0.0, 3.0, 2.0, 1.0], (len(hs), 1))
        >>> evaluate(pop, cases, mask_seen=True, progress=False).metrics["hr@10"]
        1.0
    """
    rng = np.random.default_rng(seed)
    parts = []
    for start in tqdm(
        range(0, len(cases), batch_size), desc=desc, disable=not progress, leave=False
    ):
        histories = cases.histories[start : start + batch_size]
        targets = cases.targets[start : start + batch_size]
        scores = scorer(histories)
        if sampled:
            parts.append(sampled_ranks(scores, histories, targets, rng))
        else:
            parts.append(full_ranks(scores, histories, targets, mask_seen))
    ranks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return Evaluation(metrics=metrics_from_ranks(ranks), ranks=ranks)


def format_table(
    rows: dict[str, dict[str, float]],
    published: dict[str, dict[str, float]] | None = None,
    title: str = "",
) -> str:
    """A plain-text table: one row per model, the published anchors after a rule."""
    width = max([len(n) for n in [*rows, *(published or {})]] + [10])
    head = f"{'model':<{width}}  " + "  ".join(f"{m:>8}" for m in METRICS)
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for name, metrics in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{metrics[m]:8.4f}" for m in METRICS))
    if published:
        lines.append("-" * len(head) + "  published, same protocol:")
        for name, metrics in published.items():
            cells = [f"{metrics[m]:8.4f}" if m in metrics else f"{'-':>8}" for m in METRICS]
            lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
