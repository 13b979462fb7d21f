"""``shelfwise train`` and ``shelfwise evaluate`` (click commands ``shelfwise.cli`` loads on use).

They mirror ``shelfwise.training.train.train(TrainConfig(...))`` and ``evaluate_run(...)``;
errors and exit codes are those of every ``shelfwise`` command (see ``shelfwise --help``).

Examples::

    shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
    shelfwise evaluate runs/beauty --data ../shared/data/amazon-beauty/Beauty.txt --output q.json
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from shelfwise import InvalidInput
from shelfwise.cli.output import emit, json_flag, json_option, show_log_lines
from shelfwise.cli.params import POSITIVE, FiniteFloat, Folder, InputFile

from .config import INTEGER_RANGES
from .data import FORMATS, make_split
from .evaluate import METRICS, PUBLISHED_BEAUTY, evaluate, format_table
from .train import TrainConfig, load_run, model_scorer, read_config_log, read_run_json, train

logger = logging.getLogger(__name__)
DEFAULTS = TrainConfig(data="", out="")


def _int(name: str, help_text: str) -> Any:
    return click.option(
        f"--{name.replace('_', '-')}",
        type=click.IntRange(*INTEGER_RANGES[name]),
        default=getattr(DEFAULTS, name),
        show_default=True,
        help=help_text,
    )


@click.command("train")
@click.option("--data", required=True, type=InputFile(), help="The transaction log file.")
@click.option("--out", required=True, help="Run folder to write.")
@click.option(
    "--format", "data_format", default="auto", show_default=True,
    type=click.Choice(["auto", *FORMATS]), help="How the data file is laid out.",
)  # fmt: skip
@click.option(
    "--columns",
    default="",
    help="For --format events: user=COL,item=COL[,timestamp=COL,basket=COL,event_type=COL,store=COL].",
)
@click.option(
    "--item-features", type=InputFile(), help="JSON {item: [attributes]} or {item: category}."
)
@click.option(
    "--catalog", type=InputFile(),
    help="Catalog .jsonl/.csv: name, brand, category, price, tags as item features.",
)  # fmt: skip
@click.option("--categories", type=InputFile(), help="JSON {item: category} for popularity.")
@click.option("--skip-bad-rows", is_flag=True, help="Skip and count malformed rows.")
@_int("seed", "Random seed.")
@_int("max_len", "History length the model sees.")
@_int("dim", "Embedding size (a multiple of --heads).")
@_int("heads", "Attention heads.")
@_int("layers", "Transformer blocks.")
@_int("batch_size", "Sequences per step.")
@_int("epochs", "At most this many epochs.")
@_int("patience", "Stop after this many epochs without a better validation NDCG@10.")
@_int("threads", "Torch threads (0: let torch decide).")
@click.option(
    "--dropout", type=FiniteFloat(min=0, max=1, max_open=True), default=DEFAULTS.dropout,
    show_default=True, help="Dropout rate.",
)  # fmt: skip
@click.option(
    "--id-dropout", type=FiniteFloat(min=0, max=1, max_open=True), default=DEFAULTS.id_dropout,
    show_default=True,
    help="Chance an item's id embedding sits out a step (with item features): the model "
    "learns to rank an item from its features alone.",
)  # fmt: skip
@click.option(
    "--cold-start", type=FiniteFloat(min=0, max=1, max_open=True), default=DEFAULTS.cold_start,
    show_default=True,
    help="Hold out this share of items entirely (no interaction of theirs trains), for "
    "`shelfwise evaluate --cold-start`.",
)  # fmt: skip
@click.option("--lr", type=POSITIVE, default=DEFAULTS.lr, show_default=True, help="Learning rate.")
@click.option(
    "--weight-decay", type=FiniteFloat(min=0), default=DEFAULTS.weight_decay,
    show_default=True, help="AdamW weight decay.",
)  # fmt: skip
@click.option(
    "--refit", is_flag=True,
    help="Train on everything before the test item (validation targets too) for exactly "
    "--epochs epochs, a count an earlier run chose on validation; no early stopping.",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="No tqdm bars.")
@click.option("--resume", is_flag=True, help="Continue from the run's checkpoint.pt.")
@json_option
def train_command(
    data: str,
    out: str,
    data_format: str,
    columns: str,
    item_features: str | None,
    catalog: str | None,
    categories: str | None,
    skip_bad_rows: bool,
    seed: int,
    max_len: int,
    dim: int,
    heads: int,
    layers: int,
    batch_size: int,
    epochs: int,
    patience: int,
    threads: int,
    dropout: float,
    id_dropout: float,
    cold_start: float,
    lr: float,
    weight_decay: float,
    refit: bool,
    no_progress: bool,
    resume: bool,
    as_json: bool,
) -> None:
    """Train the sequential recommender on a transaction log.

    Python: shelfwise.training.train.train(TrainConfig(...))

    Writes a run folder (model, vocabulary, side tables, validation curve) that
    `shelfwise export` turns into a bundle. For several processes:
    torchrun --nproc_per_node 2 -m shelfwise.training.train --data ... --out ...

    \b
    Examples:
      shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
      shelfwise train --data ../shared/data/groceries-dated/Groceries_dataset.csv \\
          --format groceries --out runs/groceries --epochs 60
      shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty-cold \\
          --item-features ../shared/data/amazon-beauty/Beauty_item2attributes.json --cold-start 0.1
    """
    if dim % heads:
        raise click.BadParameter(f"--dim {dim} must be a multiple of --heads {heads}")
    show_log_lines()
    config = TrainConfig(
        data=data,
        out=out,
        format=data_format,
        columns=columns,
        item_features=item_features or "",
        catalog=catalog or "",
        categories=categories or "",
        skip_bad_rows=skip_bad_rows,
        seed=seed,
        max_len=max_len,
        dim=dim,
        heads=heads,
        layers=layers,
        dropout=dropout,
        id_dropout=id_dropout,
        cold_start=cold_start,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        epochs=epochs,
        patience=patience,
        threads=threads,
        refit=refit,
        progress=not no_progress,
        resume=resume,
    )
    result = train(config)
    summary = {
        "out": str(result.out),
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 1),
    }
    emit(
        as_json,
        summary,
        lambda: (
            f"trained {result.out}: best epoch {result.best_epoch}, validation "
            + ", ".join(f"{k} {v:.4f}" for k, v in result.best_valid.items())
            + f" ({result.seconds:.0f} s)"
            if result.best_valid
            else f"trained {result.out} (refit): {result.epochs_run} epochs "
            f"({result.seconds:.0f} s)"
        ),
    )


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    *,
    split_name: str = "test",
    baselines: bool = True,
    sampled: bool = False,
    ease_l2: float = 100.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run and the baselines; returns the JSON-ready results.

    Example (needs a trained run)::

        results = evaluate_run("runs/beauty")
        results["metrics"]["shelfwise SeqRec"]["ndcg@10"]
    """
    from .baselines import all_baselines

    model, vocab, config = load_run(run_dir)
    if data:
        config = TrainConfig(**{**config.__dict__, "data": data})
    log = read_config_log(config)
    run_report = read_run_json(run_dir, "run.json")
    trained_on = run_report["data"]["fingerprint"]
    if log.fingerprint != trained_on:
        logger.warning("evaluating on different data than the run trained on")
    if log.vocabulary().items != vocab.items:
        raise InvalidInput(f"{config.data} has a different item vocabulary than {run_dir}")
    split = make_split(log, vocab)
    cases = split.test if split_name == "test" else split.valid
    fit_on = split.train_for_test if split_name == "test" else split.train
    scorers: dict[str, Any] = {"shelfwise SeqRec": model_scorer(model, vocab, config.max_len)}
    timings: dict[str, float] = {}
    if baselines:
        for baseline in all_baselines(ease_l2):
            started = time.monotonic()
            scorers[baseline.name] = baseline.fit(fit_on, len(vocab)).score
            timings[baseline.name] = round(time.monotonic() - started, 1)
    metrics: dict[str, dict[str, float]] = {}
    sampled_metrics: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        metrics[name] = evaluate(
            scorer, cases, mask_seen=split.mask_seen, progress=progress, desc=name[:20]
        ).metrics
        if sampled:
            sampled_metrics[name] = evaluate(
                scorer, cases, mask_seen=split.mask_seen, sampled=True, progress=progress
            ).metrics
    size_bytes = sum(p.numel() * 4 for p in model.parameters())
    beauty = Path(config.data).name == "Beauty.txt"
    results: dict[str, Any] = {
        "protocol": split.protocol + f" ({split_name} split, {len(cases)} cases)",
        "mask_seen": split.mask_seen,
        "split": split_name,
        "data": {"path": config.data, "fingerprint": log.fingerprint, "items": len(vocab)},
        "metrics": metrics,
        "model": {
            "run": str(run_dir),
            "parameters": sum(p.numel() for p in model.parameters()),
            "fp32_megabytes": round(size_bytes / 1e6, 2),
            "config": {k: v for k, v in config.__dict__.items() if k not in ("data", "out")},
            "best_epoch": run_report["best_epoch"],
        },
        "baseline_fit_seconds": timings,
        "published": PUBLISHED_BEAUTY if beauty else {},
    }
    if sampled:
        results["sampled_100_negatives"] = {
            "protocol": "target vs 100 uniformly sampled unseen items; for comparison with "
            "older papers only",
            "metrics": sampled_metrics,
        }
    return results


@click.command("evaluate")
@click.argument("run", type=Folder())
@click.option("--data", type=InputFile(), help="Data file (default: the one the run trained on).")
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the results here.")
@click.option(
    "--split", default="test", show_default=True, type=click.Choice(["test", "valid"]),
    help="Which held-out split.",
)  # fmt: skip
@click.option(
    "--ease-l2", type=POSITIVE, default=100.0, show_default=True,
    help="EASE L2 (100: best of 100/400 on Beauty validation).",
)  # fmt: skip
@click.option("--sampled", is_flag=True, help="Also the sampled-100-negatives protocol.")
@click.option(
    "--cold-start", is_flag=True,
    help="The cold-start tables of a run trained with --cold-start: the cases whose target "
    "is a new item, against popularity within category and content nearest neighbours.",
)  # fmt: skip
@click.option("--no-baselines", is_flag=True, help="Only the trained model.")
@click.option("--no-progress", is_flag=True, help="No tqdm bars.")
@json_flag(
    "Print the results as JSON on stdout instead of the tables "
    "(it used to take a file name: that is --output now)."
)
def evaluate_command(
    run: str,
    data: str | None,
    output: str | None,
    split: str,
    ease_l2: float,
    sampled: bool,
    cold_start: bool,
    no_baselines: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Evaluate a run and the baselines on the test split.

    Python: shelfwise.training.cli.evaluate_run(run, data)

    Baselines: popularity, co-occurrence, Markov transitions, EASE; full-ranking metrics,
    with the published anchors on Beauty. With --cold-start (a run trained with
    --cold-start): the test cases whose target is an item no interaction trained, ranked
    among all items and among the new items only, against popularity within category and
    content-only nearest neighbours.

    Python: shelfwise.training.cold_start.evaluate_cold_start(run)

    \b
    Examples:
      shelfwise evaluate runs/beauty --data ../shared/data/amazon-beauty/Beauty.txt --output quality.json
      shelfwise evaluate runs/beauty-cold --cold-start --output cold_start.json
    """
    show_log_lines()
    if cold_start:
        from .cold_start import evaluate_cold_start

        if data or sampled or no_baselines:
            raise click.UsageError("--cold-start reads the run's own data, with its baselines")
        cold = evaluate_cold_start(run, split_name=split, progress=not no_progress)
        _write_output(output, cold)
        emit(as_json, cold, lambda: _cold_start_tables(cold))
        return
    results = evaluate_run(
        run,
        data,
        split_name=split,
        baselines=not no_baselines,
        sampled=sampled,
        ease_l2=ease_l2,
        progress=not no_progress,
    )
    _write_output(output, results)

    def tables() -> str:
        text = results["protocol"] + "\n"
        text += format_table(results["metrics"], results["published"] or None)
        if sampled:
            text += "\n\nsampled-100-negatives protocol (older papers only):\n"
            text += format_table(results["sampled_100_negatives"]["metrics"])
        return text

    emit(as_json, results, tables)


def _write_output(output: str | None, results: dict[str, Any]) -> None:
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=_json_default))


def _cold_start_tables(results: dict[str, Any]) -> str:
    text = results["protocol"] + "\n"
    for pool, rows in results["metrics"].items():
        text += "\n" + format_table(rows, title=f"ranked among {pool}:") + "\n"
    warm = results["warm_cases"]
    text += (
        f"\nthe same model on the {warm['cases']} cases whose target is a known item: NDCG@10 "
        f"{warm['shelfwise SeqRec (features)']['ndcg@10']:.4f}"
    )
    return text


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


__all__ = ["METRICS", "evaluate_command", "evaluate_run", "train_command"]
