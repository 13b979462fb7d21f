"""``shelfwise sync`` and ``shelfwise sync-status``: the sync verbs for operators.

Examples::

    shelfwise sync --db store.db --url http://collector:8421 --key-file kiosk-7.key --json
    shelfwise sync-status --db store.db --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import _facade
from ..sync.downstream import applied_documents
from ..sync.privacy import PrivacyPolicy
from ..sync.upload import Credentials

PROGRESS_FROM = 20  # releases: below this a progress bar is noise


def _progress() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar when tqdm is installed, else a plain counter on stderr."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"\rsynced {done}/{total} summaries", end="", file=sys.stderr, flush=True)
            state["plain"] = True
            return
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, unit="summary", desc="sync", file=sys.stderr)
        bar.update(done - bar.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()
        elif state.get("plain"):
            print(file=sys.stderr)

    return update, close


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def cmd_sync(args: argparse.Namespace) -> int:
    """Summarise, upload the outbox, pull fleet tables, signed catalog/offers documents
    (with --public-key) and (with --bundles) a bundle.

    Example: shelfwise sync --db store.db --url http://127.0.0.1:8421 --key-file k.json
    """
    credentials = Credentials.from_file(args.key_file, args.device_id)
    policy = PrivacyPolicy(k=args.k, k_pairs=max(args.k, args.k_pairs), epsilon=args.epsilon)
    public_key = bytes.fromhex(args.public_key) if args.public_key else None
    update, close = _progress()
    with _facade.open(args.db, public_key=public_key) as sw:
        try:
            report = sw.sync(
                args.url,
                credentials,
                policy=policy,
                bundles_dir=args.bundles,
                public_key=public_key,
                deadline_s=args.timeout,
                progress=None if args.json else update,
            )
        finally:
            close()
        status = sw.sync_status()
    data = {"report": report.to_dict(), "status": status.to_dict()}
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(
            f"acked {report.acked} summaries in {report.requests} requests "
            f"({report.retries} retries, {report.quarantined} quarantined); "
            f"{report.remaining} still queued"
            + (f"; error: {report.error}" if report.error else "")
        )
    return 0 if report.error is None else 4


def cmd_sync_status(args: argparse.Namespace) -> int:
    """Show what is queued for upstream, the last success and the last error (offline).

    Example: shelfwise sync-status --db store.db --json
    """
    with _facade.open(args.db) as sw:
        status = sw.sync_status()
        documents = applied_documents(sw.store)
    if args.json:
        data = status.to_dict()
        data["documents"] = {kind: doc.to_dict() for kind, doc in documents.items()}
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(
            f"queued: {status.queued} summaries ({status.queued_bytes} bytes), "
            f"quarantined: {status.quarantined}, unsummarised events: {status.unsummarised_events}\n"
            f"last success: {_when(status.last_success_ms)}\n"
            f"last error: {status.last_error or 'none'}"
        )
        for kind, doc in documents.items():
            print(
                f"{kind}: version {doc.version}, applied {_when(doc.applied_ms)}, "
                f"expires {_when(doc.expires_ms)}"
            )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sync`` and ``sync-status`` on the ``shelfwise`` command."""
    sync = sub.add_parser(
        "sync",
        help="send private summaries upstream and pull fleet tables / bundles",
        description="Example: shelfwise sync --db s.db --url http://127.0.0.1:8421 "
        "--key-file kiosk-7.key --json",
    )
    sync.add_argument("--db", required=True, help="store file")
    sync.add_argument("--url", required=True, help="collector base URL")
    sync.add_argument("--key-file", required=True, help="device key file from add-device")
    sync.add_argument("--device-id", help="device id (default: the key file's)")
    sync.add_argument("--k", type=int, default=15, help="min distinct contributors per cell")
    sync.add_argument("--k-pairs", type=int, default=25, help="the same for co-purchase pairs")
    sync.add_argument("--epsilon", type=float, help="add OpenDP integer noise (needs [privacy])")
    sync.add_argument("--bundles", help="folder to install bundles pulled from upstream into")
    sync.add_argument(
        "--public-key",
        help="pinned ed25519 public key (hex) for bundles and catalog/offers documents",
    )
    sync.add_argument(
        "--timeout", type=float, default=300.0, help="stop retrying after this many seconds"
    )
    sync.add_argument("--json", action="store_true", help="print JSON instead of text")
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser(
        "sync-status",
        help="what is queued for upstream, last success, last error",
        description="Example: shelfwise sync-status --db s.db --json",
    )
    status.add_argument("--db", required=True)
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(func=cmd_sync_status)
