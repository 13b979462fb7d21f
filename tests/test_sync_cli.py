"""``shelfwise sync`` and ``shelfwise sync-status`` against a real collector process."""

from __future__ import annotations

import json
import subprocess
import sys

from sync_helpers import backend_args, collector, upstream_cmd

import shelfwise


def _shelfwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_sync_command_sends_the_backlog_and_status_reports_it(tmp_path):
    backend = backend_args(tmp_path, None)
    key_file = tmp_path / "kiosk.key"
    subprocess.run(
        upstream_cmd(
            "add-device",
            *backend,
            "--device",
            "kiosk-9",
            "--store",
            "s1",
            "--key-file",
            str(key_file),
        ),
        check=True,
    )
    db = tmp_path / "kiosk.db"
    with shelfwise.open(db, store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
        for _ in range(3):
            sw.start_session().view("tea")
        sw.summarise(device_id="kiosk-9", k=1, include_open_hour=True)
    status = json.loads(_shelfwise("sync-status", "--db", str(db), "--json").stdout)
    assert status["queued"] == 1 and status["last_success_ms"] is None
    with collector(backend) as url:
        out = _shelfwise(
            "sync", "--db", str(db), "--url", url, "--key-file", str(key_file), "--json"
        )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["report"]
    assert report["acked"] == 1 and report["complete"]
    status = json.loads(_shelfwise("sync-status", "--db", str(db), "--json").stdout)
    assert status["queued"] == 0 and status["last_success_ms"] and status["last_error"] is None
    totals = json.loads(
        subprocess.run(
            upstream_cmd("totals", *backend, "--json"), capture_output=True, text=True, check=True
        ).stdout
    )
    views = [row for row in totals if row[0] == "view"]
    assert len(views) == 1 and views[0][3] == "tea" and views[0][5:] == [3, 3]


def test_sync_command_with_upstream_down_exits_4_and_keeps_the_outbox(tmp_path):
    key_file = tmp_path / "kiosk.key"
    key_file.write_text(json.dumps({"device_id": "kiosk-9", "secret": "ab" * 32}))
    db = tmp_path / "kiosk.db"
    with shelfwise.open(db, store_id="s1") as sw:
        sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
        sw.start_session().view("tea")
        sw.summarise(device_id="kiosk-9", k=1, include_open_hour=True)
    out = _shelfwise(
        "sync",
        "--db",
        str(db),
        "--url",
        "http://127.0.0.1:9",
        "--key-file",
        str(key_file),
        "--timeout",
        "0",
        "--json",
    )
    assert out.returncode == 4
    assert "network" in json.loads(out.stdout)["report"]["error"]
    text = _shelfwise("sync-status", "--db", str(db)).stdout
    assert "queued: 1 summaries" in text and "last error: network" in text


def test_sync_with_the_chain_secret_sends_erasures_and_a_bad_secret_file_is_bad_input(tmp_path):
    backend = backend_args(tmp_path, None)
    key_file = tmp_path / "kiosk.key"
    subprocess.run(
        upstream_cmd("add-device", *backend, "--device", "kiosk-9", "--store", "s1",
                     "--key-file", str(key_file)),
        check=True,
    )  # fmt: skip
    secret = tmp_path / "chain.secret"
    secret.write_text("ab" * 32 + "\n")
    db = tmp_path / "kiosk.db"
    with shelfwise.open(db, store_id="s1", chain_secret=bytes.fromhex("ab" * 32)) as sw:
        sw.member("L-1")
        sw.forget_shopper("L-1")
    with collector(backend) as url:
        args = ["sync", "--db", str(db), "--url", url, "--key-file", str(key_file), "--json"]
        out = _shelfwise(*args, "--chain-secret-file", str(secret))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["report"]["erasures_sent"] == 1
        (tmp_path / "short.secret").write_text("abcd")
        bad = _shelfwise(*args, "--chain-secret-file", str(tmp_path / "short.secret"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
