"""The SQL of migration 002 (the catalog token), kept beside migrations.py.

002: a token that changes with every write to ``items``, by whoever writes it (an import,
``set_stock``, a signed document, another process): ``shelfwise.catalog.Catalog`` keeps the
items it read in memory while the token stays the same. ``random()``, not a counter: the token
of a rolled-back write can never come back later with other rows behind it.
"""

from __future__ import annotations

CATALOG_CHANGES_SQL = """
        CREATE TABLE catalog_changes (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token INTEGER NOT NULL
        );
        INSERT INTO catalog_changes (id, token) VALUES (1, random());
        CREATE TRIGGER catalog_changes_insert AFTER INSERT ON items BEGIN
            UPDATE catalog_changes SET token = random();
        END;
        CREATE TRIGGER catalog_changes_update AFTER UPDATE ON items BEGIN
            UPDATE catalog_changes SET token = random();
        END;
        CREATE TRIGGER catalog_changes_delete AFTER DELETE ON items BEGIN
            UPDATE catalog_changes SET token = random();
        END;
"""
