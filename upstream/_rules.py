"""What the collector accepts from a signed device: plausible cells, at a bounded rate.

A valid signature says who sent a summary, not that it is true. Every cell of every
summary is checked before anything is written (``check_envelope``), and the first broken
rule refuses the whole summary with a stable reason:

==========================  =====================================================
``store_not_registered``    a cell for a store the device is not registered for
``negative_count``          ``n`` or ``q`` below zero (devices clamp their noise)
``implausible_count``       ``n`` or ``q`` above the per-hour maxima (x24 for day cells)
``bucket_misaligned``       a bucket not on an hour (a UTC day for day metrics)
``bucket_out_of_window``    a bucket in the future or older than the accepted backlog
==========================  =====================================================

``RateLimiter`` is a token bucket per device (in this process): a device that sends too
fast gets 429 with Retry-After, which the device's backoff honours.

Example:
    >>> from shelfwise.sync.protocol import Envelope
    >>> env = Envelope("k1", 1, "k1:00000001", 1, 0, [["view", "s9", 0, "tea", "", 3, 3]])
    >>> check_envelope(env, stores=frozenset({"s1"}), now=3_600_000).reason
    'store_not_registered'
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shelfwise.clock import DAY_MS, HOUR_MS
from shelfwise.sync.protocol import REST_SUFFIX, Envelope

DAY_METRICS = frozenset({"segment", "conversion", "pair"})
REASONS = (
    "store_not_registered",
    "negative_count",
    "implausible_count",
    "bucket_misaligned",
    "bucket_out_of_window",
)


@dataclass(frozen=True)
class CellLimits:
    """The plausible range of one cell (per store, metric, dimensions and hour)."""

    max_per_hour: int = 100_000  # events of one cell in one hour
    max_quantity_per_hour: int = 10_000_000  # summed quantities of one cell in one hour
    max_age_ms: int = 400 * DAY_MS  # how old a bucket may be (an offline device's backlog)
    max_ahead_ms: int = DAY_MS  # how far past the collector's clock (device clock skew)


DEFAULT_LIMITS = CellLimits()


@dataclass(frozen=True)
class Refusal:
    """Why a summary was refused: a reason from ``REASONS`` and a readable detail."""

    reason: str
    detail: str


def is_day_metric(metric: str) -> bool:
    """Metrics counted once per closed UTC day rather than per hour."""
    return metric in DAY_METRICS or metric.endswith(REST_SUFFIX)


def check_envelope(
    envelope: Envelope, *, stores: frozenset[str], now: int, limits: CellLimits = DEFAULT_LIMITS
) -> Refusal | None:
    """The first rule a summary breaks, or None when every cell is plausible."""
    for metric, store, bucket, a, _, n, q in envelope.cells:
        where = f"{metric} {a!r} at store {store!r}, bucket {bucket}"
        if store not in stores:
            return Refusal("store_not_registered", f"not registered to report for {store!r}")
        if n < 0 or q < 0:
            return Refusal("negative_count", f"{where}: n={n}, q={q}")
        span = DAY_MS if is_day_metric(metric) else HOUR_MS
        hours = span // HOUR_MS
        if n > limits.max_per_hour * hours or q > limits.max_quantity_per_hour * hours:
            return Refusal("implausible_count", f"{where}: n={n}, q={q}")
        if bucket % span:
            return Refusal("bucket_misaligned", f"{where}: not on a {hours} h boundary")
        if not now - limits.max_age_ms <= bucket <= now + limits.max_ahead_ms:
            return Refusal("bucket_out_of_window", f"{where}: too far from {now}")
    return None


class RateLimiter:
    """A token bucket per device: ``burst`` requests at once, then ``rate`` per second.

    Example:
        >>> limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: 0.0)
        >>> [limiter.wait_s("k1") for _ in range(3)]
        [0.0, 0.0, 1.0]
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)
        self._lock = threading.Lock()

    def wait_s(self, device_id: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is free (not taken)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(device_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[device_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[device_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after(wait_s: float) -> str:
    """A Retry-After header value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait_s)))


__all__ = [
    "DEFAULT_LIMITS",
    "REASONS",
    "CellLimits",
    "RateLimiter",
    "Refusal",
    "check_envelope",
    "retry_after",
]
