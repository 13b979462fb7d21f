"""``shelfwise orders price|redeem|void``: a till's orders, as ``shopper.price_order`` and
``redeem_order`` and ``sw.offers.void_order`` run them.

A till names the order (``--order-id``), the member when there is one (``--member``, their
loyalty id), the lines (``--cart tea,coffee:2``), the codes given and the offers named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import Credentials, InvalidInput
from .. import open as open_store
from ..offers import Order, OrderPrice
from ..sync.leasing import CollectorAuthority
from .output import emit, json_option, table
from .params import CollectorUrl, InputFile, db_option
from .sync import read_chain_secret

F = TypeVar("F", bound=Callable[..., Any])
MAX_QUANTITY = 1000  # as a cart line allows


def _words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_cart(
    _ctx: click.Context | None, _param: click.Parameter | None, text: str
) -> list[tuple[str, int]]:
    """``--cart``: item ids, comma-separated, each with an optional ``:quantity``.

    Example:
        >>> parse_cart(None, None, "tea, coffee:2")
        [('tea', 1), ('coffee', 2)]
    """
    lines = []
    for word in _words(text):
        item, _, count = word.partition(":")
        try:
            quantity = int(count) if count else 1
        except ValueError:
            quantity = 0
        if not item.strip() or not 1 <= quantity <= MAX_QUANTITY:
            raise click.BadParameter(
                f"{word!r} is not ITEM or ITEM:QUANTITY (a whole number from 1 to {MAX_QUANTITY})"
            )
        lines.append((item.strip(), quantity))
    if not lines:
        raise click.BadParameter("name at least one item, e.g. --cart tea,coffee:2")
    return lines


def _order_options(func: F) -> F:
    """The options ``price`` and ``redeem`` share, in the order ``--help`` shows them."""
    for option in reversed(
        [
            db_option(),
            click.option("--order-id", required=True, help="The till's order id (1-64 chars)."),
            click.option("--member", help="Loyalty id of the member (none: a guest)."),
            click.option(
                "--cart",
                required=True,
                callback=parse_cart,
                help="Lines: item ids, comma-separated, ITEM:QUANTITY for more than one.",
            ),
            click.option("--codes", default="", help="Offer codes given, comma-separated."),
            click.option("--offers", default="", help="Offer ids named, comma-separated."),
            click.option("--store", default="", help="Store id the order is in."),
            json_option,
        ]
    ):
        func = option(func)
    return func


def price_text(price: OrderPrice) -> str:
    """The priced order as a till shows it: offers applied, offers left out and why, totals."""
    parts = []
    if price.applied:
        rows = [
            (a.offer_id, a.title, a.amount, a.points or "", a.code or "") for a in price.applied
        ]
        parts.append(table(rows, ["offer", "title", "off", "points", "code"]))
    else:
        parts.append("(no offers applied)")
    if price.left_out:
        rows2 = [(x.offer_id, x.reason, x.message) for x in price.left_out]
        parts.append("left out:\n" + table(rows2, ["offer", "reason", "why"]))
    parts.append(
        f"subtotal {price.subtotal:.2f}  off {price.discount:.2f}  total {price.total:.2f}"
    )
    return "\n\n".join(parts)


@click.group()
def orders() -> None:
    """Orders at a till: price them, redeem them, void them (a refund).

    \b
    Example:
      shelfwise orders price --db store.db --order-id till-1-0001 --cart milk,coffee:2
      shelfwise orders void --db store.db --order-id till-1-0001
    """


@orders.command()
@_order_options
def price(
    db: str,
    order_id: str,
    member: str | None,
    cart: list[tuple[str, int]],
    codes: str,
    offers: str,
    store: str,
    as_json: bool,
) -> None:
    """Price an order with the best allowed offers and say why others were left out;
    nothing is spent.

    Python: sw.member(loyalty_id).price_order(order_id, cart=..., codes=..., offers=...)

    \b
    Example:
      shelfwise orders price --db store.db --order-id till-1-0001 --member L-1001 \\
        --cart milk,coffee:2 --offers coffee10 --json
    """
    with open_store(db, store_id=store) as sw:
        if member:  # a card seen here for the first time is the member's first visit
            priced = sw.member(member).price_order(
                order_id, cart=cart, codes=_words(codes), offers=_words(offers)
            )
        else:  # a guest: priced without a session, so nothing is written
            priced = sw.offers.price_order(
                order_id, shopper_id="", cart=cart, codes=_words(codes), offers=_words(offers)
            )
    emit(as_json, priced.to_dict(), lambda: price_text(priced))


@orders.command()
@_order_options
@click.option(
    "--collector",
    type=CollectorUrl(),
    help="Check central codes and members' per-customer uses with this collector.",
)
@click.option("--key-file", type=InputFile(), help="Device key file (with --collector).")
@click.option(
    "--chain-secret-file", type=InputFile(), help="The chain secret (hex), for members' uses."
)
def redeem(
    db: str,
    order_id: str,
    member: str | None,
    cart: list[tuple[str, int]],
    codes: str,
    offers: str,
    store: str,
    as_json: bool,
    collector: str | None,
    key_file: str | None,
    chain_secret_file: str | None,
) -> None:
    """Price and redeem an order in one step; the same order again returns it unchanged.

    Python: sw.member(loyalty_id).redeem_order(order_id, cart=..., codes=..., offers=...)

    \b
    Example:
      shelfwise orders redeem --db store.db --order-id till-1-0001 --member L-1001 \\
        --cart milk,coffee:2 --codes 7KQ2-M9XD --json
      shelfwise orders redeem --db store.db --order-id till-1-0002 --cart milk \\
        --codes 7KQ2-M9XD --collector http://127.0.0.1:8421 --key-file kiosk-7.key
    """
    if (collector is None) != (key_file is None):
        raise InvalidInput("--collector and --key-file go together")
    secret = read_chain_secret(chain_secret_file) if chain_secret_file else None
    with open_store(db, store_id=store, chain_secret=secret) as sw:
        if collector is not None and key_file is not None:
            blind = sw.fleet.blinded_id if sw.fleet.enabled else None
            creds = Credentials.from_file(key_file)
            sw.offers.use_collector(CollectorAuthority(collector, creds, blind=blind))
        shopper = sw.member(member) if member else sw.start_session()
        order = shopper.redeem_order(
            order_id, cart=cart, codes=_words(codes), offers=_words(offers)
        )
    emit(as_json, order.to_dict(), lambda: _order_text(order))


@orders.command()
@db_option()
@click.option("--order-id", required=True, help="The redeemed order to void.")
@click.option("--store", default="", help="Store id the void is made in.")
@json_option
def void(db: str, order_id: str, store: str, as_json: bool) -> None:
    """Void (refund) a redeemed order: its offers, codes and points are given back.

    Python: sw.offers.void_order(order_id)

    \b
    Example:
      shelfwise orders void --db store.db --order-id till-1-0001 --json
    """
    with open_store(db, store_id=store) as sw:
        order = sw.offers.void_order(order_id)
    emit(as_json, order.to_dict(), lambda: _order_text(order))


def _order_text(order: Order) -> str:
    return f"order {order.order_id}: {order.state}\n\n{price_text(order.price)}"


COMMANDS = [orders]

__all__ = ["COMMANDS", "parse_cart", "price_text"]
