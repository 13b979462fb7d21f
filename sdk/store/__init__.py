"""The SQLite store: one writer connection, per-thread readers, numbered migrations."""
