"""``shelfwise sync`` and ``shelfwise sync-status``: ``sw.sync(...)`` and ``sw.sync_status()``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import Credentials, InvalidInput, PrivacyPolicy
from .. import open as open_store
from ..sync.downstream import applied_documents
from .exit_codes import ExitCode
from .output import emit, json_option, one_line
from .params import COUNT, NON_NEGATIVE, POSITIVE, CollectorUrl, InputFile, PublicKey, db_option

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


def read_chain_secret(path: str) -> bytes:
    """The chain secret of a provisioning file: hex, at least 16 bytes (``InvalidInput``)."""
    try:
        secret = bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not a chain secret file (hex): {exc}") from exc
    if len(secret) < 16:
        raise InvalidInput(f"{path}: a chain secret is at least 16 bytes")
    return secret


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


@click.command()
@db_option()
@click.option(
    "--url",
    required=True,
    type=CollectorUrl(),
    help="Collector base URL, e.g. http://127.0.0.1:8421 (no user:password@, query or #).",
)
@click.option("--key-file", required=True, type=InputFile(), help="Device key file (add-device).")
@click.option("--device-id", help="Device id (default: the key file's).")
@click.option(
    "--k",
    type=COUNT,
    default=15,
    show_default=True,
    help="Privacy: at least this many distinct shoppers per released cell.",
)
@click.option(
    "--k-pairs", type=COUNT, default=25, show_default=True, help="The same for co-purchase pairs."
)
@click.option("--epsilon", type=POSITIVE, help="Add OpenDP integer noise (needs [privacy]).")
@click.option("--bundles", help="Folder to install bundles pulled from upstream into.")
@click.option(
    "--public-key",
    type=PublicKey(),
    help="Pinned ed25519 public key (hex) for bundles and documents.",
)
@click.option(
    "--timeout",
    type=NON_NEGATIVE,
    default=300.0,
    show_default=True,
    help="Stop retrying after this many seconds.",
)
@click.option(
    "--chain-secret-file",
    type=InputFile(),
    help="The chain secret (hex): members' erasures and sealed profiles travel too.",
)
@json_option
def sync(
    db: str,
    url: str,
    key_file: str,
    device_id: str | None,
    k: int,
    k_pairs: int,
    epsilon: float | None,
    bundles: str | None,
    public_key: bytes | None,
    timeout: float,
    chain_secret_file: str | None,
    as_json: bool,
) -> None:
    """Summarise, upload the outbox, pull fleet tables, signed documents and bundles; with
    the chain secret, exchange members' erasures and sealed profiles first.

    Python: sw.sync(url, credentials, ...)

    Exits 4 when the collector could not be reached or the sync stopped with an error; the
    outbox keeps everything not acknowledged for the next run.

    \b
    Example:
      shelfwise sync --db store.db --url http://127.0.0.1:8421 --key-file kiosk-7.key --json
    """
    credentials = Credentials.from_file(key_file, device_id)
    policy = PrivacyPolicy(k=k, k_pairs=max(k, k_pairs), epsilon=epsilon)
    update, close = _progress()
    secret = read_chain_secret(chain_secret_file) if chain_secret_file else None
    with open_store(db, public_key=public_key, chain_secret=secret) as sw:
        try:
            report = sw.sync(
                url,
                credentials,
                policy=policy,
                bundles_dir=bundles,
                public_key=public_key,
                deadline_s=timeout,
                progress=None if as_json else update,
            )
        finally:
            close()
        status = sw.sync_status()
    emit(
        as_json,
        {"report": report.to_dict(), "status": status.to_dict()},
        lambda: (
            f"acked {report.acked} summaries in {report.requests} requests "
            f"({report.retries} retries, {report.quarantined} quarantined); "
            f"{report.remaining} still queued; erasures {report.erasures_sent} sent, "
            f"{report.erasures_received} received"
        ),
    )
    if report.error is not None:
        click.echo(
            f"error: sync stopped: {one_line(report.error)} "
            f"({report.remaining} summaries stay queued for the next run)",
            err=True,
        )
        raise click.exceptions.Exit(ExitCode.UNAVAILABLE)


@click.command("sync-status")
@db_option()
@json_option
def sync_status(db: str, as_json: bool) -> None:
    """What is queued for upstream, the last success and the last error.

    Python: sw.sync_status()

    Reads only the local store: works with no network.

    \b
    Example:
      shelfwise sync-status --db store.db --json
    """
    with open_store(db) as sw:
        status = sw.sync_status()
        documents = applied_documents(sw.store)
    data = status.to_dict()
    data["documents"] = {kind: doc.to_dict() for kind, doc in documents.items()}

    def text() -> str:
        lines = [
            f"queued: {status.queued} summaries ({status.queued_bytes} bytes), "
            f"quarantined: {status.quarantined}, unsummarised events: {status.unsummarised_events}",
            f"last success: {_when(status.last_success_ms)}",
            f"last error: {status.last_error or 'none'}",
        ]
        lines += [
            f"{kind}: version {doc.version}, applied {_when(doc.applied_ms)}, "
            f"expires {_when(doc.expires_ms)}"
            for kind, doc in documents.items()
        ]
        return "\n".join(lines)

    emit(as_json, data, text)


COMMANDS = [sync, sync_status]

__all__ = ["COMMANDS"]
