"""Camera decode on ZXing's real photos: at least what ZXing's own suite requires per folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import shelfwise

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "barcodes-zxing"
# ZXing's *BlackBox*TestCase.java "must pass" counts at 0 degrees (zxing/zxing core tests).
ZXING_MUST_PASS = {"ean13-2": 12, "ean13-4": 6, "ean8-1": 8, "upca-2": 30, "upca-3": 7}


@pytest.mark.realdata
@pytest.mark.parametrize("folder", sorted(ZXING_MUST_PASS))
def test_real_photos_decode_at_least_as_well_as_zxings_suite_requires(folder: str) -> None:
    pytest.importorskip("zxingcpp")
    decoded = 0
    for photo in sorted((DATA / folder).glob("*.png")):
        expected = shelfwise.normalize_gtin(photo.with_suffix(".txt").read_text().strip())
        codes = shelfwise.decode_image(photo.read_bytes())
        decoded += any(shelfwise.normalize_gtin(code) == expected for code in codes)
    assert decoded >= ZXING_MUST_PASS[folder]


@pytest.mark.realdata
def test_a_decoded_photo_scans_into_a_card(sw: shelfwise.Shelfwise) -> None:
    pytest.importorskip("zxingcpp")
    photo = DATA / "ean8-1" / "1.png"
    [code] = shelfwise.decode_image(photo)
    sw.catalog.import_rows([{"item_id": "photo-item", "name": "From a photo", "gtin": code}])
    assert sw.start_session().scan(code).item.item_id == "photo-item"
