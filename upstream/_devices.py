"""The collector's device registry: sealed secrets, registered stores, refusals, quarantine.

Shared by both storage backends (a mixin over their transaction and SQL hooks):

- ``devices``: one row per device, its secret sealed with the server key file
  (``shelfwise.upstream._keys``); plaintext rows from before sealing are sealed on open;
- ``device_stores``: the stores a device may report for (a summary naming any other store
  is refused);
- ``quarantine``: summaries refused for a broken rule, kept as sent (up to
  ``MAX_QUARANTINE_PER_DEVICE`` bodies per device) and never added to totals or trending;
- ``refusals``: per device and reason, how many summaries or requests were refused.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from shelfwise import InvalidInput
from shelfwise.clock import now_ms
from shelfwise.sync.protocol import Envelope

from ._keys import ServerKeys, is_sealed

MAX_QUARANTINE_PER_DEVICE = 1000
MAX_STORES = 1000


@dataclass(frozen=True)
class Device:
    """A registered device: its secret (unsealed), region and the stores it reports for."""

    device_id: str
    secret: bytes = field(repr=False)
    region: str = ""
    stores: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Quarantined:
    """A summary the collector refused and kept aside (never in totals or trending)."""

    device_id: str
    key: str
    rev: int
    reason: str
    detail: str
    received_ms: int
    body: bytes | None  # the envelope as sent; None past the per-device cap


def _store_ids(stores: Iterable[str]) -> list[str]:
    ids = sorted(set(stores))
    if len(ids) > MAX_STORES or any(not isinstance(s, str) or len(s) > 200 for s in ids):
        raise InvalidInput(f"a device reports for at most {MAX_STORES} store ids of <= 200 chars")
    return ids


class DeviceRegistry:
    """Device rows, sealed secrets, stores, refusals and quarantine (see the module doc)."""

    keys: ServerKeys

    # provided by the backend
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _rows(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # -- registering -----------------------------------------------------------------------
    def add_device(self, device_id: str, *, region: str = "", stores: Iterable[str] = ()) -> bytes:
        """Register a device (or give it a new secret) and return its secret.

        ``stores`` are the store ids it may report for; with none, every summary it sends
        is refused until ``set_stores`` registers some.
        """
        secret = os.urandom(32)
        ids = _store_ids(stores)
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO devices (device_id, secret, region, created_ms) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (device_id) DO UPDATE SET secret = excluded.secret, "
                    "region = excluded.region"
                ),
                [device_id, self.keys.seal(device_id, secret), region, now_ms()],
            )
            self._replace_stores(cur, device_id, ids)
        return secret

    def set_stores(self, device_id: str, stores: Iterable[str]) -> None:
        """Replace the stores a device may report for."""
        ids = _store_ids(stores)
        with self._tx() as cur:
            if not self._rows(cur, "SELECT 1 FROM devices WHERE device_id = ?", [device_id]):
                raise InvalidInput(f"no device {device_id!r} is registered")
            self._replace_stores(cur, device_id, ids)

    def _replace_stores(self, cur: Any, device_id: str, ids: list[str]) -> None:
        cur.execute(self._sql("DELETE FROM device_stores WHERE device_id = ?"), [device_id])
        if ids:
            cur.executemany(
                self._sql("INSERT INTO device_stores (device_id, store_id) VALUES (?, ?)"),
                [[device_id, store] for store in ids],
            )

    # -- reading -------------------------------------------------------------------------------
    def device(self, device_id: str) -> Device | None:
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT device_id, secret, region FROM devices WHERE device_id = ?",
                [device_id],
            )
            stores = self._rows(
                cur, "SELECT store_id FROM device_stores WHERE device_id = ?", [device_id]
            )
        if not rows:
            return None
        secret = self.keys.unseal(rows[0][0], rows[0][1])
        return Device(rows[0][0], secret, rows[0][2], frozenset(r[0] for r in stores))

    def devices(self) -> list[Device]:
        """Every registered device (secrets included: keep the list to yourself)."""
        with self._tx() as cur:
            ids = [r[0] for r in self._rows(cur, "SELECT device_id FROM devices ORDER BY 1")]
        return [d for d in (self.device(i) for i in ids) if d is not None]

    # -- the server key ------------------------------------------------------------------------
    def _seal_plaintext(self) -> int:
        """Seal secrets stored in clear by an older collector; return how many."""
        with self._tx() as cur:
            rows = self._rows(cur, "SELECT device_id, secret FROM devices" + self._lock_rows())
            clear = [(d, s) for d, s in rows if not is_sealed(s)]
            cur.executemany(
                self._sql("UPDATE devices SET secret = ? WHERE device_id = ?"),
                [[self.keys.seal(d, bytes.fromhex(s)), d] for d, s in clear],
            )
        return len(clear)

    def _lock_rows(self) -> str:
        return ""

    def rotate_key(self) -> int:
        """Re-seal every device secret under a new server key; return how many.

        Crash-safe: the new key joins the key file before any secret changes, and the old
        keys leave it only after every secret was re-sealed in one transaction.
        """
        self.keys.begin_rotation()
        with self._tx() as cur:
            rows = self._rows(cur, "SELECT device_id, secret FROM devices" + self._lock_rows())
            cur.executemany(
                self._sql("UPDATE devices SET secret = ? WHERE device_id = ?"),
                [[self.keys.seal(d, self.keys.unseal(d, s)), d] for d, s in rows],
            )
        self.keys.finish_rotation()
        return len(rows)

    # -- refusals and quarantine -------------------------------------------------------------
    def count_refusal(self, device_id: str, reason: str) -> None:
        """Count one refused request or summary of a device."""
        with self._tx() as cur:
            self._count(cur, device_id, reason)

    def _count(self, cur: Any, device_id: str, reason: str) -> None:
        cur.execute(
            self._sql(
                "INSERT INTO refusals (device_id, reason, n, last_ms) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (device_id, reason) DO UPDATE SET n = refusals.n + 1, "
                "last_ms = excluded.last_ms"
            ),
            [device_id, reason, now_ms()],
        )

    def quarantine(
        self, device_id: str, envelope: Envelope, raw: bytes, reason: str, detail: str
    ) -> bool:
        """Keep a refused summary aside and count it; False if it was already kept.

        A summary sent again (a device bisecting its batch, a retry) is kept and counted
        once; past ``MAX_QUARANTINE_PER_DEVICE`` only its key and reason are kept.
        """
        with self._tx() as cur:
            held = self._rows(
                cur, "SELECT count(*) FROM quarantine WHERE device_id = ?", [device_id]
            )
            body = (
                base64.b64encode(raw).decode() if held[0][0] < MAX_QUARANTINE_PER_DEVICE else None
            )
            cur.execute(
                self._sql(
                    "INSERT INTO quarantine (device_id, key, rev, reason, detail, received_ms, "
                    "body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, key, rev) DO NOTHING"
                ),
                [device_id, envelope.key, envelope.rev, reason, detail[:500], now_ms(), body],
            )
            new = bool(cur.rowcount == 1)
            if new:
                self._count(cur, device_id, reason)
        return new

    def quarantined(self, device_id: str | None = None, limit: int = 100) -> list[Quarantined]:
        """The newest refused summaries, of one device or all."""
        where, params = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
        with self._tx() as cur:
            rows = self._rows(
                cur,
                "SELECT device_id, key, rev, reason, detail, received_ms, body FROM quarantine "
                f"{where} ORDER BY received_ms DESC, key LIMIT ?",
                [*params, limit],
            )
        return [
            Quarantined(
                r[0], r[1], int(r[2]), r[3], r[4], int(r[5]), r[6] and base64.b64decode(r[6])
            )
            for r in rows
        ]

    def refusals(self, device_id: str | None = None) -> dict[str, dict[str, int]]:
        """Refusals per device and reason: ``{device: {reason: count}}``."""
        where, params = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
        with self._tx() as cur:
            rows = self._rows(
                cur, f"SELECT device_id, reason, n FROM refusals {where} ORDER BY 1, 2", params
            )
        out: dict[str, dict[str, int]] = {}
        for device, reason, n in rows:
            out.setdefault(device, {})[reason] = int(n)
        return out


__all__ = ["MAX_QUARANTINE_PER_DEVICE", "Device", "DeviceRegistry", "Quarantined"]
