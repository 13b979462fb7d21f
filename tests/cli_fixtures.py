"""Files the command-line tests run against: a store, a bundle, offers, a catalog, a key file.

Built small and real (a verified ONNX bundle, a migrated store) in a working folder, under the
names the README's commands use (``store.db``, ``bundle/``, ``offers.yaml``, ``kiosk-7.key``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from conftest import CATALOG, SIDE_TABLES, cluster_vectors
from onnx_models import write_test_bundle

import shelfwise

# The README's example history (``--history 12,40,7``) names these items.
README_ITEMS = [
    {"item_id": "7", "name": "Rye bread", "category": "bakery", "price": 2.1},
    {"item_id": "12", "name": "Butter", "category": "dairy", "price": 2.4},
    {"item_id": "40", "name": "Jam", "category": "breakfast", "price": 3.2},
]
ITEMS = [row["item_id"] for row in CATALOG + README_ITEMS]
MEMBER = "L-1001"
OFFER = "coffee10"
OFFERS_YAML = f"""\
offers:
  - offer_id: {OFFER}
    title: 10% off coffee
    reward: {{type: percent, value: 10}}
    targeting: {{items: [coffee]}}
    codes: unique
"""


def build_workdir(work: Path) -> Path:
    """``work`` with store.db, bundle/, offers.yaml, offers.json, catalog.jsonl, chains.txt."""
    work.mkdir(parents=True, exist_ok=True)
    write_test_bundle(work / "bundle", ITEMS, cluster_vectors(ITEMS), side_tables=SIDE_TABLES)
    with shelfwise.open(work / "store.db", store_id="store-1") as sw:
        sw.catalog.import_rows(CATALOG + README_ITEMS)
        member = sw.member(MEMBER, consents={"personalization": True, "offers": True})
        member.view("milk")
        member.add_to_cart("buns")
        sw.offers.define(
            {
                "offer_id": OFFER,
                "title": "10% off coffee",
                "reward": {"type": "percent", "value": 10},
                "targeting": {"items": ["coffee"]},
                "codes": "unique",
            }
        )
    (work / "offers.yaml").write_text(OFFERS_YAML)
    (work / "offers.json").write_text(
        json.dumps({"offer_id": "tea5", "title": "Tea", "reward": {"type": "amount", "value": 1}})
    )
    (work / "catalog.jsonl").write_text(json.dumps({"item_id": "tea", "name": "Green tea"}) + "\n")
    (work / "catalog.csv").write_text("item_id,name\ntea,Green tea\n")
    (work / "device.key").write_text(json.dumps({"device_id": "kiosk-9", "secret": "ab" * 32}))
    chain_file(work / "chains.txt", users=60, items=20)
    return work


def chain_file(path: Path, users: int = 120, items: int = 30, seed: int = 0) -> Path:
    """A sequence file shaped like Beauty.txt (``user item item ...``): chains of related items."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, users + 1):
        item = int(rng.integers(1, items + 1))
        seq = []
        for _ in range(int(rng.integers(5, 12))):
            seq.append(item)
            item = item % items + 1 if rng.random() < 0.85 else int(rng.integers(1, items + 1))
        lines.append(f"{user} " + " ".join(map(str, seq)))
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_files(folder: Path) -> dict[str, Path]:
    """Files a careless operator passes: missing, a folder, not UTF-8, not SQLite, not ours."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a-folder").mkdir(exist_ok=True)
    (folder / "latin1.csv").write_bytes("item_id,name\ncafé,Caf\xe9\n".encode("latin-1"))
    (folder / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "text.db").write_text("this is not a database, just some text\n" * 50)
    (folder / "garbage.json").write_text("{{{ not json, not yaml: [")
    other = folder / "other-app.db"
    if not other.exists():
        with sqlite3.connect(other) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
        conn.close()
    return {
        "missing": folder / "no-such-file.txt",
        "missing-folder": folder / "no-such-folder" / "x",
        "folder": folder / "a-folder",
        "latin1": folder / "latin1.csv",
        "binary": folder / "binary.bin",
        "text": folder / "text.db",
        "garbage": folder / "garbage.json",
        "other-sqlite": other,
    }
