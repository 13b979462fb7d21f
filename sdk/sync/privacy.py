"""Private summaries: aggregate cells built from raw events (sent in ``protocol.Envelope``).

A summary is a list of *cells*, each ``[metric, store_id, bucket_ms, a, b, n, q]``:
``metric`` is an event type (``view``, ``scan``, ``scan_miss``, ``cart_add``, ``purchase``,
``offer_shown``, ``offer_rejected``, any new type) or a derived one (``pair`` for
co-purchases, ``segment`` for active members per segment, ``conversion`` for experiment
conversions); ``bucket_ms`` is the UTC hour for event cells and the UTC day for the
distinct-contributor metrics (segment, conversion, pair) and carried-over cells
(``<metric>_day_rest``), which are counted when a day closes; ``a``/``b`` are the
cell's dimensions (item id, offer id and reason, experiment and variant, ...; ``""`` when
unused; a recommender experiment's lists, clicks and conversions are counted per experiment
and arm); ``n`` counts events (baskets for pairs, members for segments) and ``q`` sums
quantities. Cells are keyed by store, day and hour, never by shopper: shopper ids are only
hashed in memory to count distinct contributors, and are never written or sent.

Privacy by default (``PrivacyPolicy``): a cell with fewer than ``k`` distinct contributors
(``k_pairs`` for pairs) is suppressed; optional integer (discrete Laplace) noise from OpenDP
is added to every released count, and the epsilon spent is recorded with the release.

Summaries are mergeable deltas: the totals upstream are the sum of every release.

Example:
    >>> rows = [
    ...     {"seq": i, "shopper_id": f"anon-{i}", "contributor": None, "type": "view",
    ...      "item_id": "milk", "quantity": 1, "store_id": "s1", "ts_ms": 1_700_000_000_000,
    ...      "payload": "{}", "counted": True, "segment": None}
    ...     for i in range(3)
    ... ]
    >>> release = aggregate(rows, PrivacyPolicy(k=2))
    >>> release.cells
    [['view', 's1', 1699999200000, 'milk', '', 3, 3]]
    >>> aggregate(rows, PrivacyPolicy(k=5)).suppressed
    1
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .._errors import InvalidInput
from ..clock import DAY_MS, HOUR_MS
from .protocol import Cell, rest_metric

# Payload keys that are low-cardinality labels, safe to use as cell dimensions (free text
# such as a search query never leaves the device).
DIMENSION_KEYS = (
    "surface",
    "offer_id",
    "experiment",
    "variant",
    "arm",
    "reason",
    "fence_id",
    "geofence_id",
)
# Event types that mark a shopper as exposed to an experiment arm.
EXPOSURE_TYPES = frozenset({"exposure", "experiment_exposure", "offer_shown"})
MAX_LABEL = 64

CellKey = tuple[str, str, int, str, str]


@dataclass(frozen=True)
class PrivacyPolicy:
    """How much a release may reveal.

    - ``k``: minimum distinct contributors for a cell to be released (default 15)
    - ``k_pairs``: the same for co-purchase pairs (default 25)
    - ``top_pairs``: at most this many pairs per release, the most frequent first
    - ``epsilon``: per-cell epsilon of integer noise on counts (None: no noise). OpenDP's
      discrete Laplace with scale 1/epsilon; each count changes by 1 per event.

    Example:
        >>> PrivacyPolicy().k
        15
    """

    k: int = 15
    k_pairs: int = 25
    top_pairs: int = 50
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.k < 1 or self.k_pairs < 1 or self.top_pairs < 0:
            raise InvalidInput("k and k_pairs must be at least 1, top_pairs at least 0")
        if self.epsilon is not None and not 0 < self.epsilon <= 100:
            raise InvalidInput("epsilon must be in (0, 100]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "k_pairs": self.k_pairs,
            "top_pairs": self.top_pairs,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyPolicy:
        """The policy a release recorded in its envelope (defaults for what it lacks)."""
        return cls(
            k=int(data.get("k", 15)),
            k_pairs=int(data.get("k_pairs", 25)),
            top_pairs=int(data.get("top_pairs", 50)),
            epsilon=data.get("epsilon") and float(data["epsilon"]),
        )

    def with_k(self, k: int | None) -> PrivacyPolicy:
        """This policy with ``k`` as both thresholds (itself when ``k`` is None).

        Example:
            >>> PrivacyPolicy(top_pairs=5).with_k(3)
            PrivacyPolicy(k=3, k_pairs=3, top_pairs=5, epsilon=None)
        """
        return self if k is None else replace(self, k=k, k_pairs=k)


@dataclass(frozen=True)
class Release:
    """What one summarising pass releases: the cells, and what it left out."""

    cells: list[Cell]
    events: int = 0  # events counted
    withheld: int = 0  # member events left out (no sync consent)
    suppressed: int = 0  # cells below the contributor threshold
    epsilon: float | None = None
    noise: Mapping[str, Any] = field(default_factory=dict)
    # seqs of counted events whose hourly event cell was suppressed: carried to their day
    carried: frozenset[int] = frozenset()


def _label(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text[:MAX_LABEL] if text else None


def dimensions(event_type: str, item_id: str | None, payload: Mapping[str, Any]) -> tuple[str, str]:
    """The cell dimensions of one event: the item, else known payload labels.

    Example:
        >>> dimensions("offer_rejected", None, {"offer_id": "o1", "reason": "expired"})
        ('o1', 'expired')
        >>> dimensions("search", None, {"query": "my name is Ann"})
        ('', '')
        >>> dimensions("recommendation_clicked", "tea", {"experiment": "e1", "arm": "popular"})
        ('e1', 'popular')
    """
    if event_type == "scan_miss":
        code = str(payload.get("code", ""))
        # Barcodes are numbers; anything else typed into the box is never sent as-is.
        return (code if code.isdigit() and len(code) <= 14 else "invalid", "")
    experiment, arm = _label(payload.get("experiment")), _label(payload.get("arm"))
    if experiment and arm:  # a recommender experiment's lists, clicks, conversions: per arm
        return (experiment, arm)
    labels = [_label(payload.get(key)) for key in DIMENSION_KEYS]
    present = [label for label in labels if label is not None]
    if item_id:
        return (item_id[:200], present[0] if present else "")
    present += ["", ""]
    return (present[0], present[1])


def _contributor(row: Mapping[str, Any], salt: bytes) -> bytes:
    """A salted in-memory hash of who produced an event; ended sessions keep their token."""
    if row.get("shopper_id"):
        ident = "s:" + str(row["shopper_id"])
    elif row.get("contributor") is not None:
        ident = f"t:{row['contributor']}"
    else:  # unknown (pre-sync data): all such events count as one contributor, conservatively
        ident = "u"
    return hashlib.blake2b(ident.encode(), key=salt, digest_size=12).digest()


def aggregate(rows: Iterable[Mapping[str, Any]], policy: PrivacyPolicy) -> Release:
    """Build the hourly event cells of one release from event rows (ordered by ``seq``).

    Each row carries the ``events`` columns plus ``counted`` (False: a member without the
    sync consent, left out entirely). Distinct-contributor metrics (segments, conversions,
    pairs) are not hourly: they are counted once per closed day (``aggregate_day``), so a
    member whose hour is split across two releases is never counted twice.
    """
    salt = os.urandom(16)  # per release: contributor hashes cannot be joined across releases
    counts: dict[CellKey, list[int]] = defaultdict(lambda: [0, 0])
    people: dict[CellKey, set[bytes]] = defaultdict(set)
    cell_events: dict[CellKey, list[int]] = defaultdict(list)  # event cell -> its seqs
    events = withheld = 0
    for row in rows:
        if not row["counted"]:
            withheld += 1
            continue
        events += 1
        payload = _payload(row)
        hour = row["ts_ms"] // HOUR_MS * HOUR_MS
        a, b = dimensions(row["type"], row["item_id"], payload)
        key: CellKey = (row["type"], str(row["store_id"] or ""), hour, a, b)
        counts[key][0] += 1
        counts[key][1] += int(row["quantity"] or 1)
        people[key].add(_contributor(row, salt))
        cell_events[key].append(int(row["seq"]))
    carried = frozenset(
        seq for key, seqs in cell_events.items() if len(people[key]) < policy.k for seq in seqs
    )
    return _release(counts, people, policy, events, withheld, carried)


def _payload(row: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = row["payload"]
    return json.loads(payload or "{}") if isinstance(payload, str) else payload


def _release(
    counts: Mapping[CellKey, list[int]],
    people: Mapping[CellKey, set[bytes]],
    policy: PrivacyPolicy,
    events: int,
    withheld: int,
    carried: frozenset[int] = frozenset(),
) -> Release:
    cells, suppressed = _suppress(counts, people, policy)
    noise: dict[str, Any] = {}
    if policy.epsilon is not None and cells:
        cells, noise = add_noise(cells, policy.epsilon)
    return Release(
        cells=cells,
        events=events,
        withheld=withheld,
        suppressed=suppressed,
        epsilon=noise.get("epsilon"),
        noise=noise,
        carried=carried,
    )


def aggregate_day(rows: Iterable[Mapping[str, Any]], policy: PrivacyPolicy) -> Release:
    """The cells of closing UTC days, from all of their event rows (by ``seq``); every
    count is per day (the day is part of each cell's key).

    One salted hash per shopper for the whole day, so every count here is of distinct
    contributors across the day, whatever releases its hours went into:

    - ``segment``: members active that day per segment (``row["segment"]``), each once;
    - ``conversion``: shoppers exposed to an experiment arm who then purchased that day;
    - ``pair``: baskets with both items (threshold ``k_pairs``, top ``top_pairs``);
    - ``<metric>_day_rest``: events whose hourly cell was suppressed (``row["carried"]``),
      per day and cell dimensions; disjoint from the released hourly cells, so together
      they never count an event twice.

    Every cell is released only with at least ``k`` distinct contributors (``k_pairs``
    for pairs), else it stays suppressed for good.

    Example:
        >>> rows = [
        ...     {"seq": h, "shopper_id": f"anon-{h}", "contributor": None, "type": "view",
        ...      "item_id": "milk", "quantity": 1, "store_id": "s1",
        ...      "ts_ms": 1_700_006_400_000 + h * HOUR_MS, "payload": "{}", "counted": True,
        ...      "segment": None, "carried": True}
        ...     for h in range(3)
        ... ]
        >>> aggregate_day(rows, PrivacyPolicy(k=3)).cells
        [['view_day_rest', 's1', 1700006400000, 'milk', '', 3, 3]]
    """
    salt = os.urandom(16)
    counts: dict[CellKey, list[int]] = defaultdict(lambda: [0, 0])
    people: dict[CellKey, set[bytes]] = defaultdict(set)
    baskets: dict[tuple[bytes, int, str], set[str]] = defaultdict(set)
    exposed: dict[tuple[bytes, int], set[tuple[str, str, str]]] = defaultdict(set)
    events = withheld = 0
    for row in rows:
        if not row["counted"]:
            withheld += bool(row["carried"])
            continue
        who = _contributor(row, salt)
        payload = _payload(row)
        store = str(row["store_id"] or "")
        day = row["ts_ms"] // DAY_MS * DAY_MS
        if row["carried"]:
            events += 1
            a, b = dimensions(row["type"], row["item_id"], payload)
            key: CellKey = (rest_metric(row["type"]), store, day, a, b)
            counts[key][0] += 1
            counts[key][1] += int(row["quantity"] or 1)
            people[key].add(who)
        if row["segment"]:
            people[("segment", store, day, str(row["segment"]), "")].add(who)
        experiment = _label(payload.get("experiment"))
        variant = _label(payload.get("variant") or payload.get("arm"))
        if row["type"] in EXPOSURE_TYPES and experiment and variant:
            exposed[(who, day)].add((experiment, variant, store))
        if row["type"] == "purchase":
            baskets[(who, row["ts_ms"], store)].add(str(row["item_id"]))
            for experiment, variant, at_store in exposed.get((who, day), ()):
                people[("conversion", at_store, day, experiment, variant)].add(who)
    for key, members in people.items():
        if key[0] in {"segment", "conversion"}:
            counts[key] = [len(members), 0]
    for (who, ts, store), items in baskets.items():
        for first, second in itertools.combinations(sorted(items), 2):
            pair: CellKey = ("pair", store, ts // DAY_MS * DAY_MS, first, second)
            counts[pair][0] += 1
            counts[pair][1] += 1
            people[pair].add(who)
    return _release(counts, people, policy, events, withheld)


def _suppress(
    counts: Mapping[CellKey, list[int]], people: Mapping[CellKey, set[bytes]], policy: PrivacyPolicy
) -> tuple[list[Cell], int]:
    cells: list[Cell] = []
    pairs: list[Cell] = []
    suppressed = 0
    for key in sorted(counts):
        n, q = counts[key]
        threshold = policy.k_pairs if key[0] == "pair" else policy.k
        if len(people.get(key, ())) < threshold:
            suppressed += 1
            continue
        (pairs if key[0] == "pair" else cells).append([*key, n, q])
    pairs.sort(key=lambda cell: (-cell[5], cell[:5]))
    suppressed += max(0, len(pairs) - policy.top_pairs)
    return sorted(cells + pairs[: policy.top_pairs], key=lambda c: c[:5]), suppressed


def add_noise(cells: list[Cell], epsilon: float) -> tuple[list[Cell], dict[str, Any]]:
    """Integer (discrete Laplace) noise on every count through OpenDP, clamped at 0;
    returns the noisy cells and the epsilon spent.

    Needs the ``privacy`` extra (``pip install 'shelfwise[privacy]'``).
    """
    try:
        import opendp.prelude as dp
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvalidInput(
            "differential-privacy noise needs the 'privacy' extra: pip install 'shelfwise[privacy]'"
        ) from exc
    dp.enable_features("contrib")
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=1.0 / epsilon
    )
    flat = [int(v) for cell in cells for v in (cell[5], cell[6])]
    noisy = measurement(flat)
    # Clamped at 0 (post-processing: no privacy cost): a count is never negative, and the
    # collector refuses negative cells from any device.
    out = [
        [*cell[:5], max(0, int(noisy[2 * i])), max(0, int(noisy[2 * i + 1]))]
        for i, cell in enumerate(cells)
    ]
    spent = float(measurement.map(1))
    return out, {"mechanism": "opendp.discrete_laplace", "scale": 1.0 / epsilon, "epsilon": spent}


__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "Cell",
    "PrivacyPolicy",
    "Release",
    "aggregate",
    "aggregate_day",
    "dimensions",
    "rest_metric",
]
