"""Side tables the runtime reads beside the model, computed from the same data.

- co-occurrence / frequently-bought-together: for each item, the items in the same baskets,
  ranked by lift = P(a and b) / (P(a) P(b)), pairs seen at least ``min_pairs`` times
- popularity: counts per scope: ``all``, ``store:<id>``, ``hour:HH`` (only when the data has a
  time of day), ``category:<name>`` (only when a category mapping is given)
- repeat intervals: median days between two purchases of an item by the same shopper
  (only when the data is dated)

A basket is the source's basket/transaction id, else one user's events on one day, else (an
undated sequence file) the user's whole sequence.

Example:
    >>> from shelfwise.training.data import Event, EventLog
    >>> events = [Event("m1", "milk", 0, "b1"), Event("m1", "bread", 0, "b1"),
    ...           Event("m2", "milk", 0, "b2"), Event("m2", "bread", 0, "b2"),
    ...           Event("m3", "eggs", 0, "b3")]
    >>> tables = compute(EventLog(events, "events", "-", "-"), min_pairs=2)
    >>> tables.cooccurrence["milk"]
    [('bread', 1.5, 2)]
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from itertools import combinations, pairwise
from pathlib import Path

from shelfwise import InvalidTrainingData
from shelfwise.model.bundle import SideTables

from .data import DAY_MS, EventLog

MAX_BASKET_FOR_PAIRS = 50  # a 200-item "basket" (a long sequence) would add 20k pairs of noise


def load_categories(path: str | Path) -> dict[str, str]:
    """``{item_id: category}`` from a JSON file (e.g. kiosk_demo/store/categories.json)."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:  # also a file that is not UTF-8
        raise InvalidTrainingData(f"{path}: not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise InvalidTrainingData(
            f"{path}: expected a JSON object item -> category", path=str(path)
        )
    return {str(k): str(v) for k, v in data.items() if v}


def baskets(log: EventLog) -> dict[str, set[str]]:
    """Basket id -> the distinct items in it."""
    out: dict[str, set[str]] = defaultdict(set)
    for event in log.events:
        if event.basket:
            key = event.basket
        elif event.ts_ms is not None:
            key = f"{event.user}/{event.ts_ms // DAY_MS}"
        else:
            key = event.user
        out[key].add(event.item)
    return dict(out)


def cooccurrence(
    log: EventLog, min_pairs: int = 3, top: int = 20
) -> dict[str, list[tuple[str, float, int]]]:
    """item -> [(other, lift, pair count)], best lift first, at most ``top`` per item."""
    groups = [sorted(b) for b in baskets(log).values() if 1 < len(b) <= MAX_BASKET_FOR_PAIRS]
    total = len(baskets(log))
    single = Counter(item for b in baskets(log).values() for item in b)
    pairs: Counter[tuple[str, str]] = Counter()
    for group in groups:
        pairs.update(combinations(group, 2))
    table: dict[str, list[tuple[str, float, int]]] = defaultdict(list)
    for (a, b), n in pairs.items():
        if n < min_pairs:
            continue
        lift = round(n * total / (single[a] * single[b]), 4)
        table[a].append((b, lift, n))
        table[b].append((a, lift, n))
    return {
        item: sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))[:top]
        for item, rows in sorted(table.items())
    }


def popularity(
    log: EventLog, categories: dict[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """scope -> {item: count}; hour and store scopes only when the data has them."""
    scopes: dict[str, Counter[str]] = defaultdict(Counter)
    for event in log.events:
        scopes["all"][event.item] += 1
        if event.store:
            scopes[f"store:{event.store}"][event.item] += 1
        if event.hour is not None:
            scopes[f"hour:{event.hour:02d}"][event.item] += 1
        if categories and event.item in categories:
            scopes[f"category:{categories[event.item]}"][event.item] += 1
    return {
        scope: {item: float(n) for item, n in counts.most_common()}
        for scope, counts in sorted(scopes.items())
    }


def repeat_days(log: EventLog, min_gaps: int = 5) -> dict[str, float]:
    """item -> median days between repeat purchases by the same shopper (dated data only)."""
    if not log.has_time:
        return {}
    days: dict[tuple[str, str], set[int]] = defaultdict(set)
    for event in log.events:
        days[(event.user, event.item)].add((event.ts_ms or 0) // DAY_MS)
    gaps: dict[str, list[int]] = defaultdict(list)
    for (_, item), seen in days.items():
        ordered = sorted(seen)
        gaps[item].extend(b - a for a, b in pairwise(ordered))
    return {
        item: float(statistics.median(values))
        for item, values in sorted(gaps.items())
        if len(values) >= min_gaps
    }


def compute(
    log: EventLog, *, categories: dict[str, str] | None = None, min_pairs: int = 3
) -> SideTables:
    """All side tables for a bundle."""
    return SideTables(
        cooccurrence=cooccurrence(log, min_pairs=min_pairs),
        popularity=popularity(log, categories),
        repeat_days=repeat_days(log),
    )
