"""``shelfwise scan`` and ``shelfwise barcode-layout``: ``Shopper.scan`` and the store's layout."""

from __future__ import annotations

import dataclasses
import json

import click

from .. import InvalidInput
from .. import open as open_store
from .output import emit, json_option, key_values
from .params import Folder, db_option


@click.command()
@db_option()
@click.option("--bundle", type=Folder(), help="Model bundle folder (goes-with, alternatives).")
@click.option("--code", required=True, help="The digits under the barcode.")
@click.option("--symbology", help="What the scanner saw, e.g. UPC-E.")
@click.option("--shopper", help="Scan as this loyalty id (default: a fresh kiosk session).")
@click.option("--store", default="", help="Store id.")
@json_option
def scan(
    db: str,
    bundle: str | None,
    code: str,
    symbology: str | None,
    shopper: str | None,
    store: str,
    as_json: bool,
) -> None:
    """Scan a code as a shopper: the item, deals, goes-with, alternatives.

    Python: sw.start_session().scan(code)  or  sw.shopper(id).scan(code)

    Without --shopper the scan runs in a throw-away kiosk session that ends right after.

    \b
    Example:
      shelfwise scan --db store.db --bundle bundle/ --code 036000291452 --json
    """
    with open_store(db, bundle=bundle, store_id=store) as sw:
        who = sw.shopper(shopper) if shopper is not None else sw.start_session()
        try:
            card = who.scan(code, symbology=symbology)
        finally:
            if shopper is None:
                who.end()
    price = card.price if card.price is not None else "-"
    lines = [f"{card.item.name} ({card.item.item_id})  {price}"]
    lines += [f"  deal: {d.offer.title}" for d in card.deals]
    lines += [f"  goes with: {r.item.name} ({r.reason})" for r in card.goes_with]
    lines += [f"  instead: {r.item.name} ({r.reason})" for r in card.alternatives]
    if card.note:
        lines.append(f"  {card.note}")
    emit(as_json, card.to_dict(), "\n".join(lines))


@click.command("barcode-layout")
@db_option(create=True)
@click.option(
    "--set",
    "wanted",
    metavar="JSON",
    help='Layout fields as a JSON object, e.g. \'{"weight_prefixes": ["21"]}\' '
    "(fields left out keep the default).",
)
@click.option("--reset", is_flag=True, help="Back to the documented default layout.")
@json_option
def barcode_layout(db: str, wanted: str | None, reset: bool, as_json: bool) -> None:
    """Show, set or reset the store's in-store (prefix 20-29) barcode layout.

    Mirrors ``sw.barcode_layout()`` and ``sw.set_barcode_layout(...)``.

    \b
    Example:
      shelfwise barcode-layout --db store.db --set '{"weight_prefixes": ["21"]}' --json
    """
    if reset and wanted is not None:
        raise click.UsageError("give --set or --reset, not both")
    fields = None
    if wanted is not None:
        try:
            fields = json.loads(wanted)
        except ValueError as exc:
            raise InvalidInput(f"--set must be a JSON object of layout fields: {exc}") from exc
        if not isinstance(fields, dict):
            raise InvalidInput("--set must be a JSON object of layout fields, e.g. '{}'")
    with open_store(db) as sw:
        if reset:
            layout = sw.set_barcode_layout(None)
        elif fields is not None:
            layout = sw.set_barcode_layout(fields)
        else:
            layout = sw.barcode_layout()
    data = dataclasses.asdict(layout)
    emit(as_json, data, lambda: key_values(data))


COMMANDS = [scan, barcode_layout]

__all__ = ["COMMANDS"]
