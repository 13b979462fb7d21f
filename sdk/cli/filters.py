"""The item filters ``recommend`` and ``catalog search`` take: ``shelfwise.ItemFilter`` as options.

``--min-price``/``--max-price`` (numbers checked by click), ``--brand`` and ``--tag``
(repeatable), ``--include``/``--exclude`` (item ids or GTINs, comma-separated, repeatable).
Item ids must be in the catalog: a typo in an allow list would silently empty the results.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "brand": "Acme"}])
    ...     item_filter(sw, min_price=None, max_price=None, brand=("acme",), tag=(),
    ...                 include=("tea",), exclude=()).include
    frozenset({'tea'})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import ItemFilter, Shelfwise, UnknownItem
from .params import NON_NEGATIVE

F = TypeVar("F", bound=Callable[..., Any])

FILTER_OPTIONS = ("min_price", "max_price", "brand", "tag", "include", "exclude")


def filter_options(command: F) -> F:
    """Add the filter options to a command (they arrive as the keywords ``item_filter`` takes)."""
    options = [
        click.option("--min-price", type=NON_NEGATIVE, help="Only items at this price or above."),
        click.option("--max-price", type=NON_NEGATIVE, help="Only items at this price or below."),
        click.option("--brand", multiple=True, help="Only this brand (repeat for any of several)."),
        click.option("--tag", multiple=True, help="Only items carrying this tag (repeat: all)."),
        click.option(
            "--include", multiple=True, help="Only these item ids, comma-separated (repeatable)."
        ),
        click.option(
            "--exclude", multiple=True, help="Never these item ids, comma-separated (repeatable)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _item_ids(sw: Shelfwise, values: Sequence[str], flag: str) -> list[str]:
    """Item ids (or GTINs) from comma-separated values, each one in the catalog."""
    wanted = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if values and not wanted:
        raise click.BadParameter("give at least one item id", param_hint=flag)
    try:
        return [sw.catalog.lookup(item).item_id for item in wanted]
    except UnknownItem as exc:
        raise UnknownItem(f"{flag}: {exc}") from exc


def item_filter(
    sw: Shelfwise,
    *,
    min_price: float | None,
    max_price: float | None,
    brand: Sequence[str],
    tag: Sequence[str],
    include: Sequence[str],
    exclude: Sequence[str],
) -> ItemFilter:
    """The options as a checked ``ItemFilter`` (``InvalidInput``/``UnknownItem`` say what)."""
    if min_price is not None and max_price is not None and min_price > max_price:
        raise click.BadParameter(
            f"{min_price:g} is above --max-price {max_price:g}", param_hint="--min-price"
        )
    for flag, names in (("--brand", brand), ("--tag", tag)):
        if any(not name.strip() for name in names):
            raise click.BadParameter("must not be empty", param_hint=flag)
    return ItemFilter.build(
        min_price=min_price,
        max_price=max_price,
        brand=list(brand) or None,
        tags=list(tag) or None,
        include=_item_ids(sw, include, "--include") if include else None,
        exclude=_item_ids(sw, exclude, "--exclude"),
    )


__all__ = ["FILTER_OPTIONS", "filter_options", "item_filter"]
