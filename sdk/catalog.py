"""The catalog: items with GTIN, name, brand, category, price, stock and tags.

Import from CSV or JSON lines, look up by item id or by any GTIN form, search with FTS5.

Example:
    >>> from shelfwise.store.connection import Store
    >>> store = Store(":memory:")
    >>> catalog = Catalog(store)
    >>> catalog.import_rows([{"item_id": "milk", "name": "Whole milk", "gtin": "036000291452",
    ...                       "category": "dairy", "price": "1.19"}])
    1
    >>> catalog.lookup("0036000291452").name
    'Whole milk'
    >>> [item.item_id for item in catalog.search("milk")]
    ['milk']
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._compat import warn_renamed
from ._errors import InvalidBarcode, InvalidCatalog, InvalidInput, UnknownItem
from .barcode.gtin import gtin_or_none, normalize_gtin
from .store.connection import Store, translate

# Tags with a meaning to the business filters.
SENSITIVE = "sensitive"
AGE_RESTRICTED = "age_restricted"
NON_REPEATABLE = "non_repeatable"

# Meta key that changes with every import: what is derived from the catalog (a model's
# vectors for items it never saw) is recomputed when it differs.
REVISION_KEY = "catalog.revision"
MAX_ID = 200  # item ids and tags
MAX_CACHED_ITEMS = 20_000  # items (and absent ids) kept in memory between writes (~10 MB)
MAX_TEXT = 500  # names, brands, categories
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class Item:
    """One catalog item, as the store holds it."""

    item_id: str
    name: str
    brand: str = ""
    category: str = ""
    price: float | None = None
    in_stock: bool = True
    repeatable: bool = True
    tags: tuple[str, ...] = ()
    gtin: str | None = None

    @property
    def sensitive(self) -> bool:
        return SENSITIVE in self.tags

    @property
    def age_restricted(self) -> bool:
        return AGE_RESTRICTED in self.tags

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "item_id": self.item_id,
            "name": self.name,
            "brand": self.brand,
            "category": self.category,
            "price": self.price,
            "in_stock": self.in_stock,
            "repeatable": self.repeatable,
            "tags": list(self.tags),
            "gtin": self.gtin,
        }


def _item_from_row(row: Mapping[str, Any]) -> Item:
    return Item(
        item_id=row["item_id"],
        name=row["name"],
        brand=row["brand"],
        category=row["category"],
        price=row["price"],
        in_stock=bool(row["in_stock"]),
        repeatable=bool(row["repeatable"]),
        tags=tuple(json.loads(row["tags"])),
        gtin=row["gtin"],
    )


def _text(value: Any, field: str, line: int, limit: int) -> str:
    """A plain text field: scalars only, valid UTF-8 (JSON can smuggle lone surrogates)."""
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidCatalog(f"row {line}: {field} must be text, not {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidCatalog(f"row {line}: {field} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in text):
        raise InvalidCatalog(f"row {line}: {field} holds control characters (NUL, escapes)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidCatalog(f"row {line}: {field} is not valid Unicode text") from exc
    return text


_COLUMNS = "item_id, name, brand, category, price, in_stock, repeatable, tags, gtin"


@functools.lru_cache(maxsize=4096)
def _tags_from_json(text: str) -> tuple[str, ...]:
    """The stored tags column parsed (a pure function of its text, so it is memoised: a
    catalog repeats a few tag sets across thousands of items, and every recommendation reads
    a few dozen rows; the tuple is immutable, so sharing it is safe)."""
    return () if text == "[]" else tuple(json.loads(text))


def _item_from_tuple(row: Sequence[Any]) -> Item:
    item_id, name, brand, category, price, in_stock, repeatable, tags, gtin = row
    return Item(
        item_id=item_id,
        name=name,
        brand=brand,
        category=category,
        price=price,
        in_stock=bool(in_stock),
        repeatable=bool(repeatable),
        tags=_tags_from_json(tags),
        gtin=gtin,
    )


def _parse_bool(value: Any, field: str, line: int) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text == "":
        return True  # both flags default to yes when the column is blank
    if text in _FALSE:
        return False
    raise InvalidCatalog(f"row {line}: {field}={value!r} is not a yes/no value")


def _parse_tags(value: Any, line: int) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        parts = [_text(t, "tags", line, MAX_ID) for t in re.split(r"[;,|]", value)]
    elif isinstance(value, list | tuple):
        parts = [_text(t, "tags", line, MAX_ID) for t in value]
    else:
        raise InvalidCatalog(f"row {line}: tags must be a list or a ';'-separated string")
    return tuple(sorted({p for p in parts if p}))


def _parse_price(value: Any, line: int) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidCatalog(f"row {line}: price {value!r} is not a number")
    try:
        price = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidCatalog(f"row {line}: price {value!r} is not a number") from exc
    if not math.isfinite(price) or price < 0:
        raise InvalidCatalog(f"row {line}: price {value!r} must be a non-negative number")
    return round(price, 4)


def parse_item(row: Mapping[str, Any], line: int = 0) -> Item:
    """Validate one catalog row (CSV or JSON) into an ``Item``; raise ``InvalidCatalog``.

    Example:
        >>> parse_item({"item_id": "x1", "name": "Beer", "tags": "age_restricted"}).tags
        ('age_restricted',)
    """
    if not isinstance(row, Mapping):
        raise InvalidCatalog(
            f"row {line}: a catalog row must be an object, not {type(row).__name__}"
        )
    item_id = _text(row.get("item_id") or row.get("id"), "item_id", line, MAX_ID)
    name = _text(row.get("name"), "name", line, MAX_TEXT)
    if not item_id:
        raise InvalidCatalog(f"row {line}: item_id is missing")
    if not name:
        raise InvalidCatalog(f"row {line}: item {item_id} has no name")
    try:
        gtin = gtin_or_none(row.get("gtin"))
    except InvalidBarcode as exc:
        raise InvalidCatalog(f"row {line}: item {item_id}: {exc}") from exc
    tags = _parse_tags(row.get("tags"), line)
    repeatable = _parse_bool(row.get("repeatable", True), "repeatable", line)
    return Item(
        item_id=item_id,
        name=name,
        brand=_text(row.get("brand"), "brand", line, MAX_TEXT),
        category=_text(row.get("category"), "category", line, MAX_TEXT),
        price=_parse_price(row.get("price"), line),
        in_stock=_parse_bool(row.get("in_stock", True), "in_stock", line),
        repeatable=repeatable and NON_REPEATABLE not in tags,
        tags=tags,
        gtin=gtin,
    )


def read_catalog_file(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` or ``.jsonl`` catalog file, unvalidated."""
    path = Path(path)
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise InvalidCatalog(f"{path.name} line {number}: not JSON: {exc}") from exc
        return rows
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    raise InvalidCatalog(f"{path.name}: catalog files must be .csv or .jsonl")


def _is_key(item_id: object) -> bool:
    if not isinstance(item_id, str):
        return False
    try:
        item_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key(item_id: object) -> None:
    """An id that cannot be in the catalog is an unknown item (never a driver error)."""
    if not _is_key(item_id):
        raise UnknownItem(f"item {item_id!r} is not in the catalog", item=repr(item_id))


class ItemPredicate(Protocol):
    """What ``Catalog.search`` filters with (``shelfwise.ItemFilter`` is one)."""

    def allows(self, item: Item) -> bool: ...


class _ItemCache:
    """Items read from the store (None: not in the catalog), valid for one catalog token."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.items: dict[str, Item | None] = {}
        self.revision: str | None = None


_UNREAD = object()


class Catalog:
    """The items a store sells, read from and written to the store.

    Reads by id go through an in-memory cache that holds while the store's catalog token
    (changed by a trigger on every write to ``items``, from any connection) stays the same:
    a recommendation reads a few dozen rows, and one token read replaces them all. Reads that
    may see changes not yet committed (inside a write transaction, or on a ``:memory:``
    store) go straight to the store and are not kept: a rolled-back change must not outlive
    its transaction.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache = _ItemCache(0)
        self._pins = threading.local()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Reads by id (and ``revision``) in this thread inside the block look at the store's
        catalog token once: one request's reads. The items it has not read yet are read when
        asked, so a change committed meanwhile may show for them; reads inside a write
        transaction see the store, the transaction's own changes included. A block that
        changes the catalog itself may read the items it read before as they were: such a
        change shows from the next block.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Green tea"}])
            ...     with sw.catalog.pinned():
            ...         sw.catalog.names(["tea"]), sw.catalog.get("tea").name
            ({'tea': 'Green tea'}, 'Green tea')
        """
        if getattr(self._pins, "cache", None) is not None:  # nested: the outer pin holds
            yield
            return
        self._pins.cache = self._current_cache()
        try:
            yield
        finally:
            self._pins.cache = None

    def import_rows(self, rows: Iterable[Mapping[str, Any]], *, replace: bool = False) -> int:
        """Validate every row, then upsert all of them in one transaction; return the count.

        One bad row rejects the whole import (``InvalidCatalog`` names the row) and the
        catalog stays as it was. ``replace=True`` removes items not in ``rows``.
        """
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise InvalidCatalog(
                f"import_rows takes an iterable of row mappings, not {type(rows).__name__}"
            )
        items = [parse_item(row, line) for line, row in enumerate(rows, 1)]
        self._check_unique(items)
        records = [{**item.to_dict(), "tags": json.dumps(list(item.tags))} for item in items]
        with self._store.write() as db:
            # Caught inside the transaction: write() would turn it into a generic StoreError.
            try:
                if replace:
                    db.execute("DELETE FROM items")
                db.table("items").upsert_all(records, pk="item_id")
                db.table("meta").upsert(
                    {"key": REVISION_KEY, "value": secrets.token_hex(8)}, pk="key"
                )
                db.execute("UPDATE catalog_changes SET token = random()")  # an empty import too
            except sqlite3.IntegrityError as exc:
                raise InvalidCatalog(f"catalog import conflicts with the store: {exc}") from exc
        return len(items)

    @staticmethod
    def _check_unique(items: Sequence[Item]) -> None:
        seen_ids: set[str] = set()
        seen_gtins: dict[str, str] = {}
        for item in items:
            if item.item_id in seen_ids:
                raise InvalidCatalog(f"item_id {item.item_id} appears twice in the import")
            seen_ids.add(item.item_id)
            if item.gtin and item.gtin in seen_gtins:
                raise InvalidCatalog(
                    f"GTIN {item.gtin} is given to both {seen_gtins[item.gtin]} and {item.item_id}"
                )
            if item.gtin:
                seen_gtins[item.gtin] = item.item_id

    def import_file(self, path: str | Path, *, replace: bool = False) -> int:
        """Import a ``.csv`` or ``.jsonl`` catalog file (see ``import_rows``)."""
        return self.import_rows(read_catalog_file(path), replace=replace)

    def get(self, item_id: str) -> Item:
        """The item with this id, or ``UnknownItem``."""
        _check_key(item_id)
        found = self.get_many([item_id]).get(item_id)
        if found is None:
            raise UnknownItem(f"item {item_id!r} is not in the catalog", item=item_id)
        return found

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """The known items among ``item_ids`` (unknown ids are left out).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Green tea"}])
            ...     sorted(sw.catalog.get_many(["tea", "no-such-item"]))
            ['tea']
        """
        if not item_ids:
            return {}
        cache = self._current_cache()
        known: dict[str, Item | None] = cache.items if cache is not None else {}
        found: dict[str, Item] = {}
        unread: dict[str, None] = {}
        for item_id in item_ids:
            # Only a valid key was ever cached: a hit needs no check (the hot path).
            cached = known.get(item_id, _UNREAD) if type(item_id) is str else _UNREAD
            if cached is _UNREAD:
                if _is_key(item_id):
                    unread[item_id] = None
            elif cached is not None:
                found[item_id] = cached  # type: ignore[assignment]
        missing = list(unread)
        if len(missing) > MAX_CACHED_ITEMS:  # more than it holds: read past it
            known = {}
        elif len(known) + len(missing) > MAX_CACHED_ITEMS:
            known.clear()
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # Plain tuples, no dict per row; absent ids are remembered as None.
            for row in self._store.rows(
                f"SELECT {_COLUMNS} FROM items WHERE item_id IN ({marks})", chunk
            ):
                found[row[0]] = _item_from_tuple(row)
            for item_id in chunk:
                known[item_id] = found.get(item_id)
        return found

    def _current_cache(self) -> _ItemCache | None:
        """The cache for the catalog as it is now (a fresh one when the token moved); None
        when a read here may see uncommitted changes (they must not be kept)."""
        if not self._store.reads_committed_only():
            return None
        pinned: _ItemCache | None = getattr(self._pins, "cache", None)
        if pinned is not None:
            return pinned
        rows = self._store.rows("SELECT token FROM catalog_changes")
        token = int(rows[0][0]) if rows else 0
        if token != self._cache.token or not rows:
            self._cache = _ItemCache(token)
        return self._cache

    def names(self, item_ids: Sequence[str]) -> dict[str, str]:
        """The names of the known items among ``item_ids`` (unknown ids are left out): what a
        reason shows ("because you viewed <name>").

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Green tea"}])
            ...     sw.catalog.names(["tea", "no-such-item"])
            {'tea': 'Green tea'}
        """
        return {item_id: item.name for item_id, item in self.get_many(item_ids).items()}

    def by_gtin(self, code: str) -> Item:
        """The item with this GTIN in any form; ``InvalidBarcode`` or ``UnknownItem``."""
        gtin = normalize_gtin(code)
        rows = self._store.query("SELECT * FROM items WHERE gtin = ?", [gtin])
        if not rows:
            raise UnknownItem(f"barcode {code} is valid but not in this store's catalog", item=gtin)
        return _item_from_row(rows[0])

    def lookup(self, id_or_code: str) -> Item:
        """An item by id, else by GTIN when the text is all digits.

        Example: see the module docstring.
        """
        try:
            return self.get(id_or_code)
        except UnknownItem:
            code = re.sub(r"[\s-]", "", id_or_code) if isinstance(id_or_code, str) else ""
            if code.isdigit() and code.isascii():
                return self.by_gtin(id_or_code)
            raise

    def search(
        self, query: str, *, limit: int = 20, filters: ItemPredicate | None = None
    ) -> list[Item]:
        """Items matching every word of ``query`` (prefix match), best BM25 match first;
        with ``filters`` (a ``shelfwise.ItemFilter``), only the items it allows.

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea", "price": 3},
            ...                                 {"item_id": "teapot", "name": "Tea pot", "price": 20}])
            ...     cheap = shelfwise.ItemFilter.build(max_price=5)
            ...     [item.item_id for item in sw.catalog.search("tea", filters=cheap)]
            ['tea']
        """
        if filters is None:
            return [item for item, _ in self.search_scored(query, limit=limit)]
        # Read deeper: matches the filter drops must not leave the page short.
        found = self.search_scored(query, limit=limit * 10)
        return [item for item, _ in found if filters.allows(item)][:limit]

    def search_scored(self, query: str, *, limit: int = 20) -> list[tuple[Item, float]]:
        """``search`` with each item's text relevance (negated BM25: higher is better)."""
        if not isinstance(query, str):
            raise InvalidInput(f"a search query must be text, not {type(query).__name__}")
        terms = re.findall(r"\w+", query.lower())
        if not terms:
            return []
        match = " ".join(f'"{term}"*' for term in terms)
        try:
            rows = self._store.query(
                "SELECT items.*, -bm25(items_fts, 10.0, 3.0, 2.0, 1.0) AS relevance "
                "FROM items_fts JOIN items ON items.rowid = items_fts.rowid "
                "WHERE items_fts MATCH ? ORDER BY relevance DESC, items.rowid LIMIT ?",
                [match, limit],
            )
        except sqlite3.Error as exc:  # pragma: no cover - the match text is sanitised above
            raise translate(exc) from exc
        return [(_item_from_row(row), float(row["relevance"])) for row in rows]

    def all(self) -> list[Item]:
        """Every item, in import order (for small catalogs, exports and the demo).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     [item.item_id for item in sw.catalog.all()]
            ['tea']
        """
        rows = self._store.rows(f"SELECT {_COLUMNS} FROM items ORDER BY rowid")
        return [_item_from_tuple(row) for row in rows]

    def ids(self) -> list[str]:
        """Every item id, in import order (one narrow read: no item is built).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     sw.catalog.ids()
            ['tea']
        """
        return [row[0] for row in self._store.rows("SELECT item_id FROM items ORDER BY rowid")]

    def all_items(self) -> list[Item]:
        """Deprecated: ``all``."""
        warn_renamed("Catalog.all_items", "Catalog.all")
        return self.all()

    def revision(self) -> str:
        """A token that changes whenever an import changes the catalog ("" before any).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     before = sw.catalog.revision()
            ...     _ = sw.catalog.import_rows([{"item_id": "tea", "name": "Tea"}])
            ...     before == sw.catalog.revision()
            False
        """
        cache = self._current_cache()
        if cache is None:
            return self._store.get_meta(REVISION_KEY) or ""
        if cache.revision is None:
            cache.revision = self._store.get_meta(REVISION_KEY) or ""
        return cache.revision

    def count(self) -> int:
        return int(self._store.query("SELECT count(*) AS n FROM items")[0]["n"])

    def set_stock(self, item_id: str, in_stock: bool) -> None:
        """Mark an item in or out of stock."""
        with self._store.write() as db:
            cursor = db.execute(
                "UPDATE items SET in_stock = ? WHERE item_id = ?", [int(in_stock), item_id]
            )
            if cursor.rowcount == 0:
                raise UnknownItem(f"item {item_id!r} is not in the catalog", item=item_id)
