"""Secrets at the edge: argon2id PIN hashes, persistent lockouts, and an audit trail.

What a kiosk or app backend needs to let people prove who they are without keeping a secret
in clear, and to slow guessing to a crawl:

- ``hash_secret`` / ``verify_secret``: argon2id (RFC 9106, via argon2-cffi), salted, with its
  parameters in the encoded hash; ``check_pin_strength`` refuses PINs an attacker tries first.
- ``Throttle``: failures per key counted in SQLite *before* a secret is checked, so parallel
  guesses are counted as they arrive, and a lockout with exponential backoff survives a
  restart (``Backoff`` sets the pace).
- ``record_audit`` / ``audit_log``: who did what, where and when (staff actions).
- Member PINs: a second factor beside the loyalty card (``set_member_pin``,
  ``verify_member_pin``), throttled per card and per device.

Example:
    >>> import shelfwise
    >>> hashed = shelfwise.hash_secret("58029374")
    >>> hashed.startswith("$argon2id$"), shelfwise.verify_secret(hashed, "58029374")
    (True, True)
    >>> shelfwise.verify_secret(hashed, "00000000")
    False
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ._errors import AuthenticationFailed, AuthLocked, InvalidInput, WeakSecret
from .clock import now_ms
from .identity import get_shopper
from .store.connection import Store

# argon2-cffi's defaults follow RFC 9106's low-memory profile (argon2id, t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()

STAFF_PIN_MIN_LENGTH = 6
MEMBER_PIN_MIN_LENGTH = 4
MAX_SECRET_LENGTH = 128
# The PINs people pick first (published PIN frequency studies); refused whatever their length.
COMMON_PINS = frozenset(
    [
        "1234",
        "1111",
        "0000",
        "1212",
        "7777",
        "1004",
        "2000",
        "4444",
        "2222",
        "6969",
        "9999",
        "3333",
        "5555",
        "6666",
        "1122",
        "1313",
        "8888",
        "4321",
        "2001",
        "1010",
        "2580",
        "0852",
        "1379",
        "1470",
        "0258",
        "123456",
        "654321",
        "111111",
        "000000",
        "123123",
        "112233",
        "121212",
        "696969",
        "159753",
        "147258",
        "789456",
        "102030",
        "123321",
        "666666",
        "999999",
        "777777",
        "555555",
        "987654",
        "101010",
        "131313",
        "159357",
        "147852",
        "258369",
        "741852",
        "963852",
        "12345678",
        "87654321",
        "11111111",
        "00000000",
        "12341234",
        "11223344",
        "12121212",
        "123456789",
        "1234567890",
    ]
)


def check_pin_strength(pin: Any, *, min_length: int = STAFF_PIN_MIN_LENGTH) -> str:
    """``pin`` if it is hard enough to guess, else ``WeakSecret`` saying which rule it broke.

    Refused: shorter than ``min_length``, one repeated character, a run up or down the
    keypad (``345678``), a short block repeated (``121212``, ``123123``), a common PIN.

    Example:
        >>> check_pin_strength("58029374")
        '58029374'
        >>> check_pin_strength("123456")
        Traceback (most recent call last):
        ...
        shelfwise.WeakSecret: the PIN 123456 is a run of consecutive digits: choose one without a pattern
    """
    if not isinstance(pin, str):
        raise WeakSecret("a PIN is text", reason="type")
    if len(pin) < min_length or len(pin) > MAX_SECRET_LENGTH:
        raise WeakSecret(
            f"a PIN needs {min_length} to {MAX_SECRET_LENGTH} characters, this one has {len(pin)}",
            reason="length",
        )
    shown = "that PIN" if len(pin) > 12 else f"the PIN {pin}"
    if len(set(pin)) == 1:
        raise WeakSecret(f"{shown} repeats one character: mix them", reason="repeated")
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {-1}):
        raise WeakSecret(
            f"{shown} is a run of consecutive digits: choose one without a pattern",
            reason="sequence",
        )
    for period in range(1, len(pin) // 2 + 1):
        if len(pin) % period == 0 and pin[:period] * (len(pin) // period) == pin:
            raise WeakSecret(f"{shown} repeats the block {pin[:period]!r}", reason="pattern")
    if pin in COMMON_PINS:
        raise WeakSecret(f"{shown} is among the first PINs guessed: pick another", reason="common")
    return pin


def hash_secret(secret: str) -> str:
    """An argon2id hash of ``secret`` (salted; parameters encoded in the result).

    Example:
        >>> hash_secret("7391").startswith("$argon2id$")
        True
    """
    if not isinstance(secret, str) or not secret:
        raise InvalidInput("a secret to hash is non-empty text")
    return _HASHER.hash(secret)


def verify_secret(hashed: str, secret: Any) -> bool:
    """Whether ``secret`` matches ``hashed`` (False for a malformed hash or a non-text secret).

    Example:
        >>> verify_secret(hash_secret("7391"), "7391"), verify_secret("not a hash", "7391")
        (True, False)
    """
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
        return False
    try:
        return bool(_HASHER.verify(hashed, secret))
    except (VerificationError, InvalidHashError):
        return False


# -- throttling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    """How fast failures lock a key: ``free`` attempts, then a wait that doubles per failure.

    After the ``free``-th failure the key waits ``base_s``, then twice that, up to ``max_s``;
    failures older than ``forget_after_s`` no longer count (an honest typo last week).

    Example:
        >>> [Backoff(free=3, base_s=2, max_s=900).delay_s(n) for n in (1, 3, 4, 20)]
        [0.0, 2.0, 4.0, 900.0]
    """

    free: int = 3
    base_s: float = 2.0
    max_s: float = 900.0
    forget_after_s: float = 86_400.0

    def delay_s(self, failures: int) -> float:
        """Seconds the key must wait after ``failures`` counted failures."""
        if failures < self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - self.free, 60)))

    def per_hour(self) -> float:
        """Attempts an attacker gets per hour once the backoff is at its ceiling."""
        return 3600.0 / self.max_s if self.max_s > 0 else math.inf


@dataclass(frozen=True)
class ThrottleState:
    """A key's counted failures and when it may try again (0: now)."""

    failures: int
    locked_until_ms: int


class Throttle:
    """Failures per key of one ``scope`` ("staff_pin", ...), kept in the store.

    Call ``attempt(key)`` *before* checking a secret: it refuses a locked key with
    ``AuthLocked`` and otherwise counts the attempt as a failure at once (so guesses sent in
    parallel are each counted); ``succeeded(key)`` clears the count after a right answer.

    Example:
        >>> from shelfwise.store.connection import Store
        >>> with Store(":memory:") as store:
        ...     throttle = Throttle(store, "staff_pin", Backoff(free=1, base_s=60))
        ...     throttle.attempt("kiosk-1", now=0)
        ...     throttle.attempt("kiosk-1", now=1_000)
        Traceback (most recent call last):
        ...
        shelfwise.AuthLocked: too many wrong attempts: try again in 59 s
    """

    def __init__(self, store: Store, scope: str, backoff: Backoff | None = None) -> None:
        self.store = store
        self.scope = scope
        self.backoff = backoff or Backoff()

    def attempt(self, key: str, *, now: int | None = None) -> None:
        """Refuse a locked ``key`` (``AuthLocked``), else count this attempt as a failure."""
        attempt_all(self.store, [(self, key)], now=now)

    def succeeded(self, key: str) -> None:
        """A right answer: the key's failures are forgotten."""
        with self.store.write() as db:
            db.execute("DELETE FROM auth_throttle WHERE scope = ? AND key = ?", [self.scope, key])

    def forgive(self, key: str) -> None:
        """A right answer on a shared key (a kiosk): take back only this attempt's count.

        Unlike ``succeeded`` it cannot wipe failures others made, so knowing one valid PIN
        does not reset the lockout that guesses at other cards built up.
        """
        with self.store.write() as db:
            rows = list(
                db.query(
                    "SELECT failures, last_ms FROM auth_throttle WHERE scope = ? AND key = ?",
                    [self.scope, key],
                )
            )
            if not rows:
                return
            failures = max(0, rows[0]["failures"] - 1)
            locked_until = rows[0]["last_ms"] + int(self.backoff.delay_s(failures) * 1000)
            db.execute(
                "UPDATE auth_throttle SET failures = ?, locked_until_ms = ? "
                "WHERE scope = ? AND key = ?",
                [failures, locked_until, self.scope, key],
            )

    def state(self, key: str, *, now: int | None = None) -> ThrottleState:
        """The key's failures still counting and the time it may try again."""
        rows = self.store.rows(
            "SELECT failures, last_ms, locked_until_ms FROM auth_throttle "
            "WHERE scope = ? AND key = ?",
            [self.scope, key],
        )
        stamp = now_ms() if now is None else now
        if not rows or self._expired(rows[0][1], stamp):
            return ThrottleState(0, 0)
        return ThrottleState(int(rows[0][0]), int(rows[0][2]))

    def _expired(self, last_ms: int, stamp: int) -> bool:
        return stamp - last_ms > self.backoff.forget_after_s * 1000


def attempt_all(
    store: Store, checks: list[tuple[Throttle, str]], *, now: int | None = None
) -> None:
    """Count one attempt against several (throttle, key) pairs in one transaction.

    Nothing is counted when any of them is locked: the caller is refused with the longest
    wait. This is how a PIN is throttled per card and per kiosk at once.
    """
    stamp = now_ms() if now is None else now
    with store.write() as db:
        current = []
        for throttle, key in checks:
            rows = list(
                db.query(
                    "SELECT failures, last_ms, locked_until_ms FROM auth_throttle "
                    "WHERE scope = ? AND key = ?",
                    [throttle.scope, key],
                )
            )
            failures, locked_until = 0, 0
            if rows and not throttle._expired(rows[0]["last_ms"], stamp):
                failures, locked_until = rows[0]["failures"], rows[0]["locked_until_ms"]
            current.append((throttle, key, failures, locked_until))
        wait_ms = max((locked - stamp for *_, locked in current), default=0)
        if wait_ms > 0:
            seconds = math.ceil(wait_ms / 1000)
            raise AuthLocked(
                f"too many wrong attempts: try again in {seconds} s", retry_after_s=seconds
            )
        for throttle, key, failures, _ in current:
            counted = failures + 1
            locked_until = stamp + int(throttle.backoff.delay_s(counted) * 1000)
            db.execute(
                "INSERT INTO auth_throttle (scope, key, failures, last_ms, locked_until_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET "
                "failures = excluded.failures, last_ms = excluded.last_ms, "
                "locked_until_ms = excluded.locked_until_ms",
                [throttle.scope, key, counted, stamp, locked_until],
            )


# -- audit ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditEntry:
    """One audited action: who (``actor``) did what (``action`` on ``target``), where, when."""

    seq: int
    ts_ms: int
    actor: str
    device: str
    action: str
    target: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "device": self.device,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


def _short(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"audit {name} must be text")
    return value.replace("\x00", "")[:limit]


def record_audit(
    store: Store,
    *,
    actor: str,
    action: str,
    device: str = "",
    target: str = "",
    detail: str = "",
    now: int | None = None,
) -> AuditEntry:
    """Append one entry to the audit log (kept in the store; never a secret in it).

    Example:
        >>> from shelfwise.store.connection import Store
        >>> with Store(":memory:") as store:
        ...     record_audit(store, actor="staff", device="kiosk-1", action="offer_off",
        ...                  target="milk-monday", now=1).action
        'offer_off'
    """
    if not isinstance(action, str) or not action.strip():
        raise InvalidInput("an audited action needs a name")
    entry = AuditEntry(
        seq=0,
        ts_ms=now_ms() if now is None else now,
        actor=_short(actor, "actor"),
        device=_short(device, "device"),
        action=_short(action, "action", 60),
        target=_short(target, "target"),
        detail=_short(detail, "detail", 500),
    )
    row = entry.to_dict()
    del row["seq"]
    with store.write() as db:
        seq = db.execute(
            "INSERT INTO audit_log (ts_ms, actor, device, action, target, detail) "
            "VALUES (:ts_ms, :actor, :device, :action, :target, :detail)",
            row,
        ).lastrowid
    return replace(entry, seq=int(seq or 0))


def audit_log(store: Store, *, limit: int = 50, device: str | None = None) -> list[AuditEntry]:
    """The latest audit entries, newest first (of one device when ``device`` is given).

    Example:
        >>> from shelfwise.store.connection import Store
        >>> with Store(":memory:") as store:
        ...     _ = record_audit(store, actor="staff", action="sync")
        ...     [e.action for e in audit_log(store)]
        ['sync']
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    where, params = ("WHERE device = ?", [device]) if device is not None else ("", [])
    rows = store.query(
        f"SELECT * FROM audit_log {where} ORDER BY seq DESC LIMIT ?", [*params, limit]
    )
    return [AuditEntry(**row) for row in rows]


# -- member PINs: the second factor beside a loyalty card --------------------------------------
MEMBER_PIN = "member_pin"  # throttle scope per card
MEMBER_PIN_DEVICE = "member_pin_device"  # throttle scope per kiosk, across cards
CARD_BACKOFF = Backoff(free=3, base_s=30.0, max_s=3600.0)
DEVICE_BACKOFF = Backoff(free=10, base_s=5.0, max_s=900.0)


def card_key(member_id: str) -> str:
    """The throttle key of a member: a digest, so the lockout table names nobody."""
    return hashlib.sha256(f"shelfwise-card:{member_id}".encode()).hexdigest()[:32]


def set_member_pin(store: Store, member_id: str, pin: str, *, now: int | None = None) -> None:
    """Set a member's PIN (chosen by the member, e.g. in the phone app): kept as argon2id only.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     set_member_pin(sw.store, sw.member("L-1").shopper_id, "7391")
        ...     has_member_pin(sw.store, "L-1")
        True
    """
    if not get_shopper(store, member_id).is_member:
        raise InvalidInput("only a loyalty member has a PIN; a guest session has none")
    hashed = hash_secret(check_pin_strength(pin, min_length=MEMBER_PIN_MIN_LENGTH))
    stamp = now_ms() if now is None else now
    with store.write() as db:
        db.execute(
            "INSERT INTO member_credentials (member_id, pin_hash, updated_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (member_id) DO UPDATE SET pin_hash = excluded.pin_hash, "
            "updated_ms = excluded.updated_ms",
            [member_id, hashed, stamp],
        )
    Throttle(store, MEMBER_PIN, CARD_BACKOFF).succeeded(card_key(member_id))


def has_member_pin(store: Store, member_id: str) -> bool:
    """Whether the member has set a PIN."""
    rows = store.rows("SELECT 1 FROM member_credentials WHERE member_id = ?", [member_id])
    return bool(rows)


def verify_member_pin(
    store: Store, member_id: str, pin: Any, *, device: str = "", now: int | None = None
) -> None:
    """Check a member's PIN, throttled per card and per ``device``; raise unless it matches.

    ``AuthLocked`` (nothing checked) while the card or the device waits out a lockout,
    ``AuthenticationFailed`` with reason ``no_pin`` (the member never set one) or
    ``pin_wrong``.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     set_member_pin(sw.store, sw.member("L-1").shopper_id, "7391")
        ...     verify_member_pin(sw.store, "L-1", "7391", device="kiosk-1")
        ...     verify_member_pin(sw.store, "L-1", "7390", device="kiosk-1")
        Traceback (most recent call last):
        ...
        shelfwise.AuthenticationFailed: wrong PIN for this card
    """
    rows = store.rows("SELECT pin_hash FROM member_credentials WHERE member_id = ?", [member_id])
    if not rows:
        raise AuthenticationFailed(
            "this card has no PIN yet: set one in the phone app or at the till", reason="no_pin"
        )
    card = Throttle(store, MEMBER_PIN, CARD_BACKOFF)
    kiosk = Throttle(store, MEMBER_PIN_DEVICE, DEVICE_BACKOFF)
    checks = [(card, card_key(member_id))]
    if device:
        checks.append((kiosk, device))
    attempt_all(store, checks, now=now)
    if not verify_secret(rows[0][0], pin):
        raise AuthenticationFailed("wrong PIN for this card", reason="pin_wrong")
    card.succeeded(card_key(member_id))
    if device:
        kiosk.forgive(device)


__all__ = [
    "CARD_BACKOFF",
    "COMMON_PINS",
    "DEVICE_BACKOFF",
    "MEMBER_PIN_MIN_LENGTH",
    "STAFF_PIN_MIN_LENGTH",
    "AuditEntry",
    "Backoff",
    "Throttle",
    "ThrottleState",
    "attempt_all",
    "audit_log",
    "card_key",
    "check_pin_strength",
    "has_member_pin",
    "hash_secret",
    "record_audit",
    "set_member_pin",
    "verify_member_pin",
    "verify_secret",
]
