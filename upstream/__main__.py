"""``python -m shelfwise.upstream``: run the collector, register devices, read totals.

Examples::

    python -m shelfwise.upstream --db collector.db --port 8421
    python -m shelfwise.upstream serve --pg postgresql://localhost/shelfwise --bundles published/
    python -m shelfwise.upstream add-device --db collector.db --device kiosk-7 --region north
    python -m shelfwise.upstream totals --db collector.db --json
    python -m shelfwise.upstream publish-catalog --db collector.db --sign-key keys/docs.key catalog.csv
    python -m shelfwise.upstream publish-offers --db collector.db --sign-key keys/docs.key offers.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shelfwise._time import DAY_MS, now_ms

from ._storage import open_storage

COMMANDS = ("serve", "add-device", "totals", "publish-catalog", "publish-offers")


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
    for kind, what in (("catalog", ".csv or .jsonl catalog"), ("offers", ".json or .yaml offers")):
        publish = sub.add_parser(
            f"publish-{kind}",
            help=f"sign a {kind} document and publish it to devices (prints its manifest)",
            description=f"Example: python -m shelfwise.upstream publish-{kind} --db collector.db "
            f"--sign-key docs.key {'catalog.csv' if kind == 'catalog' else 'offers.yaml'}",
        )
        _storage_args(publish)
        publish.add_argument("file", help=f"the {what} file")
        publish.add_argument("--sign-key", required=True, help="ed25519 private key file")
        publish.add_argument("--version", type=int, help="default: the published version + 1")
        publish.add_argument("--expires-days", type=float, default=30.0)
        publish.add_argument(
            "--merge",
            action="store_true",
            help="upsert only (default: the document replaces the whole set)",
        )
        publish.set_defaults(kind=kind)
    return parser


def publish(storage: Any, args: argparse.Namespace) -> int:
    """Sign ``args.file`` as a document of ``args.kind`` and store it for devices."""
    from shelfwise._errors import ShelfwiseError
    from shelfwise.catalog import read_catalog_file
    from shelfwise.offers import read_offer_file
    from shelfwise.sync.downstream import build_document, read_private_key


    try:
        if args.kind == "catalog":
            content: dict[str, Any] = {"items": read_catalog_file(args.file)}
        else:
            content = {"offers": list(read_offer_file(args.file))}
        content["replace"] = not args.merge
        issued = now_ms()
        raw = build_document(
            args.kind,
            content,
            version=args.version or storage.latest_version(args.kind) + 1,
            private_key=read_private_key(args.sign_key),
            issued_ms=issued,
            expires_ms=issued + int(args.expires_days * DAY_MS),
        )
        manifest = storage.publish(raw)
    except (ShelfwiseError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(manifest.__dict__, sort_keys=True))
    return 0


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
    if args.command.startswith("publish-"):
        return publish(storage, args)
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
