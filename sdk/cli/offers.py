"""``shelfwise offers load|list|get|activate|deactivate|codes|stats|experiment-report|
redemptions|leases``: ``sw.offers``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import open as open_store
from .output import dumps, emit, json_option, key_values, table
from .params import COUNT, EPOCH_MS, InputFile, db_option

SANDBOX = {"exclude": False, "only": True, "include": None}

F = TypeVar("F", bound=Callable[..., Any])


def _store_option(func: F) -> F:
    return click.option("--store", default="", help="Store id the offers run in.")(func)


@click.group()
def offers() -> None:
    """Offers: load definitions, list them, switch them on and off, issue codes, see stats.

    \b
    Example:
      shelfwise offers load --db store.db offers.yaml
      shelfwise offers deactivate --db store.db coffee10
    """


@offers.command()
@db_option(create=True)
@click.argument("file", type=InputFile())
@_store_option
@json_option
def load(db: str, file: str, store: str, as_json: bool) -> None:
    """Add or replace every offer in a JSON or YAML file, all or nothing.

    Python: sw.offers.load(file)

    \b
    Example:
      shelfwise offers load --db store.db offers.yaml --json
    """
    with open_store(db, store_id=store) as sw:
        loaded = sw.offers.load(file)
    emit(as_json, {"loaded": [o.offer_id for o in loaded]}, f"loaded {len(loaded)} offers")


@offers.command("list")
@db_option()
@click.option("--limit", type=COUNT, help="At most this many offers (default: all).")
@_store_option
@json_option
def list_offers(db: str, limit: int | None, store: str, as_json: bool) -> None:
    """Every offer, on or off, by id, with its counters.

    Python: sw.offers.all()

    \b
    Example:
      shelfwise offers list --db store.db --json
    """
    with open_store(db, store_id=store) as sw:
        rows = [
            {**o.to_dict(), "stats": sw.offers.stats(o.offer_id)} for o in sw.offers.all()[:limit]
        ]

    def text() -> str:
        if not rows:
            return "(no offers)"
        return table(
            [("on" if r["active"] else "off", r["offer_id"], r["title"]) for r in rows],
            ["state", "offer", "title"],
        )

    emit(as_json, rows, text)


@offers.command()
@db_option()
@click.argument("offer_id")
@_store_option
@json_option
def get(db: str, offer_id: str, store: str, as_json: bool) -> None:
    """One offer's definition and state.

    Python: sw.offers.get(offer_id)

    \b
    Example:
      shelfwise offers get --db store.db coffee10 --json
    """
    with open_store(db, store_id=store) as sw:
        data = sw.offers.get(offer_id).to_dict()
    emit(as_json, data, lambda: dumps(data))


def _switch(on: bool) -> click.Command:
    verb = "activate" if on else "deactivate"
    doc = (
        f"Switch an offer {'on' if on else 'off'}.\n\nPython: sw.offers.{verb}(offer_id)\n\n"
        f"\b\nExample:\n  shelfwise offers {verb} --db store.db coffee10\n"
    )

    @click.command(verb, help=doc)
    @db_option()
    @click.argument("offer_id")
    @_store_option
    @json_option
    def command(db: str, offer_id: str, store: str, as_json: bool) -> None:
        with open_store(db, store_id=store) as sw:
            getattr(sw.offers, verb)(offer_id)
        emit(as_json, {"offer_id": offer_id, "active": on}, f"{offer_id}: {'on' if on else 'off'}")

    return command


offers.add_command(_switch(True))
offers.add_command(_switch(False))


@offers.command()
@db_option()
@click.argument("offer_id")
@click.option(
    "--count", type=click.IntRange(1, 100_000), default=1, show_default=True, help="How many."
)
@click.option("--shopper", help="Bind the codes to this loyalty member.")
@click.option("--expires", type=EPOCH_MS, help="Expiry, ms since 1970 (UTC).")
@_store_option
@json_option
def codes(
    db: str,
    offer_id: str,
    count: int,
    shopper: str | None,
    expires: int | None,
    store: str,
    as_json: bool,
) -> None:
    """Issue single-use codes for an offer, one per line.

    Python: sw.offers.issue_codes(offer_id, count, shopper_id=..., expires_ms=...)

    \b
    Example:
      shelfwise offers codes --db store.db coffee10 --count 100 > codes.txt
    """
    with open_store(db, store_id=store) as sw:
        issued = sw.offers.issue_codes(offer_id, count, shopper_id=shopper, expires_ms=expires)
    emit(as_json, {"offer_id": offer_id, "codes": issued}, "\n".join(issued))


@offers.command()
@db_option()
@click.argument("offer_id")
@_store_option
@json_option
def stats(db: str, offer_id: str, store: str, as_json: bool) -> None:
    """An offer's counters: redemptions, money spent, held reservations.

    Python: sw.offers.stats(offer_id)

    \b
    Example:
      shelfwise offers stats --db store.db coffee10 --json
    """
    with open_store(db, store_id=store) as sw:
        data = sw.offers.stats(offer_id)
    emit(as_json, data, lambda: key_values(data))


@offers.command("experiment-report")
@db_option()
@click.argument("experiment_id")
@_store_option
@json_option
def experiment_report(db: str, experiment_id: str, store: str, as_json: bool) -> None:
    """Exposed and converted shoppers per variant and the lift.

    Python: sw.offers.experiment_report(experiment_id)

    \b
    Example:
      shelfwise offers experiment-report --db store.db spring-test --json
    """
    with open_store(db, store_id=store) as sw:
        data = sw.offers.experiment_report(experiment_id)
    emit(as_json, data, lambda: dumps(data))


@offers.command()
@db_option()
@click.option("--since", type=EPOCH_MS, help="From this time on, ms since 1970 (UTC).")
@click.option("--until", type=EPOCH_MS, help="Before this time, ms since 1970 (UTC).")
@click.option("--offer", "offer_id", help="Only this offer's redemptions.")
@click.option("--order-id", help="Only this order's redemptions.")
@click.option(
    "--sandbox",
    type=click.Choice(sorted(SANDBOX)),
    default="exclude",
    show_default=True,
    help="Sandbox runs (which spent nothing): leave out, show only, or include.",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write them to this CSV file instead of printing them.",
)
@_store_option
@json_option
def redemptions(
    db: str,
    since: int | None,
    until: int | None,
    offer_id: str | None,
    order_id: str | None,
    sandbox: str,
    csv_file: str | None,
    store: str,
    as_json: bool,
) -> None:
    """Every redemption on this device, committed and voided: who, order, store, offer,
    money off, points, sandbox, status, time (oldest first).

    Python: sw.offers.redemptions(since=..., until=..., offer_id=..., order_id=..., sandbox=...)
    and sw.offers.write_redemptions(path, format="csv", ...)

    \b
    Example:
      shelfwise offers redemptions --db store.db --since 1767225600000 --json
      shelfwise offers redemptions --db store.db --csv redemptions.csv
    """
    if csv_file is not None and not Path(csv_file).resolve().parent.is_dir():
        raise click.BadParameter(
            f"folder {Path(csv_file).parent} does not exist", param_hint="--csv"
        )
    filters: dict[str, Any] = {
        "since": since,
        "until": until,
        "offer_id": offer_id,
        "order_id": order_id,
        "sandbox": SANDBOX[sandbox],
    }
    with open_store(db, store_id=store) as sw:
        if csv_file is not None:
            written = sw.offers.write_redemptions(csv_file, format="csv", **filters)
            data: Any = {"path": csv_file, "written": written}
            emit(as_json, data, f"wrote {written} redemptions to {csv_file}")
            return
        rows = sw.offers.redemptions(**filters)

    def text() -> str:
        if not rows:
            return "(no redemptions)"
        return table(
            [(r.ts_ms, r.status, r.shopper_id, r.order_id or "", r.offer_id, r.amount,
              r.points_earned - r.points_spent, "yes" if r.sandbox else "") for r in rows],
            ["time_ms", "status", "shopper", "order", "offer", "off", "points", "sandbox"],
        )  # fmt: skip

    emit(as_json, [r.to_dict() for r in rows], text)


COMMANDS = [offers]

__all__ = ["COMMANDS"]


@offers.command()
@db_option()
@_store_option
@json_option
def leases(db: str, store: str, as_json: bool) -> None:
    """This device's shares of fleet-wide offers (``limits: {scope: fleet}``): what the
    collector leased it, what it used, until when (``shelfwise sync`` refreshes them).

    Python: sw.offers.leases()

    \b
    Example:
      shelfwise offers leases --db store.db --json
    """
    with open_store(db, store_id=store) as sw:
        data = [share.to_dict() for share in sw.offers.leases()]
    columns = ["offer_id", "redemptions", "used_redemptions", "budget", "used_budget", "live"]
    emit(as_json, data, lambda: table([[row[c] for c in columns] for row in data], columns))
