"""Ending a kiosk session or erasing a member leaves nothing behind and breaks no counter."""

from __future__ import annotations

import shelfwise

OFFER = {
    "offer_id": "two-off",
    "title": "2.00 off your basket",
    "reward": {"type": "amount", "value": 2},
    "limits": {"budget": 100},
}


def _rows_mentioning(sw: shelfwise.Shelfwise, shopper_id: str) -> dict[str, int]:
    counts = {}
    for table in [*sw.shopper_tables(), "shoppers"]:
        n = sw.store.query(
            f"SELECT count(*) AS n FROM [{table}] WHERE shopper_id = ?", [shopper_id]
        )
        if n[0]["n"]:
            counts[table] = n[0]["n"]
    return counts


def test_ended_session_leaves_no_row_with_its_id_and_releases_its_hold(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.offers.define(OFFER)
    shopper = sw.start_session()
    shopper.view("milk")
    shopper.add_to_cart("milk")
    held = shopper.reserve("two-off", cart_total=10.0)
    assert sw.offers.stats("two-off")["reserved"] == 1
    session_id = shopper.shopper_id
    assert _rows_mentioning(sw, session_id)

    shopper.end()

    assert _rows_mentioning(sw, session_id) == {}
    assert sw.offers.stats("two-off")["reserved"] == 0, "the hold was released, not leaked"
    assert held.reservation_id
    views = sw.store.query(
        "SELECT count(*) AS n FROM events WHERE type = 'view' AND item_id = 'milk'"
    )
    assert views[0]["n"] == 1, "the view still counts for the store, unlinked"


def test_erased_member_leaves_no_row_and_no_stuck_hold(sw: shelfwise.Shelfwise) -> None:
    sw.offers.define(OFFER)
    member = sw.member("L-77", consents={"personalization": True, "offers": True})
    member.view("milk")
    member.reserve("two-off", cart_total=10.0)
    member.forget()
    assert _rows_mentioning(sw, "L-77") == {}
    assert sw.offers.stats("two-off")["reserved"] == 0
    assert sw.store.query("SELECT count(*) AS n FROM events WHERE item_id = 'milk'")[0]["n"] == 0


def test_erased_member_leaves_none_of_their_codes_used_or_not(sw: shelfwise.Shelfwise) -> None:
    # An ended guest session keeps the codes its kept orders used; an erase keeps nothing.
    sw.offers.define({**OFFER, "offer_id": "coded", "codes": "unique"})
    member = sw.member("L-77", consents={"offers": True})
    used, _unused, held = sw.offers.issue_codes("coded", 3, shopper_id="L-77")
    [others] = sw.offers.issue_codes("coded", 1, shopper_id="L-78")
    member.redeem_order("t-1", cart=["milk"], codes=[used])
    member.reserve(held, cart_total=10.0)
    member.forget()
    assert _rows_mentioning(sw, "L-77") == {}
    left = sw.store.query("SELECT code FROM offer_codes")
    assert [row["code"] for row in left] == [others]
    assert sw.offers.stats("coded")["reserved"] == 0
