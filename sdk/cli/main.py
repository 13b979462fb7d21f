"""The ``shelfwise`` command line: the Python API's verbs, for operators.

Every command has ``--json`` for machines; the back-office commands (train, evaluate, export)
need the ``train`` extra and say so when it is missing.

Examples::

    shelfwise recommend --db store.db --bundle bundle/ --history 12,40,7 --surface for-you --k 5 --json
    shelfwise inspect bundle/ --json
    shelfwise forget --db store.db --shopper L-1001 --json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import _facade
from .._errors import ShelfwiseError
from ..model.bundle import read_bundle
from ..recommend import SURFACES

# Commands that live in other parts of the distribution; imported only when used.
# name -> (module, extra that provides its dependencies)
PLUGIN_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("shelfwise.training.cli", "train"),
    "evaluate": ("shelfwise.training.cli", "train"),
    "export": ("shelfwise.export.cli", "train"),
}
# Extra runtime commands registered by runtime modules: name -> module with add_parser(sub).
RUNTIME_COMMAND_MODULES: list[str] = ["shelfwise.cli.sync", "shelfwise.cli.scan"]


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text)


def cmd_recommend(args: argparse.Namespace) -> int:
    """Recommendations for a history of item ids."""
    history = [h for h in (args.history or "").split(",") if h.strip()]
    with _facade.open(args.db, bundle=args.bundle, store_id=args.store or "") as sw:
        recs = sw.recommend(history=history, surface=args.surface, limit=args.k, item=args.item)
        data = {
            "model": sw.model_version,
            "surface": args.surface,
            "recommendations": [r.to_dict() for r in recs],
        }
    lines = [f"{r.item.item_id:>12}  {r.score:9.4f}  {r.item.name}  ({r.reason})" for r in recs]
    _emit(args, data, "\n".join(lines) or "(no recommendations)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Verify a bundle and show its manifest."""
    files = read_bundle(args.bundle)
    manifest = files.manifest
    data = {
        "path": str(files.path),
        "verified": True,
        "manifest": {k: v for k, v in manifest.__dict__.items()},
        "items": len(files.items),
        "has_item_vectors": files.item_vectors is not None,
        "side_tables": {
            "cooccurrence_items": len(files.side_tables.cooccurrence),
            "popularity_scopes": len(files.side_tables.popularity),
            "repeat_items": len(files.side_tables.repeat_days),
        },
    }
    text = (
        f"{manifest.model_name}@{manifest.model_version}: {len(files.items)} items, "
        f"history {manifest.max_history}, quantization {manifest.quantization}, "
        f"{len(manifest.files)} files verified"
    )
    _emit(args, data, text)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a shopper and everything held about them."""
    with _facade.open(args.db) as sw:
        removed = sw.forget_shopper(args.shopper)
    _emit(
        args,
        {"shopper": args.shopper, "rows_removed": removed},
        f"forgot shopper: {removed} rows removed",
    )
    return 0


def cmd_import_catalog(args: argparse.Namespace) -> int:
    """Import a catalog file into a store."""
    with _facade.open(args.db) as sw:
        count = sw.catalog.import_file(args.file, replace=args.replace)
    _emit(args, {"imported": count}, f"imported {count} items")
    return 0


def cmd_export_shopper(args: argparse.Namespace) -> int:
    """Print everything held about a shopper (JSON)."""
    with _facade.open(args.db) as sw:
        data = sw.export_shopper(args.shopper)
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete raw events older than the retention period."""
    with _facade.open(args.db) as sw:
        removed = sw.forget_events(older_than_days=args.days)
    _emit(args, {"events_removed": removed}, f"purged {removed} events")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (runtime commands plus lazily imported plugins)."""
    parser = argparse.ArgumentParser(
        prog="shelfwise",
        description="Private, offline personalization for retail edge devices.",
        epilog="Example: shelfwise recommend --db store.db --bundle bundle/ --history 3,9 --json",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser(
        "recommend",
        help="recommendations for a history of item ids",
        description="Example: shelfwise recommend --db s.db --bundle b/ --history 12,40 --k 5 --json",
    )
    rec.add_argument("--db", required=True, help="store file (created if missing)")
    rec.add_argument("--bundle", required=True, help="model bundle folder")
    rec.add_argument("--history", default="", help="comma-separated item ids, oldest first")
    rec.add_argument("--surface", default="for-you", choices=sorted(SURFACES))
    rec.add_argument("--item", help="anchor item for similar/complements")
    rec.add_argument("--store", help="store id for trending")
    rec.add_argument("--k", type=int, default=10, help="how many results (default 10)")
    _common(rec)
    rec.set_defaults(func=cmd_recommend)

    ins = sub.add_parser(
        "inspect",
        help="verify a bundle and show its manifest",
        description="Example: shelfwise inspect kiosk_demo/store/bundle --json",
    )
    ins.add_argument("bundle", help="bundle folder")
    _common(ins)
    ins.set_defaults(func=cmd_inspect)

    forget = sub.add_parser(
        "forget",
        help="erase a shopper",
        description="Example: shelfwise forget --db s.db --shopper L-1 --json",
    )
    forget.add_argument("--db", required=True)
    forget.add_argument("--shopper", required=True, help="loyalty id or session id")
    _common(forget)
    forget.set_defaults(func=cmd_forget)

    imp = sub.add_parser(
        "import-catalog",
        help="import a CSV/JSONL catalog",
        description="Example: shelfwise import-catalog --db s.db catalog.csv",
    )
    imp.add_argument("--db", required=True)
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true", help="remove items not in the file")
    _common(imp)
    imp.set_defaults(func=cmd_import_catalog)

    exp = sub.add_parser(
        "export-shopper",
        help="everything held about a shopper, as JSON",
        description="Example: shelfwise export-shopper --db s.db --shopper L-1",
    )
    exp.add_argument("--db", required=True)
    exp.add_argument("--shopper", required=True)
    exp.set_defaults(func=cmd_export_shopper)

    purge = sub.add_parser(
        "purge",
        help="retention: delete old raw events",
        description="Example: shelfwise purge --db s.db --days 90",
    )
    purge.add_argument("--db", required=True)
    purge.add_argument("--days", type=float, required=True)
    _common(purge)
    purge.set_defaults(func=cmd_purge)

    for module_name in RUNTIME_COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    for name, (module_name, extra) in PLUGIN_COMMANDS.items():
        plugin = sub.add_parser(
            name, help=f"(needs shelfwise[{extra}]) see: shelfwise {name} --help", add_help=False
        )
        plugin.add_argument("rest", nargs=argparse.REMAINDER)
        plugin.set_defaults(func=_plugin_runner(name, module_name, extra))
    return parser


def _plugin_runner(name: str, module_name: str, extra: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            print(
                f"shelfwise {name} needs the '{extra}' extra: pip install 'shelfwise[{extra}]' "
                f"({exc.name or exc} is missing)",
                file=sys.stderr,
            )
            return 3
        result: int = module.main(name, args.rest)
        return result

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shelfwise`` command. Returns the exit status.

    Exit codes: 0 success, 2 bad usage or bad input, 3 missing extra, 1 other shelfwise error.
    """
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0] in PLUGIN_COMMANDS:
        # argparse.REMAINDER drops "--flag" style arguments; hand them over untouched.
        args = argparse.Namespace(
            func=_plugin_runner(given[0], *PLUGIN_COMMANDS[given[0]]), rest=given[1:]
        )
    else:
        args = parser.parse_args(given)
    try:
        return int(args.func(args))
    except ShelfwiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):  # a machine caller parses stdout: give it the error too
            error = {"type": type(exc).__name__, "message": str(exc)}
            print(json.dumps({"error": error}, indent=2, sort_keys=True))
        return 2 if isinstance(exc, ValueError | KeyError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
