"""The clock: time as the store and the wire know it, integer UTC milliseconds (a public
module: the collector, the kiosk and the back office share it).

Example:
    >>> from shelfwise.clock import DAY_MS, now_ms
    >>> now_ms() > 1_600_000_000_000 and DAY_MS == 24 * 3_600_000
    True
"""

from __future__ import annotations

import time

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def now_ms() -> int:
    """The current UTC time as integer milliseconds, the store's only time format.

    Example:
        >>> now_ms() > 1_600_000_000_000
        True
    """
    return int(time.time() * 1000)


__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "SECOND_MS", "now_ms"]
