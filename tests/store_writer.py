"""A writer process for the crash and multi-process tests: tracks events through the public API.

Usage: python store_writer.py DB PREFIX COUNT [--import-catalog N]

Prints each event id on its own line only after ``track()`` returned (the event is
acknowledged), so a test that kills this process knows which events must have survived.
"""

from __future__ import annotations

import sys

import shelfwise

ITEMS = ["milk", "cereal", "yogurt", "coffee", "juice", "sausages", "buns", "charcoal"]


def main(argv: list[str]) -> int:
    db, prefix, count = argv[0], argv[1], int(argv[2])
    with shelfwise.open(db, store_id="store-1") as sw:
        if "--import-catalog" in argv:
            size = int(argv[argv.index("--import-catalog") + 1])
            # One big import: after a crash it must be all there or not at all.
            sw.catalog.import_rows(
                {"item_id": f"bulk-{n}", "name": f"Bulk item {n}"} for n in range(size)
            )
            print("imported", flush=True)
        shopper = sw.member(f"member-{prefix}", consents={"personalization": True})
        for n in range(count):
            event = shopper.track(
                "cart_add" if n % 5 == 0 else "view",
                ITEMS[n % len(ITEMS)],
                event_id=f"{prefix}-{n}",
            )
            print(event.event_id, flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
