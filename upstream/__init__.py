"""shelfwise.upstream: the reference collector that receives synced summaries.

Run it with ``python -m shelfwise.upstream --db collector.db --port 8421`` (or ``--pg DSN
--server-key FILE`` for PostgreSQL); register each device and the stores it reports for with
``python -m shelfwise.upstream add-device --device kiosk-7 --store s7``.
Needs the ``upstream`` extra: ``pip install 'shelfwise[upstream]'``.

Example:
    >>> from shelfwise.upstream import SqliteStorage
    >>> SqliteStorage(":memory:").stats()["releases"]
    0
"""

from shelfwise import KeyConflict

from ._app import Collector, create_app
from ._keys import ServerKeys
from ._rules import REASONS, CellLimits, RateLimiter
from ._storage import Device, PostgresStorage, Quarantined, SqliteStorage, Storage, open_storage

__all__ = [
    "REASONS",
    "CellLimits",
    "Collector",
    "Device",
    "KeyConflict",
    "PostgresStorage",
    "Quarantined",
    "RateLimiter",
    "ServerKeys",
    "SqliteStorage",
    "Storage",
    "create_app",
    "open_storage",
]
