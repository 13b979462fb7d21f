"""Seed a writable store file from the committed demo store (``kiosk_demo/store/``).

The committed files stay pristine; the kiosk works on a copy. Member baskets keep their real
2014-2015 dates in ``history.csv.gz`` and are shifted here by a whole number of weeks (so
weekdays stay right) such that the latest basket (2015-12-30) lands in the past week:
without the shift every member would be "lapsed". The shift used is stored in the store's
``meta`` table as ``kiosk.date_shift_days``.

Example:
    >>> import tempfile, pathlib
    >>> from shelfwise.kiosk_demo.seed import date_shift_days
    >>> import datetime
    >>> date_shift_days(datetime.date(2015, 12, 30), today=datetime.date(2026, 11, 23)) % 7
    0
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import shelfwise

STORE_DIR = Path(__file__).parent / "store"
BUNDLE_DIR = STORE_DIR / "bundle"
BASKET_HOUR_UTC = 10  # the data has dates only; baskets are placed mid-morning
logger = logging.getLogger(__name__)


def store_config(store_dir: Path = STORE_DIR) -> dict[str, Any]:
    """The demo store's settings (id, name, location, fences, offers) from ``store.json``."""
    config: dict[str, Any] = json.loads((store_dir / "store.json").read_text(encoding="utf-8"))
    return config


def date_shift_days(latest: date, *, today: date | None = None) -> int:
    """Whole weeks (in days) that move ``latest`` to within the week before ``today``."""
    today = today or datetime.now(UTC).date()
    gap = (today - timedelta(days=1) - latest).days
    return max(0, gap // 7 * 7)


SEEDED_FROM = "kiosk.store_fingerprint"
# Everything seeding reads (store.json gives the events their store id).
SEED_FILES = ("catalog.jsonl", "history.csv.gz", "members.csv", "store.json")


def store_fingerprint(store_dir: Path = STORE_DIR, *, history: bool = True) -> str:
    """sha256 over the committed demo store files a working copy is seeded from (and whether
    the members' baskets were loaded: a sister store of the fleet demo starts without them)."""
    digest = hashlib.sha256(b"" if history else b"no-history")
    for name in SEED_FILES:
        digest.update(name.encode())
        digest.update((store_dir / name).read_bytes())
    return digest.hexdigest()


def seed_store(
    db_path: Path,
    store_dir: Path = STORE_DIR,
    *,
    history: bool = True,
    store_id: str | None = None,
) -> dict[str, int]:
    """Create ``db_path`` with the demo catalog, members and their shifted baskets.

    ``history=False`` loads the catalog only (a sister store the members never visited);
    ``store_id`` overrides the store of ``store.json``.
    """
    config = store_config(store_dir)
    with gzip.open(store_dir / "history.csv.gz", "rt", encoding="utf-8") as handle:
        lines = list(csv.DictReader(io.StringIO(handle.read())))
    latest = max(date.fromisoformat(row["date"]) for row in lines)
    shift = date_shift_days(latest)
    if not history:
        lines = []
    # NORMAL is enough while seeding: a crash here just means seeding again.
    with shelfwise.open(
        db_path, store_id=store_id or config["store_id"], synchronous="NORMAL"
    ) as sw:
        items = sw.catalog.import_file(store_dir / "catalog.jsonl", replace=True)
        rows = []
        for number, row in enumerate(lines):
            day = date.fromisoformat(row["date"]) + timedelta(days=shift)
            stamp = datetime(day.year, day.month, day.day, BASKET_HOUR_UTC, tzinfo=UTC)
            rows.append(
                {
                    "shopper_id": row["member"],
                    "type": "purchase",
                    "item_id": row["item_id"],
                    "ts_ms": int(stamp.timestamp() * 1000) + number % 3_600_000,  # day order
                    # deterministic ids: seeding twice cannot double a basket
                    "event_id": f"seed-{number}",
                }
            )
        try:
            events = sw.import_history(rows)
        except shelfwise.InvalidInput as exc:
            raise shelfwise.InvalidCatalog(f"the demo history does not fit: {exc}") from exc
        members = len({row["member"] for row in lines})
        sw.store.set_meta("kiosk.date_shift_days", str(shift))
        sw.store.set_meta(SEEDED_FROM, store_fingerprint(store_dir, history=history))
        logger.info("seeded the demo store: %d items, %d members", items, members)
        return {"items": items, "members": members, "events": events, "shift": shift}
