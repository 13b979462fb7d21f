"""The operator CLI: recommend, inspect, forget, import-catalog, export-shopper, purge (--json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CATALOG

import shelfwise
from shelfwise.cli import main


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
