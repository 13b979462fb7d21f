"""Recommender experiments: arms served per shopper, clicks and purchases per arm, the report,
team-draft interleaving, and the per-arm counts in the synced summaries."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import ITEMS, SIDE_TABLES, cluster_vectors
from hypothesis import given
from hypothesis import strategies as st
from onnx_models import write_test_bundle

import shelfwise
from shelfwise.clock import HOUR_MS, now_ms
from shelfwise.recommend.interleaving import preference, sign_test, team_draft

MODEL_VS_POPULAR = {
    "experiment_id": "model-vs-popular",
    "surface": "for-you",
    "arms": [{"name": "model"}, {"name": "popular", "surface": "best-sellers"}],
}


def _member_in(sw: shelfwise.Shelfwise, arm: str, start: int = 0) -> shelfwise.Shopper:
    experiment = sw.recommend_experiments.get("model-vs-popular")
    loyalty_id = next(
        f"L-{n}" for n in range(start, start + 200) if experiment.arm_for(f"L-{n}").name == arm
    )
    member = sw.member(loyalty_id, consents={"personalization": True, "sync": True})
    member.view("sausages")
    return member


def test_each_shopper_always_gets_the_same_arm_and_both_arms_are_served(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    seen = set()
    for n in range(30):
        member = sw.member(f"L-{n}", consents={"personalization": True})
        member.view("sausages")
        first = member.recommend("for-you", limit=3)
        again = member.recommend("for-you", limit=3)
        assert {r.arm for r in first} == {r.arm for r in again}, "the arm never changes"
        assert all(r.experiment == "model-vs-popular" and r.surface == "for-you" for r in first)
        seen |= {r.arm for r in first}
    assert seen == {"model", "popular"}


def test_an_arm_runs_its_own_strategy(sw: shelfwise.Shelfwise) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    popular = _member_in(sw, "popular")
    model = _member_in(sw, "model")
    best_sellers = [r.item.item_id for r in popular.recommend("best-sellers", limit=3)]
    assert [r.item.item_id for r in popular.recommend("for-you", limit=3)] == best_sellers
    assert {r.item.item_id for r in model.recommend("for-you", limit=3)} <= {
        "buns",
        "charcoal",
        "ketchup",
        "grill",
    }, "the model arm serves the barbecue items the bundle puts near sausages"


def test_an_arm_can_be_another_parameterisation_of_the_same_surface(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define(
        {
            "experiment_id": "model-vs-popular",
            "surface": "for-you",
            "arms": [{"name": "one-per-aisle", "diversity": 1}, {"name": "two-per-aisle"}],
        }
    )
    for arm, most_per_aisle in [("one-per-aisle", 1), ("two-per-aisle", 2)]:
        member = _member_in(sw, arm)
        member.view("juice")
        shown = member.recommend("for-you", limit=4)
        aisles = [r.item.category for r in shown]
        assert len(shown) == 4 and max(map(aisles.count, aisles)) == most_per_aisle, aisles


@given(st.text(min_size=1, max_size=20), st.floats(0.01, 100), st.floats(0.01, 100))
def test_a_shoppers_arm_is_one_of_the_two_and_never_changes(
    shopper_id: str, first_weight: float, second_weight: float
) -> None:
    from shelfwise.recommend.experiments import Arm, RecommendExperiment

    arms = (Arm("a", weight=first_weight), Arm("b", weight=second_weight))
    experiment = RecommendExperiment("e1", "for-you", arms)
    assert experiment.arm_for(shopper_id) in arms
    assert experiment.arm_for(shopper_id) == experiment.arm_for(shopper_id)


def test_clicks_and_purchases_of_shown_items_count_for_the_arm_that_showed_them(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    member = _member_in(sw, "popular")
    shown = member.recommend("for-you", limit=3, record=True)
    click = member.clicked(shown[0])
    assert (click.payload["experiment"], click.payload["arm"]) == ("model-vs-popular", "popular")
    member.add_to_cart(shown[0].item.item_id)
    member.add_to_cart("charcoal")  # not shown: no conversion
    member.checkout()
    member.track("purchase", shown[0].item.item_id)  # the same list converts once per item

    report = sw.recommend_experiment_report("model-vs-popular")
    model, popular = report.arms
    assert (popular.impressions, popular.clicks, popular.conversions) == (1, 1, 1)
    assert (popular.ctr, popular.conversion_rate) == (1.0, 1.0)
    assert (model.impressions, model.ctr, report.lift) == (0, None, None)
    assert report.to_dict()["arms"][1]["ctr"] == 1.0


def test_a_purchase_after_the_window_or_before_the_list_does_not_convert(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define({**MODEL_VS_POPULAR, "window_hours": 1})
    member = _member_in(sw, "popular")
    [first, second, *_] = member.recommend("for-you", limit=3, record=True)
    later = now_ms() + 2 * HOUR_MS
    member.track("purchase", first.item.item_id, ts_ms=later)
    member.track("purchase", second.item.item_id, ts_ms=now_ms() - HOUR_MS)
    assert sw.recommend_experiment_report("model-vs-popular").arms[1].conversions == 0


def test_the_lift_compares_the_second_arm_with_the_first(sw: shelfwise.Shelfwise) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    for arm, buys in [("model", [True, False]), ("popular", [True, True])]:
        for n, buy in enumerate(buys):
            member = _member_in(sw, arm, start=100 * n + (50 if arm == "popular" else 0))
            shown = member.recommend("for-you", limit=2, record=True)
            if buy:
                member.track("purchase", shown[0].item.item_id)
    report = sw.recommend_experiment_report("model-vs-popular")
    assert [a.conversion_rate for a in report.arms] == [0.5, 1.0]
    assert report.lift == pytest.approx(1.0)


def test_a_second_bundle_is_served_side_by_side_with_the_first(
    sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    # v2's vectors put sausages beside the breakfast items: a different model, visibly.
    vectors = cluster_vectors(ITEMS)
    vectors[ITEMS.index("sausages") + 1, :2] = [1.0, 0.0]
    v2 = write_test_bundle(tmp_path / "v2", ITEMS, vectors, side_tables=SIDE_TABLES, version="2")
    sw.recommend_experiments.define(
        {
            "experiment_id": "model-vs-popular",
            "surface": "for-you",
            "arms": [{"name": "v1"}, {"name": "v2", "bundle": str(v2)}],
        }
    )
    on_v1 = {r.item.item_id for r in _member_in(sw, "v1").recommend("for-you", limit=3)}
    on_v2 = {r.item.item_id for r in _member_in(sw, "v2").recommend("for-you", limit=3)}
    assert on_v1 <= {"buns", "charcoal", "ketchup", "grill"}
    assert on_v2 <= {"milk", "cereal", "yogurt", "coffee", "juice"}
    assert sw.model_version == "test-mean-pool@1", "the served bundle is untouched"


def test_a_bad_arm_bundle_is_refused_and_nothing_is_stored(
    sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    with pytest.raises(shelfwise.BundleVerificationError):
        sw.recommend_experiments.define(
            {**MODEL_VS_POPULAR, "arms": [{"name": "a"}, {"name": "b", "bundle": str(tmp_path)}]}
        )
    assert sw.recommend_experiments.all() == []


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("for-you", "mapping"),
        ({**MODEL_VS_POPULAR, "arms": [{"name": "a"}]}, "exactly two arms"),
        ({**MODEL_VS_POPULAR, "arms": [{"name": "a"}, {"name": "a"}]}, "different names"),
        ({**MODEL_VS_POPULAR, "surface": "everything"}, "not one of"),
        ({**MODEL_VS_POPULAR, "mode": "coin"}, "mode"),
        ({**MODEL_VS_POPULAR, "window_hours": 0}, "window_hours"),
        ({**MODEL_VS_POPULAR, "colour": "red"}, "unknown key"),
        ({**MODEL_VS_POPULAR, "arms": [{"name": "a"}, {"name": "b", "weight": -1}]}, "weight"),
        ({**MODEL_VS_POPULAR, "arms": [{"name": "a"}, {"name": "b", "diversity": 0}]}, "diver"),
        (
            {**MODEL_VS_POPULAR, "arms": [{"name": "a"}, {"name": "b", "surface": "similar"}]},
            "item",
        ),
        ({**MODEL_VS_POPULAR, "experiment_id": ""}, "experiment_id"),
    ],
)
def test_a_malformed_experiment_is_refused_and_changes_nothing(
    sw: shelfwise.Shelfwise, definition: Any, message: str
) -> None:
    with pytest.raises(shelfwise.InvalidInput, match=message):
        sw.recommend_experiments.define(definition)
    assert sw.recommend_experiments.all() == []


def test_one_experiment_runs_per_surface_and_a_stopped_one_stops_serving(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    with pytest.raises(shelfwise.InvalidInput, match="stop it first"):
        sw.recommend_experiments.define({**MODEL_VS_POPULAR, "experiment_id": "other"})
    member = _member_in(sw, "popular")
    member.recommend("for-you", record=True)
    stopped = sw.recommend_experiments.stop("model-vs-popular")
    assert not stopped.active
    assert all(r.experiment == "" for r in member.recommend("for-you"))
    with pytest.raises(shelfwise.InvalidInput, match="exists"):
        sw.recommend_experiments.define(MODEL_VS_POPULAR)
    sw.recommend_experiments.define({**MODEL_VS_POPULAR, "experiment_id": "round-2"})
    assert sw.recommend_experiment_report("model-vs-popular").arms[1].impressions == 1


def test_interleaved_lists_credit_clicks_to_teams_and_report_the_preference(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define({**MODEL_VS_POPULAR, "mode": "interleave"})
    for n in range(8):
        shopper = sw.start_session()
        shopper.view("sausages")
        shown = shopper.recommend("for-you", limit=4, record=True, now=now_ms() + n)
        assert {r.arm for r in shown} == {"model", "popular"}, "both arms in every list"
        assert len({r.item.item_id for r in shown}) == len(shown)
        # This shopper prefers the model: two clicks on its items, none on the other's.
        for r in [r for r in shown if r.arm == "model"][:2]:
            shopper.clicked(r)
        shopper.end()
    report = sw.recommend_experiment_report("model-vs-popular")
    assert report.preference is not None
    assert (report.preference.wins, report.preference.losses, report.preference.ties) == (8, 0, 0)
    assert report.preference.p_value == pytest.approx(2 / 2**8)
    model, popular = report.arms
    assert model.clicks == 16 and popular.clicks == 0
    assert model.impressions + popular.impressions == 32


def test_per_arm_counts_travel_in_the_summaries_and_small_ones_are_suppressed(
    sw: shelfwise.Shelfwise,
) -> None:
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    for start in (0, 300, 600):
        member = _member_in(sw, "popular", start=start)
        shown = member.recommend("for-you", limit=2, record=True)
        member.clicked(shown[0])
        member.track("purchase", shown[0].item.item_id)
    sw.summarise(device_id="kiosk-1", k=3, include_open_hour=True)
    cells = {
        (cell[0], cell[3], cell[4]): cell[5]
        for row in sw.store.query("SELECT body FROM sync_outbox")
        for cell in msgpack.unpackb(row["body"], raw=False)["cells"]
    }
    for metric in ("recommendation_shown", "recommendation_clicked", "recommendation_conversion"):
        assert cells[(metric, "model-vs-popular", "popular")] == 3

    member = _member_in(sw, "model")  # one shopper: below k, never released on its own
    member.recommend("for-you", record=True)
    sw.summarise(device_id="kiosk-1", k=3, include_open_hour=True)
    bodies = sw.store.query("SELECT body FROM sync_outbox")
    released = [c for r in bodies for c in msgpack.unpackb(r["body"], raw=False)["cells"]]
    assert not [c for c in released if c[4] == "model"]


def test_the_collector_receives_per_arm_counts_over_http(
    sw: shelfwise.Shelfwise, tmp_path: Path
) -> None:
    from sync_helpers import serve_in_thread

    from shelfwise.upstream import SqliteStorage, create_app

    storage = SqliteStorage(str(tmp_path / "collector.db"))
    secret = storage.add_device("kiosk-1", region="north", stores=("store-1",))
    sw.recommend_experiments.define(MODEL_VS_POPULAR)
    for start in (0, 300, 600):
        member = _member_in(sw, "model", start=start)
        member.clicked(member.recommend("for-you", limit=2, record=True)[0])
    sw.summarise(device_id="kiosk-1", k=3, include_open_hour=True)
    with serve_in_thread(create_app(storage, rate_per_s=0)) as live:
        report = sw.sync(
            f"http://127.0.0.1:{live.port}",
            shelfwise.Credentials("kiosk-1", secret),
            summarise_first=False,
            fleet=False,
            documents=(),
            members=False,
        )
    assert report.error is None and report.remaining == 0
    totals = {(k[0], k[3], k[4]): n for k, (n, _) in storage.totals().items()}
    assert totals[("recommendation_shown", "model-vs-popular", "model")] == 3
    assert totals[("recommendation_clicked", "model-vs-popular", "model")] == 3
    storage.close()


# -- team draft, the pure algorithm ---------------------------------------------------------
rankings = st.lists(st.sampled_from([f"i{n}" for n in range(12)]), max_size=12)


@given(rankings, rankings, st.integers(1, 15), st.integers(0, 2**32))
def test_team_draft_merges_two_rankings_fairly(
    first: list[str], second: list[str], limit: int, seed: int
) -> None:
    merged = team_draft(first, second, limit=limit, rng=random.Random(seed))
    items = [item for item, _ in merged]
    assert len(items) == len(set(items)) <= limit, "no duplicates, at most limit"
    for item, team in merged:
        assert item in (first, second)[team], "every item comes from its team's ranking"
    for end in range(1, len(merged) + 1):
        teams = [team for _, team in merged[:end]]
        assert abs(teams.count(0) - teams.count(1)) <= 1, "every prefix is balanced"


@given(rankings, st.integers(1, 12), st.integers(0, 2**32))
def test_team_draft_of_one_ranking_with_itself_keeps_its_order(
    ranking: list[str], limit: int, seed: int
) -> None:
    merged = team_draft(ranking, ranking, limit=limit, rng=random.Random(seed))
    assert [item for item, _ in merged] == list(dict.fromkeys(ranking))[:limit]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=40))
def test_the_preference_counts_every_clicked_session_once_and_its_p_value_is_symmetric(
    outcomes: list[tuple[int, int]],
) -> None:
    result = preference(outcomes)
    assert result.sessions == sum(1 for a, b in outcomes if a or b)
    assert 0.0 <= result.p_value <= 1.0
    assert result.p_value == sign_test(result.losses, result.wins)
    swapped = preference([(b, a) for a, b in outcomes])
    assert (swapped.wins, swapped.losses) == (result.losses, result.wins)
