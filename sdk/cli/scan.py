"""``shelfwise scan`` and ``shelfwise offers``: the scan card and offer switches for operators.

Examples::

    shelfwise scan --db store.db --bundle bundle/ --code 036000291452 --json
    shelfwise offers load --db store.db offers.yaml
    shelfwise offers deactivate --db store.db coffee10
    shelfwise offers codes --db store.db coffee10 --count 100 --json
    shelfwise barcode-layout --db store.db --set '{"weight_prefixes": ["21"]}' --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import _facade
from .._errors import InvalidInput
from ..barcode.layout import layout_to_dict


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if args.json else text)


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan a code as a shopper (a throw-away kiosk session unless --shopper is given)."""
    with _facade.open(args.db, bundle=args.bundle, store_id=args.store or "") as sw:
        shopper = sw.shopper(args.shopper) if args.shopper else sw.start_session()
        try:
            card = shopper.scan(args.code, symbology=args.symbology)
        finally:
            if not args.shopper:
                shopper.end()
    lines = [
        f"{card.item.name} ({card.item.item_id})  {card.price if card.price is not None else '-'}"
    ]
    lines += [f"  deal: {d.offer.title}" for d in card.deals]
    lines += [f"  goes with: {r.item.name} ({r.reason})" for r in card.goes_with]
    lines += [f"  instead: {r.item.name} ({r.reason})" for r in card.alternatives]
    if card.note:
        lines.append(f"  {card.note}")
    _emit(args, card.to_dict(), "\n".join(lines))
    return 0


def cmd_barcode_layout(args: argparse.Namespace) -> int:
    """Show, set (--set JSON) or reset (--reset) the store's in-store barcode layout."""
    with _facade.open(args.db) as sw:
        if args.reset:
            layout = sw.set_barcode_layout(None)
        elif args.set is not None:
            try:
                wanted = json.loads(args.set)
            except ValueError as exc:
                raise InvalidInput(f"--set must be a JSON object of layout fields: {exc}") from exc
            layout = sw.set_barcode_layout(wanted)
        else:
            layout = sw.barcode_layout()
    data = layout_to_dict(layout)
    _emit(args, data, "\n".join(f"{k}: {v}" for k, v in sorted(data.items())))
    return 0


def cmd_offers(args: argparse.Namespace) -> int:
    """Load, list, switch and issue codes for offers."""
    with _facade.open(args.db, store_id=args.store or "") as sw:
        offers = sw.offers
        if args.action == "load":
            loaded = offers.load(args.target)
            _emit(args, {"loaded": [o.offer_id for o in loaded]}, f"loaded {len(loaded)} offers")
        elif args.action == "list":
            rows = [{**o.to_dict(), "stats": offers.stats(o.offer_id)} for o in offers.all()]
            text = "\n".join(
                f"{'on ' if r['active'] else 'off'}  {r['offer_id']}: {r['title']}" for r in rows
            )
            _emit(args, rows, text or "(no offers)")
        elif args.action in {"activate", "deactivate"}:
            getattr(offers, args.action)(args.target)
            _emit(args, {"offer_id": args.target, "active": args.action == "activate"}, "ok")
        elif args.action == "codes":
            codes = offers.issue_codes(args.target, args.count)
            _emit(args, {"offer_id": args.target, "codes": codes}, "\n".join(codes))
        else:  # stats
            _emit(args, offers.stats(args.target), json.dumps(offers.stats(args.target)))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``scan``, ``barcode-layout`` and ``offers`` on the ``shelfwise`` command."""
    scan = sub.add_parser(
        "scan",
        help="scan a barcode: the item, deals, goes-with, alternatives",
        description="Example: shelfwise scan --db s.db --bundle b/ --code 036000291452 --json",
    )
    scan.add_argument("--db", required=True, help="store file")
    scan.add_argument("--bundle", help="model bundle folder (for goes-with and alternatives)")
    scan.add_argument("--code", required=True, help="the digits under the barcode")
    scan.add_argument("--symbology", help="what the scanner saw, e.g. UPC-E")
    scan.add_argument("--shopper", help="scan as this loyalty id (default: a fresh session)")
    scan.add_argument("--store", help="store id")
    scan.add_argument("--json", action="store_true", help="print JSON instead of text")
    scan.set_defaults(func=cmd_scan)

    layout = sub.add_parser(
        "barcode-layout",
        help="show or set the store's in-store (prefix 20-29) barcode layout",
        description="Example: shelfwise barcode-layout --db s.db "
        '--set \'{"weight_prefixes": ["21"], "price_prefixes": ["22", "23"]}\' --json',
    )
    layout.add_argument("--db", required=True, help="store file")
    choice = layout.add_mutually_exclusive_group()
    choice.add_argument("--set", help="JSON object of layout fields (others keep the default)")
    choice.add_argument("--reset", action="store_true", help="back to the documented default")
    layout.add_argument("--json", action="store_true", help="print JSON instead of text")
    layout.set_defaults(func=cmd_barcode_layout)

    offers = sub.add_parser(
        "offers",
        help="load, list, switch on/off and issue codes for offers",
        description="Example: shelfwise offers load --db s.db offers.yaml --json",
    )
    offers.add_argument(
        "action", choices=["load", "list", "activate", "deactivate", "codes", "stats"]
    )
    offers.add_argument("target", nargs="?", default="", help="offer file (load) or offer id")
    offers.add_argument("--db", required=True, help="store file")
    offers.add_argument("--count", type=int, default=1, help="how many codes (codes)")
    offers.add_argument("--store", help="store id")
    offers.add_argument("--json", action="store_true", help="print JSON instead of text")
    offers.set_defaults(func=cmd_offers)
