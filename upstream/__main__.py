"""``python -m shelfwise.upstream``: run the collector, register devices, read totals.

Examples::

    python -m shelfwise.upstream --db collector.db --port 8421
    python -m shelfwise.upstream serve --pg postgresql://localhost/shelfwise --server-key server.key
    python -m shelfwise.upstream add-device --db collector.db --device kiosk-7 --region north --store s7
    python -m shelfwise.upstream set-stores --db collector.db --device kiosk-7 --store s7 --store s8
    python -m shelfwise.upstream devices --db collector.db --json        # stores, refusals
    python -m shelfwise.upstream quarantined --db collector.db --device kiosk-7
    python -m shelfwise.upstream rotate-key --db collector.db
    python -m shelfwise.upstream totals --db collector.db --json
    python -m shelfwise.upstream erasures --db collector.db --json      # pending per device
    python -m shelfwise.upstream publish-catalog --db collector.db --sign-key keys/docs.key catalog.csv
    python -m shelfwise.upstream publish-offers --db collector.db --sign-key keys/docs.key offers.yaml

Every command fails with one line on stderr and an exit code from one table:
0 ok, 1 runtime or store error, 2 bad input (arguments, files, a ``--db`` that is not a
collector database, a bad server key file), 3 refused, 4 upstream unavailable (the
PostgreSQL server cannot be reached).
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

import shelfwise
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.sync.protocol import DEVICE_RE, ROWS_KEY, read_private_key, sign_document

from ._rules import DEFAULT_LIMITS, CellLimits
from ._storage import Storage, open_storage

PROG = "python -m shelfwise.upstream"
OK, ERROR, BAD_INPUT, REFUSED, UNAVAILABLE = 0, 1, 2, 3, 4
_BAD_PATH = {
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EACCES,
    errno.EPERM,
    errno.ENAMETOOLONG,
    errno.EEXIST,
}
_NOT_A_DB = ("file is not a database", "unable to open database file", "malformed")


def _device_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.match(DEVICE_RE, value):
        raise click.BadParameter("a device id is 1-64 characters of [A-Za-z0-9._-]")
    return value


def storage_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--db``, ``--pg`` and ``--server-key``, shared by every command."""
    for option in reversed(
        [
            click.option("--db", default="collector.db", show_default=True, help="SQLite file"),
            click.option("--pg", help="PostgreSQL DSN (the production backend; wins over --db)"),
            click.option(
                "--server-key",
                type=click.Path(dir_okay=False),
                help="key file sealing device secrets (created 0600; default: <db>.key; "
                "required with --pg)",
            ),
        ]
    ):
        command = option(command)
    return command


def _open(db: str, pg: str | None, server_key: str | None) -> Storage:
    return open_storage(db=db, pg=pg, key_file=server_key)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The shelfwise reference collector.

    Example: python -m shelfwise.upstream --db collector.db --port 8421
    """


@cli.command()
@storage_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8421, show_default=True)
@click.option("--bundles", type=click.Path(file_okay=False), help="published bundles folder")
@click.option("--max-body", type=click.IntRange(1), default=4 << 20, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="requests per second per device after the burst (0: no limit)",
)
@click.option("--burst", type=click.IntRange(1), default=120, show_default=True)
@click.option(
    "--max-age-days",
    type=click.FloatRange(0),
    default=DEFAULT_LIMITS.max_age_ms / DAY_MS,
    show_default=True,
    help="oldest summary bucket accepted (a device's backlog)",
)
@click.option(
    "--max-per-hour",
    type=click.IntRange(1),
    default=DEFAULT_LIMITS.max_per_hour,
    show_default=True,
    help="most events one cell may count in an hour",
)
def serve(
    db: str,
    pg: str | None,
    server_key: str | None,
    host: str,
    port: int,
    bundles: str | None,
    max_body: int,
    rate: float,
    burst: int,
    max_age_days: float,
    max_per_hour: int,
) -> int:
    """Run the HTTP collector.

    Example: python -m shelfwise.upstream serve --db collector.db --port 8421
    """
    import uvicorn

    from ._app import create_app

    storage = _open(db, pg, server_key)
    limits = CellLimits(
        max_per_hour=max_per_hour,
        max_quantity_per_hour=max_per_hour * 100,
        max_age_ms=int(max_age_days * DAY_MS),
        max_ahead_ms=DEFAULT_LIMITS.max_ahead_ms,
    )
    app = create_app(
        storage, bundles_dir=bundles, max_body=max_body, limits=limits, rate_per_s=rate, burst=burst
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return OK


@cli.command("add-device")
@storage_options
@click.option("--device", required=True, callback=_device_id, help="the device id")
@click.option("--region", default="", help="its region (fleet trending is per region)")
@click.option("--store", "stores", multiple=True, help="a store it reports for (repeatable)")
@click.option("--key-file", type=click.Path(dir_okay=False), help="write the key here (0600)")
def add_device(
    db: str,
    pg: str | None,
    server_key: str | None,
    device: str,
    region: str,
    stores: tuple[str, ...],
    key_file: str | None,
) -> int:
    """Register a device (a new secret if it exists); prints its key file (JSON).

    Example: python -m shelfwise.upstream add-device --db c.db --device kiosk-7 --store s7
    """
    secret = _open(db, pg, server_key).add_device(device, region=region, stores=stores)
    key = json.dumps({"device_id": device, "secret": secret.hex()})
    if key_file:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(fd, 0o600)
            handle.write(key + "\n")
    else:
        click.echo(key)
    if not stores:
        click.echo(
            f"note: {device} reports for no store yet; its summaries are refused until "
            f"`{PROG} set-stores --device {device} --store ID`",
            err=True,
        )
    return OK


@cli.command("set-stores")
@storage_options
@click.option("--device", required=True, callback=_device_id)
@click.option("--store", "stores", multiple=True, required=True, help="repeatable")
def set_stores(
    db: str, pg: str | None, server_key: str | None, device: str, stores: tuple[str, ...]
) -> int:
    """Replace the stores a device may report for.

    Example: python -m shelfwise.upstream set-stores --db c.db --device kiosk-7 --store s7
    """
    _open(db, pg, server_key).set_stores(device, stores)
    return OK


@cli.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def devices(db: str, pg: str | None, server_key: str | None, as_json: bool) -> int:
    """Registered devices: region, stores and refused summaries or requests by reason.

    Example: python -m shelfwise.upstream devices --db collector.db --json
    """
    storage = _open(db, pg, server_key)
    refusals = storage.refusals()
    rows: list[dict[str, Any]] = [
        {
            "device_id": d.device_id,
            "region": d.region,
            "stores": sorted(d.stores),
            "refusals": refusals.get(d.device_id, {}),
        }
        for d in storage.devices()
    ]
    if as_json:
        _print_json(rows)
    for row in [] if as_json else rows:
        refused = ", ".join(f"{k} {v}" for k, v in row["refusals"].items()) or "none"
        click.echo(
            f"{row['device_id']}\tregion {row['region'] or '-'}\t"
            f"stores {','.join(row['stores']) or '-'}\trefused: {refused}"
        )
    return OK


@cli.command()
@storage_options
@click.option("--device", callback=_device_id, help="only this device's")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def quarantined(
    db: str, pg: str | None, server_key: str | None, device: str | None, limit: int, as_json: bool
) -> int:
    """Summaries refused for a broken rule and kept aside (never counted), newest first.

    Example: python -m shelfwise.upstream quarantined --db collector.db --device kiosk-7
    """
    rows = [
        {k: v for k, v in q.__dict__.items() if k != "body"}
        for q in _open(db, pg, server_key).quarantined(device, limit)
    ]
    if as_json:
        _print_json(rows)
    for row in [] if as_json else rows:
        click.echo(
            f"{row['device_id']}\t{row['key']}\trev {row['rev']}\t{row['reason']}: {row['detail']}"
        )
    return OK


@cli.command("rotate-key")
@storage_options
def rotate_key(db: str, pg: str | None, server_key: str | None) -> int:
    """Re-seal every device secret under a new server key (crash-safe); prints the count.

    Example: python -m shelfwise.upstream rotate-key --db collector.db
    """
    storage = _open(db, pg, server_key)
    count = storage.rotate_key()
    _print_json({"resealed": count})
    return OK


@cli.command()
@storage_options
@click.option("--device", callback=_device_id, help="only what this device contributed")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def totals(
    db: str, pg: str | None, server_key: str | None, device: str | None, as_json: bool
) -> int:
    """Print the fleet totals, one cell a line.

    Example: python -m shelfwise.upstream totals --db collector.db --json
    """
    data = _open(db, pg, server_key).totals(device)
    if as_json:
        click.echo(json.dumps([[*k, *v] for k, v in sorted(data.items())]))
    for cell, (n, q) in [] if as_json else sorted(data.items()):
        click.echo("\t".join(str(v) for v in (*cell, n, q)))
    return OK


@cli.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def erasures(db: str, pg: str | None, server_key: str | None, as_json: bool) -> int:
    """Erasures each device has yet to pull, and the members' copies held (no member named).

    Example: python -m shelfwise.upstream erasures --db collector.db --json
    """
    storage = _open(db, pg, server_key)
    backlog = storage.erasure_backlog()
    data: dict[str, Any] = {
        **storage.member_stats(),
        "devices": [
            {"device_id": d, "pending": n, "feed_position": seq, "last_pulled_ms": seen or None}
            for d, n, seq, seen in backlog.devices
        ],
    }
    if as_json:
        _print_json(data)
        return OK
    click.echo(
        f"tombstones {data['tombstones']}\tmembers with copies {data['members_with_copies']}\t"
        f"copies {data['copies']} ({data['sealed_bytes']} bytes sealed)"
    )
    for row in data["devices"]:
        click.echo(f"{row['device_id']}\tpending {row['pending']}\tat {row['feed_position']}")
    return OK


@cli.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def shares(db: str, pg: str | None, server_key: str | None, as_json: bool) -> int:
    """Fleet-wide offer limits and how they are shared out among the devices.

    Example: python -m shelfwise.upstream shares --db collector.db --json
    """
    data = [s.to_dict() for s in _open(db, pg, server_key).shares()]
    if as_json:
        _print_json(data)
        return OK
    for row in data:
        click.echo(
            f"{row['offer_id']}\ttotal {row['total_redemptions']}\tshared "
            f"{row['shared_redemptions']}\tused {row['used_redemptions']}\tbudget "
            f"{row['budget']}\tshared {row['shared_budget']}\tused {row['used_budget']}\t"
            f"reported {row['reported_redemptions']} / {row['reported_budget']}\t"
            f"devices {row['devices']}"
        )
    return OK


@cli.command("retire-device")
@storage_options
@click.option("--device", required=True, callback=_device_id, help="the device id")
def retire_device(db: str, pg: str | None, server_key: str | None, device: str) -> int:
    """Retire a device that will never come back: its secret is replaced by one nobody holds
    (it can no longer sign anything) and its shares of fleet-wide offers drop to what its
    ledger reported, so the unused part returns to the fleet.

    Example: python -m shelfwise.upstream retire-device --db collector.db --device kiosk-7
    """
    storage = _open(db, pg, server_key)
    known = storage.device(device)
    if known is None:
        raise shelfwise.InvalidInput(f"no device {device!r} is registered")
    storage.add_device(device, region=known.region, stores=known.stores)  # the secret is dropped
    settled = storage.settle_shares(device)
    click.echo(f"{device} retired; shares settled from its ledger: {', '.join(settled) or 'none'}")
    return OK


@cli.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def reconcile(db: str, pg: str | None, server_key: str | None, as_json: bool) -> int:
    """Check every device's reported redemptions against the offers' limits; list each
    over-redemption (fleet totals and budgets, codes used twice, members beyond a
    per-customer limit) with the devices involved. Exits 1 when there is any.

    Example: python -m shelfwise.upstream reconcile --db collector.db --json
    """
    found = [o.to_dict() for o in _open(db, pg, server_key).reconcile()]
    if as_json:
        _print_json(found)
    for row in [] if as_json else found:
        click.echo(
            f"{row['kind']}\t{row['offer_id']}\t{row['subject'][:16]}\tlimit {row['limit']}\t"
            f"used {row['used']}\tdevices {','.join(row['devices'])}"
        )
    if not found and not as_json:
        click.echo("no over-redemption")
    return 1 if found else OK


@cli.command("issue-codes")
@storage_options
@click.option("--offer", required=True, help="the offer the codes redeem")
@click.option("--count", type=click.IntRange(1, 100_000), required=True)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="new file for the codes (0600)"
)
def issue_codes(
    db: str, pg: str | None, server_key: str | None, offer: str, count: int, out: str
) -> int:
    """Issue single-use codes any device redeems once, fleet-wide (claimed from the collector);
    they are written once to OUT, one a line, and kept only hashed here.

    Example: python -m shelfwise.upstream issue-codes --db c.db --offer welcome --count 500 --out codes.txt
    """
    storage = _open(db, pg, server_key)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never over another file
    try:
        with os.fdopen(fd, "w") as handle, click.progressbar(
            length=count, label="hashing codes", file=sys.stderr
        ) as bar:
            codes = storage.issue_codes(
                offer, count, progress=lambda done, total: bar.update(done - bar.pos)
            )
            handle.write("\n".join(codes) + "\n")
    except BaseException:
        os.unlink(out)  # nothing issued: no file of codes that do not exist
        raise
    click.echo(f"{len(codes)} codes for {offer} in {out}")
    return OK


@cli.command()
@storage_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def codes(db: str, pg: str | None, server_key: str | None, as_json: bool) -> int:
    """Centrally issued codes per offer: available and claimed.

    Example: python -m shelfwise.upstream codes --db collector.db --json
    """
    data = _open(db, pg, server_key).code_stats()
    if as_json:
        _print_json(data)
    for offer_id, counts in [] if as_json else sorted(data.items()):
        click.echo(f"{offer_id}\tavailable {counts['available']}\tclaimed {counts['claimed']}")
    return OK


def _publish_command(kind: str, what: str, example: str) -> None:
    @cli.command(
        f"publish-{kind}",
        help=f"Sign the {kind} document and publish it to devices (prints its manifest).\n\n"
        f"FILE is a {what} file. Rows are validated the way a kiosk applies them.\n\n"
        f"Example: {PROG} publish-{kind} --db collector.db --sign-key docs.key {example}",
    )
    @storage_options
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option(
        "--sign-key",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="ed25519 private key file",
    )
    @click.option("--version", type=click.IntRange(1), help="default: the published version + 1")
    @click.option(
        "--expires-days", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True
    )
    @click.option("--merge", is_flag=True, help="upsert only (default: replace the whole set)")
    def publish(
        db: str,
        pg: str | None,
        server_key: str | None,
        file: str,
        sign_key: str,
        version: int | None,
        expires_days: float,
        merge: bool,
    ) -> int:
        storage = _open(db, pg, server_key)
        with shelfwise.open(":memory:") as scratch:  # validated exactly as a kiosk applies it
            if kind == "catalog":
                scratch.catalog.import_file(file)
                rows = [item.to_dict() for item in scratch.catalog.all()]
            else:
                rows = [offer.to_dict() for offer in scratch.offers.load(file)]
        issued = now_ms()
        raw = sign_document(
            kind,
            {ROWS_KEY[kind]: rows, "replace": not merge},
            version=version or storage.latest_version(kind) + 1,
            private_key=read_private_key(sign_key),
            issued_ms=issued,
            expires_ms=issued + int(expires_days * DAY_MS),
        )
        _print_json(storage.publish(raw).__dict__)
        return OK


_publish_command("catalog", ".csv or .jsonl catalog", "catalog.csv")
_publish_command("offers", ".json or .yaml offers", "offers.yaml")


def exit_code_for(exc: BaseException) -> int:
    """The exit code of a command that failed with ``exc`` (see the module docstring)."""
    if isinstance(exc, shelfwise.InvalidInput | shelfwise.VersionConflict | UnicodeError):
        return BAD_INPUT
    if isinstance(exc, shelfwise.UpdateRefused | shelfwise.SyncRejected | shelfwise.KeyConflict):
        return REFUSED
    if isinstance(exc, sqlite3.DatabaseError) and any(t in str(exc) for t in _NOT_A_DB):
        return BAD_INPUT
    if isinstance(exc, OSError) and exc.errno in _BAD_PATH:
        return BAD_INPUT
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the install
        return ERROR
    if isinstance(exc, psycopg.OperationalError):
        return UNAVAILABLE
    if isinstance(exc, psycopg.ProgrammingError | psycopg.InterfaceError):
        return BAD_INPUT
    return ERROR


def _message(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.DatabaseError) and any(t in str(exc) for t in _NOT_A_DB):
        return f"--db is not a usable collector database (SQLite said: {exc})"
    return " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the driver says


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ``serve`` is the default command. Never shows a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in cli.commands and args[0] not in ("-h", "--help")):
        args.insert(0, "serve")
    try:
        result = cli.main(args, prog_name=PROG, standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return ERROR
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()} (see {PROG} --help)", err=True)
        return BAD_INPUT
    except BrokenPipeError:  # the reader went away (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as exc:
        click.echo(f"error: {_message(exc)}", err=True)
        return exit_code_for(exc)
    return int(result or OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["cli", "exit_code_for", "main"]
