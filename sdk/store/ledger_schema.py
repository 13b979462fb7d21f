"""The SQL of migrations 016 (the redemption report) and 018 (offers across the fleet), kept
beside migrations.py.

016 (``shelfwise.offers.reporting``): each ledger row names the store and the points it earned
or spent; a voided order's rows move to ``voided_redemptions`` (the live ledger counts limits,
the report shows both); sandbox runs are kept apart in ``sandbox_redemptions``.

018: ``offer_leases`` (``shelfwise.offers.leases``): per offer, the share of its fleet-wide
redemptions and budget the collector leased this device (all-time totals this device may have
used, not increments: a repeated answer cannot add twice), when it lapses and the exchange's
sequence number. ``ledger_reports`` (``shelfwise.sync.leasing``): which redemptions the collector
heard of, and whether as voided, for its reconciliation of the fleet's redemptions.
"""

from __future__ import annotations

_LEDGER = (
    "redemption_id TEXT PRIMARY KEY, offer_id TEXT NOT NULL, code TEXT, "
    "shopper_id TEXT NOT NULL, amount REAL NOT NULL, ts_ms INTEGER NOT NULL, order_id TEXT, "
    "store_id TEXT NOT NULL DEFAULT '', points_earned INTEGER NOT NULL DEFAULT 0, "
    "points_spent INTEGER NOT NULL DEFAULT 0"
)

REDEMPTION_REPORT_SQL = f"""
        ALTER TABLE redemptions ADD COLUMN store_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE redemptions ADD COLUMN points_earned INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE redemptions ADD COLUMN points_spent INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX redemptions_by_time ON redemptions(ts_ms);
        CREATE TABLE voided_redemptions ({_LEDGER}, voided_ms INTEGER NOT NULL);
        CREATE INDEX voided_redemptions_by_time ON voided_redemptions(ts_ms);
        CREATE TABLE sandbox_redemptions ({_LEDGER});
        CREATE INDEX sandbox_redemptions_by_time ON sandbox_redemptions(ts_ms);
        -- Orders redeemed before this migration: their points are in the stored price.
        UPDATE redemptions SET
            points_earned = coalesce((SELECT sum(json_extract(a.value, '$.points'))
                FROM orders o, json_each(o.priced, '$.applied') a
                WHERE o.order_id = redemptions.order_id
                AND json_extract(a.value, '$.offer_id') = redemptions.offer_id
                AND coalesce(json_extract(a.value, '$.code'), '') = coalesce(redemptions.code, '')
            ), 0),
            points_spent = coalesce((SELECT sum(json_extract(a.value, '$.points_cost'))
                FROM orders o, json_each(o.priced, '$.applied') a
                WHERE o.order_id = redemptions.order_id
                AND json_extract(a.value, '$.offer_id') = redemptions.offer_id
                AND coalesce(json_extract(a.value, '$.code'), '') = coalesce(redemptions.code, '')
            ), 0)
        WHERE order_id IS NOT NULL;
        INSERT INTO voided_redemptions (redemption_id, offer_id, code, shopper_id, amount, ts_ms,
            order_id, points_earned, points_spent, voided_ms)
        SELECT lower(hex(randomblob(16))), json_extract(a.value, '$.offer_id'),
            json_extract(a.value, '$.code'), o.shopper_id, json_extract(a.value, '$.amount'),
            o.created_ms, o.order_id, json_extract(a.value, '$.points'),
            json_extract(a.value, '$.points_cost'), o.voided_ms
        FROM orders o, json_each(o.priced, '$.applied') a WHERE o.state = 'voided';
"""

FLEET_OFFERS_SQL = """
        CREATE TABLE offer_leases (
            offer_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL DEFAULT 0,
            redemptions INTEGER,
            budget REAL,
            expires_ms INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'none',
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE ledger_reports (
            redemption_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('committed', 'voided'))
        );
"""

__all__ = ["FLEET_OFFERS_SQL", "REDEMPTION_REPORT_SQL"]
