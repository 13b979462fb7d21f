"""``shelfwise catalog import|list|get|search`` and ``shelfwise import-catalog``: ``sw.catalog``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .. import Item
from .. import open as open_store
from .filters import filter_options, item_filter
from .output import emit, json_option, key_values, table
from .params import COUNT, InputFile, db_option


def _rows(items: Sequence[Item]) -> str:
    if not items:
        return "(no items)"
    return table(
        [(i.item_id, i.name, i.category, i.price, i.gtin or "") for i in items],
        ["item", "name", "category", "price", "gtin"],
    )


def _import(db: str, file: str, replace: bool, as_json: bool) -> None:
    with open_store(db) as sw:
        count = sw.catalog.import_file(file, replace=replace)
    emit(as_json, {"imported": count}, f"imported {count} items")


_IMPORT_HELP = """Import a .csv or .jsonl catalog file, all or nothing.

Python: sw.catalog.import_file(file, replace=...)

\b
Example:
  shelfwise {path} --db store.db catalog.csv --json
"""


def _import_command(name: str, path: str) -> click.Command:
    @click.command(name, help=_IMPORT_HELP.format(path=path))
    @db_option(create=True)
    @click.argument("file", type=InputFile())
    @click.option("--replace", is_flag=True, help="Remove items that are not in the file.")
    @json_option
    def command(db: str, file: str, replace: bool, as_json: bool) -> None:
        _import(db, file, replace, as_json)

    return command


import_catalog = _import_command("import-catalog", "import-catalog")


@click.group()
def catalog() -> None:
    """The store's items: import, list, get (by id or any GTIN form), search.

    \b
    Example:
      shelfwise catalog search --db store.db "corn flakes" --limit 5
    """


catalog.add_command(_import_command("import", "catalog import"))


@catalog.command("list")
@db_option()
@click.option("--limit", type=COUNT, help="At most this many items (default: all).")
@json_option
def list_items(db: str, limit: int | None, as_json: bool) -> None:
    """Every item, in import order.

    Python: sw.catalog.all()

    \b
    Example:
      shelfwise catalog list --db store.db --limit 20
    """
    with open_store(db) as sw:
        items = sw.catalog.all()[:limit]
    emit(as_json, [i.to_dict() for i in items], lambda: _rows(items))


@catalog.command()
@db_option()
@click.argument("item")
@json_option
def get(db: str, item: str, as_json: bool) -> None:
    """One item by id or by any GTIN form.

    Python: sw.catalog.lookup(item)

    \b
    Example:
      shelfwise catalog get --db store.db 036000291452 --json
    """
    with open_store(db) as sw:
        found = sw.catalog.lookup(item)
    emit(as_json, found.to_dict(), lambda: key_values(found.to_dict()))


@catalog.command()
@db_option()
@click.argument("query")
@click.option("--limit", type=COUNT, default=20, show_default=True, help="At most this many.")
@filter_options
@json_option
def search(db: str, query: str, limit: int, as_json: bool, **filters: Any) -> None:
    """Items matching every word of the query, best match first, optionally filtered.

    Python: sw.catalog.search(query, limit=..., filters=shelfwise.ItemFilter.build(...))

    \b
    Example:
      shelfwise catalog search --db store.db "corn flakes" --limit 5 --json
      shelfwise catalog search --db store.db tea --min-price 2 --max-price 5 --tag organic
    """
    with open_store(db) as sw:
        items = sw.catalog.search(query, limit=limit, filters=item_filter(sw, **filters))
    emit(as_json, [i.to_dict() for i in items], lambda: _rows(items))


COMMANDS = [import_catalog, catalog]

__all__ = ["COMMANDS"]
