"""Readers for real transaction logs, and the train/validation/test splits.

Every reader returns an ``EventLog``: one ``Event`` per (shopper, item) interaction, in file
order, plus how many malformed rows were skipped. A malformed row raises
``shelfwise.InvalidTrainingData`` naming the file, the 1-based line and what was wrong,
unless ``on_error="skip"``, which counts it and keeps the first few reasons.

Formats (``read_events(path, format=...)``):

- ``sequence``: one shopper per line, ``user item1 item2 ...`` in time order (Beauty.txt)
- ``user-item``: one interaction per line, ``user item [unix_seconds]``
- ``groceries``: ``Member_number,Date(dd-mm-YYYY),itemDescription`` dated member baskets
- ``breadbasket``: ``Date,Time,Transaction,Item`` till transactions with time of day
- ``events``: any CSV or Parquet event log, with a ``ColumnMapping``

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "seq.txt"
    >>> _ = path.write_text("u1 10 11 12\\nu2 11 12 13 14\\n")
    >>> log = read_events(path, format="sequence")
    >>> len(log.events), log.users()
    (7, ['u1', 'u2'])
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from shelfwise import InvalidInput, InvalidTrainConfig, InvalidTrainingData, ShelfwiseError
from shelfwise.clock import DAY_MS
from shelfwise.model.encoding import ItemFeatures, Vocabulary, item_id_from_name

logger = logging.getLogger(__name__)

FORMATS = ("sequence", "user-item", "groceries", "breadbasket", "events")
OnError = Literal["raise", "skip"]
MAX_REASONS = 5


@dataclass(frozen=True)
class Event:
    """One interaction. ``ts_ms`` is None when the source gives order but no time."""

    user: str
    item: str
    ts_ms: int | None = None
    basket: str = ""
    store: str = ""
    event_type: str = "purchase"
    hour: int | None = None


@dataclass(frozen=True)
class EventLog:
    """Events read from one file, in file order, and what the reader had to skip."""

    events: list[Event]
    format: str
    path: str
    fingerprint: str
    skipped: int = 0
    skipped_reasons: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``"sequence"`` (leave-one-out split) or ``"basket"`` (time-based split)."""
        return "sequence" if self.format in ("sequence", "user-item") else "basket"

    @property
    def has_time(self) -> bool:
        return bool(self.events) and all(e.ts_ms is not None for e in self.events)

    def users(self) -> list[str]:
        return sorted({e.user for e in self.events})

    def sequences(self) -> dict[str, list[Event]]:
        """Each user's events oldest first (stable: file order breaks time ties)."""
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in self.events:
            by_user[event.user].append(event)
        if self.has_time:
            for events in by_user.values():
                events.sort(key=lambda e: e.ts_ms or 0)
        return dict(by_user)

    def vocabulary(self) -> Vocabulary:
        """Every item in the log; numeric ids sort numerically (Beauty id i -> index i)."""
        items = {e.item for e in self.events}
        if all(i.isdigit() for i in items):
            return Vocabulary(sorted(items, key=int))
        return Vocabulary(sorted(items))


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of a generic event log hold what. Only ``user`` and ``item`` are required.

    Example:
        >>> ColumnMapping.parse("user=customer,item=sku,timestamp=ts").timestamp
        'ts'
    """

    user: str = "user"
    item: str = "item"
    timestamp: str | None = None
    basket: str | None = None
    event_type: str | None = None
    store: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """``"user=col,item=col,timestamp=col,basket=col,event_type=col,store=col"``."""
        known = set(cls.__dataclass_fields__)
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, column = part.partition("=")
            if not sep or key.strip() not in known or not column.strip():
                raise InvalidTrainingData(
                    f"bad column mapping {part!r}: use key=column with keys {sorted(known)}",
                    reason="column mapping",
                )
            values[key.strip()] = column.strip()
        return cls(**values)


class _Rows:
    """Collects events, raising or counting malformed rows."""

    def __init__(self, path: Path, on_error: OnError) -> None:
        if on_error not in ("raise", "skip"):
            raise InvalidInput(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.path = path
        self.on_error = on_error
        self.events: list[Event] = []
        self.skipped = 0
        self.reasons: list[str] = []

    def bad(self, line: int, reason: str) -> None:
        message = f"{self.path}:{line}: {reason}"
        if self.on_error == "raise":
            raise InvalidTrainingData(
                message + " (pass on_error='skip' / --skip-bad-rows to skip and count such rows)",
                path=str(self.path),
                line=line,
                reason=reason,
            )
        self.skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(message)

    def log(self, format: str) -> EventLog:
        if not self.events:
            raise InvalidTrainingData(
                f"{self.path}: no usable rows in a {format} file", path=str(self.path)
            )
        if self.skipped:
            logger.warning("%s: skipped %d malformed rows", self.path, self.skipped)
        return EventLog(
            events=self.events,
            format=format,
            path=str(self.path),
            fingerprint=fingerprint(self.path, format),
            skipped=self.skipped,
            skipped_reasons=self.reasons,
        )


def fingerprint(path: Path, format: str) -> str:
    """sha256 of the file's bytes and the format it was read as: which data trained a model."""
    digest = hashlib.sha256(format.encode() + b"\0")
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        yield from enumerate(handle, 1)


def read_sequence_file(path: str | Path, on_error: OnError = "raise") -> EventLog:
    """``user item1 item2 ...`` per line, items oldest first; no timestamps."""
    path = Path(path)
    rows = _Rows(path, on_error)
    first_line: dict[str, int] = {}
    for number, line in _lines(path):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            rows.bad(number, f"expected 'user item1 item2 ...', got {line.strip()!r}")
            continue
        user = tokens[0]
        if user in first_line:
            rows.bad(number, f"user {user!r} already has a line ({first_line[user]})")
            continue
        first_line[user] = number
        rows.events.extend(Event(user=user, item=item) for item in tokens[1:])
    return rows.log("sequence")


def read_user_item_file(path: str | Path, on_error: OnError = "raise") -> EventLog:
    """``user item`` or ``user item unix_seconds`` per line (space, tab or comma separated)."""
    path = Path(path)
    rows = _Rows(path, on_error)
    for number, line in _lines(path):
        tokens = line.replace(",", " ").split()
        if not tokens:
            continue
        if len(tokens) not in (2, 3):
            rows.bad(number, f"expected 'user item [unix_seconds]', got {len(tokens)} fields")
            continue
        ts_ms = None
        if len(tokens) == 3:
            try:
                ts_ms = int(float(tokens[2]) * 1000)
            except ValueError:
                rows.bad(number, f"timestamp {tokens[2]!r} is not a number of seconds")
                continue
        rows.events.append(Event(user=tokens[0], item=tokens[1], ts_ms=ts_ms))
    if any(e.ts_ms is None for e in rows.events) and any(e.ts_ms for e in rows.events):
        raise InvalidTrainingData(
            f"{path}: some lines have a timestamp and others do not", path=str(path)
        )
    return rows.log("user-item")


def _csv_rows(
    path: Path, rows: _Rows, expected: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[: len(expected)]] != list(expected):
            raise InvalidTrainingData(
                f"{path}:1: expected the header {','.join(expected)}, got {header}",
                path=str(path),
                line=1,
                reason="header",
            )
        for record in reader:
            number = reader.line_num
            if not record or all(not c.strip() for c in record):
                continue
            if len(record) != len(header):
                rows.bad(number, f"expected {len(header)} fields, got {len(record)}")
                continue
            yield number, dict(zip((h.strip() for h in header), record, strict=True))


def _utc_ms(day: date, seconds: int = 0) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(midnight.timestamp() * 1000) + seconds * 1000


def read_groceries(path: str | Path, on_error: OnError = "raise") -> EventLog:
    """Dated member baskets: ``Member_number,Date,itemDescription`` (Date is dd-mm-YYYY).

    A basket is one member's purchases on one day; item ids come from ``item_id_from_name``.
    """
    path = Path(path)
    rows = _Rows(path, on_error)
    for number, row in _csv_rows(path, rows, ("Member_number", "Date", "itemDescription")):
        member = row["Member_number"].strip()
        if not member.isdigit():
            rows.bad(number, f"Member_number {member!r} is not a number")
            continue
        try:
            day = datetime.strptime(row["Date"].strip(), "%d-%m-%Y").date()
        except ValueError:
            rows.bad(number, f"Date {row['Date']!r} is not dd-mm-YYYY")
            continue
        try:
            item = item_id_from_name(row["itemDescription"])
        except ValueError:
            rows.bad(number, f"itemDescription {row['itemDescription']!r} names no product")
            continue
        rows.events.append(
            Event(user=member, item=item, ts_ms=_utc_ms(day), basket=f"{member}/{day.isoformat()}")
        )
    return rows.log("groceries")


def read_breadbasket(path: str | Path, on_error: OnError = "raise") -> EventLog:
    """Till transactions ``Date,Time,Transaction,Item`` with time of day.

    There are no customer ids, so each transaction is its own shopper session. The till's
    placeholder item ``NONE`` is not a product and is dropped (not counted as malformed).
    """
    path = Path(path)
    rows = _Rows(path, on_error)
    for number, row in _csv_rows(path, rows, ("Date", "Time", "Transaction", "Item")):
        try:
            moment = datetime.strptime(
                f"{row['Date'].strip()} {row['Time'].strip()}", "%Y-%m-%d %H:%M:%S"
            )
        except ValueError:
            rows.bad(
                number, f"Date/Time {row['Date']!r} {row['Time']!r} is not YYYY-mm-dd HH:MM:SS"
            )
            continue
        transaction = row["Transaction"].strip()
        if not transaction.isdigit():
            rows.bad(number, f"Transaction {transaction!r} is not a number")
            continue
        if row["Item"].strip().upper() == "NONE":
            continue
        try:
            item = item_id_from_name(row["Item"])
        except ValueError:
            rows.bad(number, f"Item {row['Item']!r} names no product")
            continue
        ts = moment.replace(tzinfo=UTC)
        rows.events.append(
            Event(
                user=f"T{transaction}",
                item=item,
                ts_ms=int(ts.timestamp() * 1000),
                basket=transaction,
                hour=moment.hour,
            )
        )
    return rows.log("breadbasket")


def _parse_time(value: object) -> tuple[int, int | None]:
    """(utc ms, hour or None). Numbers are unix seconds (or ms when > 1e11); text is ISO 8601."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000), moment.hour
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        ms = int(number if number > 1e11 else number * 1000)
        return ms, int((ms // 3_600_000) % 24)
    moment = datetime.fromisoformat(text)  # ValueError is reported by the caller
    has_clock = "T" in text or " " in text or ":" in text
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000), moment.hour if has_clock else None


def _table_rows(path: Path, columns: ColumnMapping) -> Iterator[tuple[int, dict[str, object]]]:
    wanted = [c for c in columns.__dict__.values() if c]
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow is in the train extra
            raise ImportError(
                "reading Parquet needs pyarrow: pip install 'shelfwise[train]'"
            ) from exc
        table = pq.read_table(path)
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise InvalidTrainingData(
                f"{path}: columns {missing} are not in the file (it has {table.column_names})",
                path=str(path),
                reason="columns",
            )
        for number, row in enumerate(table.select(wanted).to_pylist(), 1):
            yield number, row
        return
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in wanted if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidTrainingData(
                f"{path}:1: columns {missing} are not in the header {reader.fieldnames}",
                path=str(path),
                line=1,
                reason="columns",
            )
        for row in reader:
            yield reader.line_num, dict(row)


def read_event_log(
    path: str | Path,
    columns: ColumnMapping | None = None,
    on_error: OnError = "raise",
    event_types: Iterable[str] | None = None,
) -> EventLog:
    """A generic CSV or Parquet event log; ``columns`` says which column is what.

    ``event_types`` keeps only those types (e.g. ``{"purchase", "add_to_cart"}``) when the
    mapping names an event type column.
    """
    path = Path(path)
    columns = columns or ColumnMapping()
    keep = set(event_types) if event_types else None
    rows = _Rows(path, on_error)
    for number, row in _table_rows(path, columns):
        user = "" if row.get(columns.user) is None else str(row[columns.user]).strip()
        item = "" if row.get(columns.item) is None else str(row[columns.item]).strip()
        if not user or not item:
            rows.bad(
                number, f"empty {'user' if not user else 'item'} ({columns.user}/{columns.item})"
            )
            continue
        ts_ms = hour = None
        if columns.timestamp:
            try:
                ts_ms, hour = _parse_time(row.get(columns.timestamp))
            except (ValueError, TypeError, OverflowError):
                rows.bad(
                    number, f"{columns.timestamp} {row.get(columns.timestamp)!r} is not a time"
                )
                continue
        event_type = (
            str(row.get(columns.event_type) or "purchase") if columns.event_type else "purchase"
        )
        if keep is not None and event_type not in keep:
            continue
        rows.events.append(
            Event(
                user=user,
                item=item,
                ts_ms=ts_ms,
                basket=str(row.get(columns.basket) or "") if columns.basket else "",
                store=str(row.get(columns.store) or "") if columns.store else "",
                event_type=event_type,
                hour=hour,
            )
        )
    return rows.log("events")


def detect_format(path: str | Path) -> str:
    """Guess the format from the file's first line.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.csv"
        >>> _ = p.write_text("Member_number,Date,itemDescription\\n1,01-01-2015,milk\\n")
        >>> detect_format(p)
        'groceries'
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return "events"
    with open(path, encoding="utf-8-sig") as handle:
        first = handle.readline().strip()
    if first.startswith("Member_number,Date,itemDescription"):
        return "groceries"
    if first.startswith("Date,Time,Transaction,Item"):
        return "breadbasket"
    if "," in first:
        return "events"
    return "sequence" if len(first.split()) != 2 else "user-item"


def read_events(
    path: str | Path,
    format: str = "auto",
    *,
    columns: ColumnMapping | None = None,
    on_error: OnError = "raise",
) -> EventLog:
    """Read any supported format (``auto`` guesses from the first line).

    Every way a file can fail to read is ``InvalidTrainingData`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidTrainingData(f"{path}: no such data file", path=str(path))
    try:
        chosen = detect_format(path) if format == "auto" else format
        return _read_as(chosen, path, columns, on_error)
    except ShelfwiseError:
        raise
    except (ValueError, csv.Error) as exc:  # not UTF-8, a NUL byte, not really Parquet...
        raise InvalidTrainingData(f"{path}: cannot be read: {exc}", path=str(path)) from exc


def _read_as(chosen: str, path: Path, columns: ColumnMapping | None, on_error: OnError) -> EventLog:
    if chosen == "sequence":
        return read_sequence_file(path, on_error)
    if chosen == "user-item":
        return read_user_item_file(path, on_error)
    if chosen == "groceries":
        return read_groceries(path, on_error)
    if chosen == "breadbasket":
        return read_breadbasket(path, on_error)
    if chosen == "events":
        return read_event_log(path, columns, on_error)
    raise InvalidTrainingData(f"unknown format {chosen!r}; choose one of {FORMATS} or auto")


def read_item_features(path: str | Path, vocab: Vocabulary) -> dict[int, ItemFeatures]:
    """Item side features from JSON, as model index -> ``ItemFeatures``.

    ``{item_id: [attribute, ...]}`` (Beauty_item2attributes.json) gives attributes;
    ``{item_id: "category"}`` (a category mapping) gives the category. Items the vocabulary
    does not know are left out.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidTrainingData(f"{path}: not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict):
        raise InvalidTrainingData(f"{path}: expected a JSON object item -> attributes")
    out: dict[int, ItemFeatures] = {}
    for item, value in raw.items():
        index = vocab.index(str(item))
        if not index:
            continue
        if isinstance(value, list):
            out[index] = ItemFeatures(attributes=tuple(str(a) for a in value))
        elif isinstance(value, str | int):
            out[index] = ItemFeatures(category=str(value))
        else:
            raise InvalidTrainingData(
                f"{path}: item {item}: expected a list of attributes or a category name",
                path=str(path),
            )
    return out


def read_catalog_features(path: str | Path, vocab: Vocabulary) -> dict[int, ItemFeatures]:
    """Name, brand, category, price and tags of the vocabulary's items from a catalog file
    (``.jsonl`` or ``.csv``), read exactly as ``shelfwise catalog import`` reads it."""
    import shelfwise

    out: dict[int, ItemFeatures] = {}
    try:
        with shelfwise.open(":memory:") as sw:
            sw.catalog.import_file(path)
            for item in sw.catalog.all():
                index = vocab.index(item.item_id)
                if index:
                    out[index] = ItemFeatures.of(item)
    except ShelfwiseError as exc:
        raise InvalidTrainingData(f"{path}: {exc}", path=str(path)) from exc
    return out


def merge_features(*sources: dict[int, ItemFeatures]) -> dict[int, ItemFeatures]:
    """One ``ItemFeatures`` per item: later sources fill fields the earlier left empty, and
    attributes add up.

    Example:
        >>> merge_features({1: ItemFeatures(name="Milk")}, {1: ItemFeatures(category="dairy")})
        {1: ItemFeatures(name='Milk', brand='', category='dairy', price=None, attributes=())}
    """
    out: dict[int, ItemFeatures] = {}
    for source in sources:
        for index, found in source.items():
            have = out.get(index)
            if have is None:
                out[index] = found
                continue
            out[index] = ItemFeatures(
                name=have.name or found.name,
                brand=have.brand or found.brand,
                category=have.category or found.category,
                price=have.price if have.price is not None else found.price,
                attributes=tuple(dict.fromkeys(have.attributes + found.attributes)),
            )
    return out


# --- splits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalCases:
    """Histories (model indices, oldest first) and the items that came next.

    ``targets[i]`` may hold several items (a basket): a case is a hit when any of them ranks
    in the top K, and its rank is the position of the first one in the ranked list.
    """

    users: list[str]
    histories: list[list[int]]
    targets: list[list[int]]

    def __len__(self) -> int:
        return len(self.histories)

    def to_npz(self, path: Path) -> None:
        np.savez_compressed(
            path,
            users=np.array(self.users),
            hist=np.array([i for h in self.histories for i in h], dtype=np.int64),
            hist_len=np.array([len(h) for h in self.histories], dtype=np.int64),
            tgt=np.array([i for t in self.targets for i in t], dtype=np.int64),
            tgt_len=np.array([len(t) for t in self.targets], dtype=np.int64),
        )

    @classmethod
    def from_npz(cls, path: Path) -> EvalCases:
        with np.load(path) as data:
            hist = np.split(data["hist"], np.cumsum(data["hist_len"])[:-1])
            tgt = np.split(data["tgt"], np.cumsum(data["tgt_len"])[:-1])
            return cls(
                users=[str(u) for u in data["users"]],
                histories=[h.tolist() for h in hist],
                targets=[t.tolist() for t in tgt],
            )


@dataclass(frozen=True)
class Split:
    """Training sequences and the validation/test cases, in model indices."""

    train: list[list[int]]
    valid: EvalCases
    test: EvalCases
    protocol: str
    mask_seen: bool
    # Training sequences for the final test evaluation of count baselines (train + validation).
    train_for_test: list[list[int]] = field(default_factory=list)
    # The cold-start protocol's new items (model indices): nothing of theirs trains.
    new_items: list[int] = field(default_factory=list)


def leave_one_out(log: EventLog, vocab: Vocabulary, min_length: int = 3) -> Split:
    """Last item is the test target, the one before it the validation target.

    Users with fewer than ``min_length`` items only train. Seen items are masked at ranking
    time: in this protocol the next item is a new one (the S3-Rec/SASRec convention).
    """
    train: list[list[int]] = []
    train_for_test: list[list[int]] = []
    valid = EvalCases([], [], [])
    test = EvalCases([], [], [])
    for user, events in log.sequences().items():
        seq = [vocab.index(e.item) for e in events]
        if len(seq) < min_length:
            train.append(seq)
            train_for_test.append(seq)
            continue
        train.append(seq[:-2])
        train_for_test.append(seq[:-1])
        valid.users.append(user)
        valid.histories.append(seq[:-2])
        valid.targets.append([seq[-2]])
        test.users.append(user)
        test.histories.append(seq[:-1])
        test.targets.append([seq[-1]])
    return Split(
        train=train,
        valid=valid,
        test=test,
        protocol="leave-one-out: last item = test, previous = validation; full ranking over "
        "the whole catalog; the user's seen items are masked; ties count against the model",
        mask_seen=True,
        train_for_test=train_for_test,
    )


def time_split(log: EventLog, vocab: Vocabulary, holdout: float = 0.1) -> Split:
    """Baskets split by time: the last ``holdout`` of days is test, the ``holdout`` before
    it validation. A case is a user's first basket in the window, with everything they
    bought before the window as history (users with no history are skipped). Seen items are
    NOT masked: groceries are bought again.
    """
    if not log.has_time:
        raise InvalidTrainingData(f"{log.path}: a time-based split needs timestamps")
    days = sorted({(e.ts_ms or 0) // DAY_MS for e in log.events})
    test_start = days[int(len(days) * (1 - holdout))] * DAY_MS
    valid_start = days[int(len(days) * (1 - 2 * holdout))] * DAY_MS

    def cases(start: int, end: int) -> EvalCases:
        out = EvalCases([], [], [])
        for user, events in log.sequences().items():
            history = [vocab.index(e.item) for e in events if (e.ts_ms or 0) < start]
            window = [e for e in events if start <= (e.ts_ms or 0) < end]
            if not history or not window:
                continue
            first = window[0].basket or str(window[0].ts_ms)
            basket = [vocab.index(e.item) for e in window if (e.basket or str(e.ts_ms)) == first]
            out.users.append(user)
            out.histories.append(history)
            out.targets.append(sorted(set(basket)))
        return out

    sequences = log.sequences()
    train = [
        seq
        for seq in (
            [vocab.index(e.item) for e in events if (e.ts_ms or 0) < valid_start]
            for events in sequences.values()
        )
        if len(seq) >= 2
    ]
    train_for_test = [
        seq
        for seq in (
            [vocab.index(e.item) for e in events if (e.ts_ms or 0) < test_start]
            for events in sequences.values()
        )
        if len(seq) >= 2
    ]
    first_day = datetime.fromtimestamp(valid_start / 1000, UTC).date()
    test_day = datetime.fromtimestamp(test_start / 1000, UTC).date()
    return Split(
        train=train,
        valid=cases(valid_start, test_start),
        test=cases(test_start, 1 << 62),
        protocol=f"time-based: validation from {first_day}, test from {test_day}; target = the "
        "user's first basket in the window (hit if any of its items ranks); full ranking over "
        "the whole catalog; seen items NOT masked (repeat purchases count); ties count against "
        "the model",
        mask_seen=False,
        train_for_test=train_for_test,
    )


def hold_out_items(split: Split, num_items: int, fraction: float, seed: int = 0) -> Split:
    """The item cold-start protocol: a random ``fraction`` of the items is new.

    Every interaction with a new item leaves the training sequences (as if the item arrived
    after training), and the evaluation histories leave them out too (the runtime skips items
    its model does not know). Targets stay: the cases whose target is a new item are the
    cold-start cases, which a model can only rank from the item's features.

    Example:
        >>> cases = EvalCases(["u"], [[1, 2]], [[3]])
        >>> split = Split([[1, 2, 3, 4]], cases, cases, "loo", True, [[1, 2, 3, 4]])
        >>> cold = hold_out_items(split, num_items=4, fraction=0.25, seed=1)
        >>> cold.new_items, cold.train
        ([4], [[1, 2, 3]])
    """
    if not 0 < fraction < 1:
        raise InvalidTrainConfig(
            f"the share of new items must be between 0 and 1, not {fraction}", field="cold_start"
        )
    rng = np.random.default_rng([seed, 1013])
    count = max(1, round(fraction * num_items))
    new = sorted(int(i) for i in rng.choice(np.arange(1, num_items + 1), count, replace=False))
    held = set(new)

    def known(seq: list[int]) -> list[int]:
        return [i for i in seq if i not in held]

    def cases(source: EvalCases) -> EvalCases:
        return EvalCases(
            list(source.users), [known(h) for h in source.histories], list(source.targets)
        )

    return Split(
        train=[s for s in map(known, split.train) if s],
        valid=cases(split.valid),
        test=cases(split.test),
        protocol=split.protocol + f"; cold start: {count} random items ({fraction:.0%}) are "
        "new: none of their interactions trains and histories leave them out",
        mask_seen=split.mask_seen,
        train_for_test=[s for s in map(known, split.train_for_test) if s],
        new_items=new,
    )


def make_split(log: EventLog, vocab: Vocabulary) -> Split:
    """Leave-one-out for sequence files, time-based for dated baskets."""
    return leave_one_out(log, vocab) if log.kind == "sequence" else time_split(log, vocab)


def describe(log: EventLog) -> dict[str, object]:
    """Counts for the run report."""
    lengths = [len(s) for s in log.sequences().values()]
    return {
        "format": log.format,
        "path": log.path,
        "fingerprint": log.fingerprint,
        "events": len(log.events),
        "users": len(lengths),
        "items": len({e.item for e in log.events}),
        "median_length": statistics.median(lengths) if lengths else 0,
        "skipped_rows": log.skipped,
    }
