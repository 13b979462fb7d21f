"""The SQL of migrations 016 (watches) and 017 (notifications), kept beside migrations.py.

016: a member's watch on an item (``shelfwise.offers.watches``): back in stock or a price
drop. The catalog never calls the offers, so SQL triggers on ``items`` count each change that
matters to a watch in the catalog write's own transaction (whatever wrote it: an import, a
``replace`` import, ``set_stock``, a signed document); ``shelfwise.offers.firing`` fires a
watch trigger while ``changes > fired_changes`` and moves ``fired_changes`` up in the same
transaction, so each change fires at most once. ``seen_in_stock`` and ``low_price`` (the
lowest price since the watch, starting at the price then) survive an item deleted and
inserted again by a ``replace`` import. ``trigger_fires`` is rebuilt: a watch trigger fires
several items of one offer at the same moment, and one item again for its next change
within the same millisecond, so its key takes the item and the watch's change count too (a
unique index, where a NULL item counts as one value).

017: the durable notification outbox (``shelfwise.notifications``): a trigger fired for the
app (``app_push``, ``app_inbox``) is queued in the firing's own transaction; the id is the
idempotency key every resend carries. One row per fire (the unique index), so a crash can
neither lose nor duplicate one; a row is ``sent`` only after a 2xx.
"""

from __future__ import annotations

# One body for both triggers on ``items`` (an insert, as a replace import does, and an update).
_COUNT_CHANGE = """            UPDATE watches SET
                changes = changes + CASE kind
                    WHEN 'back_in_stock' THEN (seen_in_stock = 0 AND new.in_stock != 0)
                    ELSE (new.price IS NOT NULL AND new.price < low_price) END,
                seen_in_stock = new.in_stock != 0,
                low_price = CASE WHEN new.price IS NOT NULL AND new.price < low_price
                    THEN new.price ELSE low_price END
            WHERE item_id = new.item_id;
"""

WATCHES_SQL = f"""
        CREATE TABLE watches (
            shopper_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('back_in_stock', 'price_drop')),
            watch_price REAL,
            low_price REAL,
            seen_in_stock INTEGER NOT NULL,
            changes INTEGER NOT NULL DEFAULT 0,
            fired_changes INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (shopper_id, item_id, kind)
        );
        CREATE INDEX watches_item ON watches(item_id);
        CREATE INDEX watches_due ON watches(shopper_id) WHERE changes > fired_changes;
        CREATE TRIGGER watches_item_insert AFTER INSERT ON items BEGIN
{_COUNT_CHANGE}        END;
        CREATE TRIGGER watches_item_update AFTER UPDATE OF price, in_stock ON items BEGIN
{_COUNT_CHANGE}        END;

        CREATE TABLE trigger_fires_keyed (
            shopper_id TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            item_id TEXT,
            channel TEXT NOT NULL DEFAULT '',
            fired_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL,
            change_seq INTEGER NOT NULL DEFAULT 0  -- a watch's change count it fired for
        );
        INSERT INTO trigger_fires_keyed SELECT shopper_id, offer_id, item_id, channel, fired_ms,
            until_ms, 0 FROM trigger_fires;
        DROP TABLE trigger_fires;
        ALTER TABLE trigger_fires_keyed RENAME TO trigger_fires;
        CREATE UNIQUE INDEX trigger_fires_once
            ON trigger_fires(shopper_id, offer_id, coalesce(item_id, ''), fired_ms, change_seq);
        CREATE INDEX trigger_fires_open ON trigger_fires(shopper_id, until_ms);
        """

NOTIFICATIONS_SQL = """
        CREATE TABLE notifications (
            notification_id TEXT PRIMARY KEY,
            shopper_id TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            item_id TEXT,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,              -- the trigger type that fired
            title TEXT NOT NULL,
            body TEXT NOT NULL DEFAULT '',
            fired_ms INTEGER NOT NULL,
            change_seq INTEGER NOT NULL DEFAULT 0,  -- as in trigger_fires
            deliver_at_ms INTEGER NOT NULL,  -- not before (the end of quiet hours)
            until_ms INTEGER NOT NULL,       -- the offer closes: not sent after
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            sent_ms INTEGER
        );
        CREATE UNIQUE INDEX notifications_once
            ON notifications(shopper_id, offer_id, coalesce(item_id, ''), fired_ms, change_seq);
        CREATE INDEX notifications_pending ON notifications(deliver_at_ms)
            WHERE state = 'pending';
        """

__all__ = ["NOTIFICATIONS_SQL", "WATCHES_SQL"]
