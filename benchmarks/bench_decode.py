"""Barcode decode rate on ZXing's real photos, beside what ZXing's own test suite expects.

Each folder of ``../shared/data/barcodes-zxing`` holds ``NN.png`` photos with the expected
digits in ``NN.txt``. ``shelfwise.decode_image`` (zxing-cpp) decodes each photo once (it
tries rotations itself); a photo counts when a decoded code normalises to the expected GTIN
(a UPC-A reported as EAN-13 with a leading 0 counts). ZXing's Java suite expectations come
from its ``*BlackBox*TestCase.java`` files (zxing/zxing, core/src/test/java/.../oned):
``addTest(mustPass, tryHarderMustPass, ...)`` per rotation (0 and 180 degrees).

    python benchmarks/bench_decode.py [--data ../shared/data/barcodes-zxing]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

import shelfwise

RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "barcodes-zxing"
# folder -> (Java test case, must pass at 0 deg, try-harder must pass at 0 deg)
ZXING_EXPECTED = {
    "ean13-2": ("EAN13BlackBox2TestCase", 12, 17),
    "ean13-4": ("EAN13BlackBox4TestCase", 6, 13),
    "ean8-1": ("EAN8BlackBox1TestCase", 8, 8),
    "upca-2": ("UPCABlackBox2TestCase", 30, 36),
    "upca-3": ("UPCABlackBox3ReflectiveTestCase", 7, 9),
}


def same_code(decoded: str, expected: str) -> bool:
    try:
        return shelfwise.normalize_gtin(decoded) == shelfwise.normalize_gtin(expected)
    except shelfwise.InvalidBarcode:
        return decoded == expected


def decode_folder(folder: Path) -> dict[str, object]:
    photos = sorted(folder.glob("*.png"))
    passed, seconds = 0, 0.0
    for photo in tqdm(photos, desc=folder.name, leave=False):
        expected = photo.with_suffix(".txt").read_text().strip()
        start = time.perf_counter()
        decoded = shelfwise.decode_image(photo)
        seconds += time.perf_counter() - start
        passed += any(same_code(code, expected) for code in decoded)
    return {
        "images": len(photos),
        "decoded": passed,
        "rate": passed / len(photos) if photos else 0.0,
        "ms_per_image": seconds / max(1, len(photos)) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    rows = {}
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        result = decode_folder(folder)
        case, must, harder = ZXING_EXPECTED.get(folder.name, ("?", None, None))
        rows[folder.name] = {
            **result,
            "zxing_case": case,
            "zxing_must_pass": must,
            "zxing_try_harder": harder,
        }
    print(
        f"{'folder':<10}{'images':>8}{'decoded':>9}{'rate':>8}{'ms/img':>8}   ZXing Java suite (0 deg)"
    )
    for name, r in rows.items():
        print(
            f"{name:<10}{r['images']:>8}{r['decoded']:>9}{r['rate']:>8.0%}{r['ms_per_image']:>8.1f}"
            f"   must pass {r['zxing_must_pass']}, try-harder {r['zxing_try_harder']} ({r['zxing_case']})"
        )
    total = sum(int(r["decoded"]) for r in rows.values())  # type: ignore[call-overload]
    images = sum(int(r["images"]) for r in rows.values())  # type: ignore[call-overload]
    print(f"{'all':<10}{images:>8}{total:>9}{total / max(1, images):>8.0%}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decode.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
