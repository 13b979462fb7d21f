"""What a recommendation may know about a shopper, read from the store once per request.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     sw.start_session().context().segment
    'new'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import purchases_of, recent_interests
from ..identity import ShopperInfo, segment_of
from ..store.connection import Store

HISTORY_EVENTS = 200  # the most recent interest events a request reads


@dataclass(frozen=True)
class Context:
    """Everything a surface may know about the shopper, read from the store per request.

    ``history`` is ``(item_id, event_type, ts_ms)``, oldest first.
    """

    history: Sequence[tuple[str, str, int]] = ()
    cart: frozenset[str] = frozenset()
    purchases: Sequence[tuple[str, int]] = ()
    consents: frozenset[str] = frozenset({"personalization"})
    age_verified: bool = False
    segment: str = "new"
    store_id: str = ""
    now_ms: int = 0
    utc_offset_minutes: int = 0

    @property
    def personal(self) -> bool:
        return "personalization" in self.consents

    def history_items(self) -> list[str]:
        return [item for item, _, _ in self.history]


def build_context(
    store: Store,
    info: ShopperInfo,
    consents: dict[str, bool],
    cart: frozenset[str],
    *,
    store_id: str,
    now: int,
    utc_offset_minutes: int = 0,
    segment_now: int | None = None,
) -> Context:
    """The shopper's context: history and purchases only with the personalization consent."""
    personal = consents.get("personalization", False)
    history: list[tuple[str, str, int]] = []
    purchases: list[tuple[str, int]] = []
    if personal:
        history = recent_interests(store, info.shopper_id, HISTORY_EVENTS)
        # A history short of the limit holds every interest event, every purchase among
        # them: reading the purchases again would be one more query on every request.
        if len(history) < HISTORY_EVENTS:
            purchases = [(item, ts) for item, kind, ts in history if kind == "purchase"]
        else:
            purchases = purchases_of(store, info.shopper_id)
    # The purchases just read give the segment its purchase days (one query fewer).
    purchase_ms = [ts for _, ts in purchases] if personal else None
    return Context(
        history=history,
        cart=cart,
        purchases=purchases,
        consents=frozenset(p for p, ok in consents.items() if ok),
        age_verified=bool(info.attributes.get("age_verified")) and info.is_member,
        segment=segment_of(store, info, segment_now, purchase_ms=purchase_ms),
        store_id=info.store_id or store_id,
        now_ms=now,
        utc_offset_minutes=utc_offset_minutes,
    )


__all__ = ["HISTORY_EVENTS", "Context", "build_context"]
