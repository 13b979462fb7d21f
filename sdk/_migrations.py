"""Numbered schema migrations of the store, applied in order on open (sqlite-utils Migrations).

Never edit a migration that has shipped: add the next number. Numbers are grouped by owner so
modules can grow independently: 001-009 core (catalog, shoppers, events), 010-019 offers and
barcode, 020-029 geofences, 030-039 sync.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("shelfwise")


def run_script(db: Database, script: str) -> None:
    """Execute several statements inside the current transaction.

    ``sqlite3.executescript`` would COMMIT first and break the migration's atomicity, so the
    script is split into complete statements (triggers included) and run one by one.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            db.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending!r}")


@MIGRATIONS(name="001_core")
def _core(db: Database) -> None:
    run_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        CREATE TABLE items (
            item_id TEXT PRIMARY KEY,
            gtin TEXT UNIQUE,            -- GTIN-14, zero padded; NULL when the item has none
            name TEXT NOT NULL,
            brand TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '',
            price REAL,
            in_stock INTEGER NOT NULL DEFAULT 1,
            repeatable INTEGER NOT NULL DEFAULT 1,
            tags TEXT NOT NULL DEFAULT '[]'   -- JSON array of strings
        );
        CREATE INDEX items_category ON items(category);
        CREATE VIRTUAL TABLE items_fts USING fts5(
            name, brand, category, tags, content='items', content_rowid='rowid',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
            INSERT INTO items_fts(rowid, name, brand, category, tags)
            VALUES (new.rowid, new.name, new.brand, new.category, new.tags);
        END;
        CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
            INSERT INTO items_fts(items_fts, rowid, name, brand, category, tags)
            VALUES ('delete', old.rowid, old.name, old.brand, old.category, old.tags);
        END;
        CREATE TRIGGER items_au AFTER UPDATE ON items BEGIN
            INSERT INTO items_fts(items_fts, rowid, name, brand, category, tags)
            VALUES ('delete', old.rowid, old.name, old.brand, old.category, old.tags);
            INSERT INTO items_fts(rowid, name, brand, category, tags)
            VALUES (new.rowid, new.name, new.brand, new.category, new.tags);
        END;

        CREATE TABLE shoppers (
            shopper_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('member', 'anonymous')),
            store_id TEXT,
            created_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            attributes TEXT NOT NULL DEFAULT '{}'   -- JSON: birthday, age_verified, ...
        );
        CREATE INDEX shoppers_kind_seen ON shoppers(kind, last_seen_ms);

        CREATE TABLE consents (
            shopper_id TEXT NOT NULL REFERENCES shoppers(shopper_id) ON DELETE CASCADE,
            purpose TEXT NOT NULL,
            granted INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (shopper_id, purpose)
        );

        -- shopper_id is NULL once an anonymous session ended: the event still counts in
        -- store-level summaries but can no longer be tied to anyone.
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            shopper_id TEXT,
            type TEXT NOT NULL,
            item_id TEXT,
            quantity INTEGER NOT NULL DEFAULT 1,
            value REAL,
            store_id TEXT NOT NULL DEFAULT '',
            ts_ms INTEGER NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            summarised INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX events_shopper_ts ON events(shopper_id, ts_ms);
        CREATE INDEX events_type_ts ON events(type, ts_ms);
        CREATE INDEX events_unsummarised ON events(summarised, seq);

        CREATE TABLE carts (
            shopper_id TEXT NOT NULL REFERENCES shoppers(shopper_id) ON DELETE CASCADE,
            item_id TEXT NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            added_ms INTEGER NOT NULL,
            PRIMARY KEY (shopper_id, item_id)
        );
        """,
    )
