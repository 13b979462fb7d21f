"""``python -m shelfwise.upstream``: run the collector, register devices, read totals.

Examples::

    python -m shelfwise.upstream --db collector.db --port 8421
    python -m shelfwise.upstream serve --pg postgresql://localhost/shelfwise --bundles published/
    python -m shelfwise.upstream add-device --db collector.db --device kiosk-7 --region north
    python -m shelfwise.upstream totals --db collector.db --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._storage import open_storage

COMMANDS = ("serve", "add-device", "totals")


def _storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default="collector.db", help="SQLite file (the default backend)")
    parser.add_argument("--pg", help="PostgreSQL DSN (production backend; wins over --db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shelfwise.upstream",
        description="The shelfwise reference collector.",
        epilog="Example: python -m shelfwise.upstream --db collector.db --port 8421",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP collector")
    _storage_args(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8421)
    serve.add_argument("--bundles", help="folder of published bundles served to devices")
    serve.add_argument("--max-body", type=int, default=4 << 20, help="largest request, bytes")
    add = sub.add_parser("add-device", help="register a device; prints its key file (JSON)")
    _storage_args(add)
    add.add_argument("--device", required=True)
    add.add_argument("--region", default="")
    add.add_argument("--key-file", help="write the key here (mode 600) instead of stdout")
    totals = sub.add_parser("totals", help="print the fleet totals")
    _storage_args(totals)
    totals.add_argument("--device", help="only what this device contributed")
    totals.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ``serve`` is the default command."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    storage = open_storage(db=args.db, pg=args.pg)
    if args.command == "add-device":
        secret = storage.add_device(args.device, region=args.region)
        key = json.dumps({"device_id": args.device, "secret": secret.hex()})
        if args.key_file:
            path = Path(args.key_file)
            path.touch(mode=0o600)
            path.write_text(key + "\n")
        else:
            print(key)
        return 0
    if args.command == "totals":
        data = storage.totals(args.device)
        if args.json:
            print(json.dumps([[*k, *v] for k, v in sorted(data.items())]))
        else:
            for cell, (n, q) in sorted(data.items()):
                print(*cell, n, q, sep="\t")
        return 0
    import uvicorn

    from ._app import create_app

    app = create_app(storage, bundles_dir=args.bundles, max_body=args.max_body)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
