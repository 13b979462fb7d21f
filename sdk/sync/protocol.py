"""The wire protocol between a device and its collector: the one module both sides import.

- **requests**: every ``/v1`` call but health is HMAC-SHA256-signed with the device's own
  secret over method, path, timestamp and body sha256 (``sign_request``); a 401 carries
  ``X-Shelfwise-Server-Time`` so a device with a wrong clock can sign again;
- **up**: ``POST /v1/summaries`` (``pack_upload``), each summary a versioned ``Envelope``,
  answered ``{"acked": [[key, rev], ...]}`` (``pack_acks`` / ``unpack_acks``);
- **down**: the region's trending table (``pack_fleet`` / ``unpack_fleet``), bundles
  (``pack_bundle_reply``) and signed catalog/offer documents (``sign_document`` /
  ``verify_document``), signed with the bundles' ed25519 keys (``shelfwise.model.bundle``);
- **members**: sealed profile copies (``SealedCopy`` in ``ProfileUpload``, ``MemberCopies``)
  and erasure tombstones (``TombstoneUpload``, the ``TombstonePage`` feed), under blinded
  ids, packed by ``pack_wire`` / ``unpack_wire`` (docs/fleet.md).

Request signing lives in ``_signing`` and bounded decoding in ``_codec``; import their names
from here.

msgpack bodies have string keys and integer millisecond UTC timestamps. Every decoder is
bounded and raises a typed error: ``EnvelopeError`` for what devices send,
``UpdateRefused`` (with a reason) for what comes down.

Example:
    >>> creds = Credentials("kiosk-1", b"s" * 32)
    >>> envelope = Envelope("kiosk-1", 1, "kiosk-1:0001", 1, 1_700_000_000_000,
    ...                     [["view", "s1", 1_699_999_200_000, "tea", "", 20, 20]])
    >>> body = pack_upload("kiosk-1", [envelope.pack()])
    >>> headers = sign_request(creds, "POST", SUMMARIES_PATH, body, 1_700_000_000_000)
    >>> auth = parse_auth_headers(headers)
    >>> check_signature(creds.secret, "POST", SUMMARIES_PATH, body, auth.ts_ms, auth.signature)
    True
    >>> unpack_envelope(unpack_upload(body).summaries[0]) == envelope
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, TypeVar

import msgpack
import msgspec

from .._errors import BundleVerificationError, EnvelopeError, InvalidInput, UpdateRefused
from ..clock import DAY_MS, now_ms

# The ed25519 helpers of signed bundles sign and verify documents too: one set of keys.
from ..model.bundle import (
    generate_signing_key,
    read_private_key,
    sign_manifest,
    verify_signature,
)
from ._codec import decode as _decode
from ._codec import safe_unpack
from ._signing import (
    DEVICE_RE,
    HEADER_DEVICE,
    HEADER_SERVER_TIME,
    HEADER_SIGNATURE,
    HEADER_TIME,
    AuthHeaders,
    Credentials,
    check_signature,
    parse_auth_headers,
    sign_request,
    signing_message,
)

PROTOCOL: Final = 1
ENVELOPE_VERSION = 1
SUMMARIES_PATH = "/v1/summaries"
FLEET_PATH = "/v1/fleet/trending"
BUNDLE_PATH = "/v1/bundle"
KINDS = ("catalog", "offers")
DOCUMENT_PATHS = {"catalog": "/v1/catalog", "offers": "/v1/offers"}

MAX_CELLS = 200_000
MAX_COUNT = 1 << 40
MAX_INT = 1 << 62
MAX_FLEET_ITEMS = 1000
MAX_FLEET_BYTES = 1 << 20
MAX_SCORE = 1e15
MAX_DOCUMENT = 256 << 20
DEFAULT_TTL_MS = 30 * DAY_MS
KEY_RE = r"\A[A-Za-z0-9:_\-]{8,80}\Z"
METRIC_RE = r"\A[a-z][a-z0-9_]{0,31}\Z"


# -- the summary envelope --------------------------------------------------------------------

Cell = list[Any]  # [metric, store_id, bucket_ms, a, b, n, q]
REST_SUFFIX = "_day_rest"  # a day's events whose hourly cells were suppressed


def rest_metric(metric: str) -> str:
    """The metric of a day's carried-over events of an hourly ``metric``.

    Example:
        >>> rest_metric("view")
        'view_day_rest'
    """
    return metric + REST_SUFFIX


_Text = Annotated[str, msgspec.Meta(max_length=200)]
_Count = Annotated[int, msgspec.Meta(ge=-MAX_COUNT, le=MAX_COUNT)]
_WireCell = tuple[
    Annotated[str, msgspec.Meta(pattern=METRIC_RE)],
    _Text,
    Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)],
    _Text,
    _Text,
    _Count,
    _Count,
]
_SmallMap = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=32)], _Text | int | float | bool | None],
    msgspec.Meta(max_length=16),
]
_Positive = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT)]


class _WireEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """The envelope's schema on the wire: every field required, nothing else allowed."""

    v: Literal[1]
    device: Annotated[str, msgspec.Meta(pattern=DEVICE_RE)]
    seq: _Positive
    key: Annotated[str, msgspec.Meta(pattern=KEY_RE)]
    rev: _Positive
    created_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
    model: _SmallMap
    privacy: _SmallMap
    cells: Annotated[list[_WireCell], msgspec.Meta(max_length=MAX_CELLS)]


@dataclass(frozen=True)
class Envelope:
    """One versioned summary release as sent upstream (msgpack, string keys)."""

    device: str
    seq: int
    key: str
    rev: int
    created_ms: int
    cells: list[Cell]
    model: Mapping[str, Any] = field(default_factory=dict)
    privacy: Mapping[str, Any] = field(default_factory=dict)
    v: int = ENVELOPE_VERSION

    def pack(self) -> bytes:
        """The msgpack bytes of this envelope.

        Example:
            >>> e = Envelope("kiosk-1", 1, "k" * 16, 1, 1_700_000_000_000, [])
            >>> unpack_envelope(e.pack()) == e
            True
        """
        wire = {f: getattr(self, f) for f in _WireEnvelope.__struct_fields__}  # wire order
        return msgspec.msgpack.encode(
            {**wire, "model": dict(self.model), "privacy": dict(self.privacy)}
        )


def unpack_envelope(raw: bytes) -> Envelope:
    """Decode and strictly check msgpack envelope bytes; ``EnvelopeError`` says what is wrong."""
    wire: _WireEnvelope = _decode(raw, _WireEnvelope, "envelope", 64 << 20)
    cells = [list(cell) for cell in wire.cells]
    if len({tuple(cell[:5]) for cell in cells}) != len(cells):
        raise EnvelopeError("a cell appears twice in one envelope")
    return Envelope(
        device=wire.device,
        seq=wire.seq,
        key=wire.key,
        rev=wire.rev,
        created_ms=wire.created_ms,
        cells=cells,
        model=wire.model,
        privacy=wire.privacy,
    )


# -- the upload request and its acknowledgement ------------------------------------------------


class Upload(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/summaries``: the signer's device id and its envelopes (still packed)."""

    v: Literal[1]
    device: str
    summaries: list[bytes]


class _Acks(msgspec.Struct):
    acked: list[tuple[str, int]]


def pack_upload(device_id: str, summaries: Sequence[bytes]) -> bytes:
    """The body of one upload request."""
    return msgspec.msgpack.encode(Upload(PROTOCOL, device_id, list(summaries)))


def unpack_upload(raw: bytes, *, max_len: int = 64 << 20) -> Upload:
    """Decode an upload body (the collector's side); ``EnvelopeError`` if off-schema."""
    return _decode(raw, Upload, "upload body", max_len)


def pack_acks(acks: Sequence[tuple[str, int]]) -> bytes:
    """The collector's answer: every (key, rev) it holds now."""
    return msgspec.msgpack.encode({"acked": [[key, rev] for key, rev in acks]})


def unpack_acks(raw: bytes) -> list[tuple[str, int]]:
    """The (key, rev) pairs the collector acknowledged; ``EnvelopeError`` if unreadable."""
    acks: _Acks = _decode(raw, _Acks, "acknowledgement", 16 << 20)
    return acks.acked


# -- the fleet table -----------------------------------------------------------------------


def pack_fleet(scope: str, generated_ms: int, items: Sequence[tuple[str, float]]) -> bytes:
    """The region's trending table as the collector serves it."""
    return msgspec.msgpack.encode(
        {"scope": scope, "generated_ms": generated_ms, "items": [[i, s] for i, s in items]}
    )


_FleetRow = tuple[
    Annotated[str, msgspec.Meta(min_length=1, max_length=200)],
    Annotated[float, msgspec.Meta(ge=0, le=MAX_SCORE)],
]


class _Fleet(msgspec.Struct):
    scope: Annotated[str, msgspec.Meta(max_length=100)]
    generated_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
    items: Annotated[list[_FleetRow], msgspec.Meta(max_length=MAX_FLEET_ITEMS)]


def unpack_fleet(raw: bytes) -> tuple[str, list[tuple[str, float]]]:
    """The scope and the (item, score) rows of a fleet table, checked like any input:
    ``UpdateRefused(reason="malformed")`` for a wrong type, a score that is negative, NaN or
    infinite, an item listed twice, or more than ``MAX_FLEET_ITEMS`` rows.

    Example:
        >>> unpack_fleet(pack_fleet("region:north", 1, [("tea", 2.5)]))
        ('region:north', [('tea', 2.5)])
    """
    try:
        fleet: _Fleet = _decode(raw, _Fleet, "fleet table", MAX_FLEET_BYTES)
    except EnvelopeError as exc:
        raise _refused("malformed", f"upstream sent an unusable fleet table: {exc}") from exc
    if any(math.isnan(score) for _, score in fleet.items):
        raise _refused("malformed", "upstream sent a fleet table with a NaN score")
    if len({item for item, _ in fleet.items}) != len(fleet.items):
        raise _refused("malformed", "upstream sent a fleet table listing an item twice")
    return fleet.scope, fleet.items


class _BundleReply(msgspec.Struct):
    name: str
    files: Annotated[dict[str, bytes], msgspec.Meta(max_length=64)]


def pack_bundle_reply(name: str, files: Mapping[str, bytes]) -> bytes:
    """``GET /v1/bundle``: a bundle folder's files by name (verified by the device)."""
    return msgspec.msgpack.encode({"name": name, "files": dict(files)})


def unpack_bundle_reply(raw: bytes, *, max_len: int) -> dict[str, bytes]:
    """The files of a bundle answer; ``EnvelopeError`` if off-schema (names are checked
    by the device when it stages them)."""
    reply: _BundleReply = _decode(raw, _BundleReply, "bundle", max_len)
    return reply.files


# -- members across the fleet: sealed profiles and erasure tombstones --------------------------

PROFILES_PATH = "/v1/profiles"  # POST sealed copies; GET <path>/<blinded id> a member's copies
TOMBSTONES_PATH = "/v1/tombstones"  # POST erasures; GET <path>?since=<seq>&limit=<n> the feed
ERASURES_PATH = "/v1/fleet/erasures"  # GET: the erasures each device has yet to pull
BLINDED_RE = r"\A[0-9a-f]{64}\Z"  # HMAC-SHA256(chain secret, loyalty id), hex
COPY_RE = r"\A[0-9a-f]{32}\Z"  # a sealed copy's random id, chosen by the device that sealed it
MAX_SEALED = 256 << 10  # bytes of one sealed copy (shelfwise.profile.sealing.MAX_SEALED_BYTES)
MAX_COPIES = 64  # copies the collector keeps per member (and ids one copy may supersede)
MAX_COPIES_PER_REQUEST = 50
MAX_TOMBSTONES = 1000  # per upload and per page of the feed
COPY_OUTCOMES = ("stored", "erased", "too_many_copies", "copy_conflict", "bad_epoch")

_Blinded = Annotated[str, msgspec.Meta(pattern=BLINDED_RE)]
_CopyId = Annotated[str, msgspec.Meta(pattern=COPY_RE)]
_Ms = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
_Device = Annotated[str, msgspec.Meta(pattern=DEVICE_RE)]
_Sealed = Annotated[bytes, msgspec.Meta(min_length=28, max_length=MAX_SEALED)]


class SealedCopy(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """A member's profile sealed for the member (AES-GCM, ``shelfwise.profile.sealing``),
    filed under their blinded id. Besides its size, the collector learns only ``epoch``: the
    erasure time the copy obeys. ``supersedes`` names the copies merged into it, which it
    replaces (only those: a copy sealed meanwhile elsewhere stays)."""

    blinded_id: _Blinded
    copy_id: _CopyId
    epoch: _Ms
    sealed: _Sealed
    supersedes: Annotated[tuple[_CopyId, ...], msgspec.Meta(max_length=MAX_COPIES)] = ()


class ProfileUpload(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/profiles``: sealed copies from the signing device."""

    v: Literal[1]
    device: _Device
    copies: Annotated[
        list[SealedCopy], msgspec.Meta(min_length=1, max_length=MAX_COPIES_PER_REQUEST)
    ]


class CopyOutcome(msgspec.Struct, array_like=True, frozen=True):
    """What the collector did with one copy (one of ``COPY_OUTCOMES``); ``erased_ms`` is the
    member's latest erasure it knows of (0: none). ``erased``: the copy is older than it."""

    copy_id: _CopyId
    outcome: Literal["stored", "erased", "too_many_copies", "copy_conflict", "bad_epoch"]
    erased_ms: _Ms = 0


class ProfileAnswer(msgspec.Struct):
    """The answer to a ``ProfileUpload``: one outcome per copy."""

    outcomes: Annotated[list[CopyOutcome], msgspec.Meta(max_length=MAX_COPIES_PER_REQUEST)]


class MemberCopies(msgspec.Struct):
    """``GET /v1/profiles/<blinded id>``: every copy held for a member, as (copy id, epoch,
    sealed bytes), and the member's latest erasure (0: none)."""

    blinded_id: _Blinded
    erased_ms: _Ms
    copies: Annotated[list[tuple[_CopyId, _Ms, _Sealed]], msgspec.Meta(max_length=MAX_COPIES)]


class Tombstone(msgspec.Struct, array_like=True, frozen=True):
    """A member erased at ``erased_ms``: every copy and device forgets what came before."""

    blinded_id: _Blinded
    erased_ms: Annotated[int, msgspec.Meta(ge=1, le=MAX_INT)]


class TombstoneUpload(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/tombstones``: erasures made on the signing device."""

    v: Literal[1]
    device: _Device
    tombstones: Annotated[list[Tombstone], msgspec.Meta(min_length=1, max_length=MAX_TOMBSTONES)]


class TombstoneAcks(msgspec.Struct):
    """The tombstones of an upload the collector now holds."""

    acked: Annotated[list[Tombstone], msgspec.Meta(max_length=MAX_TOMBSTONES)]


class TombstonePage(msgspec.Struct):
    """``GET /v1/tombstones?since=<seq>``: erasures after ``since`` as (tombstone, seq), in
    feed order; ask again with ``since=next`` while ``more``."""

    tombstones: Annotated[list[tuple[Tombstone, _Ms]], msgspec.Meta(max_length=MAX_TOMBSTONES)]
    next: _Ms
    more: bool


class ErasureBacklog(msgspec.Struct):
    """``GET /v1/fleet/erasures``: the feed's length and, per device, how many erasures it
    has yet to pull, as (device, pending, its place in the feed, last pulled ms; 0: never)."""

    tombstones: _Ms
    devices: Annotated[list[tuple[_Device, _Ms, _Ms, _Ms]], msgspec.Meta(max_length=100_000)]


_Wire = TypeVar("_Wire")


def pack_wire(message: msgspec.Struct) -> bytes:
    """The msgpack body of a members' message (``ProfileUpload``, ``TombstonePage``, ...).

    Example:
        >>> raw = pack_wire(TombstoneAcks([Tombstone("a" * 64, 1_700_000_000_000)]))
        >>> unpack_wire(raw, TombstoneAcks).acked[0].erased_ms
        1700000000000
    """
    return msgspec.msgpack.encode(message)


def unpack_wire(raw: bytes, schema: type[_Wire], *, max_len: int = 16 << 20) -> _Wire:
    """Decode a members' message into its schema; ``EnvelopeError`` says what is wrong."""
    decoded: _Wire = _decode(raw, schema, schema.__name__, max_len)
    return decoded


# -- signed documents (catalog, offers) ---------------------------------------------------------

ROWS_KEY = {"catalog": "items", "offers": "offers"}
FORMAT = 1


@dataclass(frozen=True)
class DocumentManifest:
    """What a signed document is: kind, version, validity window and payload checksum."""

    kind: str
    version: int
    issued_ms: int
    expires_ms: int
    sha256: str
    size: int
    format: int = FORMAT

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys): the same manifest always signs the same."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DocumentManifest:
        """Strictly parse manifest bytes; ``UpdateRefused(reason="malformed")`` if off-schema."""
        try:
            wire = msgspec.json.decode(raw, type=_ManifestWire)
        except msgspec.MsgspecError as exc:
            raise _refused("malformed", f"the document manifest is malformed: {exc}") from exc
        return cls(**msgspec.structs.asdict(wire))


_Size = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]


class _ManifestWire(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal[1]
    kind: Literal["catalog", "offers"]
    version: _Size
    issued_ms: _Size
    expires_ms: _Size
    sha256: Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-fA-F]{64}\Z")]
    size: _Size


class _Document(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    manifest: bytes
    signature: bytes
    payload: bytes


def _refused(reason: str, message: str) -> UpdateRefused:
    return UpdateRefused(message, reason=reason)


def sign_document(
    kind: str,
    content: Mapping[str, Any],
    *,
    version: int,
    private_key: bytes,
    issued_ms: int | None = None,
    expires_ms: int | None = None,
) -> bytes:
    """Sign ``content`` (``{"items"|"offers": rows, "replace": bool}``) as a document.

    Checks the format only; validate the rows first (``shelfwise.sync.downstream.
    build_document`` does both).

    Example:
        >>> private, public = generate_signing_key()
        >>> raw = sign_document("offers", {"offers": []}, version=1, private_key=private)
        >>> verify_document(raw, kind="offers", public_key=public)[0].version
        1
    """
    if kind not in KINDS:
        raise InvalidInput(f"document kind must be one of {KINDS}, not {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput("a document version is an integer >= 1")
    rows = list(content.get(ROWS_KEY[kind]) or [])
    replace = content.get("replace", True)
    if not isinstance(replace, bool):
        raise InvalidInput("replace must be true or false")
    issued = now_ms() if issued_ms is None else issued_ms
    expires = issued + DEFAULT_TTL_MS if expires_ms is None else expires_ms
    if expires <= issued:
        raise InvalidInput("a document must expire after it is issued")
    try:
        payload = msgpack.packb({ROWS_KEY[kind]: rows, "replace": replace}, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"the {kind} rows cannot be sent as msgpack: {exc}") from exc
    manifest = DocumentManifest(
        kind=kind,
        version=version,
        issued_ms=issued,
        expires_ms=expires,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    ).to_json()
    return msgpack.packb(
        {
            "v": FORMAT,
            "manifest": manifest,
            "signature": sign_manifest(manifest, private_key),
            "payload": payload,
        },
        use_bin_type=True,
    )


def _unpack_document(raw: bytes) -> _Document:
    try:
        document: _Document = _decode(raw, _Document, "signed document", MAX_DOCUMENT)
    except EnvelopeError as exc:
        raise _refused("malformed", f"not a signed document: {exc}") from exc
    return document


def document_manifest(raw: bytes) -> DocumentManifest:
    """The manifest of document bytes, unverified (the collector indexes what it serves)."""
    return DocumentManifest.from_json(_unpack_document(raw).manifest)


def published_rows(raw: bytes) -> list[Any]:
    """The rows of a document as published, signature unchecked: what the collector, which
    never holds the signing key, reads of the documents it serves (the offers' fleet limits)."""
    data = _unpack_document(raw)
    content = safe_unpack(data.payload, max_len=MAX_DOCUMENT)
    kind = DocumentManifest.from_json(data.manifest).kind
    rows = content.get(ROWS_KEY[kind]) if isinstance(content, dict) else None
    return list(rows) if isinstance(rows, list) else []


def verify_document(
    raw: bytes, *, kind: str, public_key: bytes, now: int | None = None
) -> tuple[DocumentManifest, dict[str, Any]]:
    """Check a document against the pinned key, its checksum and expiry; return its content.

    Raises ``UpdateRefused`` naming the failed check. Version checks need the store: see
    ``shelfwise.sync.downstream.apply_document``.
    """
    data = _unpack_document(raw)
    try:
        verify_signature(data.manifest, data.signature, public_key)
    except BundleVerificationError as exc:
        raise _refused(
            "signature", f"the {kind} document is not signed by the pinned public key"
        ) from exc
    manifest = DocumentManifest.from_json(data.manifest)
    if manifest.kind != kind:
        raise _refused("kind", f"expected a {kind} document, got a {manifest.kind} document")
    payload = data.payload
    if len(payload) != manifest.size or hashlib.sha256(payload).hexdigest() != manifest.sha256:
        raise _refused("checksum", f"the {kind} document's payload does not match its sha256")
    stamp = now_ms() if now is None else now
    if manifest.expires_ms < stamp:
        raise _refused(
            "expired",
            f"the {kind} document version {manifest.version} has expired; keeping what is applied",
        )
    try:
        content = safe_unpack(payload, max_len=MAX_DOCUMENT)
    except EnvelopeError as exc:  # signed garbage: a broken publisher, still refused
        raise _refused("malformed", f"the {kind} payload is not msgpack: {exc}") from exc
    if (
        not isinstance(content, dict)
        or set(content) != {ROWS_KEY[kind], "replace"}
        or not isinstance(content[ROWS_KEY[kind]], list)
        or not isinstance(content["replace"], bool)
    ):
        raise _refused("malformed", f"a {kind} payload is {{{ROWS_KEY[kind]}: [...], replace}}")
    return manifest, content


__all__ = [
    "DEVICE_RE",
    "HEADER_DEVICE",
    "HEADER_SERVER_TIME",
    "HEADER_SIGNATURE",
    "HEADER_TIME",
    "AuthHeaders",
    "CopyOutcome",
    "Credentials",
    "DocumentManifest",
    "Envelope",
    "EnvelopeError",
    "ErasureBacklog",
    "MemberCopies",
    "ProfileAnswer",
    "ProfileUpload",
    "SealedCopy",
    "Tombstone",
    "TombstoneAcks",
    "TombstonePage",
    "TombstoneUpload",
    "Upload",
    "check_signature",
    "document_manifest",
    "generate_signing_key",
    "pack_acks",
    "pack_bundle_reply",
    "pack_fleet",
    "pack_upload",
    "pack_wire",
    "parse_auth_headers",
    "published_rows",
    "read_private_key",
    "rest_metric",
    "safe_unpack",
    "sign_document",
    "sign_manifest",
    "sign_request",
    "signing_message",
    "unpack_acks",
    "unpack_bundle_reply",
    "unpack_envelope",
    "unpack_fleet",
    "unpack_upload",
    "unpack_wire",
    "verify_document",
    "verify_signature",
]
