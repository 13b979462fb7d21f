"""The collector as the chain's authority: single-use codes issued centrally, each redeemed
once across the fleet, and members' uses of per-customer-limited offers counted centrally.

A code the collector issued (``python -m shelfwise.upstream issue-codes``) is known to no
device: a device that is handed one asks the collector (``POST /v1/codes/claim``), which
gives it to the first device that asks and answers ``code_used`` to every other. The claim
moves the code's authority to that device: it redeems the code in its own ledger, offline
from then on, and a voided order gives the code back *there*. A device that cannot reach the
collector cannot redeem a central code (``code_unconfirmed``); codes a device issued itself
(``sw.offers.issue_codes``) are redeemed on that device only. Either way one code has one
authority at any moment, so no partition of the fleet can spend it twice.

A device whose redemption failed after its claim (the offer did not apply) gives the claim
back (``POST /v1/codes/release``), so the shopper can use the code elsewhere.

A member's uses of an offer with a per-customer limit are counted here when the redeeming
device can reach the collector (``POST /v1/member-uses``, by blinded id, before the
redemption): the member's row is locked, so the limit holds across the fleet online;
offline, each offer's ``offline`` policy decides. A voided order gives its uses back.

Codes are never stored in clear: the collector keeps ``argon2id(code, salt)`` (one random
salt per collector database, a cost low enough for a claim to take milliseconds and high
enough that a stolen database does not give codes back).

Example:
    >>> from shelfwise.upstream import SqliteStorage
    >>> storage = SqliteStorage(":memory:")
    >>> _ = storage.add_device("kiosk-1"); _ = storage.add_device("kiosk-2")
    >>> (code,) = storage.issue_codes("welcome", 1)
    >>> storage.claim_code("kiosk-1", code, "c-1"), storage.claim_code("kiosk-2", code, "c-2")
    (('claimed', 'welcome'), ('code_used', 'welcome'))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from shelfwise import InvalidInput
from shelfwise.clock import now_ms
from shelfwise.offers.codes import canonical_code, new_code

CODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS collector_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS central_codes (
    code_hash TEXT PRIMARY KEY,
    offer_id TEXT NOT NULL,
    state TEXT NOT NULL,
    device_id TEXT,
    claim_id TEXT,
    issued_ms BIGINT NOT NULL,
    claimed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS central_codes_offer ON central_codes(offer_id, state);
CREATE TABLE IF NOT EXISTS member_uses (
    use_id TEXT PRIMARY KEY,
    blinded_id TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS member_uses_member ON member_uses(blinded_id, offer_id);
"""

MAX_ISSUE = 100_000
_COST = {"time_cost": 1, "memory_cost": 8 * 1024, "parallelism": 1, "hash_len": 32}


class CentralCodes:
    """Centrally issued single-use codes (see the module docstring)."""

    lock_suffix = ""
    _salt: bytes | None = None

    # provided by the backend
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _code_salt(self) -> bytes:
        if self._salt is None:
            with self._tx() as cur:
                cur.execute(
                    self._sql(
                        "INSERT INTO collector_meta (name, value) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    ["code_salt", os.urandom(16).hex()],
                )
                value = self._rows(
                    cur, "SELECT value FROM collector_meta WHERE name = ?", ["code_salt"]
                )[0][0]
            self._salt = bytes.fromhex(value)
        return self._salt

    def _hash(self, code: str) -> str:
        raw = hash_secret_raw(
            canonical_code(code).encode(), self._code_salt(), type=Type.ID, **_COST
        )
        return raw.hex()

    def issue_codes(
        self, offer_id: str, count: int, *, progress: Any = None, now: int | None = None
    ) -> list[str]:
        """Draw ``count`` new codes for ``offer_id``; they are returned once and kept hashed.

        ``progress(done, total)`` is called as they are hashed (a few milliseconds each).
        """
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_ISSUE:
            raise InvalidInput(f"issue between 1 and {MAX_ISSUE} codes at a time")
        if not offer_id or len(offer_id) > 64 or any(c.isspace() for c in offer_id):
            raise InvalidInput("an offer id is 1 to 64 characters without spaces")
        stamp = now_ms() if now is None else now
        codes, hashes = [], []
        for n in range(count):
            code = new_code()
            codes.append(code)
            hashes.append(self._hash(code))
            if progress is not None:
                progress(n + 1, count)
        with self._tx() as cur:
            for code_hash in hashes:
                cur.execute(
                    self._sql(
                        "INSERT INTO central_codes (code_hash, offer_id, state, issued_ms) "
                        "VALUES (?, ?, 'available', ?)"
                    ),
                    [code_hash, offer_id, stamp],
                )
        return codes

    def claim_code(
        self, device_id: str, code: str, claim_id: str, *, now: int | None = None
    ) -> tuple[str, str | None]:
        """Give a code to the first device that asks: ``(claimed | code_used | code_unknown,
        offer id)``; the same claim asked again is ``claimed`` again (a retry)."""
        code_hash = self._hash(code)
        stamp = now_ms() if now is None else now
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT offer_id, state, device_id, claim_id FROM central_codes "
                "WHERE code_hash = ?" + self.lock_suffix,
                [code_hash],
            )
            if not rows:
                return "code_unknown", None
            offer_id, state, holder, held_claim = rows[0]
            if state == "claimed":
                mine = holder == device_id and held_claim == claim_id
                return ("claimed" if mine else "code_used"), offer_id
            cur.execute(
                self._sql(
                    "UPDATE central_codes SET state = 'claimed', device_id = ?, claim_id = ?, "
                    "claimed_ms = ? WHERE code_hash = ?"
                ),
                [device_id, claim_id, stamp, code_hash],
            )
        return "claimed", offer_id

    def peek_code(self, code: str) -> tuple[str, str | None]:
        """What a claim would answer, claiming nothing: ``(available | code_used |
        code_unknown, offer id)`` (a till pricing an order before it is final)."""
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT offer_id, state FROM central_codes WHERE code_hash = ?",
                [self._hash(code)],
            )
        if not rows:
            return "code_unknown", None
        return ("available" if rows[0][1] == "available" else "code_used"), rows[0][0]

    def release_code(self, device_id: str, code: str, claim_id: str) -> bool:
        """A device gives back a claim it did not use; True when the code is available again."""
        code_hash = self._hash(code)
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "UPDATE central_codes SET state = 'available', device_id = NULL, "
                    "claim_id = NULL, claimed_ms = NULL WHERE code_hash = ? AND device_id = ? "
                    "AND claim_id = ? AND state = 'claimed'"
                ),
                [code_hash, device_id, claim_id],
            )
            return bool(cur.rowcount == 1)

    # -- members' uses of per-customer-limited offers ------------------------------------------
    def _lock_member(self, cur: Any, blinded_id: str) -> int:
        raise NotImplementedError

    def claim_use(
        self,
        device_id: str,
        blinded_id: str,
        offer_id: str,
        limit: int,
        use_id: str,
        *,
        now: int | None = None,
    ) -> tuple[str, int]:
        """Count one use of an offer by a member if they have fewer than ``limit`` across the
        fleet: ``(granted | limit, their other uses)``. The member's row is locked, so two
        devices asking at once are counted one after the other; a use from before the
        member's erasure does not count (and goes)."""
        stamp = now_ms() if now is None else now
        with self._tx() as cur:
            erased = self._lock_member(cur, blinded_id)
            cur.execute(
                self._sql("DELETE FROM member_uses WHERE blinded_id = ? AND ts_ms < ?"),
                [blinded_id, erased],
            )
            rows = self._rows(
                cur,
                "SELECT use_id FROM member_uses WHERE blinded_id = ? AND offer_id = ?",
                [blinded_id, offer_id],
            )
            others = sum(1 for (held,) in rows if held != use_id)
            if len(rows) > others:  # this use was counted already: a retry
                return "granted", others
            if others >= limit:
                return "limit", others
            cur.execute(
                self._sql(
                    "INSERT INTO member_uses (use_id, blinded_id, offer_id, device_id, ts_ms) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                [use_id, blinded_id, offer_id, device_id, stamp],
            )
        return "granted", others

    def release_use(self, device_id: str, blinded_id: str, use_id: str) -> bool:
        """Give back a use the device counted (voided, or not applied after all)."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "DELETE FROM member_uses WHERE use_id = ? AND blinded_id = ? AND device_id = ?"
                ),
                [use_id, blinded_id, device_id],
            )
            return bool(cur.rowcount == 1)

    def code_stats(self) -> dict[str, dict[str, int]]:
        """Per offer: codes available and claimed."""
        with self._tx() as cur:
            rows = self._rows(
                cur, "SELECT offer_id, state, count(*) FROM central_codes GROUP BY 1, 2"
            )
        out: dict[str, dict[str, int]] = {}
        for offer_id, state, n in rows:
            out.setdefault(offer_id, {"available": 0, "claimed": 0})[state] = int(n)
        return out


__all__ = ["CODES_SCHEMA", "CentralCodes"]
