"""Identities: anonymous kiosk sessions that forget, members with consent per purpose, segments."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shelfwise
from shelfwise.clock import now_ms

DAY = 86_400_000
NOW = 1_750_000_000_000


def test_an_ended_session_is_forgotten_but_still_counts_in_store_totals(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    shopper.view("milk")
    shopper.add_to_cart("buns")
    session_id = shopper.shopper_id
    shopper.end()
    for table in ["shoppers", "carts", "consents"]:
        rows = sw.store.query(f"SELECT * FROM {table} WHERE shopper_id = ?", [session_id])
        assert rows == [], table
    assert sw.store.query(
        "SELECT count(*) AS n FROM events WHERE shopper_id = ?", [session_id]
    ) == [{"n": 0}]
    assert sw.store.query("SELECT count(*) AS n FROM events WHERE shopper_id IS NULL")[0]["n"] == 2
    with pytest.raises(shelfwise.UnknownShopper):
        sw.shopper(session_id)
    with pytest.raises(shelfwise.UnknownShopper):
        shopper.recommend("recently-viewed")


def test_the_next_shopper_at_a_kiosk_sees_nothing_of_the_last_one(
    sw: shelfwise.Shelfwise,
) -> None:
    first = sw.start_session()
    first.view("test-kit")
    first.add_to_cart("sausages")
    first.end()
    second = sw.start_session()
    assert second.recommend("recently-viewed") == []
    assert second.cart() == []
    assert not any(r.reason.startswith("because") for r in second.recommend("for-you"))


def test_idle_sessions_expire_and_active_ones_stay(sw: shelfwise.Shelfwise) -> None:
    idle = sw.start_session()
    active = sw.start_session()
    sw.store.db.execute(  # the idle one was last seen ten minutes ago
        "UPDATE shoppers SET last_seen_ms = ? WHERE shopper_id = ?",
        [now_ms() - 600_000, idle.shopper_id],
    )
    member = sw.member("L-1")
    sw.store.db.execute(
        "UPDATE shoppers SET last_seen_ms = 0 WHERE shopper_id = ?", [member.shopper_id]
    )
    assert sw.end_idle_sessions(idle_s=120) == 1
    with pytest.raises(shelfwise.UnknownShopper):
        idle.info()
    assert active.info().kind == "anonymous"
    assert member.info().is_member, "members never expire"


def test_starting_a_session_forgets_sessions_left_idle(sw: shelfwise.Shelfwise) -> None:
    walked_away = sw.start_session()
    walked_away.view("milk")
    sw.store.db.execute(
        "UPDATE shoppers SET last_seen_ms = ? WHERE shopper_id = ?",
        [now_ms() - (sw.session_idle_s + 1) * 1000, walked_away.shopper_id],
    )
    sw.start_session()
    with pytest.raises(shelfwise.UnknownShopper):
        walked_away.info()


def test_a_session_that_comes_back_is_not_expired_by_a_stale_list(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    cutoff = now_ms() - 1000
    sw.store.db.execute(
        "UPDATE shoppers SET last_seen_ms = ? WHERE shopper_id = ?",
        [cutoff - 10, shopper.shopper_id],
    )
    shopper.view("milk")  # active again after the idle list was computed
    assert sw._end_anonymous(shopper.shopper_id, idle_before=cutoff) == 0
    assert shopper.info().kind == "anonymous"


def test_an_anonymous_session_personalizes_within_the_session_only(
    sw: shelfwise.Shelfwise,
) -> None:
    shopper = sw.start_session()
    assert shopper.consents() == {
        "personalization": True,
        "location": False,
        "offers": False,
        "sync": False,
        "sensitive": False,
        "profile_sync": False,
    }


def test_member_consents_are_stored_per_purpose_with_timestamps(sw: shelfwise.Shelfwise) -> None:
    before = now_ms()
    member = sw.member("L-7", consents={"personalization": True, "location": False})
    assert member.consents()["personalization"] is True
    assert member.consents()["offers"] is False, "never asked means no"
    rows = sw.store.query("SELECT * FROM consents WHERE shopper_id = 'L-7' ORDER BY purpose")
    assert [(r["purpose"], r["granted"]) for r in rows] == [
        ("location", 0),
        ("personalization", 1),
    ]
    assert all(before <= r["updated_ms"] <= now_ms() for r in rows)
    member.set_consent("personalization", False)
    assert not member.has_consent("personalization")
    with pytest.raises(shelfwise.ConsentRequired) as caught:
        member.require_consent("personalization")
    assert caught.value.purpose == "personalization"


def test_an_unknown_consent_purpose_is_refused_and_nothing_is_written(
    sw: shelfwise.Shelfwise,
) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="marketing"):
        sw.member("L-8", consents={"personalization": True, "marketing": True})
    with pytest.raises(shelfwise.UnknownShopper):
        sw.shopper("L-8")


@pytest.mark.parametrize(
    "loyalty_id", ["", "   ", "x" * 65, None, 1234, "L-1\n", "L\u200b-1", "L\u202e-1"]
)
def test_a_malformed_loyalty_id_is_refused(sw: shelfwise.Shelfwise, loyalty_id: object) -> None:
    with pytest.raises(shelfwise.InvalidInput):
        sw.member(loyalty_id)  # type: ignore[arg-type]
    assert sw.store.query("SELECT shopper_id FROM shoppers WHERE kind = 'member'") == []


PRINTABLE = st.text(st.characters(codec="utf-8").filter(str.isprintable), max_size=30)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(before=PRINTABLE, control=st.characters(categories=["Cc"]), after=PRINTABLE)
def test_a_loyalty_id_with_a_control_character_is_refused_and_changes_nothing(
    sw: shelfwise.Shelfwise, before: str, control: str, after: str
) -> None:
    shoppers = sw.store.query("SELECT * FROM shoppers ORDER BY shopper_id")
    with pytest.raises(shelfwise.InvalidInput, match="printable"):
        sw.member(before + control + after, consents={"personalization": True})
    assert sw.store.query("SELECT * FROM shoppers ORDER BY shopper_id") == shoppers
    assert sw.store.query("SELECT * FROM consents") == []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(loyalty_id=PRINTABLE.filter(lambda text: 0 < len(text.strip(" ")) <= 64))
def test_any_printable_loyalty_id_is_kept_as_given_less_outer_spaces(
    sw: shelfwise.Shelfwise, loyalty_id: str
) -> None:
    assert sw.member(loyalty_id).shopper_id == loyalty_id.strip(" ")


def test_a_member_is_the_same_shopper_on_every_visit(sw: shelfwise.Shelfwise) -> None:
    sw.member("L-9", consents={"personalization": True}, attributes={"age_verified": True})
    sw.member("L-9", attributes={"tier": "gold"})
    info = sw.shopper("L-9").info()
    assert info.attributes == {"age_verified": True, "tier": "gold"}
    assert sw.shopper("L-9").has_consent("personalization")
    sw.shopper("L-9").end()  # a member leaving keeps the history
    assert sw.shopper("L-9").info().is_member


def _buy_on_days(shopper: shelfwise.Shopper, days_ago: list[int], item: str = "milk") -> None:
    for days in days_ago:
        shopper.track("purchase", item, ts_ms=NOW - days * DAY)


def _member_since(sw: shelfwise.Shelfwise, loyalty_id: str, days: int) -> shelfwise.Shopper:
    member = sw.member(loyalty_id, consents={"personalization": True})
    sw.store.db.execute(
        "UPDATE shoppers SET created_ms = ? WHERE shopper_id = ?", [NOW - days * DAY, loyalty_id]
    )
    return member


def test_segments_follow_purchase_days(sw: shelfwise.Shelfwise) -> None:
    new = _member_since(sw, "new", 5)
    _buy_on_days(new, [1, 3])
    one_visit = _member_since(sw, "one-visit", 200)
    _buy_on_days(one_visit, [150])
    returning = _member_since(sw, "returning", 200)
    _buy_on_days(returning, [10, 40, 90])
    loyal = _member_since(sw, "loyal", 400)
    _buy_on_days(loyal, [1, 8, 15, 22, 30, 45, 60, 75, 100])
    lapsed = _member_since(sw, "lapsed", 400)
    _buy_on_days(lapsed, [100, 130, 160])
    members = [new, one_visit, returning, loyal, lapsed]
    assert [s.segment(now=NOW) for s in members] == [
        "new",
        "new",
        "returning",
        "loyal",
        "lapsed",
    ]
    # A recommendation's context derives the segment from the purchases it has just read.
    assert [s.context(now=NOW).segment for s in members] == [s.segment(now=NOW) for s in members]
    assert sw.start_session().segment() == "new"


def test_a_lapsed_member_is_welcomed_back_with_what_they_used_to_buy(
    sw: shelfwise.Shelfwise,
) -> None:
    lapsed = _member_since(sw, "lapsed", 400)
    _buy_on_days(lapsed, [100, 107, 114], item="coffee")
    results = lapsed.recommend("for-you", limit=5, now=NOW)
    assert results[0].item.item_id == "coffee"
    assert results[0].reason == "welcome back: you used to buy this"


def test_a_returning_member_gets_results_from_their_own_history(
    sw: shelfwise.Shelfwise,
) -> None:
    member = _member_since(sw, "bbq", 200)
    _buy_on_days(member, [10, 40, 90], item="sausages")
    results = member.recommend("for-you", limit=3, now=NOW)
    assert {r.item.item_id for r in results} <= {"buns", "charcoal", "ketchup", "grill"}
    assert all(r.reason == "because you bought Pork sausages" for r in results)
    cold = sw.member("cold", consents={"personalization": False})
    _buy_on_days(cold, [10, 40, 90], item="sausages")
    assert [r.item.item_id for r in cold.recommend("for-you", limit=3, now=NOW)][:1] == ["milk"]
    assert cold.recommend("buy-again", now=NOW) == []


def _rows_with(sw: shelfwise.Shelfwise, shopper_id: str) -> dict[str, int]:
    found = {}
    for table in [*sw.shopper_tables(), "shoppers"]:
        n = sw.store.query(
            f"SELECT count(*) AS n FROM [{table}] WHERE shopper_id = ?", [shopper_id]
        )
        if n[0]["n"]:
            found[table] = n[0]["n"]
    return found


def test_a_guest_who_signs_in_keeps_the_scans_views_and_cart_as_the_members(
    sw: shelfwise.Shelfwise,
) -> None:
    member = sw.member("L-5", consents={"personalization": True})
    member.add_to_cart("buns")
    guest = sw.start_session()
    guest.scan("036000291452")  # whole milk
    guest.view("coffee")
    guest.add_to_cart("buns", 2)
    guest.add_to_cart("sausages")
    signed_in = guest.sign_in("L-5")
    assert signed_in.shopper_id == "L-5"
    assert [(line.item_id, line.quantity) for line in signed_in.cart()] == [
        ("buns", 3),
        ("sausages", 1),
    ]
    seen = [r.item.item_id for r in signed_in.recommend("recently-viewed")]
    assert seen[:2] == ["coffee", "milk"], "the guest's views and scans are the member's history"
    assert _rows_with(sw, guest.shopper_id) == {}, "nothing is left under the guest's id"
    with pytest.raises(shelfwise.UnknownShopper):
        guest.info()


def test_a_guest_who_signs_in_without_personalization_consent_leaves_the_session_behind(
    sw: shelfwise.Shelfwise,
) -> None:
    guest = sw.start_session()
    guest.view("coffee")
    guest.add_to_cart("buns")
    member = guest.sign_in("L-6", consents={"personalization": False})
    assert member.cart() == []
    assert _rows_with(sw, "L-6").get("events", 0) == 0
    assert _rows_with(sw, guest.shopper_id) == {}
    unlinked = sw.store.query("SELECT count(*) AS n FROM events WHERE shopper_id IS NULL")
    assert unlinked[0]["n"] == 2, "the session still counts in store totals, linked to no one"


def test_a_member_cannot_sign_in_again_as_someone_else(sw: shelfwise.Shelfwise) -> None:
    member = sw.member("L-7", consents={"personalization": True})
    member.view("milk")
    with pytest.raises(shelfwise.InvalidInput, match="only a guest session signs in"):
        member.sign_in("L-8")
    assert _rows_with(sw, "L-7")["events"] == 1


_ANSWERS = st.fixed_dictionaries(
    {},
    optional={purpose: st.booleans() for purpose in sorted(shelfwise.PURPOSES)},
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    member=st.booleans(),
    answers=_ANSWERS,
    cart=st.sets(st.sampled_from(["milk", "buns", "café-crème", "gone", "dropped"]), max_size=4),
    attributes=st.dictionaries(st.sampled_from(["age_verified", "note"]), st.booleans()),
)
def test_one_read_of_a_shopper_matches_the_row_consents_and_cart_read_apart(
    sw: shelfwise.Shelfwise,
    member: bool,
    answers: dict[str, bool],
    cart: set[str],
    attributes: dict[str, bool],
) -> None:
    from shelfwise.identity import consents_of, get_shopper, shopper_state

    sw.catalog.import_rows([{"item_id": "café-crème", "name": "Café crème"},
                            {"item_id": "dropped", "name": "Dropped later"}])  # fmt: skip
    if member:
        shopper = sw.member(f"L-{len(sw.store.rows('SELECT 1 FROM shoppers'))}",
                            attributes=attributes)  # fmt: skip
    else:
        shopper = sw.start_session()
    for purpose, granted in answers.items():
        shopper.set_consent(purpose, granted)
    for item in sorted(cart):
        shopper.add_to_cart(item)
    with sw.store.write() as db:  # an item the cart still holds, gone from the catalog
        db.execute("DELETE FROM items WHERE item_id = 'dropped'")
    info, consents, in_cart = shopper_state(sw.store, shopper.shopper_id)
    assert info == get_shopper(sw.store, shopper.shopper_id)
    assert consents == consents_of(sw.store, info)
    assert in_cart == {line.item_id for line in shopper.cart()} == cart
    if member:
        shopper.forget()
    else:
        shopper.end()
    with pytest.raises(shelfwise.UnknownShopper):
        shopper_state(sw.store, shopper.shopper_id)


def test_a_shopper_is_read_as_of_one_moment_while_their_consent_and_cart_change(
    sw: shelfwise.Shelfwise,
) -> None:
    # A request must not pair the cart of one moment with the consents of another.
    from shelfwise.identity import shopper_state, write_consents

    shopper = sw.member("L-flip", consents={"personalization": True})
    done = threading.Event()

    def flip() -> None:
        for n in range(150):
            with sw.store.write() as db:  # consent and cart change together
                write_consents(sw.store, "L-flip", {"offers": n % 2 == 0})
                if n % 2 == 0:
                    db.execute(
                        "INSERT INTO carts (shopper_id, item_id, quantity, added_ms) "
                        "VALUES ('L-flip', 'milk', 1, 0)"
                    )
                else:
                    db.execute("DELETE FROM carts WHERE shopper_id = 'L-flip'")
        done.set()

    writer = threading.Thread(target=flip)
    writer.start()
    pairs = set()
    while not done.is_set():
        _, consents, cart = shopper_state(sw.store, shopper.shopper_id)
        pairs.add((consents["offers"], cart))
    writer.join(30)
    assert pairs <= {(True, frozenset({"milk"})), (False, frozenset())}
