"""The training loop: read data, split, train with early stopping, save a run folder.

A run folder holds everything export and evaluate need, so neither re-reads the data::

    config.json          TrainConfig and ModelConfig; the input files' names and sha256
    items.json           the item vocabulary (model index = position + 1)
    features.json        the item feature encoding (with side features only)
    new_items.json       the cold-start protocol's new items (with --cold-start only)
    model.pt             the best weights (by validation NDCG@10)
    checkpoint.pt        the latest epoch, for --resume
    run.json             data fingerprint and counts, protocol, validation metrics per epoch
    validation.npz       the validation cases (export measures parity and int8 drop on them)
    side_tables.msgpack  co-occurrence, popularity, repeat intervals for the runtime
    validation.png       the validation metric per epoch

Scales out with ``torchrun --nproc_per_node 2 -m shelfwise.training.train ...``: each process
takes half of every batch (DistributedDataParallel, gloo on CPU), the gradient equals the
single-process one, and rank 0 evaluates and writes the run folder.

Example:
    >>> config = TrainConfig(data="Beauty.txt", out="runs/beauty")
    >>> config.epochs, config.dim, config.max_len
    (80, 64, 50)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from shelfwise import InvalidRun, InvalidTrainConfig, InvalidTrainingData
from shelfwise.model.encoding import (
    FeatureEncoding,
    ItemFeatures,
    Vocabulary,
    encode_histories,
)

from . import side_tables as side_tables_module
from .config import TrainConfig
from .data import (
    ColumnMapping,
    EventLog,
    Split,
    describe,
    hold_out_items,
    make_split,
    merge_features,
    read_catalog_features,
    read_events,
    read_item_features,
)
from .evaluate import Scorer, evaluate
from .model import NEG, ModelConfig, SeqRec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports."""

    out: Path
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    seconds: float


def training_arrays(sequences: list[list[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets, left padded to ``max_len`` (last ``max_len`` steps).

    Example:
        >>> x, y = training_arrays([[5, 6, 7]], max_len=4)
        >>> x.tolist(), y.tolist()
        ([[0, 0, 5, 6]], [[0, 0, 6, 7]])
    """
    usable = [s for s in sequences if len(s) >= 2]
    inputs = np.zeros((len(usable), max_len), dtype=np.int64)
    targets = np.zeros((len(usable), max_len), dtype=np.int64)
    for row, seq in enumerate(usable):
        x, y = seq[:-1][-max_len:], seq[1:][-max_len:]
        inputs[row, max_len - len(x) :] = x
        targets[row, max_len - len(y) :] = y
    return inputs, targets


def model_scorer(model: SeqRec, vocab: Vocabulary, max_len: int) -> Scorer:
    """A ``Scorer`` (histories of model indices -> numpy scores) over a trained model."""
    items = vocab.items

    def score(histories: list[list[int]]) -> np.ndarray:
        batch = encode_histories(vocab, [[items[i - 1] for i in h] for h in histories], max_len)
        with torch.no_grad():
            return model.score(torch.from_numpy(batch)).numpy()

    return score


def item_feature_map(config: TrainConfig, vocab: Vocabulary) -> dict[int, ItemFeatures]:
    """Side features of the vocabulary's items from ``--catalog`` and ``--item-features``."""
    sources = []
    if config.catalog:
        sources.append(read_catalog_features(config.catalog, vocab))
    if config.item_features:
        sources.append(read_item_features(config.item_features, vocab))
    return merge_features(*sources)


def feature_table(
    config: TrainConfig, vocab: Vocabulary, new_items: list[int]
) -> tuple[FeatureEncoding, torch.Tensor] | None:
    """The feature encoding learned from the items that train (never the new ones) and every
    item's feature rows [N+1, F]; None without side features."""
    by_item = item_feature_map(config, vocab)
    if not by_item:
        return None
    new = set(new_items)
    encoding = FeatureEncoding.learn(
        (f for i, f in by_item.items() if i not in new),
        token_buckets=config.token_buckets,
        price_bands=config.price_bands,
    )
    empty = ItemFeatures()
    rows = encoding.encode([empty] + [by_item.get(i, empty) for i in range(1, len(vocab) + 1)])
    return encoding, torch.from_numpy(rows)


def read_config_log(config: TrainConfig) -> EventLog:
    """Read the data a config names."""
    return read_events(
        config.data,
        config.format,
        columns=ColumnMapping.parse(config.columns) if config.columns else None,
        on_error="skip" if config.skip_bad_rows else "raise",
    )


def read_config_categories(config: TrainConfig) -> dict[str, str]:
    """The ``{item: category}`` file a config names (empty without one)."""
    return side_tables_module.load_categories(config.categories) if config.categories else {}


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build_model(
    config: TrainConfig, vocab: Vocabulary, new_items: list[int] | None = None
) -> tuple[SeqRec, FeatureEncoding | None]:
    """The network for this config, with the feature table when the data has side features."""
    features = feature_table(config, vocab, new_items or [])
    model_config = ModelConfig(
        num_items=len(vocab),
        max_len=config.max_len,
        dim=config.dim,
        heads=config.heads,
        layers=config.layers,
        dropout=config.dropout,
        num_features=features[0].size if features else 0,
        id_dropout=config.id_dropout if features else 0.0,
    )
    new = torch.tensor(new_items, dtype=torch.long) if new_items else None
    model = SeqRec(model_config, features[1] if features else None, new)
    return model, features[0] if features else None


def train(config: TrainConfig) -> TrainResult:
    """Train, early-stop on validation NDCG@10, and write the run folder (see module doc)."""
    started = time.monotonic()
    rank, world = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    elif world > 1:
        torch.set_num_threads(1)
    # Every input is read and checked before the run folder exists: bad input writes nothing.
    log = read_config_log(config)
    categories = read_config_categories(config)
    vocab = log.vocabulary()
    split = make_split(log, vocab)
    if config.cold_start:
        split = hold_out_items(split, len(vocab), config.cold_start, config.seed)
    torch.manual_seed(config.seed)
    model, encoding = build_model(config, vocab, split.new_items)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    inputs, targets = training_arrays(
        split.train_for_test if config.refit else split.train, config.max_len
    )
    if len(inputs) == 0 or len(split.valid) == 0:
        raise InvalidTrainingData(
            f"{config.data}: not enough data to train and validate", path=config.data
        )
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    history: list[dict[str, Any]] = []
    best_valid: dict[str, float] = {}
    best_epoch = 0
    start_epoch = 1
    checkpoint_path = out / "checkpoint.pt"
    if config.resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        history, best_valid, best_epoch = state["history"], state["best_valid"], state["best_epoch"]
        start_epoch = state["epoch"] + 1
        logger.info("resumed %s at epoch %d", out, start_epoch)
    if rank == 0:
        _write_static(out, config, model, log, vocab, split, encoding, categories)

    net: torch.nn.Module = DistributedDataParallel(model) if world > 1 else model
    # Padding and the new items (cold-start protocol: they did not exist when the model
    # trained) are never a target. A bias, not an in-place mask: no copy of the logits.
    blocked = torch.zeros(len(vocab) + 1)
    blocked[[0, *split.new_items]] = NEG
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        if best_epoch and epoch - best_epoch > config.patience:
            break
        loss = _train_epoch(net, optimizer, inputs, targets, blocked, config, epoch, rank, world)
        if epoch % config.eval_every and not config.refit:
            continue
        record: dict[str, Any] = {"epoch": epoch, "loss": loss}
        if rank == 0 and config.refit:  # validation trains here: the last epoch is the model
            best_epoch = epoch
            torch.save(model.state_dict(), out / "model.pt")
            logger.info(
                "epoch %d loss %.4f (refit: no validation) %.0f s",
                epoch, loss, time.monotonic() - started,
            )  # fmt: skip
        elif rank == 0:
            model.eval()
            valid = evaluate(
                model_scorer(model, vocab, config.max_len),
                split.valid,
                mask_seen=split.mask_seen,
                progress=config.progress,
                desc=f"validate {epoch}",
            ).metrics
            record["valid"] = valid
            if not best_valid or valid["ndcg@10"] > best_valid["ndcg@10"]:
                best_valid, best_epoch = valid, epoch
                torch.save(model.state_dict(), out / "model.pt")
            logger.info(
                "epoch %d loss %.4f valid ndcg@10 %.4f hr@10 %.4f (best %.4f @ %d) %.0f s",
                epoch, loss, valid["ndcg@10"], valid["hr@10"], best_valid["ndcg@10"],
                best_epoch, time.monotonic() - started,
            )  # fmt: skip
        history.append(record)
        if world > 1:
            shared = [best_epoch, best_valid]
            dist.broadcast_object_list(shared, src=0)
            best_epoch, best_valid = int(shared[0]), dict(shared[1])  # type: ignore[call-overload]
        if rank == 0:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "epoch": epoch,
                    "history": history,
                    "best_valid": best_valid,
                    "best_epoch": best_epoch,
                },
                checkpoint_path,
            )
            _write_report(out, config, log, split, history, best_epoch, best_valid, started)
    if rank == 0:
        plot_validation(history, out / "validation.png", title=Path(config.data).name)
    if world > 1:
        dist.barrier()
    return TrainResult(out, best_epoch, best_valid, epoch, time.monotonic() - started)


def _train_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: np.ndarray,
    targets: np.ndarray,
    blocked: torch.Tensor,  # a bias per item: NEG for items that are never a target
    config: TrainConfig,
    epoch: int,
    rank: int,
    world: int,
) -> float:
    """One pass over the training sequences; returns the mean cross-entropy per target."""
    net.train()
    # The order depends only on (seed, epoch): a resumed run sees the same batches.
    order = np.random.default_rng([config.seed, epoch]).permutation(len(inputs))
    total, count = 0.0, 0
    batches = range(0, len(order), config.batch_size)
    for start in tqdm(
        batches, desc=f"epoch {epoch}", disable=not config.progress or rank, leave=False
    ):
        chunk = order[start : start + config.batch_size]
        global_targets = int(np.count_nonzero(targets[chunk]))
        mine = chunk[rank::world]  # each process takes its share of the global batch
        x = torch.from_numpy(inputs[mine])
        y = torch.from_numpy(targets[mine])
        hidden, table = net(x)
        keep = y > 0
        logits = torch.addmm(blocked, hidden[keep], table.T)
        # sum / global count, times world because DDP averages gradients across processes:
        # the update equals the single-process one on the whole batch.
        loss_sum = F.cross_entropy(logits, y[keep], reduction="sum")
        loss = loss_sum * world / max(global_targets, 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss_sum.detach())
        count += int(keep.sum())
    return total / max(count, 1)


# The TrainConfig fields that name input files on the trainer's machine (``out`` is the run).
INPUT_FILES = ("data", "item_features", "catalog", "categories")


def file_fingerprint(path: str | Path) -> dict[str, str]:
    """A file as a published record may name it: its name and the sha256 of its bytes.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "categories.json").write_text("{}")
        >>> file_fingerprint(folder / "categories.json")["name"]
        'categories.json'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"name": Path(path).name, "sha256": digest.hexdigest()}


def public_config(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A run's ``config.json`` as a bundle may publish it: no path of the trainer's machine.

    Each input file becomes its name and sha256 (taken when the run was trained), and the
    run folder is left out. The run folder's own ``config.json`` keeps the real paths:
    ``--resume`` and ``evaluate`` on the trainer's machine need them.

    Example:
        >>> saved = {"train": {"data": "/home/ann/data/Beauty.txt", "out": "/home/ann/runs/b",
        ...                    "categories": "", "dim": 64}, "model": {"dim": 64}}
        >>> public_config(saved)["train"]
        {'data': {'name': 'Beauty.txt'}, 'categories': '', 'dim': 64}
    """
    inputs = saved.get("inputs", {})
    train = {}
    for key, value in saved["train"].items():
        if key == "out":
            continue
        if key in INPUT_FILES and value:
            value = inputs.get(key) or {"name": Path(value).name}
        train[key] = value
    return {"train": train, "model": dict(saved["model"])}


def _write_static(
    out: Path,
    config: TrainConfig,
    model: SeqRec,
    log: EventLog,
    vocab: Vocabulary,
    split: Split,
    encoding: FeatureEncoding | None,
    categories: dict[str, str],
) -> None:
    inputs = {
        key: file_fingerprint(getattr(config, key))
        for key in INPUT_FILES
        if getattr(config, key) and Path(getattr(config, key)).is_file()
    }
    (out / "config.json").write_text(
        json.dumps(
            {
                "train": dataclasses.asdict(config),
                "model": dataclasses.asdict(model.config),
                "inputs": inputs,
            },
            indent=1,
        )
    )
    (out / "items.json").write_text(json.dumps(vocab.items))
    if encoding is not None:
        (out / "features.json").write_text(json.dumps(encoding.to_dict()))
    if split.new_items:
        (out / "new_items.json").write_text(json.dumps([vocab.item(i) for i in split.new_items]))
    split.valid.to_npz(out / "validation.npz")
    tables = side_tables_module.compute(log, categories=categories)
    (out / "side_tables.msgpack").write_bytes(tables.to_msgpack())


def _write_report(
    out: Path,
    config: TrainConfig,
    log: EventLog,
    split: Split,
    history: list[dict[str, Any]],
    best_epoch: int,
    best_valid: dict[str, float],
    started: float,
) -> None:
    report = {
        "data": describe(log),
        "protocol": split.protocol,
        "mask_seen": split.mask_seen,
        "train_sequences": len(split.train),
        "valid_cases": len(split.valid),
        "new_items": len(split.new_items),
        "test_cases": len(split.test),
        "best_epoch": best_epoch,
        "best_valid": best_valid,
        "refit": config.refit,
        "history": history,
        "seconds": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    (out / "run.json").write_text(json.dumps(report, indent=1))


def plot_validation(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """A PNG of validation NDCG@10 and HR@10 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(h["epoch"], h["valid"]) for h in history if "valid" in h]
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [e for e, _ in points]
    for metric in ("ndcg@10", "hr@10"):
        ax.plot(epochs, [v[metric] for _, v in points], marker=".", label=f"validation {metric}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("full-ranking metric")
    ax.set_title(f"shelfwise training: {title}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_file(run_dir: str | Path, name: str) -> Path:
    """``run_dir/name``; ``InvalidRun`` when the folder lacks a file every finished run has."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InvalidRun(f"{run}: no such run folder", path=str(run))
    path = run / name
    if not path.is_file():
        raise InvalidRun(f"{run} has no {name}: is it a finished training run?", path=str(run))
    return path


def read_run_json(run_dir: str | Path, name: str) -> Any:
    """A JSON file of a run folder (``config.json``, ``items.json``, ``run.json``)."""
    path = run_file(run_dir, name)
    try:
        return json.loads(path.read_text())
    except ValueError as exc:  # also a file that is not UTF-8
        raise InvalidRun(f"{path} is not valid JSON: {exc}", path=str(run_dir)) from exc


def load_run(run_dir: str | Path) -> tuple[SeqRec, Vocabulary, TrainConfig]:
    """The best model of a run folder, in eval mode, with its vocabulary and config.

    Raises ``InvalidRun`` when the folder is not a finished run this shelfwise can read.
    """
    run = Path(run_dir)
    weights = run_file(run, "model.pt")
    saved = read_run_json(run, "config.json")
    vocab = _run_vocabulary(run)
    try:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in saved["train"].items() if k in known})
        model_fields = dict(saved["model"])
    except (KeyError, TypeError, AttributeError, InvalidTrainConfig) as exc:
        raise InvalidRun(
            f"{run}/config.json is not a run's configuration: {exc}", path=str(run)
        ) from exc
    if model_fields.pop("num_attributes", 0):
        raise InvalidRun(
            f"{run} was trained by an older shelfwise (mean of attribute embeddings): "
            "train it again to use item features",
            path=str(run),
        )
    try:
        # torch.load fails in many ways (zip, pickle, struct errors) on a damaged file.
        state = torch.load(weights, weights_only=True)
        if not isinstance(state, dict):
            raise TypeError(f"expected a state dict, got {type(state).__name__}")
        model = SeqRec(ModelConfig(**model_fields), state.get("item_features"))
        state.setdefault("has_id", model.has_id)
        state.setdefault("item_features", model.item_features)
        model.load_state_dict(state)
    except Exception as exc:  # a damaged model.pt, or the files of two runs in one folder
        raise InvalidRun(
            f"{weights} does not load as this run's model: {exc}", path=str(run)
        ) from exc
    return model.eval(), vocab, config


def _run_vocabulary(run: Path) -> Vocabulary:
    items = read_run_json(run, "items.json")
    try:
        if not isinstance(items, list):
            raise TypeError("expected a JSON list of item ids")
        return Vocabulary([str(item) for item in items])
    except (TypeError, ValueError) as exc:
        raise InvalidRun(
            f"{run}/items.json is not a run's vocabulary: {exc}", path=str(run)
        ) from exc


def load_features(run_dir: str | Path) -> FeatureEncoding | None:
    """The run's item feature encoding (None when it trained without side features)."""
    path = Path(run_dir) / "features.json"
    return FeatureEncoding.from_dict(json.loads(path.read_text())) if path.is_file() else None


def load_new_items(run_dir: str | Path) -> list[str]:
    """The items a cold-start run held out as new (empty for an ordinary run)."""
    path = Path(run_dir) / "new_items.json"
    return list(json.loads(path.read_text())) if path.is_file() else []


def main(argv: list[str] | None = None) -> int:
    """``python -m shelfwise.training.train`` (what torchrun runs): same flags as ``train``."""
    from shelfwise.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
