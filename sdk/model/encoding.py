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

import re
import unicodedata
from collections.abc import Iterable, Sequence

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

    def item(self, index: int) -> str:
        """The item id at model index ``index`` (1..N)."""
        if not 1 <= index <= len(self.items):
            raise IndexError(f"model index {index} is outside 1..{len(self.items)}")
        return self.items[index - 1]


def encode_history(vocab: Vocabulary, history: Iterable[str], max_history: int) -> np.ndarray:
    """The last ``max_history`` known items of ``history`` as int64, left padded with 0."""
    indices = [i for i in (vocab.index(item) for item in history) if i != PAD][-max_history:]
    encoded = np.zeros(max_history, dtype=np.int64)
    if indices:
        encoded[-len(indices) :] = indices
    return encoded


def encode_histories(
    vocab: Vocabulary, histories: Sequence[Iterable[str]], max_history: int
) -> np.ndarray:
    """A batch of histories as an int64 array ``[len(histories), max_history]``."""
    batch = np.zeros((len(histories), max_history), dtype=np.int64)
    for row, history in enumerate(histories):
        batch[row] = encode_history(vocab, history, max_history)
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
