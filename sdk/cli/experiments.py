"""``shelfwise recommend-experiments define|list|stop|report``: ``sw.recommend_experiments``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import InvalidInput
from .. import open as open_store
from .output import emit, json_option, table
from .params import InputFile, db_option


@click.group("recommend-experiments")
def recommend_experiments() -> None:
    """Recommender experiments: two strategies on one surface, split or interleaved.

    \b
    Example:
      shelfwise recommend-experiments define --db store.db experiment.json
      shelfwise recommend-experiments report --db store.db model-vs-popular
    """


def _read_definition(file: str) -> Any:
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidInput(f"{Path(file).name}: not valid JSON: {exc}") from exc


@recommend_experiments.command()
@db_option()
@click.argument("file", type=InputFile())
@json_option
def define(db: str, file: str, as_json: bool) -> None:
    """Start an experiment from a JSON definition (experiment_id, surface, arms, mode,
    window_hours); arms' bundles are verified first, and nothing is stored if anything is wrong.

    Python: sw.recommend_experiments.define({...})

    \b
    Example:
      shelfwise recommend-experiments define --db store.db experiment.json --json
    """
    with open_store(db) as sw:
        experiment = sw.recommend_experiments.define(_read_definition(file))
    emit(as_json, experiment.to_dict(), f"started {experiment.experiment_id}")


@recommend_experiments.command("list")
@db_option()
@json_option
def list_experiments(db: str, as_json: bool) -> None:
    """Every recommender experiment, running or stopped, oldest first.

    Python: sw.recommend_experiments.all()

    \b
    Example:
      shelfwise recommend-experiments list --db store.db --json
    """
    with open_store(db) as sw:
        rows = [e.to_dict() for e in sw.recommend_experiments.all()]

    def text() -> str:
        if not rows:
            return "(no experiments)"
        return table(
            [
                (
                    "running" if r["active"] else "stopped",
                    r["experiment_id"],
                    r["surface"],
                    r["mode"],
                    " vs ".join(a["name"] for a in r["arms"]),
                )
                for r in rows
            ],
            ["state", "experiment", "surface", "mode", "arms"],
        )

    emit(as_json, rows, text)


@recommend_experiments.command()
@db_option()
@click.argument("experiment_id")
@json_option
def stop(db: str, experiment_id: str, as_json: bool) -> None:
    """Stop serving an experiment (its events and report stay).

    Python: sw.recommend_experiments.stop(experiment_id)

    \b
    Example:
      shelfwise recommend-experiments stop --db store.db model-vs-popular
    """
    with open_store(db) as sw:
        experiment = sw.recommend_experiments.stop(experiment_id)
    emit(as_json, experiment.to_dict(), f"stopped {experiment_id}")


@recommend_experiments.command()
@db_option()
@click.argument("experiment_id")
@json_option
def report(db: str, experiment_id: str, as_json: bool) -> None:
    """Impressions, clicks, CTR, conversions and conversion rate per arm, the lift, and
    (interleaved) wins/losses/ties per session with the sign-test p-value.

    Python: sw.recommend_experiment_report(experiment_id)

    \b
    Example:
      shelfwise recommend-experiments report --db store.db model-vs-popular --json
    """
    with open_store(db) as sw:
        data = sw.recommend_experiment_report(experiment_id).to_dict()

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def text() -> str:
        rows = [
            (
                a["name"],
                a["impressions"],
                a["clicks"],
                rate(a["ctr"]),
                a["conversions"],
                rate(a["conversion_rate"]),
            )
            for a in data["arms"]
        ]
        lines = [table(rows, ["arm", "shown", "clicks", "ctr", "conversions", "rate"])]
        lines.append(f"lift: {rate(data['lift'])} (conversion), {rate(data['ctr_lift'])} (ctr)")
        if data["preference"]:
            p = data["preference"]
            lines.append(
                f"interleaved: wins {p['wins']}, losses {p['losses']}, ties {p['ties']}, "
                f"p = {p['p_value']:.4f}"
            )
        return "\n".join(lines)

    emit(as_json, data, text)


COMMANDS = [recommend_experiments]

__all__ = ["COMMANDS"]
