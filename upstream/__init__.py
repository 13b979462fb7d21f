"""shelfwise.upstream: the reference collector that receives synced summaries.

Run it with ``python -m shelfwise.upstream --db collector.db --port 8421`` (or ``--pg DSN``
for PostgreSQL); register each device with ``python -m shelfwise.upstream add-device``.
Needs the ``upstream`` extra: ``pip install 'shelfwise[upstream]'``.

Example:
    >>> from shelfwise.upstream import SqliteStorage
    >>> SqliteStorage(":memory:").stats()["releases"]
    0
"""

from shelfwise import KeyConflict

from ._app import create_app
from ._storage import Device, PostgresStorage, SqliteStorage, Storage, open_storage

__all__ = [
    "Device",
    "KeyConflict",
    "PostgresStorage",
    "SqliteStorage",
    "Storage",
    "create_app",
    "open_storage",
]
