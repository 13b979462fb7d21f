"""The durable notification outbox: fired triggers on their way to the shopper's app.

A trigger that fires for an app channel (``app_push``, ``app_inbox``) is queued here in the
firing's own transaction (``shelfwise.offers.firing`` calls ``enqueue``), one row per fire:
a crash keeps both the fire and its notification or neither. ``sw.notifications.deliver(sender)``
drains the queue through any ``Sender`` (``shelfwise.webhooks.WebhookSender`` POSTs JSON).

Each notification is ``pending`` until the sender returns (a 2xx), then ``sent``; its id is
the idempotency key every resend carries, so a crash between the receiver's 2xx and the
``sent`` mark costs one resend the receiver recognises, never a lost notification. A sender
that raises ``SyncRetryable`` (network, 5xx, 429, after its own retries) or
``SyncUnauthorized`` (401/403: the shared secret is wrong) leaves it pending and stops the
round (the next round tries again); ``SyncRejected`` (another 4xx) counts an attempt and,
after ``max_attempts`` of them, marks it ``failed`` with the error kept. One whose offer closed (``until_ms``) or whose member withdrew the
offers consent is marked ``failed`` unsent. (This module owns ``notifications``.)

Example:
    >>> import shelfwise
    >>> class Phone:
    ...     def __init__(self): self.got = []
    ...     def send(self, notification): self.got.append(notification.title)
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 3.0,
    ...                                  "in_stock": False}])
    ...     _ = sw.offers.define({"offer_id": "back", "title": "Tea is back: 1.00 off",
    ...         "reward": {"type": "amount", "value": 1}, "trigger": {"type": "back_in_stock"}})
    ...     _ = sw.member("L-1", consents={"offers": True}).watch("tea")
    ...     sw.catalog.set_stock("tea", True)
    ...     _ = sw.offers.run_triggers(channel="app_inbox")
    ...     phone = Phone()
    ...     report = sw.notifications.deliver(phone)
    ...     phone.got, report.sent, [n.state for n in sw.notifications.list()]
    (['Tea is back: 1.00 off'], 1, ['sent'])
"""

from __future__ import annotations

import builtins
import logging
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ._errors import InvalidInput, SyncRejected, SyncRetryable, SyncUnauthorized
from .clock import DAY_MS, now_ms
from .store.connection import Store

logger = logging.getLogger(__name__)

APP_CHANNELS = frozenset({"app_push", "app_inbox"})
STATES = ("pending", "sent", "failed")
DEFAULT_MAX_ATTEMPTS = 5
MAX_ERROR_CHARS = 500

_COLUMNS = (
    "notification_id, shopper_id, offer_id, item_id, channel, kind, title, body, fired_ms, "
    "deliver_at_ms, until_ms, state, attempts, last_error, sent_ms"
)


@dataclass(frozen=True)
class Notification:
    """One queued notification and its delivery state (``attempts``: delivery rounds that
    tried it, each with the sender's own retries inside; ``last_error``: the latest failure)."""

    notification_id: str
    shopper_id: str
    offer_id: str
    item_id: str | None
    channel: str
    kind: str
    title: str
    body: str
    fired_ms: int
    deliver_at_ms: int
    until_ms: int
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    sent_ms: int | None = None

    def payload(self) -> dict[str, Any]:
        """What a sender delivers: the message, not its delivery state.

        Example:
            >>> n = Notification("n1", "L-1", "back", "tea", "app_push", "back_in_stock",
            ...                  "Tea is back", "", 1, 1, 2)
            >>> sorted(n.payload())[:4]
            ['body', 'channel', 'deliver_at_ms', 'fired_ms']
        """
        data = asdict(self)
        for key in ("state", "attempts", "last_error", "sent_ms"):
            del data[key]
        return data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sender(Protocol):
    """Delivers one notification: returns once the receiver took it (a 2xx), raises
    ``SyncRetryable`` to try again later or ``SyncRejected`` when it was refused."""

    def send(self, notification: Notification) -> None: ...


@dataclass(frozen=True)
class DeliveryReport:
    """One ``deliver`` round: how many were sent, failed for good, are still pending, and
    the error that stopped the round (None: the queue of due notifications was drained)."""

    sent: int
    failed: int
    pending: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def enqueue(
    db: Any,
    *,
    shopper_id: str,
    offer_id: str,
    item_id: str | None,
    channel: str,
    kind: str,
    title: str,
    body: str,
    fired_ms: int,
    deliver_at_ms: int,
    until_ms: int,
    change_seq: int = 0,
) -> str:
    """Queue one notification in the caller's transaction; returns its id (the idempotency
    key). The same fire twice violates the unique index and rolls the transaction back."""
    notification_id = uuid.uuid4().hex
    db.execute(
        "INSERT INTO notifications (notification_id, shopper_id, offer_id, item_id, channel, "
        "kind, title, body, fired_ms, deliver_at_ms, until_ms, change_seq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            notification_id,
            shopper_id,
            offer_id,
            item_id,
            channel,
            kind,
            title,
            body,
            fired_ms,
            deliver_at_ms,
            until_ms,
            change_seq,
        ],
    )
    return notification_id


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise InvalidInput(f"{name} must be an integer between 1 and 1000000, not {value!r}")
    return value


class Notifications:
    """The notification outbox of one store file (``sw.notifications``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(
        self, *, state: str | None = None, shopper_id: str | None = None, limit: int = 100
    ) -> list[Notification]:
        """Queued notifications, oldest first (only ``state``/``shopper_id`` when given).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.notifications.list(state="pending")
            []
        """
        if state is not None and state not in STATES:
            raise InvalidInput(f"state {state!r} is not one of: {', '.join(STATES)}")
        rows = self._store.rows(
            f"SELECT {_COLUMNS} FROM notifications WHERE state = coalesce(?, state) "
            "AND shopper_id = coalesce(?, shopper_id) "
            "ORDER BY fired_ms, rowid LIMIT ?",
            [state, shopper_id, _check_count(limit, "limit")],
        )
        return [Notification(*row) for row in rows]

    def get(self, notification_id: str) -> Notification:
        """One notification by id (``InvalidInput`` when there is none).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.notifications.get("nope")
            Traceback (most recent call last):
            ...
            shelfwise.InvalidInput: no notification 'nope'
        """
        rows = self._store.rows(
            f"SELECT {_COLUMNS} FROM notifications WHERE notification_id = ?", [notification_id]
        )
        if not rows:
            raise InvalidInput(f"no notification {notification_id!r}")
        return Notification(*rows[0])

    def counts(self) -> dict[str, int]:
        """How many notifications are in each state.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.notifications.counts()
            {'pending': 0, 'sent': 0, 'failed': 0}
        """
        found = dict(self._store.rows("SELECT state, count(*) FROM notifications GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    def deliver(
        self,
        sender: Sender,
        *,
        now: int | None = None,
        limit: int | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> DeliveryReport:
        """Send every due pending notification (``deliver_at_ms`` reached), oldest first,
        through ``sender``; see the module docstring for what each outcome does. Run it from
        a timer, after ``sw.offers.run_triggers(channel="app_push")``.

        Example: ``sw.notifications.deliver(WebhookSender(url, secret))`` (see
        ``shelfwise.webhooks``; the module docstring has one that runs).
        """
        stamp = now_ms() if now is None else now
        _check_count(max_attempts, "max_attempts")
        due = self._due(stamp, _check_count(limit, "limit") if limit is not None else None)
        sent = failed = 0
        error: str | None = None
        for notification in due:
            refused = self._unsendable(notification, stamp)
            if refused is not None:
                self._finish(notification, "failed", refused, attempted=False, stamp=stamp)
                failed += 1
                continue
            try:
                sender.send(notification)
            except (SyncRetryable, SyncUnauthorized) as exc:
                # The receiver is unreachable or busy, or refuses our signature (a secret
                # to fix, not this notification's fault): keep it, stop this round.
                self._finish(notification, "pending", str(exc), attempted=True, stamp=stamp)
                error = str(exc)
                break
            except SyncRejected as exc:
                last = notification.attempts + 1 >= max_attempts
                self._finish(
                    notification, "failed" if last else "pending", str(exc), True, stamp=stamp
                )
                failed += last
                continue
            self._finish(notification, "sent", None, attempted=True, stamp=stamp)
            sent += 1
        pending = self.counts()["pending"]
        logger.info(
            "notifications: %d sent, %d failed, %d pending%s",
            sent,
            failed,
            pending,
            f" (stopped: {error})" if error else "",
        )
        return DeliveryReport(sent, failed, pending, error)

    def prune(self, *, older_than_days: float, now: int | None = None) -> int:
        """Retention: delete sent and failed notifications fired more than ``older_than_days``
        ago (pending ones stay, whatever their age); returns how many.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.notifications.prune(older_than_days=30)
            0
        """
        if (
            isinstance(older_than_days, bool)
            or not isinstance(older_than_days, int | float)
            or not 0 < older_than_days < 100_000
        ):
            raise InvalidInput("older_than_days must be a positive number of days")
        cutoff = (now_ms() if now is None else now) - int(older_than_days * DAY_MS)
        with self._store.write() as db:
            cursor = db.execute(
                "DELETE FROM notifications WHERE state != 'pending' AND fired_ms < ?", [cutoff]
            )
            return int(cursor.rowcount)

    def _due(self, stamp: int, limit: int | None) -> builtins.list[Notification]:
        rows = self._store.rows(
            f"SELECT {_COLUMNS} FROM notifications WHERE state = 'pending' AND deliver_at_ms <= ? "
            "ORDER BY deliver_at_ms, fired_ms, rowid LIMIT ?",
            [stamp, -1 if limit is None else limit],
        )
        return [Notification(*row) for row in rows]

    def _unsendable(self, notification: Notification, stamp: int) -> str | None:
        """Why this notification must not go out any more (None: send it)."""
        if notification.until_ms <= stamp:
            return "expired: the offer closed before the notification was sent"
        rows = self._store.rows(
            "SELECT granted FROM consents WHERE shopper_id = ? AND purpose = 'offers'",
            [notification.shopper_id],
        )
        if not rows or not rows[0][0]:
            return "consent_withdrawn: the member no longer consents to offers"
        return None

    def _finish(
        self,
        notification: Notification,
        state: str,
        error: str | None,
        attempted: bool,
        *,
        stamp: int,
    ) -> None:
        """Record one attempt's outcome; only a pending row changes (a concurrent round
        that already marked it sent wins)."""
        with self._store.write() as db:
            db.execute(
                "UPDATE notifications SET state = ?, attempts = attempts + ?, last_error = ?, "
                "sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END "
                "WHERE notification_id = ? AND state = 'pending'",
                [
                    state,
                    int(attempted),
                    None if error is None else error[:MAX_ERROR_CHARS],
                    state,
                    stamp,
                    notification.notification_id,
                ],
            )


__all__ = [
    "APP_CHANNELS",
    "DEFAULT_MAX_ATTEMPTS",
    "STATES",
    "DeliveryReport",
    "Notification",
    "Notifications",
    "Sender",
    "enqueue",
]
