"""A member's profile as a state-based CRDT: any two copies merge to the same result, whatever
the order, however often (Shapiro et al., 2011).

- **interactions**: a grow-only set keyed by event id, capped to the newest ``MAX_INTERACTIONS``
  (newest by time, then id): the cap is applied after the union, so it stays a semilattice.
- **consents**: one last-writer-wins register per purpose, ordered by (time, device, answer).
- **counters**: per-device PN-counters (each device's increments and decrements, merged by max),
  so a counter is the sum of what every device added and no merge ever loses or doubles one.
- **erasure**: ``epoch`` is the time of the last "forget me". It only grows; everything stamped
  at or before it is dropped, and counters from an older epoch are discarded whole, so an old
  copy coming back online can never undo an erasure.

Example:
    >>> a = MemberProfile().record(Interaction("e1", "milk", "purchase", 1_000, "s1"))
    >>> b = MemberProfile().with_consent("personalization", True, 2_000, "kiosk-b")
    >>> merged = a.merge(b)
    >>> merged == b.merge(a), [i.item_id for i in merged.interactions], merged.consent("personalization")
    (True, ['milk'], True)
    >>> merged.erase(3_000).interactions
    ()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .._errors import InvalidInput

MAX_INTERACTIONS = 500
MAX_COUNTERS = 256
MAX_DEVICES_PER_COUNTER = 4096


@dataclass(frozen=True, order=True)
class Interaction:
    """One thing the member did, as the profile keeps it (no coordinates, no free text)."""

    event_id: str
    item_id: str
    type: str
    ts_ms: int
    store_id: str = ""
    quantity: int = 1

    def sort_key(self) -> tuple[int, str]:
        return (self.ts_ms, self.event_id)


@dataclass(frozen=True)
class ConsentRecord:
    """One purpose's answer with when and where it was given."""

    granted: bool
    updated_ms: int
    device: str

    def order(self) -> tuple[int, str, bool]:
        return (self.updated_ms, self.device, self.granted)


@dataclass(frozen=True)
class Counter:
    """A PN-counter: per device, how much it added (``up``) and took away (``down``)."""

    up: Mapping[str, int] = field(default_factory=dict)
    down: Mapping[str, int] = field(default_factory=dict)

    @property
    def value(self) -> int:
        return sum(self.up.values()) - sum(self.down.values())

    def merge(self, other: Counter) -> Counter:
        return Counter(_max_per_key(self.up, other.up), _max_per_key(self.down, other.down))

    def add(self, device: str, amount: int) -> Counter:
        if amount >= 0:
            return Counter({**self.up, device: self.up.get(device, 0) + amount}, self.down)
        return Counter(self.up, {**self.down, device: self.down.get(device, 0) - amount})


def _max_per_key(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {key: max(a.get(key, 0), b.get(key, 0)) for key in sorted({*a, *b})}


@dataclass(frozen=True)
class MemberProfile:
    """What travels with a member between devices (encrypted for the member; see ``sealing``)."""

    interactions: tuple[Interaction, ...] = ()
    consents: Mapping[str, ConsentRecord] = field(default_factory=dict)
    counters: Mapping[str, Counter] = field(default_factory=dict)
    epoch: int = 0

    # -- reading ----------------------------------------------------------------------------
    def consent(self, purpose: str) -> bool:
        """The member's current answer for ``purpose`` (False when never asked)."""
        record = self.consents.get(purpose)
        return bool(record and record.granted)

    def counter(self, name: str) -> int:
        """The fleet-wide value of a counter (0 when never touched)."""
        counter = self.counters.get(name)
        return counter.value if counter else 0

    # -- local changes (each returns a new profile) -------------------------------------------
    def record(self, *interactions: Interaction) -> MemberProfile:
        """Add interactions (dropped when at or before the last erasure)."""
        return self.merge(MemberProfile(interactions=tuple(interactions), epoch=self.epoch))

    def with_consent(self, purpose: str, granted: bool, ts_ms: int, device: str) -> MemberProfile:
        """Record an answer for one purpose, stamped by the device that took it."""
        record = ConsentRecord(bool(granted), int(ts_ms), device)
        return self.merge(MemberProfile(consents={purpose: record}, epoch=self.epoch))

    def count(self, name: str, device: str, amount: int = 1) -> MemberProfile:
        """Add ``amount`` (negative: take away) to a counter on behalf of ``device``."""
        counter = self.counters.get(name, Counter()).add(device, amount)
        return replace(self, counters={**self.counters, name: counter})

    def erase(self, ts_ms: int) -> MemberProfile:
        """Forget everything up to ``ts_ms``: the tombstone every copy will obey."""
        return self.merge(MemberProfile(epoch=int(ts_ms)))

    # -- the merge ----------------------------------------------------------------------------
    def merge(self, other: MemberProfile) -> MemberProfile:
        """The least upper bound of two copies: commutative, associative, idempotent."""
        epoch = max(self.epoch, other.epoch)
        union: dict[str, Interaction] = {}
        for i in (*self.interactions, *other.interactions):
            # The same id twice: the later copy, on every device (ordering by time first keeps
            # this choice and the epoch filter commutative).
            if i.ts_ms > epoch and (
                i.event_id not in union
                or (i.ts_ms, i) > (union[i.event_id].ts_ms, union[i.event_id])
            ):
                union[i.event_id] = i
        newest = sorted(union.values(), key=Interaction.sort_key)[-MAX_INTERACTIONS:]
        consents: dict[str, ConsentRecord] = {}
        for answers in (self.consents, other.consents):
            for purpose, record in answers.items():
                if record.updated_ms <= epoch:
                    continue
                if purpose not in consents or record.order() > consents[purpose].order():
                    consents[purpose] = record
        counters: dict[str, Counter] = {}
        for source in (self, other):
            if source.epoch != epoch:
                continue  # counted before an erasure this copy had not seen: gone with it
            for name, counter in source.counters.items():
                counters[name] = counters[name].merge(counter) if name in counters else counter
        return MemberProfile(
            interactions=tuple(newest),
            consents=dict(sorted(consents.items())),
            counters=dict(sorted(counters.items())),
            epoch=epoch,
        )

    # -- plain data (msgpack-ready: string keys, ints, no floats) -----------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/msgpack-ready data; ``from_dict`` reads it back and validates it."""
        return {
            "v": 1,
            "epoch": self.epoch,
            "interactions": [
                [i.event_id, i.item_id, i.type, i.ts_ms, i.store_id, i.quantity]
                for i in self.interactions
            ],
            "consents": {
                p: [int(r.granted), r.updated_ms, r.device] for p, r in self.consents.items()
            },
            "counters": {
                name: {"up": dict(c.up), "down": dict(c.down)} for name, c in self.counters.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> MemberProfile:
        """A validated profile from ``to_dict`` data; ``InvalidInput`` names what is wrong."""
        if not isinstance(data, Mapping) or data.get("v") != 1:
            raise InvalidInput("member profile: expected a version 1 profile mapping")
        epoch = _int(data.get("epoch", 0), "epoch")
        rows = _list(data.get("interactions", []), "interactions", MAX_INTERACTIONS * 4)
        interactions = tuple(_interaction(row) for row in rows)
        consents = {
            _text(purpose, "consent purpose"): _consent(value)
            for purpose, value in _mapping(data.get("consents", {}), "consents", 64).items()
        }
        counters = {
            _text(name, "counter name"): _counter(value)
            for name, value in _mapping(data.get("counters", {}), "counters", MAX_COUNTERS).items()
        }
        return MemberProfile(epoch=epoch).merge(
            MemberProfile(interactions, consents, counters, epoch)
        )


def merge_all(profiles: Iterable[MemberProfile]) -> MemberProfile:
    """Every copy merged into one (the empty profile when there are none)."""
    merged = MemberProfile()
    for profile in profiles:
        merged = merged.merge(profile)
    return merged


# -- validation of data that crossed a device boundary ---------------------------------------
def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        raise InvalidInput(f"member profile: {name} must be a non-negative integer")
    return value


def _text(value: Any, name: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"member profile: {name} must be text of 1 to {limit} characters")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidInput(f"member profile: {name} holds control characters")
    return value


def _list(value: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(value, list | tuple) or len(value) > limit:
        raise InvalidInput(f"member profile: {name} must be a list of at most {limit}")
    return list(value)


def _mapping(value: Any, name: str, limit: int) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping) or len(value) > limit:
        raise InvalidInput(f"member profile: {name} must be a mapping of at most {limit}")
    return value


def _interaction(row: Any) -> Interaction:
    fields = _list(row, "an interaction", 6)
    if len(fields) != 6:
        raise InvalidInput("member profile: an interaction has 6 fields")
    event_id, item_id, kind, ts, store, quantity = fields
    return Interaction(
        _text(event_id, "event id"),
        _text(item_id, "item id"),
        _text(kind, "interaction type", 32),
        _int(ts, "interaction time"),
        _text(store, "store id") if store else "",
        max(1, _int(quantity, "quantity")),
    )


def _consent(value: Any) -> ConsentRecord:
    fields = _list(value, "a consent", 3)
    if len(fields) != 3 or fields[0] not in (0, 1):
        raise InvalidInput("member profile: a consent is [granted 0/1, time, device]")
    return ConsentRecord(
        bool(fields[0]), _int(fields[1], "consent time"), _text(fields[2], "device")
    )


def _counter(value: Any) -> Counter:
    data = _mapping(value, "a counter", 2)
    sides = {}
    for side in ("up", "down"):
        entries = _mapping(data.get(side, {}), f"counter {side}", MAX_DEVICES_PER_COUNTER)
        sides[side] = {_text(d, "device"): _int(n, "count") for d, n in entries.items()}
    return Counter(sides["up"], sides["down"])
