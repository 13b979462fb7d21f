"""``shelfwise notifications list|deliver``: ``sw.notifications`` (the notification outbox);
``shelfwise watches add|remove|list``: members' watches that feed it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import click

from .. import InvalidInput, WebhookSender
from .. import open as open_store
from ..notifications import DEFAULT_MAX_ATTEMPTS, STATES
from .exit_codes import ExitCode
from .output import emit, json_option, one_line, table
from .params import COUNT, InputFile, WebhookUrl, db_option


def read_webhook_secret(path: str) -> bytes:
    """The shared webhook secret: the file's text, stripped, at least 16 bytes."""
    try:
        secret = Path(path).read_text(encoding="utf-8").strip().encode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not a webhook secret file (UTF-8 text)") from exc
    if len(secret) < 16:
        raise InvalidInput(f"{path}: a webhook secret is at least 16 bytes")
    return secret


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """stamina logs every retry as a warning; the command reports the round's outcome once
    instead (``-v`` shows them). The logger is put back afterwards."""
    logger = logging.getLogger("stamina")
    saved = logger.level
    if logging.getLogger("shelfwise").getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


@click.group()
def notifications() -> None:
    """The notification outbox: fired triggers waiting for the shopper's app.

    \b
    Example:
      shelfwise notifications list --db store.db --state pending
      shelfwise notifications deliver --db store.db --webhook https://app.example/hooks --secret-file hook.secret
    """


@notifications.command("list")
@db_option()
@click.option("--state", type=click.Choice(STATES), help="Only notifications in this state.")
@click.option("--shopper", help="Only this member's notifications (a loyalty id).")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="At most this many.")
@json_option
def list_notifications(
    db: str, state: str | None, shopper: str | None, limit: int, as_json: bool
) -> None:
    """Queued notifications, oldest first, with their delivery state.

    Python: sw.notifications.list(state=..., shopper_id=..., limit=...)

    \b
    Example:
      shelfwise notifications list --db store.db --state failed --json
    """
    with open_store(db) as sw:
        found = sw.notifications.list(state=state, shopper_id=shopper, limit=limit)
        counts = sw.notifications.counts()
    rows = [n.to_dict() for n in found]

    def text() -> str:
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        if not rows:
            return f"(no notifications) - {summary}"
        shown = [
            (
                r["notification_id"][:12],
                r["state"],
                r["attempts"],
                r["offer_id"],
                r["item_id"] or "",
            )
            for r in rows
        ]
        return table(shown, ["id", "state", "attempts", "offer", "item"]) + f"\n{summary}"

    emit(as_json, {"notifications": rows, "counts": counts}, text)


@notifications.command()
@db_option()
@click.option("--webhook", required=True, type=WebhookUrl(), help="The app backend's URL.")
@click.option(
    "--secret-file",
    required=True,
    type=InputFile(),
    help="The shared secret the requests are signed with (text, at least 16 bytes).",
)
@click.option(
    "--run-triggers",
    is_flag=True,
    help="Fire the offers' triggers for app push first (sw.offers.run_triggers).",
)
@click.option("--store", default="", help="Store id the offers run in (with --run-triggers).")
@click.option("--limit", type=COUNT, help="At most this many notifications this round.")
@click.option(
    "--max-attempts",
    type=COUNT,
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="A notification the webhook refuses (4xx) this many times is dropped, with its error.",
)
@click.option(
    "--attempts",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Tries per notification within the round on network errors, 5xx and 429.",
)
@json_option
def deliver(
    db: str,
    webhook: str,
    secret_file: str,
    run_triggers: bool,
    store: str,
    limit: int | None,
    max_attempts: int,
    attempts: int,
    as_json: bool,
) -> None:
    """POST every due notification to the webhook as signed JSON; each is marked sent only
    after a 2xx, and a resend carries the same Idempotency-Key.

    Python: sw.notifications.deliver(WebhookSender(url, secret))

    Exits 4 when the webhook could not be reached (or kept failing): what was not sent stays
    queued for the next run.

    \b
    Example:
      shelfwise notifications deliver --db store.db --webhook http://127.0.0.1:8080/hooks --secret-file hook.secret --run-triggers --json
    """
    sender = WebhookSender(webhook, read_webhook_secret(secret_file), attempts=attempts)
    with open_store(db, store_id=store) as sw, quiet_retries():
        fired = len(sw.offers.run_triggers(channel="app_push")) if run_triggers else 0
        report = sw.notifications.deliver(sender, limit=limit, max_attempts=max_attempts)
    emit(
        as_json,
        {"fired": fired, **report.to_dict()},
        lambda: (
            f"sent {report.sent}, dropped {report.failed}, still pending {report.pending}"
            + (f" (fired {fired} triggers first)" if run_triggers else "")
        ),
    )
    if report.error is not None:
        click.echo(
            f"error: delivery stopped: {one_line(report.error)} "
            f"({report.pending} notifications stay queued for the next run)",
            err=True,
        )
        raise click.exceptions.Exit(ExitCode.UNAVAILABLE)


@click.group()
def watches() -> None:
    """Members' watches on items: back in stock, price drop (an offer with that trigger fires
    once per change and its notification waits in the outbox).

    \b
    Example:
      shelfwise watches add --db store.db --member L-1001 --item tea --kind price-drop
      shelfwise watches list --db store.db --member L-1001 --json
    """


KINDS = {"back-in-stock": "back_in_stock", "price-drop": "price_drop"}


@watches.command("add")
@db_option()
@click.option(
    "--member", required=True, help="Loyalty id of the member (needs the offers consent)."
)
@click.option("--item", required=True, help="Item id or GTIN.")
@click.option(
    "--kind", type=click.Choice(sorted(KINDS)), default="back-in-stock", show_default=True
)
@json_option
def add_watch(db: str, member: str, item: str, kind: str, as_json: bool) -> None:
    """Watch an item for a member.

    Python: sw.member(loyalty_id).watch(item, kind="back_in_stock")

    \b
    Example:
      shelfwise watches add --db store.db --member L-1001 --item tea --kind price-drop --json
    """
    with open_store(db) as sw:
        watch = sw.shopper(member).watch(item, kind=KINDS[kind])
    emit(as_json, watch.to_dict(), lambda: f"{member} watches {watch.item_id} ({watch.kind})")


@watches.command("remove")
@db_option()
@click.option("--member", required=True, help="Loyalty id of the member.")
@click.option("--item", required=True, help="Item id.")
@click.option("--kind", type=click.Choice(sorted(KINDS)), help="Only this kind (default: every).")
@json_option
def remove_watch(db: str, member: str, item: str, kind: str | None, as_json: bool) -> None:
    """Stop watching an item.

    Python: sw.member(loyalty_id).unwatch(item)

    \b
    Example:
      shelfwise watches remove --db store.db --member L-1001 --item tea
    """
    with open_store(db) as sw:
        removed = sw.shopper(member).unwatch(item, kind=None if kind is None else KINDS[kind])
    emit(as_json, {"removed": removed}, f"{removed} watch(es) removed")


@watches.command("list")
@db_option()
@click.option("--member", required=True, help="Loyalty id of the member.")
@json_option
def list_watches(db: str, member: str, as_json: bool) -> None:
    """A member's watches, oldest first, with changes not fired yet.

    Python: sw.member(loyalty_id).watches()

    \b
    Example:
      shelfwise watches list --db store.db --member L-1001 --json
    """
    with open_store(db) as sw:
        rows = [w.to_dict() for w in sw.shopper(member).watches()]
    columns = ["item_id", "kind", "watch_price", "changes", "fired_changes"]
    emit(as_json, rows, lambda: table([[r[c] for c in columns] for r in rows], columns))


COMMANDS = [notifications, watches]

__all__ = ["COMMANDS", "quiet_retries", "read_webhook_secret"]
