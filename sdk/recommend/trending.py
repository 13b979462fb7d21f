"""This store's trending items, kept current from what changed since the last request.

An item's trending score is ``sum(weight(type) * 0.5 ** (age / HALF_LIFE))`` over the store's
interest events of the last ``TRENDING_WINDOW_DAYS``. Reading the whole window on every request
took ~70 ms at 35k events a week (a busy kiosk), on the first screen of every new session.

The score factors as ``2 ** ((base - now) / HALF_LIFE) * S`` with
``S = sum(weight * 2 ** ((ts - base) / HALF_LIFE))``: the ranking needs only ``S``, which an
event adds to when it is recorded and takes from when it ages out of the window. So a request
reads the events recorded since the last one (by ``seq``, which only grows) and those that aged
out, not the week. A deleted or changed event (an erasure, the retention purge) moves the
store's event token (migration 004) and the next request reads the week again; so does a clock
that went back, and a base more than a window old (it bounds rounding drift).

Example:
    >>> import shelfwise
    >>> from shelfwise.clock import now_ms
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
    ...     _ = sw.start_session().track("purchase", "tea")
    ...     [item for item, _ in TrendingTallies(sw.store).top("", now_ms(), 5)]
    ['tea']
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field

from ..clock import DAY_MS
from ..store.connection import Store

TRENDING_WINDOW_DAYS = 7
HALF_LIFE_MS = 2 * DAY_MS
# How much each kind of event says about an item's popularity in this store.
POPULARITY_WEIGHTS = {"purchase": 3.0, "cart_add": 2.0, "scan": 1.0, "view": 0.5}
_WINDOW_MS = TRENDING_WINDOW_DAYS * DAY_MS


def _counted(type_column: str = "type") -> str:
    """The events trending counts, for ``store_id`` twice ('' = every store). ``+type`` keeps
    SQLite off the ``(type, ts_ms)`` index where the query reads by ``seq``."""
    kinds = ", ".join(f"'{kind}'" for kind in POPULARITY_WEIGHTS)
    return f"item_id IS NOT NULL AND {type_column} IN ({kinds}) AND (? = '' OR store_id = ?)"


# The events of a query, then one more row: the newest seq in the same snapshot (item NULL).
_WITH_NEWEST = " UNION ALL SELECT coalesce(max(seq), 0), NULL, NULL, NULL FROM events"


@dataclass
class _Tally:
    """One store's ``S`` per item and what it has read."""

    token: int
    base_ms: int
    since_ms: int
    upto_seq: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    ranked: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    def count(self, item_id: str, kind: str, ts_ms: int, sign: int) -> None:
        share = POPULARITY_WEIGHTS[kind] * 2.0 ** ((ts_ms - self.base_ms) / HALF_LIFE_MS)
        left = self.counts.get(item_id, 0) + sign
        if left:
            self.counts[item_id] = left
            self.sums[item_id] = self.sums.get(item_id, 0.0) + sign * share
        else:  # the item's last event aged out: no rounding residue stays behind
            self.counts.pop(item_id, None)
            self.sums.pop(item_id, None)
        self.ranked.clear()

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` largest ``S``, ties by item id (the ranking is kept until a change)."""
        if n not in self.ranked:
            self.ranked[n] = heapq.nsmallest(
                n, self.sums.items(), key=lambda pair: (-pair[1], pair[0])
            )
        return self.ranked[n]


class TrendingTallies:
    """Per store id, the trending tallies of ``store``, brought up to date per request."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tallies: dict[str, _Tally] = {}
        self._lock = threading.Lock()

    def top(self, store_id: str, now: int, n: int) -> list[tuple[str, float]]:
        """The ``n`` most trending items of ``store_id`` ('' = every store) at ``now`` with
        their scores, best first (ties by item id)."""
        store, since = self._store, now - _WINDOW_MS
        if not store.reads_committed_only():  # what it sees may roll back: nothing is kept
            tally = self._read_window(store, store_id, since, token=0)
            best = tally.top(n)
        else:
            with self._lock:  # another request may be bringing the same tally up to date
                tally = self._current(store, store_id, since)
                best = tally.top(n)
        scale = 2.0 ** ((tally.base_ms - now) / HALF_LIFE_MS)
        return [(item_id, total * scale) for item_id, total in best]

    def _current(self, store: Store, store_id: str, since: int) -> _Tally:
        token = int(store.rows("SELECT token FROM event_changes")[0][0])  # read first
        tally = self._tallies.get(store_id)
        if (
            tally is None
            or tally.token != token
            or since < tally.since_ms
            or since - tally.base_ms > _WINDOW_MS
        ):
            tally = self._tallies[store_id] = self._read_window(store, store_id, since, token)
            return tally
        self._age_out(store, store_id, tally, since)  # every time: a request costs the same
        self._read_new(store, store_id, tally)
        return tally

    @staticmethod
    def _read_window(store: Store, store_id: str, since: int, token: int) -> _Tally:
        tally = _Tally(token=token, base_ms=since, since_ms=since)
        rows = store.rows(
            f"SELECT seq, item_id, type, ts_ms FROM events WHERE ts_ms >= ? AND {_counted()}"
            + _WITH_NEWEST,
            [since, store_id, store_id],
        )
        _take(tally, rows, since)
        return tally

    @staticmethod
    def _age_out(store: Store, store_id: str, tally: _Tally, since: int) -> None:
        """Take out what the window lost: every event read so far with a time before
        ``since`` and not before the last window's start was counted, the others were not."""
        for item_id, kind, ts_ms in store.rows(
            "SELECT item_id, type, ts_ms FROM events "
            f"WHERE ts_ms >= ? AND ts_ms < ? AND seq <= ? AND {_counted()}",
            [tally.since_ms, since, tally.upto_seq, store_id, store_id],
        ):
            tally.count(item_id, kind, ts_ms, -1)
        tally.since_ms = since

    @staticmethod
    def _read_new(store: Store, store_id: str, tally: _Tally) -> None:
        # Read by seq (the few events since), not by type (every event of a type).
        rows = store.rows(
            f"SELECT seq, item_id, type, ts_ms FROM events WHERE seq > ? AND {_counted('+type')}"
            + _WITH_NEWEST,
            [tally.upto_seq, store_id, store_id],
        )
        _take(tally, rows, tally.since_ms)


def _take(tally: _Tally, rows: list[tuple], since: int) -> None:
    """Count the rows' events inside the window; the marker row gives the newest seq read."""
    for seq, item_id, kind, ts_ms in rows:
        if item_id is None:
            tally.upto_seq = max(tally.upto_seq, int(seq))
        elif ts_ms >= since:
            tally.count(item_id, kind, ts_ms, +1)


__all__ = ["HALF_LIFE_MS", "POPULARITY_WEIGHTS", "TRENDING_WINDOW_DAYS", "TrendingTallies"]
