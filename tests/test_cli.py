"""The ``shelfwise`` command line: the Python API's verbs, --json, one exit-code table."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import CATALOG

import shelfwise
from shelfwise.cli import cli, main
from shelfwise.cli.model import BackOfficeCommand


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with shelfwise.open(path, store_id="store-1") as sw:
        sw.catalog.import_rows(CATALOG)
        member = sw.member("L-1", consents={"personalization": True})
        member.view("milk")
        member.add_to_cart("buns")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_recommend_prints_items_with_scores_and_reasons_as_json(
    db: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "recommend", "--db", str(db), "--bundle", str(bundle_path),
        "--history", "sausages,buns", "--k", "3", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "test-mean-pool@1" and data["surface"] == "for-you"
    recs = data["recommendations"]
    assert 0 < len(recs) <= 3
    assert {r["item"]["item_id"] for r in recs} <= {"charcoal", "ketchup", "grill"}
    assert all(r["reason"].startswith("because you viewed") for r in recs)
    assert all(isinstance(r["score"], float) for r in recs)


def test_recommend_takes_a_surface_and_an_anchor_item(
    db: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "recommend", "--db", str(db), "--bundle", str(bundle_path),
        "--surface", "complements", "--item", "sausages", "--k", "2", "--json",
    )  # fmt: skip
    assert code == 0
    assert [r["item"]["item_id"] for r in json.loads(out)["recommendations"]] == [
        "buns",
        "ketchup",
    ]
    code, out, _ = _run(
        capsys, "recommend", "--db", str(db), "--bundle", str(bundle_path), "--history", "milk"
    )
    assert code == 0 and "because you viewed Whole milk" in out


def test_recommend_with_an_unknown_history_item_is_a_clear_error(
    db: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys, "recommend", "--db", str(db), "--bundle", str(bundle_path),
        "--history", "milk,unicorn", "--json",
    )  # fmt: skip
    assert code == 2
    assert "unicorn" in err
    assert json.loads(out)["error"]["type"] == "UnknownItem"


def test_recommend_with_a_corrupt_bundle_fails_with_the_reason(
    db: Path, bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = bundle_path / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])
    code, _, err = _run(capsys, "recommend", "--db", str(db), "--bundle", str(bundle_path))
    assert code == 1
    assert "model.onnx is corrupt" in err


def test_inspect_verifies_a_bundle_and_shows_its_manifest(
    bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "inspect", str(bundle_path), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["verified"] is True and data["items"] == len(CATALOG)
    assert data["manifest"]["model_name"] == "test-mean-pool"
    assert data["side_tables"]["cooccurrence_items"] == 3
    code, out, _ = _run(capsys, "inspect", str(bundle_path))
    assert code == 0 and "13 items" in out and "files verified" in out
    code, _, err = _run(capsys, "inspect", str(bundle_path / "nope"))
    assert code == 2 and "does not exist" in err  # a missing path is bad input
    (bundle_path / "empty").mkdir()
    code, _, err = _run(capsys, "inspect", str(bundle_path / "empty"))
    assert code == 1 and "not a bundle" in err


def test_forget_erases_a_shopper_and_reports_the_rows(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "forget", "--db", str(db), "--shopper", "L-1", "--json")
    assert code == 0
    assert json.loads(out)["rows_removed"] >= 4
    with shelfwise.open(db) as sw, pytest.raises(shelfwise.UnknownShopper):
        sw.shopper("L-1")
    code, _, err = _run(capsys, "forget", "--db", str(db), "--shopper", "L-1")
    assert code == 2 and "no shopper" in err


def test_import_export_and_purge_mirror_the_python_api(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "more.jsonl"
    catalog.write_text(json.dumps({"item_id": "tea", "name": "Green tea"}) + "\n")
    code, out, _ = _run(capsys, "import-catalog", "--db", str(db), str(catalog), "--json")
    assert code == 0 and json.loads(out) == {"imported": 1}
    code, out, _ = _run(capsys, "export-shopper", "--db", str(db), "--shopper", "L-1")
    assert code == 0 and [e["type"] for e in json.loads(out)["tables"]["events"]] == [
        "view",
        "cart_add",
    ]
    code, out, _ = _run(capsys, "purge", "--db", str(db), "--days", "90", "--json")
    assert code == 0 and json.loads(out) == {"events_removed": 0}
    catalog.write_text('{"item_id": "x"}\n')
    code, _, err = _run(capsys, "import-catalog", "--db", str(db), str(catalog))
    assert code == 2 and "has no name" in err


def test_the_installed_command_runs(bundle_path: Path) -> None:
    exe = Path(sys.executable).with_name("shelfwise")
    out = subprocess.run(
        [str(exe), "inspect", str(bundle_path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["verified"] is True


# -- one command line: help, --json, the exit-code table, groups, the back office ------------


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    ctx = click.Context(group, info_name="shelfwise")
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += _leaves(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command))
    return found


def test_help_lists_every_command_and_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for line in ["0  ok", "1  runtime or store error", "2  bad input", "3  refused", "4  upstream"]:
        assert line in result.stdout
    for name in ["recommend", "catalog", "offers", "scan", "sync", "train", "evaluate", "export"]:
        assert f"  {name} " in result.stdout


def test_every_command_has_an_example_and_a_json_flag() -> None:
    runtime = [(n, c) for n, c in _leaves(cli) if not isinstance(c, BackOfficeCommand)]
    assert len(runtime) >= 20
    for name, command in runtime:
        assert "Example" in (command.help or ""), name
        assert f"shelfwise {name}" in (command.help or ""), name
        flags = [p for p in command.params if "--json" in p.opts]
        assert len(flags) == 1 and getattr(flags[0], "is_flag", False), name


def test_the_offers_group_loads_lists_switches_and_issues_codes(db: Path, tmp_path: Path) -> None:
    offers = tmp_path / "offers.yaml"
    offers.write_text(
        "offers:\n  - offer_id: tea5\n    title: Tea\n    reward: {type: amount, value: 1}\n"
        "    codes: unique\n"
    )
    run = CliRunner().invoke
    result = run(cli, ["offers", "load", "--db", str(db), str(offers)])
    assert (result.exit_code, result.stdout) == (0, "loaded 1 offers\n")
    assert run(cli, ["offers", "deactivate", "--db", str(db), "tea5"]).exit_code == 0
    listed = json.loads(run(cli, ["offers", "list", "--db", str(db), "--json"]).stdout)
    assert [(o["offer_id"], o["active"]) for o in listed] == [("tea5", False)]
    codes = run(cli, ["offers", "codes", "--db", str(db), "tea5", "--count", "3"]).stdout
    assert len(codes.split()) == 3
    refused = run(cli, ["offers", "activate", "--db", str(db), "nope"])
    assert refused.exit_code == 3 and refused.stderr == "error: no offer 'nope'\n"


def test_the_catalog_group_mirrors_sw_catalog(db: Path) -> None:
    run = CliRunner().invoke
    item = json.loads(
        run(cli, ["catalog", "get", "--db", str(db), "036000291452", "--json"]).stdout
    )
    assert item["item_id"] == "milk"
    found = run(cli, ["catalog", "search", "--db", str(db), "corn", "--limit", "1", "--json"])
    assert [i["item_id"] for i in json.loads(found.stdout)] == ["cereal"]
    listed = run(cli, ["catalog", "list", "--db", str(db), "--limit", "2"])
    assert listed.exit_code == 0 and "Whole milk" in listed.stdout
    missing = run(cli, ["catalog", "get", "--db", str(db), "unicorn"])
    assert missing.exit_code == 2 and "unicorn" in missing.stderr


def test_recommend_takes_limit_and_still_the_old_k(db: Path, bundle_path: Path) -> None:
    args = ["recommend", "--db", str(db), "--bundle", str(bundle_path), "--history", "sausages"]
    new = CliRunner().invoke(cli, [*args, "--limit", "2", "--json"])
    old = CliRunner().invoke(cli, [*args, "--k", "2", "--json"])
    assert json.loads(new.stdout) == json.loads(old.stdout)
    assert len(json.loads(new.stdout)["recommendations"]) == 2
    assert "--k is now --limit" in old.stderr


def test_a_store_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    with sqlite3.connect(notes) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = notes.read_bytes()
    result = CliRunner().invoke(cli, ["import-catalog", "--db", str(notes), str(notes)])
    assert result.exit_code == 2 and "not a shelfwise store" in result.stderr
    assert notes.read_bytes() == before
    missing = CliRunner().invoke(cli, ["sync-status", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2 and "no store at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()


def test_evaluate_json_is_a_flag_and_the_file_is_output() -> None:
    pytest.importorskip("torch")
    ctx = click.Context(cli, info_name="shelfwise")
    evaluate = cli.get_command(ctx, "evaluate")
    assert isinstance(evaluate, BackOfficeCommand)
    params = {p.name: p for p in evaluate.load().params}
    assert getattr(params["as_json"], "is_flag", False) and "--output" in params["output"].opts


def test_back_office_commands_without_the_train_extra_say_so_in_one_line() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "from shelfwise.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for command in (["train", "--help"], ["evaluate", "run"], ["export", "run", "--out", "b"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *command], capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "pip install 'shelfwise[train]'" in done.stderr


@pytest.fixture
def till(db: Path) -> Path:
    with shelfwise.open(db, store_id="store-1") as sw:
        sw.offers.define(
            {"offer_id": "two", "title": "2.00 off", "reward": {"type": "amount", "value": 2}}
        )
        sw.offers.define(
            {
                "offer_id": "big",
                "title": "5.00 off over 50.00",
                "reward": {"type": "amount", "value": 5},
                "targeting": {"cart_total_min": 50},
            }
        )
    return db


def test_orders_price_shows_the_combination_and_what_was_left_out_and_spends_nothing(
    till: Path,
) -> None:
    run = CliRunner().invoke
    argv = ["orders", "price", "--db", str(till), "--order-id", "t-1", "--cart", "coffee:2"]
    priced = json.loads(run(cli, [*argv, "--member", "L-1", "--json"]).stdout)
    assert [a["offer_id"] for a in priced["applied"]] == ["two"]
    assert [(x["offer_id"], x["reason"]) for x in priced["left_out"]] == [
        ("big", "cart_total_below")
    ]
    assert (priced["subtotal"], priced["discount"], priced["total"]) == (10.98, 2.0, 8.98)
    text = run(cli, argv).stdout  # a guest, as text
    assert "cart_total_below" in text and "total 8.98" in text
    with shelfwise.open(till) as sw:
        assert sw.offers.stats("two")["redemptions"] == 0


def test_orders_redeem_then_void_mirror_the_python_api_and_the_report_shows_both(
    till: Path, tmp_path: Path
) -> None:
    run = CliRunner().invoke
    base = ["--db", str(till), "--order-id", "t-1"]
    redeem = [*base, "--member", "L-1", "--cart", "coffee,milk"]
    order = json.loads(run(cli, ["orders", "redeem", *redeem, "--json"]).stdout)
    assert (order["state"], order["price"]["discount"]) == ("redeemed", 2.0)
    again = run(cli, ["orders", "redeem", *redeem, "--json"])  # a till's retry: same order
    assert json.loads(again.stdout) == order
    conflict = run(cli, ["orders", "redeem", *base, "--member", "L-1", "--cart", "milk"])
    assert conflict.exit_code == 3 and "other contents" in conflict.stderr
    voided = json.loads(run(cli, ["orders", "void", *base, "--json"]).stdout)
    assert voided["state"] == "voided"
    listed = json.loads(run(cli, ["offers", "redemptions", "--db", str(till), "--json"]).stdout)
    assert [(r["shopper_id"], r["order_id"], r["status"]) for r in listed] == [
        ("L-1", "t-1", "voided")
    ]
    out = tmp_path / "redemptions.csv"
    wrote = run(cli, ["offers", "redemptions", "--db", str(till), "--csv", str(out)])
    assert wrote.stdout == f"wrote 1 redemptions to {out}\n"
    assert out.read_text().splitlines()[1].startswith(listed[0]["redemption_id"] + ",L-1,t-1,")


def test_orders_refuse_bad_input_in_one_line_and_change_nothing(till: Path) -> None:
    run = CliRunner().invoke
    base = ["orders", "redeem", "--db", str(till), "--order-id"]
    for argv, code, words in [
        ([*base, "t 1", "--cart", "coffee"], 2, "order_id"),
        ([*base, "t-1", "--cart", "coffee:0"], 2, "ITEM:QUANTITY"),
        ([*base, "t-1", "--cart", "unicorn"], 2, "unicorn"),
        (["orders", "void", "--db", str(till), "--order-id", "nope"], 3, "no order"),
        (["offers", "redemptions", "--db", str(till), "--since", "9", "--until", "1"], 2, "since"),
    ]:
        result = run(cli, argv)
        assert result.exit_code == code, (argv, result.stderr)
        assert result.stderr.startswith("error: ") and words in result.stderr
        assert len(result.stderr.splitlines()) == 1
    with shelfwise.open(till) as sw:
        assert sw.offers.redemptions(sandbox=None) == []
        assert sw.store.query("SELECT * FROM orders") == []


def _recommended(db: Path, bundle_path: Path, *options: str) -> list[str]:
    base = ["recommend", "--db", str(db), "--bundle", str(bundle_path), "--history", "sausages"]
    result = CliRunner().invoke(cli, [*base, "--limit", "20", *options, "--json"])
    assert result.exit_code == 0, result.stderr
    return [r["item"]["item_id"] for r in json.loads(result.stdout)["recommendations"]]


def test_recommend_keeps_only_the_items_the_filter_options_allow(
    db: Path, bundle_path: Path
) -> None:
    with shelfwise.open(db) as sw:
        sw.catalog.import_rows(
            [{**row, "brand": "Grillmaster"} for row in CATALOG if row["item_id"] in {"charcoal"}]
        )
    everything = _recommended(db, bundle_path)
    assert {"charcoal", "ketchup", "grill"} <= set(everything)
    cheap = _recommended(db, bundle_path, "--min-price", "1.5", "--max-price", "5")
    prices = {row["item_id"]: row["price"] for row in CATALOG}
    assert cheap and all(1.5 <= prices[i] <= 5 for i in cheap)
    assert "ketchup" in cheap and "grill" not in cheap
    assert _recommended(db, bundle_path, "--brand", "grillmaster") == ["charcoal"]
    assert _recommended(db, bundle_path, "--tag", "non_repeatable") == ["grill"]
    assert _recommended(db, bundle_path, "--include", "ketchup,grill") == [
        i for i in everything if i in {"ketchup", "grill"}
    ]
    kept = _recommended(db, bundle_path, "--exclude", "ketchup", "--exclude", "grill,charcoal")
    assert kept == [i for i in everything if i not in {"ketchup", "grill", "charcoal"}]


def test_catalog_search_takes_the_same_filter_options(db: Path) -> None:
    run = CliRunner().invoke
    args = ["catalog", "search", "--db", str(db), "l", "--json"]
    found = [i["item_id"] for i in json.loads(run(cli, args).stdout)]
    assert found == ["beer"]  # "Lager": the one item with a word starting with l
    assert json.loads(run(cli, [*args, "--max-price", "5"]).stdout) == []
    tagged = json.loads(run(cli, [*args, "--tag", "age_restricted", "--min-price", "7"]).stdout)
    assert [i["item_id"] for i in tagged] == ["beer"]
    assert json.loads(run(cli, [*args, "--exclude", "beer"]).stdout) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--min-price", "5", "--max-price", "1"], "5 is above --max-price 1"),
        (["--max-price", "-1"], "must be at least 0"),
        (["--min-price", "nan"], "not a finite number"),
        (["--include", "milk,unicorn"], "--include: item 'unicorn' is not in the catalog"),
        (["--exclude", "unicorn"], "--exclude: item 'unicorn' is not in the catalog"),
        (["--include", ","], "give at least one item id"),
        (["--brand", " "], "--brand: must not be empty"),
        (["--tag", ""], "--tag: must not be empty"),
    ],
)
@pytest.mark.parametrize("command", ["recommend", "catalog search"])
def test_a_bad_filter_option_is_one_error_line_and_exit_2(
    db: Path,
    bundle_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    options: list[str],
    message: str,
) -> None:
    if command == "recommend":
        argv = ["recommend", "--db", str(db), "--bundle", str(bundle_path), "--history", "milk"]
    else:
        argv = ["catalog", "search", "--db", str(db), "milk"]
    code, out, err = _run(capsys, *argv, *options)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_the_report_of_an_unknown_offer_experiment_is_one_error_line_and_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "offers", "experiment-report", "--db", str(db), "nope")
    assert (code, out) == (2, "")
    assert err.startswith("error: no offer experiment 'nope'") and err.count("\n") == 1


def test_recommend_experiments_define_list_report_and_stop_mirror_the_python_api(
    db: Path, bundle_path: Path, tmp_path: Path
) -> None:
    definition = tmp_path / "experiment.json"
    definition.write_text(
        json.dumps(
            {
                "experiment_id": "model-vs-popular",
                "surface": "for-you",
                "arms": [{"name": "model"}, {"name": "popular", "surface": "best-sellers"}],
            }
        )
    )
    run = CliRunner().invoke
    group = ["recommend-experiments"]
    started = run(cli, [*group, "define", "--db", str(db), str(definition), "--json"])
    assert started.exit_code == 0 and json.loads(started.stdout)["active"] is True
    again = run(cli, [*group, "define", "--db", str(db), str(definition)])
    assert again.exit_code == 2 and "exists" in again.stderr
    with shelfwise.open(db, bundle=bundle_path) as sw:
        member = sw.member("L-1")
        shown = member.recommend("for-you", record=True)
        member.clicked(shown[0])
    report = json.loads(
        run(cli, [*group, "report", "--db", str(db), "model-vs-popular", "--json"]).stdout
    )
    arm = next(a for a in report["arms"] if a["name"] == shown[0].arm)
    assert (arm["impressions"], arm["clicks"], arm["ctr"]) == (1, 1, 1.0)
    text = run(cli, [*group, "report", "--db", str(db), "model-vs-popular"]).stdout
    assert "100.0%" in text and "lift" in text
    assert "running" in run(cli, [*group, "list", "--db", str(db)]).stdout
    assert run(cli, [*group, "stop", "--db", str(db), "model-vs-popular"]).exit_code == 0
    listed = json.loads(run(cli, [*group, "list", "--db", str(db), "--json"]).stdout)
    assert [e["active"] for e in listed] == [False]
    missing = run(cli, [*group, "report", "--db", str(db), "nope"])
    assert missing.exit_code == 2 and missing.stderr == "error: no recommender experiment 'nope'\n"
