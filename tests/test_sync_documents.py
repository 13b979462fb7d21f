"""Signed catalog and offer documents pulled from a real collector process.

The operator publishes with ``python -m shelfwise.upstream publish-catalog|publish-offers``;
kiosks pull them in ``sw.sync`` and apply them only when the signature (pinned key), the
sha256, the expiry and the version all check out, in one transaction.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import msgpack
import pytest
from sync_helpers import backend_args, collector, register, upstream_cmd

import shelfwise
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.sync.downstream import applied_documents, pull_document
from shelfwise.sync.protocol import DocumentManifest, generate_signing_key, sign_manifest

PRIVATE, PUBLIC = generate_signing_key()


def _rows(version: int) -> list[dict]:
    """Catalog version ``version``: tea always; v2 renames it and adds coffee."""
    rows = [{"item_id": "tea", "name": f"Tea v{version}", "price": 2.0}]
    if version >= 2:
        rows.append({"item_id": "coffee", "name": "Coffee", "price": 3.5})
    return rows


OFFER = {"offer_id": "tea10", "title": "10% off tea", "reward": {"type": "percent", "value": 10}}
OLD_OFFER = {"offer_id": "old", "title": "Old", "reward": {"type": "amount", "value": 1}}


@pytest.fixture
def setup(tmp_path: Path):
    """A collector backend, a registered kiosk, the operator's key file and the kiosk."""
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    key_file = tmp_path / "docs.key"
    key_file.write_text(PRIVATE.hex())
    with shelfwise.open(tmp_path / "kiosk.db", store_id="s1", public_key=PUBLIC) as sw:
        sw.catalog.import_rows([{"item_id": "local", "name": "Kiosk-only item"}])
        yield backend, creds, key_file, sw


def _publish(backend, key_file: Path, kind: str, data, tmp_path: Path, *extra: str) -> dict:
    path = tmp_path / (f"{kind}.jsonl" if kind == "catalog" else f"{kind}.json")
    if kind == "catalog":
        path.write_text("".join(json.dumps(row) + "\n" for row in data))
    else:
        path.write_text(json.dumps(data))
    out = subprocess.run(
        upstream_cmd(f"publish-{kind}", *backend, "--sign-key", str(key_file), str(path), *extra),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _names(sw: shelfwise.Shelfwise) -> dict[str, str]:
    return {item.item_id: item.name for item in sw.catalog.all()}


def _collector_db(backend) -> contextlib.closing[sqlite3.Connection]:
    """The collector's SQLite file, opened directly (as someone with disk access would)."""
    return contextlib.closing(sqlite3.connect(backend[1], isolation_level=None))


def test_signed_catalog_and_offers_are_pulled_and_applied_by_sync(tmp_path, setup):
    backend, creds, key_file, sw = setup
    manifest = _publish(backend, key_file, "catalog", _rows(1), tmp_path)
    assert manifest["version"] == 1 and manifest["kind"] == "catalog"
    _publish(backend, key_file, "offers", [OFFER, OLD_OFFER], tmp_path)
    with collector(backend) as url:
        report = sw.sync(url, creds, k=1)
        assert report.error is None
        assert _names(sw) == {"tea": "Tea v1"}  # the document replaced the whole catalog
        assert {o.offer_id for o in sw.offers.all() if o.active} == {"tea10", "old"}
        _publish(backend, key_file, "catalog", _rows(2), tmp_path)
        _publish(backend, key_file, "offers", [OFFER], tmp_path)
        assert sw.sync(url, creds, k=1).error is None
        # the same documents again: nothing to do, and not an error
        again = pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC)
        assert again is not None and not again.changed and again.version == 2
    assert _names(sw) == {"tea": "Tea v2", "coffee": "Coffee"}
    # an offer dropped from the upstream set is switched off, not deleted (history stays)
    assert {o.offer_id: o.active for o in sw.offers.all()} == {"tea10": True, "old": False}
    applied = applied_documents(sw.store)
    assert (applied["catalog"].version, applied["offers"].version) == (2, 2)


def test_a_tampered_document_is_refused_and_changes_nothing(tmp_path, setup):
    backend, creds, key_file, sw = setup
    _publish(backend, key_file, "catalog", _rows(1), tmp_path)
    with _collector_db(backend) as db:  # someone edits the payload on the collector
        (body,) = db.execute("SELECT body FROM documents").fetchone()
        doc = msgpack.unpackb(base64.b64decode(body))
        doc["payload"] = doc["payload"].replace(b"Tea v1", b"Tea v9")
        tampered = base64.b64encode(msgpack.packb(doc, use_bin_type=True)).decode()
        db.execute("UPDATE documents SET body = ?", [tampered])
    with collector(backend) as url:
        with pytest.raises(shelfwise.UpdateRefused, match="sha256") as refused:
            pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC)
        assert refused.value.reason == "checksum"
        report = sw.sync(url, creds, k=1)
    assert report.error and report.error.startswith("catalog")
    assert _names(sw) == {"local": "Kiosk-only item"}
    assert applied_documents(sw.store) == {}


def test_a_document_signed_by_another_key_is_refused(tmp_path, setup):
    backend, creds, _, sw = setup
    other = tmp_path / "other.key"
    other.write_text(generate_signing_key()[0].hex())
    _publish(backend, other, "offers", [OFFER], tmp_path)
    with (
        collector(backend) as url,
        pytest.raises(shelfwise.UpdateRefused, match="pinned public key") as refused,
    ):
        pull_document(sw.store, url, creds, "offers", public_key=PUBLIC)
    assert refused.value.reason == "signature"
    assert sw.offers.all() == []


def test_an_older_document_served_again_is_refused_and_the_newer_keeps_serving(tmp_path, setup):
    backend, creds, key_file, sw = setup
    _publish(backend, key_file, "catalog", _rows(1), tmp_path)
    with collector(backend) as url:
        assert sw.sync(url, creds, k=1).error is None
    _publish(backend, key_file, "catalog", _rows(2), tmp_path)
    with collector(backend) as url:
        assert sw.sync(url, creds, k=1).error is None
    # the collector is restored from an old backup (or an attacker replays v1's bytes)
    with _collector_db(backend) as db:
        db.execute("DELETE FROM documents WHERE version = 2")
    with collector(backend) as url:
        with pytest.raises(shelfwise.UpdateRefused, match="older") as refused:
            pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC)
        assert refused.value.reason == "stale"
    assert _names(sw) == {"tea": "Tea v2", "coffee": "Coffee"}
    assert applied_documents(sw.store)["catalog"].version == 2


def test_the_same_version_with_other_content_is_refused_as_a_replay(tmp_path, setup):
    backend, creds, key_file, sw = setup
    _publish(backend, key_file, "catalog", _rows(1), tmp_path)
    with collector(backend) as url:
        pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC)
    with _collector_db(backend) as db:
        db.execute("DELETE FROM documents")
    _publish(backend, key_file, "catalog", _rows(2), tmp_path, "--version", "1")
    with collector(backend) as url, pytest.raises(shelfwise.UpdateRefused) as refused:
        pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC)
    assert refused.value.reason == "replayed"
    assert _names(sw) == {"tea": "Tea v1"}


def test_an_expired_document_is_refused_but_what_is_applied_keeps_serving(tmp_path, setup):
    backend, creds, key_file, sw = setup
    _publish(backend, key_file, "catalog", _rows(1), tmp_path, "--expires-days", "1")
    with collector(backend) as url:
        assert pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC).changed
        _publish(backend, key_file, "catalog", _rows(2), tmp_path, "--expires-days", "1")
        ten_years_ahead = now_ms() + 3650 * DAY_MS  # a kiosk whose clock is wrong
        with pytest.raises(shelfwise.UpdateRefused, match="expired"):
            pull_document(sw.store, url, creds, "catalog", public_key=PUBLIC, now=ten_years_ahead)
    # v1 has expired by that clock too, and still serves: a kiosk offline for long keeps going
    assert _names(sw) == {"tea": "Tea v1"}
    assert sw.catalog.lookup("tea").price == 2.0


def test_a_signed_document_with_an_invalid_row_changes_nothing(tmp_path, setup):
    backend, creds, _, sw = setup
    sw.offers.define(OLD_OFFER)
    bad_offer = {**OFFER, "offer_id": "bad", "reward": {"type": "percent", "value": 250}}
    payload = msgpack.packb({"offers": [OFFER, bad_offer], "replace": True}, use_bin_type=True)
    manifest = DocumentManifest(
        kind="offers",
        version=1,
        issued_ms=now_ms(),
        expires_ms=now_ms() + DAY_MS,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    ).to_json()
    signature = sign_manifest(manifest, PRIVATE)
    signed = {"v": 1, "manifest": manifest, "signature": signature, "payload": payload}
    with _collector_db(backend) as db:  # a broken publisher that skipped validation
        db.execute(
            "INSERT INTO documents VALUES ('offers', 1, 0, 0, '', 0, ?)",
            [base64.b64encode(msgpack.packb(signed, use_bin_type=True)).decode()],
        )
    with collector(backend) as url:
        report = sw.sync(url, creds, k=1, documents=("offers",))
        with pytest.raises(shelfwise.UpdateRefused) as refused:
            pull_document(sw.store, url, creds, "offers", public_key=PUBLIC)
    assert report.error and "offers" in report.error
    assert refused.value.reason == "invalid"
    assert [(o.offer_id, o.active) for o in sw.offers.all()] == [("old", True)]
    assert applied_documents(sw.store) == {}


def test_publishing_a_version_not_above_the_published_one_is_refused(tmp_path, setup):
    backend, _, key_file, _ = setup
    _publish(backend, key_file, "catalog", _rows(1), tmp_path, "--version", "5")
    path = tmp_path / "again.jsonl"
    path.write_text(json.dumps(_rows(1)[0]) + "\n")
    out = subprocess.run(
        upstream_cmd(
            "publish-catalog", *backend, "--sign-key", str(key_file), str(path), "--version", "5"
        ),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not above" in out.stderr
