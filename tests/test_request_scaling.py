"""A shopper's request reads that shopper's rows, not the whole store: what a kiosk does for one
shopper must not slow down as other shoppers' history piles up over months.

Counted in SQLite progress-handler steps (deterministic, unlike time; about one per row or
loop a statement visits): the same request on the same shopper takes about the same steps
with 40 or 4,000 events of other members in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shelfwise
from shelfwise.recommend.context import HISTORY_EVENTS

OTHER_MEMBERS = 400
EVENTS_EACH = 10
DAY_MS = 86_400_000
START_MS = 1_790_000_000_000


def sqlite_steps(sw: shelfwise.Shelfwise, call: Callable[[], Any]) -> int:
    """How many SQLite VM instructions ``call`` runs on this thread's connection."""
    conn = sw.store.read().conn
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    conn.set_progress_handler(count, 1)
    try:
        call()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def other_members_history(sw: shelfwise.Shelfwise, members: range, items: list[str]) -> None:
    rows = [
        {
            "shopper_id": f"other-{m}",
            "type": "purchase" if n % 2 else "view",
            "item_id": items[(m + n) % len(items)],
            "ts_ms": START_MS + (m * EVENTS_EACH + n) * 60_000,
            "event_id": f"other-{m}-{n}",
        }
        for m in members
        for n in range(EVENTS_EACH)
    ]
    sw.import_history(rows)


def test_a_shoppers_requests_read_their_own_rows_whatever_the_rest_of_the_store_holds(
    sw: shelfwise.Shelfwise,
) -> None:
    items = [item.item_id for item in sw.catalog.all()][:6]
    shopper = sw.member("L-measured", consents={"personalization": True})
    for item in items[:4]:
        shopper.track("view", item)
    shopper.track("purchase", items[0])
    shopper.add_to_cart(items[1])
    # A long-time member: more events than a request's history holds (HISTORY_EVENTS).
    veteran = sw.member("L-veteran", consents={"personalization": True})
    sw.import_history(
        {
            "shopper_id": "L-veteran",
            "type": "purchase" if n % 3 == 0 else "view",
            "item_id": items[n % len(items)],
            "ts_ms": START_MS - (n + 1) * 60_000,
            "event_id": f"veteran-{n}",
        }
        for n in range(HISTORY_EVENTS + 20)
    )
    requests = {
        "veteran context": veteran.context,
        "veteran for-you": lambda: veteran.recommend("for-you", limit=5),
        "context": shopper.context,
        "for-you": lambda: shopper.recommend("for-you", limit=5),
        "buy-again": lambda: shopper.recommend("buy-again", limit=5),
        "offer context": lambda: shopper.offer_context(cart=[]),
        "offers": lambda: shopper.offers(cart=[], record=False),
        "recently-viewed": lambda: shopper.recommend("recently-viewed", limit=5),
        "similar": lambda: shopper.recommend("similar", item=items[2], limit=5),
        "complements": lambda: shopper.recommend("complements", item=items[2], limit=5),
        "checkout": lambda: shopper.recommend("checkout", limit=5),
        "search": lambda: shopper.search("milk", limit=5),
        "a new session's for-you": lambda: sw.start_session().recommend("for-you", limit=5),
        "trending": lambda: shopper.recommend("trending", limit=5),
    }
    other_members_history(sw, range(4), items)
    for call in requests.values():
        call()  # the catalog cache and the vectors of the catalog warm up once
    few = {name: sqlite_steps(sw, call) for name, call in requests.items()}

    other_members_history(sw, range(4, OTHER_MEMBERS), items)
    for call in requests.values():
        call()  # trending's tallies take in what was recorded since, once
    many = {name: sqlite_steps(sw, call) for name, call in requests.items()}

    assert all(steps > 0 for steps in few.values())
    # Deeper B-trees add a few steps; reading the other members' rows adds thousands.
    grown = {name: many[name] for name in few if many[name] > few[name] * 1.1 + 20}
    assert not grown, (grown, few, many)


def test_showing_and_pricing_offers_read_todays_redemptions_only_for_a_per_day_limit(
    sw: shelfwise.Shelfwise,
) -> None:
    # Offers without a per-day limit need no count of the day's redemptions: with it read
    # anyway, a shopper's offers took 691 steps with 8 redemptions today and 5,655 with 300.
    item = next(i.item_id for i in sw.catalog.all() if i.price)
    for n, limits in enumerate([{"per_customer": 2, "impressions_per_day": 3}, {}, {}]):
        sw.offers.define(
            {
                "offer_id": f"o{n}",
                "title": f"offer {n}",
                "reward": {"type": "amount", "value": 1},
                "limits": limits,
            }
        )
    shopper = sw.member("L-measured", consents={"offers": True})
    shopper.redeem("o1", cart_total=10)
    requests: dict[str, Callable[[], Any]] = {
        "offers": lambda: shopper.offers(cart=[], record=False),
        "price an order": lambda: shopper.price_order("till-1", cart=[(item, 2)]),
    }

    def others_redeem(members: range) -> dict[str, int]:
        for m in members:
            other = sw.member(f"other-{m}", consents={"offers": True})
            other.redeem("o1", cart_total=10)
            other.redeem("o2", cart_total=10)
        for call in requests.values():
            call()
        return {name: sqlite_steps(sw, call) for name, call in requests.items()}

    few = others_redeem(range(4))
    many = others_redeem(range(4, 150))
    grown = {name: many[name] for name in few if many[name] > few[name] * 1.1 + 20}
    assert not grown, (grown, few, many)
