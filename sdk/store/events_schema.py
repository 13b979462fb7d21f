"""The SQL of migrations 003 and 004 (events), kept beside migrations.py.

003: one shopper's events of one type (their purchases, on every recommendation and offer):
with only (shopper_id, ts_ms) and (type, ts_ms), SQLite read every purchase in the store.

004: a token that changes whenever an event is deleted or an event's item, type, time or store
changes (an erasure, the retention purge, by whoever does it): ``shelfwise.recommend.trending``
keeps its tallies current from the events recorded since, and reads the week again when the
token moved. ``random()``, not a counter, as for the catalog token (migration 002).
"""

from __future__ import annotations

EVENTS_BY_SHOPPER_TYPE_SQL = """
        CREATE INDEX events_shopper_type_ts ON events(shopper_id, type, ts_ms);
"""

EVENT_CHANGES_SQL = """
        CREATE TABLE event_changes (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token INTEGER NOT NULL
        );
        INSERT INTO event_changes (id, token) VALUES (1, random());
        CREATE TRIGGER event_changes_delete AFTER DELETE ON events BEGIN
            UPDATE event_changes SET token = random();
        END;
        CREATE TRIGGER event_changes_update AFTER UPDATE OF item_id, type, ts_ms, store_id
        ON events BEGIN
            UPDATE event_changes SET token = random();
        END;
"""
