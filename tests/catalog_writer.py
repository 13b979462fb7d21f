"""A catalog writer process for the concurrency tests: applies the changes it is sent.

Usage: python catalog_writer.py DB

Reads one JSON change per line on stdin (``{"import": [rows], "replace": bool}`` or
``{"stock": item_id, "in_stock": bool}``), applies it through the public API and only then
prints ``ok <catalog revision>``: the test knows the change is committed when it reads that.
"""

from __future__ import annotations

import json
import sys

import shelfwise


def main(argv: list[str]) -> int:
    with shelfwise.open(argv[0]) as sw:
        for line in sys.stdin:
            change = json.loads(line)
            if "import" in change:
                sw.catalog.import_rows(change["import"], replace=change["replace"])
            else:
                sw.catalog.set_stock(change["stock"], change["in_stock"])
            print("ok", sw.store.get_meta("catalog.revision"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
