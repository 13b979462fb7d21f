"""``shelfwise recommend``, ``forget``, ``export-shopper`` and ``purge``: shoppers and their data.

The Python API they mirror: ``Shelfwise.recommend``, ``forget_shopper``, ``export_shopper``,
``forget_events``.
"""

from __future__ import annotations

from typing import Any

import click

from .. import SURFACES
from .. import open as open_store
from .filters import filter_options, item_filter
from .output import emit, json_option, table
from .params import COUNT, EPOCH_MS, POSITIVE, Folder, db_option


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _warn_k(ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        click.echo("note: --k is now --limit (the same number); --k will be removed", err=True)
    return value


@click.command()
@db_option()
@click.option("--bundle", required=True, type=Folder(), help="Model bundle folder.")
@click.option("--history", default="", help="Item ids (or GTINs), comma-separated, oldest first.")
@click.option(
    "--surface",
    default="for-you",
    show_default=True,
    type=click.Choice(sorted(SURFACES)),
    help="Which recommendations.",
)
@click.option("--item", help="Anchor item for similar / complements.")
@click.option("--category", help="Only items of this category.")
@click.option("--cart", default="", help="Item ids already in the cart, comma-separated.")
@click.option("--store", default="", help="Store id (for trending and best-sellers).")
@click.option(
    "--limit", type=COUNT, default=10, show_default=True, help="At most this many results."
)
@click.option("--k", "k", type=COUNT, hidden=True, callback=_warn_k, help="Old name of --limit.")
@filter_options
@json_option
def recommend(
    db: str,
    bundle: str,
    history: str,
    surface: str,
    item: str | None,
    category: str | None,
    cart: str,
    store: str,
    limit: int,
    k: int | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """Recommendations for a history of item ids, no shopper needed.

    Python: sw.recommend(history=..., surface=..., limit=..., filters={"max_price": 3, ...})

    The filters keep only items in a price range, of some brands, carrying every --tag,
    among the --include ids and never the --exclude ids.

    \b
    Example:
      shelfwise recommend --db store.db --bundle bundle/ --history 12,40,7 --limit 5 --json
      shelfwise recommend --db store.db --bundle bundle/ --history 12 --max-price 3 --brand acme
    """
    with open_store(db, bundle=bundle, store_id=store) as sw:
        recs = sw.recommend(
            limit=k or limit,
            history=_ids(history),
            surface=surface,
            item=item,
            category=category,
            cart=_ids(cart),
            filters=item_filter(sw, **filters),
        )
        data = {
            "model": sw.model_version,
            "surface": surface,
            "recommendations": [r.to_dict() for r in recs],
        }
    rows = [(r.item.item_id, round(r.score, 4), r.item.name, r.reason) for r in recs]
    emit(
        as_json,
        data,
        lambda: (
            table(rows, ["item", "score", "name", "reason"]) if rows else "(no recommendations)"
        ),
    )


@click.command()
@db_option()
@click.option("--shopper", required=True, help="Loyalty id or session id.")
@json_option
def forget(db: str, shopper: str, as_json: bool) -> None:
    """Erase a shopper and every row about them, in one transaction.

    Python: sw.forget_shopper(shopper_id)

    \b
    Example:
      shelfwise forget --db store.db --shopper L-1001 --json
    """
    with open_store(db) as sw:
        removed = sw.forget_shopper(shopper)
    emit(
        as_json,
        {"shopper": shopper, "rows_removed": removed},
        f"forgot shopper: {removed} rows removed",
    )


@click.command("export-shopper")
@db_option()
@click.option("--shopper", required=True, help="Loyalty id or session id.")
@json_option
def export_shopper(db: str, shopper: str, as_json: bool) -> None:
    """Everything held about a shopper, for a data-access request.

    Python: sw.export_shopper(shopper_id)

    The export is a JSON document, so it is printed as JSON with or without --json.

    \b
    Example:
      shelfwise export-shopper --db store.db --shopper L-1001 > L-1001.json
    """
    with open_store(db) as sw:
        data = sw.export_shopper(shopper)
    emit(True, data, "")


@click.command()
@db_option()
@click.option(
    "--days",
    type=POSITIVE,
    required=True,
    help="Delete raw events older than this many days.",
)
@click.option("--now", type=EPOCH_MS, help="Clock override, ms since 1970 (UTC).")
@json_option
def purge(db: str, days: float, now: int | None, as_json: bool) -> None:
    """Retention: delete raw events older than the given age.

    Python: sw.forget_events(older_than_days=..., now=...)

    \b
    Example:
      shelfwise purge --db store.db --days 90 --json
    """
    with open_store(db) as sw:
        removed = sw.forget_events(older_than_days=days, now=now)
    emit(as_json, {"events_removed": removed}, f"purged {removed} events")


COMMANDS = [recommend, forget, export_shopper, purge]

__all__ = ["COMMANDS"]
