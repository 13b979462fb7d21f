"""Downstream: signed bundles and fleet tables pulled from a real collector process."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CATALOG, ITEMS, SIDE_TABLES, cluster_vectors
from onnx_models import mean_pool_scorer, write_test_bundle
from sync_helpers import backend_args, collector, register

import shelfwise
from shelfwise.model.bundle import Manifest, generate_signing_key, write_bundle
from shelfwise.sync.downstream import pull_bundle, pull_fleet, rollback_bundle

PRIVATE, PUBLIC = generate_signing_key()


@pytest.fixture
def kiosk(tmp_path: Path):
    """A kiosk serving signed v1, pinned to the back office's public key."""
    v1 = write_test_bundle(
        tmp_path / "v1", ITEMS, cluster_vectors(ITEMS), side_tables=SIDE_TABLES, sign_key=PRIVATE
    )
    with shelfwise.open(tmp_path / "kiosk.db", bundle=v1, store_id="s1", public_key=PUBLIC) as sw:
        sw.catalog.import_rows(CATALOG)
        yield sw


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return tmp_path / "published"


def _publish(published: Path, version: str, *, key: bytes | None = PRIVATE, **manifest) -> Path:
    folder = published / "current"
    if folder.exists():
        shutil.rmtree(folder)
    write_bundle(
        folder,
        Manifest(model_name="test-mean-pool", model_version=version, max_history=8, **manifest),
        model_onnx=mean_pool_scorer(cluster_vectors(ITEMS)),
        items=ITEMS,
        item_vectors=cluster_vectors(ITEMS),
        side_tables=SIDE_TABLES,
        sign_key=key,
    )
    return folder


def test_a_signed_bundle_from_upstream_is_verified_installed_and_served(tmp_path, kiosk, published):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    _publish(published, "2")
    with collector(backend, "--bundles", str(published)) as url:
        report = kiosk.sync(url, creds, k=1, bundles_dir=tmp_path / "bundles")
        assert report.error is None
        assert kiosk.model_version == "test-mean-pool@2"
        assert kiosk.store.get_meta("sync.bundle.current").endswith("test-mean-pool@2")
        # the same bundle again is not reinstalled
        assert pull_bundle(kiosk.model, url, creds, tmp_path / "bundles", store=kiosk.store) is None
    assert kiosk.recommend(history=["milk"], limit=3)


def test_a_tampered_bundle_is_refused_and_the_old_one_keeps_serving(tmp_path, kiosk, published):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    folder = _publish(published, "2")
    model = bytearray((folder / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(model))
    with collector(backend, "--bundles", str(published)) as url:
        with pytest.raises(shelfwise.BundleVerificationError, match="corrupt"):
            pull_bundle(kiosk.model, url, creds, tmp_path / "bundles", store=kiosk.store)
        report = kiosk.sync(url, creds, k=1, bundles_dir=tmp_path / "bundles")
    assert report.error and "bundle" in report.error
    assert kiosk.model_version == "test-mean-pool@1"
    assert [r.item.item_id for r in kiosk.recommend(history=["milk"], limit=2)]
    assert not any((tmp_path / "bundles").glob("test-mean-pool@2"))


def test_a_bundle_signed_by_another_key_is_refused(tmp_path, kiosk, published):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    other_private, _ = generate_signing_key()
    _publish(published, "2", key=other_private)
    with (
        collector(backend, "--bundles", str(published)) as url,
        pytest.raises(shelfwise.BundleVerificationError, match="signature"),
    ):
        pull_bundle(kiosk.model, url, creds, tmp_path / "bundles", store=kiosk.store)
    assert kiosk.model_version == "test-mean-pool@1"


def test_an_expired_bundle_or_a_wrong_clock_never_installs_but_keeps_serving(
    tmp_path, kiosk, published
):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    now = shelfwise.clock.now_ms()
    _publish(published, "2", expires_ms=now + 86_400_000)
    with collector(backend, "--bundles", str(published)) as url:
        ten_years_ahead = now + 10 * 365 * 86_400_000  # a kiosk whose clock is wrong
        with pytest.raises(shelfwise.BundleVerificationError, match="expired"):
            pull_bundle(
                kiosk.model,
                url,
                creds,
                tmp_path / "bundles",
                store=kiosk.store,
                now=ten_years_ahead,
            )
    assert kiosk.model_version == "test-mean-pool@1"
    assert kiosk.recommend(history=["milk"], limit=2)


def test_a_bundle_failing_its_health_check_is_rolled_back(tmp_path, kiosk, published):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    folder = published / "current"
    vectors = np.full_like(cluster_vectors(ITEMS), np.nan)
    write_test_bundle(folder, ITEMS, vectors, version="3", sign_key=PRIVATE)
    with (
        collector(backend, "--bundles", str(published)) as url,
        pytest.raises(shelfwise.ModelRuntimeError),
    ):
        pull_bundle(kiosk.model, url, creds, tmp_path / "bundles", store=kiosk.store)
    assert kiosk.model_version == "test-mean-pool@1"
    assert not any((tmp_path / "bundles").glob("test-mean-pool@3"))


def test_rollback_returns_to_the_bundle_served_before(tmp_path, kiosk, published):
    backend = backend_args(tmp_path, None)
    creds = register(backend, "kiosk-1")
    _publish(published, "2")
    kiosk.store.set_meta("sync.bundle.current", str(kiosk.model.current.files.path))
    with collector(backend, "--bundles", str(published)) as url:
        pull_bundle(kiosk.model, url, creds, tmp_path / "bundles", store=kiosk.store)
    assert kiosk.model_version == "test-mean-pool@2"
    rollback_bundle(kiosk.model, kiosk.store)
    assert kiosk.model_version == "test-mean-pool@1"


def test_fleet_trending_comes_down_and_feeds_the_trending_surface(tmp_path, kiosk):
    backend = backend_args(tmp_path, None)
    busy_creds = register(backend, "kiosk-busy", region="north", stores=("s1", "s2"))
    quiet_creds = register(backend, "kiosk-quiet", region="north")
    with shelfwise.open(tmp_path / "busy.db", store_id="s2") as busy:
        busy.catalog.import_rows(CATALOG)
        for _ in range(5):
            shopper = busy.start_session()
            shopper.add_to_cart("charcoal")
            shopper.checkout()
        with collector(backend) as url:
            busy.summarise(device_id="kiosk-busy", k=1, include_open_hour=True)
            assert busy.sync(url, busy_creds, k=1).error is None
            assert pull_fleet(kiosk.store, url, quiet_creds) >= 1
    recs = kiosk.recommend(surface="trending", limit=3)
    assert recs[0].item.item_id == "charcoal"
    assert recs[0].reason == "trending in stores near you"
