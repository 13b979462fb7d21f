"""Feature encoding shared by training and the runtime, so the two cannot drift.

Item ids map to model indices 1..N (0 is padding); a history is the most recent
``max_history`` known items, oldest first, left padded with 0.

Example:
    >>> vocab = Vocabulary(["milk", "bread", "eggs"])
    >>> encode_history(vocab, ["bread", "unknown", "eggs"], max_history=4).tolist()
    [0, 0, 2, 3]
    >>> vocab.item(3)
    'eggs'
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD = 0


class Vocabulary:
    """Item id <-> model index, with index 0 reserved for padding."""

    def __init__(self, items: Sequence[str]) -> None:
        self.items = list(items)
        self._index = {item: position + 1 for position, item in enumerate(self.items)}
        if len(self._index) != len(self.items):
            raise ValueError("vocabulary lists an item id twice")

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def index(self, item: str) -> int:
        """The model index of ``item``, or ``PAD`` (0) when the model does not know it."""
        return self._index.get(item, PAD)

    def indices(self, items: Sequence[str]) -> list[int]:
        """``index`` of each of ``items`` (``PAD`` for the ones the model does not know).

        Example:
            >>> Vocabulary(["milk", "bread"]).indices(["bread", "tea"])
            [2, 0]
        """
        get = self._index.get
        return [get(item, PAD) for item in items]

    def item(self, index: int) -> str:
        """The item id at model index ``index`` (1..N)."""
        if not 1 <= index <= len(self.items):
            raise IndexError(f"model index {index} is outside 1..{len(self.items)}")
        return self.items[index - 1]


def encode_history(vocab: Vocabulary, history: Iterable[str], max_history: int) -> np.ndarray:
    """The last ``max_history`` known items of ``history`` as int64, left padded with 0."""
    return encode_histories(vocab, [history], max_history)[0]


def encode_histories(
    vocab: Vocabulary, histories: Sequence[Iterable[str]], max_history: int
) -> np.ndarray:
    """A batch of histories as an int64 array ``[len(histories), max_history]``."""
    return pad_left(
        [[i for i in vocab.indices(list(history)) if i != PAD] for history in histories],
        max_history,
    )


def pad_left(rows: Sequence[Sequence[int]], max_history: int, *, trim: bool = False) -> np.ndarray:
    """Model-index lists as int64 ``[len(rows), max_history]``: the last ``max_history`` of
    each, left padded with ``PAD``. With ``trim``, only as many columns as the longest row
    fills (at least one): what a graph with a symbolic history length is fed.

    Example:
        >>> pad_left([[3, 4], [5]], 3).tolist(), pad_left([[3, 4], [5]], 3, trim=True).tolist()
        ([[0, 3, 4], [0, 0, 5]], [[3, 4], [0, 5]])
    """
    tails = [list(row)[-max_history:] for row in rows]
    width = max(1, max((len(tail) for tail in tails), default=0)) if trim else max_history
    if all(len(tail) == width for tail in tails):  # no padding: one conversion
        return np.array(tails, dtype=np.int64).reshape(len(tails), width)
    batch = np.zeros((len(tails), width), dtype=np.int64)
    for row, tail in enumerate(tails):
        if tail:
            batch[row, width - len(tail) :] = tail
    return batch


def hour_bucket(ts_ms: int, utc_offset_minutes: int = 0) -> int:
    """The local hour of day (0-23) of a UTC millisecond timestamp.

    Example:
        >>> hour_bucket(7 * 3_600_000)       # 07:00 UTC
        7
        >>> hour_bucket(7 * 3_600_000, 60)   # 08:00 at UTC+1
        8
    """
    return int(((ts_ms // 60_000 + utc_offset_minutes) // 60) % 24)


def daypart(hour: int) -> str:
    """A human name for an hour of day, for reasons like "popular this morning".

    Example:
        >>> daypart(8), daypart(13), daypart(19), daypart(2)
        ('morning', 'afternoon', 'evening', 'night')
    """
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def item_id_from_name(name: str) -> str:
    """The item id a product name gets when a data source has names but no ids.

    Training (the groceries readers) and the demo store builder both use this, so the model's
    vocabulary and the catalog agree.

    Example:
        >>> item_id_from_name("Whole milk")
        'whole-milk'
        >>> item_id_from_name("  UHT-milk / long life ")
        'uht-milk-long-life'
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot make an item id from {name!r}")
    return slug


# -- item side features --------------------------------------------------------------------
# An item's vector is its id embedding plus the sum of its feature embeddings (LightFM-style);
# an item the model never saw has every feature but the id, so it gets a vector at once. The
# functions below turn an item's fields into feature rows; training and the runtime both call
# them, so a bundle's feature table is always read the way it was trained.

FEATURE_ENCODING_VERSION = 1
MIN_TOKEN_LENGTH = 3
TOKEN_SEPARATOR = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ItemFeatures:
    """What the model may know about an item besides its id.

    ``attributes`` are free-form labels: a catalog item's tags, or a data set's attribute
    ids (``Beauty_item2attributes.json``).

    Example:
        >>> ItemFeatures.of_fields(name="Whole milk", category="dairy", tags="organic").attributes
        ('organic',)
    """

    name: str = ""
    brand: str = ""
    category: str = ""
    price: float | None = None
    attributes: tuple[str, ...] = ()

    @classmethod
    def of_fields(
        cls,
        *,
        name: str = "",
        brand: str = "",
        category: str = "",
        price: float | None = None,
        tags: str | Iterable[str] = (),
    ) -> ItemFeatures:
        """From catalog fields (a ``shelfwise.catalog.Item``'s, a catalog row's)."""
        values = [tags] if isinstance(tags, str) else list(tags)
        return cls(
            name=name or "",
            brand=brand or "",
            category=category or "",
            price=price,
            attributes=tuple(str(t) for t in values if str(t)),
        )

    @classmethod
    def of(cls, item: Any) -> ItemFeatures:
        """From any object with ``name``, ``brand``, ``category``, ``price`` and ``tags``
        (``shelfwise.catalog.Item``), without importing the catalog here."""
        return cls.of_fields(
            name=item.name, brand=item.brand, category=item.category, price=item.price,
            tags=item.tags,
        )  # fmt: skip


def _fold(text: str) -> str:
    """Lower case, accents dropped: "Nestlé" and "NESTLE" are one brand."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(ascii_text.lower().split())


def name_tokens(name: str) -> list[str]:
    """The words of a product name that carry meaning (3+ letters, not bare numbers).

    Example:
        >>> name_tokens("UHT-milk · Latte intero 1 L")
        ['uht', 'milk', 'latte', 'intero']
    """
    words = TOKEN_SEPARATOR.findall(_fold(name))
    return list(dict.fromkeys(w for w in words if len(w) >= MIN_TOKEN_LENGTH and not w.isdigit()))


def token_bucket(token: str, buckets: int) -> int:
    """A stable bucket (0..buckets-1) for a name token: the same on every machine and run
    (Python's own ``hash`` is salted per process)."""
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def price_band(price: float | None, edges: Sequence[float]) -> int | None:
    """The band of ``price`` between sorted ``edges`` (0..len(edges)); None without a price.

    Example:
        >>> price_band(1.5, [1.0, 2.0]), price_band(0.5, [1.0, 2.0]), price_band(None, [1.0])
        (1, 0, None)
    """
    if price is None or not edges:
        return None
    return bisect.bisect_right(list(edges), float(price))


def exact_features(item: ItemFeatures, price_edges: Sequence[float] = ()) -> list[str]:
    """The item's features that are looked up by name (everything but the name's words).

    Example:
        >>> exact_features(ItemFeatures(brand="Nestlé", category="Dairy", price=2.0,
        ...                             attributes=("17",)), [1.0, 3.0])
        ['category:dairy', 'brand:nestle', 'price:1', 'attr:17']
    """
    out = []
    if item.category.strip():
        out.append(f"category:{_fold(item.category)}")
    if item.brand.strip():
        out.append(f"brand:{_fold(item.brand)}")
    band = price_band(item.price, price_edges)
    if band is not None:
        out.append(f"price:{band}")
    out.extend(f"attr:{_fold(a)}" for a in item.attributes if a.strip())
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class FeatureEncoding:
    """Item features -> rows of the feature table (row 0 is "no feature").

    Rows ``1..len(vocabulary)`` are the exact features (category, brand, price band,
    attributes) the training catalog had; then ``token_buckets`` rows for hashed name words.
    A feature the training catalog never had is left out (it has no trained row).

    Example:
        >>> enc = FeatureEncoding.learn([ItemFeatures(category="dairy", name="Whole milk")],
        ...                             token_buckets=8)
        >>> enc.vocabulary, enc.size
        (('category:dairy',), 10)
        >>> enc.indices(ItemFeatures(category="dairy", brand="new brand", name="milk"))[0]
        1
    """

    vocabulary: tuple[str, ...] = ()
    token_buckets: int = 0
    price_edges: tuple[float, ...] = ()
    max_features: int = 32
    version: int = FEATURE_ENCODING_VERSION
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {name: row + 1 for row, name in enumerate(self.vocabulary)}
        if len(index) != len(self.vocabulary):
            raise ValueError("the feature vocabulary lists a feature twice")
        if list(self.price_edges) != sorted(self.price_edges):
            raise ValueError("price_edges must be sorted")
        if self.token_buckets < 0 or self.max_features < 1:
            raise ValueError("token_buckets must be >= 0 and max_features >= 1")
        object.__setattr__(self, "_index", index)

    @property
    def size(self) -> int:
        """Rows of the feature table, padding row 0 included."""
        return 1 + len(self.vocabulary) + self.token_buckets

    @classmethod
    def learn(
        cls,
        items: Iterable[ItemFeatures],
        *,
        token_buckets: int = 2048,
        price_bands: int = 8,
        max_features: int = 32,
    ) -> FeatureEncoding:
        """The encoding of a training catalog: its exact features (most common first), price
        band edges at its price quantiles, and name-word buckets when it has names."""
        items = list(items)
        prices = sorted(float(i.price) for i in items if i.price is not None)
        edges: tuple[float, ...] = ()
        if prices and price_bands > 1:
            cuts = np.quantile(prices, np.arange(1, price_bands) / price_bands)
            edges = tuple(sorted({round(float(c), 4) for c in cuts}))
        counts: dict[str, int] = {}
        for item in items:
            for name in exact_features(item, edges):
                counts[name] = counts.get(name, 0) + 1
        vocabulary = tuple(sorted(counts, key=lambda n: (-counts[n], n)))
        has_names = any(name_tokens(i.name) for i in items)
        return cls(
            vocabulary=vocabulary,
            token_buckets=token_buckets if has_names else 0,
            price_edges=edges,
            max_features=max_features,
        )

    def indices(self, item: ItemFeatures) -> list[int]:
        """The item's feature rows, exact features first, at most ``max_features``."""
        rows = [self._index[n] for n in exact_features(item, self.price_edges) if n in self._index]
        if self.token_buckets:
            offset = 1 + len(self.vocabulary)
            rows.extend(
                offset + token_bucket(t, self.token_buckets) for t in name_tokens(item.name)
            )
        return list(dict.fromkeys(rows))[: self.max_features]

    def encode(self, items: Sequence[ItemFeatures], width: int | None = None) -> np.ndarray:
        """Feature rows of many items, int64 ``[len(items), width]``, right padded with 0."""
        rows = [self.indices(item) for item in items]
        width = width or max([len(r) for r in rows] + [1])
        out = np.zeros((len(rows), width), dtype=np.int64)
        for row, found in enumerate(rows):
            out[row, : min(len(found), width)] = found[:width]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the bundle manifest's ``features``)."""
        return {
            "version": self.version,
            "vocabulary": list(self.vocabulary),
            "token_buckets": self.token_buckets,
            "price_edges": list(self.price_edges),
            "max_features": self.max_features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoding:
        """Parse ``to_dict``'s output; ``ValueError`` says what is malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("features must be an object")
        if data.get("version") != FEATURE_ENCODING_VERSION:
            raise ValueError(
                f"feature encoding version {data.get('version')!r} is not supported "
                f"(this runtime reads version {FEATURE_ENCODING_VERSION})"
            )
        vocabulary = data.get("vocabulary", [])
        edges = data.get("price_edges", [])
        buckets, most = data.get("token_buckets", 0), data.get("max_features", 32)
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            raise ValueError("features.vocabulary must be a list of feature names")
        if not isinstance(edges, list) or not all(
            isinstance(e, int | float) and not isinstance(e, bool) for e in edges
        ):
            raise ValueError("features.price_edges must be a list of numbers")
        for name, value in (("token_buckets", buckets), ("max_features", most)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 20:
                raise ValueError(f"features.{name} must be a small non-negative integer")
        return cls(
            vocabulary=tuple(vocabulary),
            token_buckets=buckets,
            price_edges=tuple(float(e) for e in edges),
            max_features=most,
        )
