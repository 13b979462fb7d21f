"""What a training run depends on: ``TrainConfig``, checked when it is made.

The flags of ``shelfwise train`` take their ranges from ``INTEGER_RANGES``, so the command
and the Python API refuse the same settings.

Example:
    >>> TrainConfig(data="Beauty.txt", out="runs/beauty").dim
    64
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from shelfwise import InvalidTrainConfig

# The integer settings and their inclusive ranges; ``shelfwise train`` offers the same ones.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),
    "max_len": (1, 10_000),
    "dim": (1, 4096),
    "heads": (1, 64),
    "layers": (1, 64),
    "token_buckets": (0, 1 << 20),
    "price_bands": (0, 1000),
    "batch_size": (1, 100_000),
    "epochs": (1, 100_000),
    "patience": (1, 100_000),
    "eval_every": (1, 100_000),
    "threads": (0, 1024),
}
# Chances and shares: 0 <= value < 1.
SHARES = ("dropout", "id_dropout", "cold_start")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved in the run folder.

    Out-of-range settings raise ``InvalidTrainConfig`` here, before any data is read.
    """

    data: str
    out: str
    format: str = "auto"
    columns: str = ""  # ColumnMapping.parse text for the "events" format
    item_features: str = ""  # JSON {item: [attributes]} or {item: "category"}
    catalog: str = ""  # catalog .jsonl/.csv: name, brand, category, price, tags as features
    categories: str = ""  # JSON {item: category} for the category popularity scopes
    skip_bad_rows: bool = False
    seed: int = 42
    max_len: int = 50
    dim: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.5
    id_dropout: float = 0.15  # DropoutNet: chance an item's id embedding sits out a step
    token_buckets: int = 2048  # hashed name-word rows in the feature table
    price_bands: int = 8
    cold_start: float = 0.0  # share of items held out entirely as new (the cold-start protocol)
    # Train on everything before the test item (validation targets too, as the count
    # baselines are fitted) for exactly `epochs` epochs, a count chosen on validation by an
    # earlier run: no validation, no early stopping.
    refit: bool = False
    batch_size: int = 128
    lr: float = 1.5e-3
    weight_decay: float = 0.0
    epochs: int = 80
    patience: int = 8  # epochs without a better validation NDCG@10 before stopping
    eval_every: int = 1
    threads: int = 0  # 0 = let torch decide (2 on this machine)
    progress: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        check_settings(self)


def check_settings(config: TrainConfig) -> None:
    """Raise ``InvalidTrainConfig`` naming the first setting a run cannot train with.

    Example:
        >>> TrainConfig(data="Beauty.txt", out="runs/b", dim=65, heads=2)
        Traceback (most recent call last):
        ...
        shelfwise.InvalidTrainConfig: dim 65 must be a multiple of heads 2
    """
    for name, (low, high) in INTEGER_RANGES.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidTrainConfig(
                f"{name} must be a whole number from {low} to {high}, not {value!r}", field=name
            )
    for name in SHARES:
        _check_float(name, getattr(config, name), "from 0 up to (not including) 1", _is_share)
    _check_float("lr", config.lr, "a positive number", lambda value: value > 0)
    _check_float("weight_decay", config.weight_decay, "zero or more", lambda value: value >= 0)
    if config.dim % config.heads:
        raise InvalidTrainConfig(
            f"dim {config.dim} must be a multiple of heads {config.heads}", field="dim"
        )


def _is_share(value: float) -> bool:
    return 0 <= value < 1


def _check_float(name: str, value: object, wanted: str, ok: Callable[[float], bool]) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not ok(value)
    ):
        raise InvalidTrainConfig(f"{name} must be {wanted}, not {value!r}", field=name)
