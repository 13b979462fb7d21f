"""Numbered schema migrations of the store, applied in order on open (sqlite-utils Migrations).

Never edit a migration that has shipped: add the next number. Numbers are grouped by owner so
modules can grow independently: 001-009 core (catalog, shoppers, events), 010-019 offers and
barcode, 020-029 geofences, 030-039 sync, 040-049 auth.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .catalog_schema import CATALOG_CHANGES_SQL
from .events_schema import EVENT_CHANGES_SQL, EVENTS_BY_SHOPPER_TYPE_SQL
from .ledger_schema import FLEET_OFFERS_SQL, REDEMPTION_REPORT_SQL
from .watch_schema import NOTIFICATIONS_SQL, WATCHES_SQL

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


@MIGRATIONS(name="030_sync")
def _sync(db: Database) -> None:
    # The sync outbox and what it needs (see shelfwise.sync.outbox): each outbox row is one
    # release of aggregate cells; events point at the release that counted them, so a release
    # can be rebuilt without a withdrawn or erased member before it is sent.
    run_script(
        db,
        """
        ALTER TABLE events ADD COLUMN summary_id INTEGER;
        -- A random token per anonymous session, so an ended session still counts as ONE
        -- distinct contributor for k-anonymity; cleared when its events are summarised.
        ALTER TABLE events ADD COLUMN contributor INTEGER;
        CREATE INDEX events_summary ON events(summary_id) WHERE summary_id IS NOT NULL;

        CREATE TABLE sync_tokens (
            shopper_id TEXT PRIMARY KEY REFERENCES shoppers(shopper_id) ON DELETE CASCADE,
            token INTEGER NOT NULL
        );
        CREATE TRIGGER sync_tokens_new AFTER INSERT ON shoppers WHEN new.kind = 'anonymous' BEGIN
            INSERT OR IGNORE INTO sync_tokens(shopper_id, token) VALUES (new.shopper_id, random());
        END;
        CREATE TRIGGER sync_events_unlinked AFTER UPDATE OF shopper_id ON events
        WHEN old.shopper_id IS NOT NULL AND new.shopper_id IS NULL AND new.summarised = 0 BEGIN
            UPDATE events SET contributor =
                (SELECT token FROM sync_tokens WHERE shopper_id = old.shopper_id)
            WHERE seq = new.seq;
        END;

        CREATE TABLE sync_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the release sequence number
            idempotency_key TEXT NOT NULL UNIQUE,
            rev INTEGER NOT NULL DEFAULT 1,         -- bumped when rebuilt before sending
            created_ms INTEGER NOT NULL,
            body BLOB NOT NULL,                     -- msgpack envelope, as sent
            size INTEGER NOT NULL,
            cells INTEGER NOT NULL,
            epsilon REAL,                           -- DP budget spent by this release
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            quarantined INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sync_outbox_due ON sync_outbox(quarantined, next_attempt_ms, id);

        -- Releases whose members changed (consent withdrawn, erased) after summarising:
        -- rebuilt before the next send, so nothing of theirs leaves the device.
        CREATE TABLE sync_dirty (outbox_id INTEGER PRIMARY KEY);
        CREATE TRIGGER sync_dirty_on_erase AFTER DELETE ON events
        WHEN old.summary_id IS NOT NULL AND old.shopper_id IS NOT NULL BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT id FROM sync_outbox WHERE id = old.summary_id;
        END;
        CREATE TRIGGER sync_dirty_on_withdraw_insert AFTER INSERT ON consents
        WHEN new.purpose = 'sync' AND new.granted = 0 BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT DISTINCT e.summary_id FROM events e JOIN sync_outbox o ON o.id = e.summary_id
            WHERE e.shopper_id = new.shopper_id;
        END;
        CREATE TRIGGER sync_dirty_on_withdraw_update AFTER UPDATE ON consents
        WHEN new.purpose = 'sync' AND new.granted = 0 AND old.granted = 1 BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT DISTINCT e.summary_id FROM events e JOIN sync_outbox o ON o.id = e.summary_id
            WHERE e.shopper_id = new.shopper_id;
        END;

        -- The ledger: every release the device made, and whether upstream acknowledged it.
        CREATE TABLE sync_ledger (
            idempotency_key TEXT PRIMARY KEY,
            outbox_id INTEGER NOT NULL,
            rev INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            cells INTEGER NOT NULL,
            suppressed INTEGER NOT NULL,
            events INTEGER NOT NULL,
            withheld INTEGER NOT NULL,
            epsilon REAL,
            acked_ms INTEGER,
            quarantined INTEGER NOT NULL DEFAULT 0
        );
        -- Running totals of every cell value released (noise included), per cell: what
        -- upstream must hold for this device once every release is acknowledged.
        CREATE TABLE sync_released (
            metric TEXT NOT NULL,
            store_id TEXT NOT NULL,
            hour_ms INTEGER NOT NULL,
            a TEXT NOT NULL,
            b TEXT NOT NULL,
            n INTEGER NOT NULL,
            q INTEGER NOT NULL,
            PRIMARY KEY (metric, store_id, hour_ms, a, b)
        );

        -- Tables computed upstream from the fleet's summaries (e.g. trending in the region).
        CREATE TABLE fleet_trending (
            scope TEXT NOT NULL,
            item_id TEXT NOT NULL,
            score REAL NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (scope, item_id)
        );
        """,
    )


@MIGRATIONS(name="010_offers")
def _offers(db: Database) -> None:
    # Offers, one-time codes and the redemption ledger (see shelfwise.offers.engine). Counters sit
    # in their own row per offer and change in the same transaction as the code and the
    # reservation, so a budget or a single-use code can never be spent twice.
    run_script(
        db,
        """
        CREATE TABLE offers (
            offer_id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,        -- the validated JSON definition
            active INTEGER NOT NULL DEFAULT 1,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE offer_counters (
            offer_id TEXT PRIMARY KEY REFERENCES offers(offer_id) ON DELETE CASCADE,
            redemptions INTEGER NOT NULL DEFAULT 0,
            spent REAL NOT NULL DEFAULT 0,
            reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            reserved_amount REAL NOT NULL DEFAULT 0,
            impressions INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE offer_codes (
            code TEXT PRIMARY KEY,
            offer_id TEXT NOT NULL REFERENCES offers(offer_id) ON DELETE CASCADE,
            shopper_id TEXT,                 -- bound to one member, or NULL for anyone
            state TEXT NOT NULL CHECK (state IN ('available', 'reserved', 'redeemed')),
            issued_ms INTEGER NOT NULL,
            expires_ms INTEGER,
            redeemed_ms INTEGER
        );
        CREATE INDEX offer_codes_offer ON offer_codes(offer_id, state);
        CREATE TABLE reservations (
            reservation_id TEXT PRIMARY KEY,
            offer_id TEXT NOT NULL,
            code TEXT,
            shopper_id TEXT NOT NULL,
            amount REAL NOT NULL,
            created_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired'))
        );
        -- At most one live hold per code, enforced by SQLite itself.
        CREATE UNIQUE INDEX reservations_one_hold ON reservations(code)
            WHERE state = 'held' AND code IS NOT NULL;
        CREATE INDEX reservations_held ON reservations(state, expires_ms);
        CREATE INDEX reservations_shopper ON reservations(offer_id, shopper_id, created_ms);
        CREATE TABLE redemptions (
            redemption_id TEXT PRIMARY KEY,
            offer_id TEXT NOT NULL,
            code TEXT UNIQUE,                -- a code is redeemed once, enforced by SQLite too
            shopper_id TEXT NOT NULL,        -- the loyalty id (never an editable field)
            amount REAL NOT NULL,
            ts_ms INTEGER NOT NULL
        );
        CREATE INDEX redemptions_offer ON redemptions(offer_id, ts_ms);
        CREATE INDEX redemptions_shopper ON redemptions(offer_id, shopper_id, ts_ms);
        CREATE TABLE impressions (
            shopper_id TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            ts_ms INTEGER NOT NULL
        );
        CREATE INDEX impressions_shopper ON impressions(offer_id, shopper_id, ts_ms);
        CREATE TABLE experiment_assignments (
            shopper_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            variant TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            exposed_ms INTEGER NOT NULL,
            converted_ms INTEGER,
            PRIMARY KEY (shopper_id, experiment_id)
        );
        """,
    )


@MIGRATIONS(name="020_geofences")
def _geofences(db: Database) -> None:
    # Fences are store places (not shopper data). The state table holds, per shopper and
    # fence, only what the enter/dwell/exit machine needs: never a coordinate.
    run_script(
        db,
        """
        CREATE TABLE geofences (
            fence_id TEXT PRIMARY KEY,
            store_id TEXT NOT NULL DEFAULT '',
            shape TEXT NOT NULL,             -- JSON: circle centre+radius or polygon ring
            dwell_ms INTEGER NOT NULL,
            initial TEXT NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE geofence_state (
            shopper_id TEXT NOT NULL,
            fence_id TEXT NOT NULL REFERENCES geofences(fence_id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('outside', 'inside', 'dwelling')),
            since_ms INTEGER NOT NULL,       -- when the current state began
            last_fix_ms INTEGER NOT NULL,    -- later fixes only: replays change nothing
            outside_fixes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (shopper_id, fence_id)
        );
        CREATE TABLE geofence_clock (
            shopper_id TEXT PRIMARY KEY,
            last_fix_ms INTEGER NOT NULL
        );
        """,
    )


@MIGRATIONS(name="011_offer_usage_indexes")
def _offer_usage_indexes(db: Database) -> None:
    # Showing offers reads one shopper's redemptions, holds and impressions across every
    # offer in one grouped query each (shelfwise.offers.usage.usage_snapshot): index by shopper.
    run_script(
        db,
        """
        CREATE INDEX redemptions_by_shopper ON redemptions(shopper_id, ts_ms);
        CREATE INDEX reservations_by_shopper ON reservations(shopper_id, state, expires_ms);
        CREATE INDEX impressions_by_shopper ON impressions(shopper_id, ts_ms);
        """,
    )


@MIGRATIONS(name="021_geofence_dwell_due")
def _geofence_dwell_due(db: Database) -> None:
    # Geofences.tick looks for shoppers inside a fence long enough to dwell, without a fix.
    run_script(db, "CREATE INDEX geofence_state_inside ON geofence_state(state, since_ms);")


@MIGRATIONS(name="031_sync_documents")
def _sync_documents(db: Database) -> None:
    # Signed catalog and offer documents pulled from upstream (shelfwise.sync.downstream):
    # the version applied per kind, so an older or replayed document is refused.
    run_script(
        db,
        """
        CREATE TABLE sync_documents (
            kind TEXT PRIMARY KEY,           -- 'catalog' or 'offers'
            version INTEGER NOT NULL,        -- strictly increasing per kind
            sha256 TEXT NOT NULL,            -- of the payload
            issued_ms INTEGER NOT NULL,
            expires_ms INTEGER NOT NULL,
            applied_ms INTEGER NOT NULL,
            ids TEXT NOT NULL DEFAULT '[]'   -- offer ids it defined (a replace retires the rest)
        );
        """,
    )


@MIGRATIONS(name="032_sync_day_close")
def _sync_day_close(db: Database) -> None:
    # Closing a UTC day (shelfwise.sync.outbox): events whose hourly cell was suppressed are
    # `carried` into a day release counted with distinct contributors across the day. An
    # ended session keeps its random token until its day closes (not just its hour), so it
    # stays ONE contributor in the day count. Events summarised before this migration count
    # as already closed: they were released under the hourly-only rules.
    run_script(
        db,
        """
        ALTER TABLE events ADD COLUMN carried INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE events ADD COLUMN day_summary_id INTEGER;  -- 0: closed, nothing released
        UPDATE events SET day_summary_id = 0 WHERE summarised = 1;
        CREATE INDEX events_day_open ON events(ts_ms) WHERE day_summary_id IS NULL;
        CREATE INDEX events_day_summary ON events(day_summary_id) WHERE day_summary_id > 0;
        ALTER TABLE sync_outbox ADD COLUMN granularity TEXT NOT NULL DEFAULT 'hour';
        ALTER TABLE sync_ledger ADD COLUMN granularity TEXT NOT NULL DEFAULT 'hour';
        CREATE TABLE sync_days (
            day_ms INTEGER PRIMARY KEY,      -- UTC day start
            closed_ms INTEGER NOT NULL,
            outbox_id INTEGER                -- the day release, NULL when nothing was released
        );

        DROP TRIGGER sync_events_unlinked;
        CREATE TRIGGER sync_events_unlinked AFTER UPDATE OF shopper_id ON events
        WHEN old.shopper_id IS NOT NULL AND new.shopper_id IS NULL
             AND (new.summarised = 0 OR new.day_summary_id IS NULL) BEGIN
            UPDATE events SET contributor =
                (SELECT token FROM sync_tokens WHERE shopper_id = old.shopper_id)
            WHERE seq = new.seq;
        END;
        CREATE TRIGGER sync_dirty_day_on_erase AFTER DELETE ON events
        WHEN old.day_summary_id > 0 AND old.shopper_id IS NOT NULL BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT id FROM sync_outbox WHERE id = old.day_summary_id;
        END;
        CREATE TRIGGER sync_dirty_day_on_withdraw_insert AFTER INSERT ON consents
        WHEN new.purpose = 'sync' AND new.granted = 0 BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT DISTINCT e.day_summary_id FROM events e
            JOIN sync_outbox o ON o.id = e.day_summary_id
            WHERE e.shopper_id = new.shopper_id AND e.day_summary_id > 0;
        END;
        CREATE TRIGGER sync_dirty_day_on_withdraw_update AFTER UPDATE ON consents
        WHEN new.purpose = 'sync' AND new.granted = 0 AND old.granted = 1 BEGIN
            INSERT OR IGNORE INTO sync_dirty(outbox_id)
            SELECT DISTINCT e.day_summary_id FROM events e
            JOIN sync_outbox o ON o.id = e.day_summary_id
            WHERE e.shopper_id = new.shopper_id AND e.day_summary_id > 0;
        END;
        """,
    )


@MIGRATIONS(name="012_exposure_seq")
def _exposure_seq(db: Database) -> None:
    # The exposure event's seq orders a purchase made in the same millisecond as the exposure.
    run_script(db, "ALTER TABLE experiment_assignments ADD COLUMN exposed_seq INTEGER;")


@MIGRATIONS(name="040_member_profiles")
def _member_profiles(db: Database) -> None:
    # Members' profiles across the fleet (shelfwise.profile): per-device counters that travel
    # with the member, the erasure epoch each member's copy obeys, tombstones of members erased
    # anywhere (by blinded id: they outlive the member's rows), and the latest sealed profile
    # per member waiting for upload (ciphertext only: the device never stores the member's key).
    run_script(
        db,
        """
        CREATE TABLE profile_counters (
            shopper_id TEXT NOT NULL,
            name TEXT NOT NULL,
            device TEXT NOT NULL,
            up INTEGER NOT NULL DEFAULT 0,
            down INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (shopper_id, name, device)
        );
        CREATE TABLE profile_epochs (
            shopper_id TEXT PRIMARY KEY,
            epoch INTEGER NOT NULL
        );
        CREATE TABLE erasure_tombstones (
            blinded_id TEXT PRIMARY KEY,
            erased_ms INTEGER NOT NULL,
            received_ms INTEGER NOT NULL,
            uploaded INTEGER NOT NULL DEFAULT 0   -- 0: erased here, not yet told upstream
        );
        -- the device that took a consent answer ('' : this one), the LWW tie-break
        ALTER TABLE consents ADD COLUMN device TEXT NOT NULL DEFAULT '';
        CREATE TABLE profile_outbox (
            blinded_id TEXT PRIMARY KEY,
            sealed BLOB NOT NULL,
            epoch INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        """,
    )


@MIGRATIONS(name="041_auth")
def _auth(db: Database) -> None:
    # Secrets, lockouts and the audit trail (shelfwise.auth). Member PINs are argon2id hashes
    # keyed by member_id (not shopper_id: a hash is never part of a data export), removed with
    # the member by the foreign key. Throttle keys are pseudonymous (a card key is a digest).
    run_script(
        db,
        """
        CREATE TABLE member_credentials (
            member_id TEXT PRIMARY KEY REFERENCES shoppers(shopper_id) ON DELETE CASCADE,
            pin_hash TEXT NOT NULL,          -- argon2id, salted, encoded with its parameters
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE auth_throttle (
            scope TEXT NOT NULL,             -- what is guessed: 'staff_pin', 'member_pin', ...
            key TEXT NOT NULL,               -- who or where: a kiosk id, a card digest
            failures INTEGER NOT NULL,       -- attempts counted since the last success
            last_ms INTEGER NOT NULL,
            locked_until_ms INTEGER NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            ts_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,             -- who: a staff session tag, 'system', ...
            device TEXT NOT NULL DEFAULT '', -- which kiosk or backend
            action TEXT NOT NULL,            -- what: offer_on, offer_off, sandbox_on, sync, ...
            target TEXT NOT NULL DEFAULT '', -- on what: an offer id, ...
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_log_device ON audit_log(device, seq);
        """,
    )


@MIGRATIONS(name="013_orders")
def _orders(db: Database) -> None:
    # Orders priced and redeemed as a whole (shelfwise.offers.orders): one row per order id
    # (idempotent: a retried order finds its row), what it applied and left out as JSON, and
    # the member's profile counters it moved (points, per-customer uses) so a void moves them
    # back. Its offers are ordinary ledger rows in ``redemptions``, tagged with the order id.
    run_script(
        db,
        """
        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            shopper_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,      -- what was asked (lines, codes, offers), hashed
            state TEXT NOT NULL CHECK (state IN ('redeemed', 'voided')),
            priced TEXT NOT NULL,           -- the OrderPrice as JSON
            discount REAL NOT NULL,
            counters TEXT NOT NULL DEFAULT '[]', -- [[profile counter, change], ...]
            created_ms INTEGER NOT NULL,
            voided_ms INTEGER
        );
        CREATE INDEX orders_by_shopper ON orders(shopper_id, created_ms);
        ALTER TABLE redemptions ADD COLUMN order_id TEXT;
        CREATE INDEX redemptions_by_order ON redemptions(order_id) WHERE order_id IS NOT NULL;
        """,
    )


@MIGRATIONS(name="014_trigger_fires")
def _trigger_fires(db: Database) -> None:
    # Triggers that fired for a shopper (shelfwise.offers.firing): the offer is open to them
    # until until_ms, and the trigger does not fire again for them within its window.
    run_script(
        db,
        """
        CREATE TABLE trigger_fires (
            shopper_id TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            item_id TEXT,                    -- the item viewed, for repeated views
            channel TEXT NOT NULL DEFAULT '',
            fired_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL,
            PRIMARY KEY (shopper_id, offer_id, fired_ms)
        );
        CREATE INDEX trigger_fires_open ON trigger_fires(shopper_id, until_ms);
        """,
    )


@MIGRATIONS(name="015_fleet_confirmations")
def _fleet_confirmations(db: Database) -> None:
    # When each member's uses on other devices were last confirmed (their profile merged from
    # the collector): per-customer limits apply their offline policy when it is too long ago.
    run_script(
        db,
        """
        CREATE TABLE fleet_confirmations (
            shopper_id TEXT PRIMARY KEY,
            confirmed_ms INTEGER NOT NULL
        );
        """,
    )


@MIGRATIONS(name="042_fleet_copies")
def _fleet_copies(db: Database) -> None:
    # Sealed copies through the collector (shelfwise.sync.fleet): each queued copy gets the id
    # the collector files it under and names the copies it merged (supersedes, a JSON list);
    # profile_copies remembers, per member, the collector's copies this store already holds.
    run_script(
        db,
        """
        ALTER TABLE profile_outbox ADD COLUMN copy_id TEXT;
        ALTER TABLE profile_outbox ADD COLUMN supersedes TEXT NOT NULL DEFAULT '[]';
        UPDATE profile_outbox SET copy_id = lower(hex(randomblob(16)));
        CREATE TABLE profile_copies (
            blinded_id TEXT NOT NULL,
            copy_id TEXT NOT NULL,
            PRIMARY KEY (blinded_id, copy_id)
        );
        """,
    )


@MIGRATIONS(name="016_redemption_report")
def _redemption_report(db: Database) -> None:
    run_script(db, REDEMPTION_REPORT_SQL)  # the redemption report's ledger (see ledger_schema)


@MIGRATIONS(name="016_watches")
def _watches(db: Database) -> None:
    run_script(db, WATCHES_SQL)  # members' watches on items (see watch_schema)


@MIGRATIONS(name="017_notifications")
def _notifications(db: Database) -> None:
    run_script(db, NOTIFICATIONS_SQL)  # the notification outbox (see watch_schema)


@MIGRATIONS(name="018_fleet_offers")
def _fleet_offers(db: Database) -> None:
    run_script(db, FLEET_OFFERS_SQL)  # shares of fleet-wide limits, the ledger's reports


@MIGRATIONS(name="050_recommend_experiments")
def _recommend_experiments(db: Database) -> None:
    # Recommender experiments (shelfwise.recommend.experiments): one definition per id; the
    # partial index keeps at most one running experiment per surface, so a request is never
    # claimed by two. Assignment is a hash (nothing per shopper is stored here); exposures,
    # clicks and conversions are events.
    run_script(
        db,
        """
        CREATE TABLE recommend_experiments (
            experiment_id TEXT PRIMARY KEY,
            surface TEXT NOT NULL,
            definition TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX recommend_experiments_running
            ON recommend_experiments(surface) WHERE active = 1;
        """,
    )


@MIGRATIONS(name="002_catalog_changes")
def _catalog_changes(db: Database) -> None:
    run_script(db, CATALOG_CHANGES_SQL)  # the catalog token (see catalog_schema)


@MIGRATIONS(name="003_events_by_shopper_type")
def _events_by_shopper_type(db: Database) -> None:
    run_script(db, EVENTS_BY_SHOPPER_TYPE_SQL)  # see events_schema


@MIGRATIONS(name="004_event_changes")
def _event_changes(db: Database) -> None:
    run_script(db, EVENT_CHANGES_SQL)  # the event change token (see events_schema)
