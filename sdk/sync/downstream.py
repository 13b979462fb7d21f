"""Signed catalog and offer documents: published by the back office, pulled by kiosks.

A document is msgpack ``{"v": 1, "manifest": bytes, "signature": bytes, "payload": bytes}``:

- ``payload``: msgpack ``{"items": [catalog rows], "replace": bool}`` (kind ``catalog``) or
  ``{"offers": [offer definitions], "replace": bool}`` (kind ``offers``);
- ``manifest``: canonical JSON (sorted keys) ``{"format": 1, "kind", "version", "issued_ms",
  "expires_ms", "sha256", "size"}`` where ``sha256``/``size`` are the payload's;
- ``signature``: ed25519 over the manifest's exact bytes (``shelfwise.model.bundle.sign_manifest``),
  so signing the manifest signs the payload, as for bundles.

A kiosk applies a document only if, in this order: it decodes; the signature matches the
pinned public key; the manifest is well-formed and of the expected kind; the payload's
sha256 and size match; it has not expired by the kiosk's clock (corrected by the
collector's clock after a re-authentication); its version is above the one applied (the
same version with the same sha256 is "already applied", with another sha256 a replay);
every row validates. Then the catalog import (``Catalog.import_rows``) or the offer
definitions (``Offers.define``) and the new version are written in ONE transaction. Any
refusal raises ``UpdateRefused`` (a ``BundleVerificationError``) with a ``reason`` and
changes nothing: what the kiosk has keeps serving, expired or not.

Example:
    >>> from shelfwise.model.bundle import generate_signing_key
    >>> private, public = generate_signing_key()
    >>> raw = build_document("catalog", {"items": [{"item_id": "tea", "name": "Tea"}]},
    ...                      version=3, private_key=private, issued_ms=0, expires_ms=10**13)
    >>> manifest, content = verify_document(raw, kind="catalog", public_key=public, now=1)
    >>> manifest.version, content["items"][0]["name"], content["replace"]
    (3, 'Tea', True)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from .._errors import (
    BundleVerificationError,
    InvalidCatalog,
    InvalidInput,
    InvalidOffer,
    OfferRejected,
    UpdateRefused,
)
from .._time import now_ms
from ..catalog import Catalog, parse_item
from ..model.bundle import read_private_key, sign_manifest, verify_signature
from ..offers import Offer, Offers, parse_offer
from ..store.connection import Store
from .privacy import EnvelopeError, safe_unpack

logger = logging.getLogger(__name__)

FORMAT = 1
KINDS = ("catalog", "offers")
PATHS = {"catalog": "/v1/catalog", "offers": "/v1/offers"}
ROWS_KEY = {"catalog": "items", "offers": "offers"}
DEFAULT_TTL_MS = 30 * 86_400_000
MAX_DOCUMENT = 256 << 20
_MANIFEST_FIELDS = frozenset(
    {"format", "kind", "version", "issued_ms", "expires_ms", "sha256", "size"}
)


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
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DocumentManifest:
        """Strictly parse manifest bytes; ``UpdateRefused(reason="malformed")`` if off-schema."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _refused("malformed", f"the manifest is not JSON: {exc}") from exc
        if not isinstance(data, dict) or set(data) != _MANIFEST_FIELDS:
            raise _refused("malformed", f"manifest fields must be {sorted(_MANIFEST_FIELDS)}")
        if data["format"] != FORMAT or isinstance(data["format"], bool):
            raise _refused("malformed", f"document format {data['format']!r} is not supported")
        for name in ("version", "issued_ms", "expires_ms", "size"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _refused("malformed", f"manifest {name} must be a non-negative integer")
        digest = data["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
            raise _refused("malformed", "manifest sha256 must be 64 hex characters")
        if data["kind"] not in KINDS:
            raise _refused("malformed", f"document kind {data['kind']!r} is not one of {KINDS}")
        return cls(**data)


@dataclass(frozen=True)
class AppliedDocument:
    """The document of one kind a kiosk has applied (``changed``: by this call)."""

    kind: str
    version: int
    sha256: str
    issued_ms: int
    expires_ms: int
    applied_ms: int
    rows: int = 0
    changed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _refused(reason: str, message: str) -> UpdateRefused:
    return UpdateRefused(message, reason=reason)


# -- the back office: building signed documents ------------------------------------------


def build_document(
    kind: str,
    content: Mapping[str, Any],
    *,
    version: int,
    private_key: bytes,
    issued_ms: int | None = None,
    expires_ms: int | None = None,
) -> bytes:
    """Validate ``content`` and sign it as a document of ``kind``; return its msgpack bytes.

    ``content`` is ``{"items": [...]}`` or ``{"offers": [...]}`` plus optional ``replace``
    (default True: the document is the whole catalog / the whole set of upstream offers).
    Rows are validated here too, so an operator sees a bad row before any kiosk does.

    Example: see the module docstring.
    """
    if kind not in KINDS:
        raise InvalidInput(f"document kind must be one of {KINDS}, not {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput("a document version is an integer >= 1")
    rows = list(content.get(ROWS_KEY[kind]) or [])
    replace = content.get("replace", True)
    if not isinstance(replace, bool):
        raise InvalidInput("replace must be true or false")
    _parse_rows(kind, rows)
    issued = now_ms() if issued_ms is None else issued_ms
    expires = issued + DEFAULT_TTL_MS if expires_ms is None else expires_ms
    if expires <= issued:
        raise InvalidInput("a document must expire after it is issued")
    payload = msgpack.packb({ROWS_KEY[kind]: rows, "replace": replace}, use_bin_type=True)
    manifest = DocumentManifest(
        kind=kind,
        version=version,
        issued_ms=issued,
        expires_ms=expires,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    raw_manifest = manifest.to_json()
    return msgpack.packb(
        {
            "v": FORMAT,
            "manifest": raw_manifest,
            "signature": sign_manifest(raw_manifest, private_key),
            "payload": payload,
        },
        use_bin_type=True,
    )


def document_manifest(raw: bytes) -> DocumentManifest:
    """The manifest of document bytes, unverified (the collector indexes what it serves)."""
    return DocumentManifest.from_json(_unpack(raw)["manifest"])


# -- the kiosk: verifying and applying -----------------------------------------------------


def _unpack(raw: bytes) -> dict[str, Any]:
    try:
        data = safe_unpack(raw, max_len=MAX_DOCUMENT)
    except EnvelopeError as exc:
        raise _refused("malformed", f"not a signed document: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"v", "manifest", "signature", "payload"}:
        raise _refused("malformed", "a document is {v, manifest, signature, payload}")
    if data["v"] != FORMAT or not all(
        isinstance(data[k], bytes) for k in ("manifest", "signature", "payload")
    ):
        raise _refused("malformed", "unsupported document version or non-binary fields")
    return data


def verify_document(
    raw: bytes, *, kind: str, public_key: bytes, now: int | None = None
) -> tuple[DocumentManifest, dict[str, Any]]:
    """Check a document against the pinned key, its checksum and expiry; return its content.

    Raises ``UpdateRefused`` naming the failed check. Version checks need the store: see
    ``apply_document``.
    """
    data = _unpack(raw)
    try:
        verify_signature(data["manifest"], data["signature"], public_key)
    except BundleVerificationError as exc:
        raise _refused(
            "signature", f"the {kind} document is not signed by the pinned public key"
        ) from exc
    manifest = DocumentManifest.from_json(data["manifest"])
    if manifest.kind != kind:
        raise _refused("kind", f"expected a {kind} document, got a {manifest.kind} document")
    payload = data["payload"]
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


def _parse_rows(kind: str, rows: list[Any]) -> list[Any]:
    """Validate every row (items or offers) before anything is written."""
    if kind == "catalog":
        items = [parse_item(row, line) for line, row in enumerate(rows, 1)]
        Catalog._check_unique(items)
        return items
    offers = [parse_offer(row) for row in rows]
    ids = [o.offer_id for o in offers]
    if len(set(ids)) != len(ids):
        raise InvalidOffer("an offer_id appears twice in the offers document")
    return offers


def applied_documents(store: Store) -> dict[str, AppliedDocument]:
    """The applied document of each kind (version, sha256, validity), read locally.

    Example:
        >>> import shelfwise
        >>> with shelfwise.open(":memory:") as sw:
        ...     applied_documents(sw.store)
        {}
    """
    return {
        r["kind"]: AppliedDocument(
            kind=r["kind"],
            version=int(r["version"]),
            sha256=r["sha256"],
            issued_ms=int(r["issued_ms"]),
            expires_ms=int(r["expires_ms"]),
            applied_ms=int(r["applied_ms"]),
        )
        for r in store.query("SELECT * FROM sync_documents ORDER BY kind")
    }


def apply_document(
    store: Store,
    raw: bytes,
    *,
    kind: str,
    public_key: bytes,
    catalog: Catalog | None = None,
    offers: Offers | None = None,
    now: int | None = None,
) -> AppliedDocument:
    """Verify a signed document and apply it in one transaction, or refuse and change nothing.

    Returns the applied document; ``changed`` is False when this exact version was already
    applied (pulling the same document again is normal and harmless).
    """
    manifest, content = verify_document(raw, kind=kind, public_key=public_key, now=now)
    try:
        parsed = _parse_rows(kind, content[ROWS_KEY[kind]])
    except (InvalidCatalog, InvalidOffer) as exc:
        raise _refused("invalid", f"the signed {kind} document has an invalid row: {exc}") from exc
    catalog = catalog or Catalog(store)
    offers = offers or Offers(store, catalog)
    stamp = now_ms()
    with store.write() as db:
        # The version check sits in the same transaction as the write: two concurrent
        # pulls cannot both apply, and an older document can never overwrite a newer one.
        rows = list(db.query("SELECT * FROM sync_documents WHERE kind = ?", [kind]))
        if rows:
            have = rows[0]
            if manifest.version == have["version"] and manifest.sha256 == have["sha256"]:
                return AppliedDocument(
                    kind=kind,
                    version=manifest.version,
                    sha256=manifest.sha256,
                    issued_ms=int(have["issued_ms"]),
                    expires_ms=int(have["expires_ms"]),
                    applied_ms=int(have["applied_ms"]),
                )
            if manifest.version == have["version"]:
                raise _refused(
                    "replayed",
                    f"{kind} version {manifest.version} is already applied with other content",
                )
            if manifest.version < have["version"]:
                raise _refused(
                    "stale",
                    f"{kind} version {manifest.version} is older than the applied version "
                    f"{have['version']}",
                )
        ids: list[str] = []
        try:
            if kind == "catalog":
                catalog.import_rows(content["items"], replace=content["replace"])
            else:
                ids = _apply_offers(offers, parsed, content["replace"], rows)
        except (InvalidCatalog, InvalidOffer) as exc:  # e.g. a GTIN taken by a kept item
            raise _refused("invalid", f"the signed {kind} document conflicts: {exc}") from exc
        db.execute(
            "INSERT INTO sync_documents (kind, version, sha256, issued_ms, expires_ms, "
            "applied_ms, ids) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind) DO UPDATE SET "
            "version = excluded.version, sha256 = excluded.sha256, issued_ms = "
            "excluded.issued_ms, expires_ms = excluded.expires_ms, applied_ms = "
            "excluded.applied_ms, ids = excluded.ids",
            [
                kind,
                manifest.version,
                manifest.sha256,
                manifest.issued_ms,
                manifest.expires_ms,
                stamp,
                json.dumps(ids),
            ],
        )
    logger.info("applied %s document version %d (%d rows)", kind, manifest.version, len(parsed))
    return AppliedDocument(
        kind=kind,
        version=manifest.version,
        sha256=manifest.sha256,
        issued_ms=manifest.issued_ms,
        expires_ms=manifest.expires_ms,
        applied_ms=stamp,
        rows=len(parsed),
        changed=True,
    )


def _apply_offers(
    offers: Offers, parsed: list[Offer], replace: bool, previous: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Define every offer; with ``replace``, switch off upstream offers no longer listed.

    Offers are deactivated, never deleted: their codes and redemption history stay.
    Offers an operator defined locally are left alone.
    """
    ids = [offer.offer_id for offer in parsed]
    for offer in parsed:
        offers.define(offer)
    before = json.loads(previous[0]["ids"]) if previous else []
    if replace:
        for gone in sorted(set(before) - set(ids)):
            with contextlib.suppress(OfferRejected):  # removed locally since: nothing to do
                offers.deactivate(gone)
        return ids
    return sorted(set(before) | set(ids))


__all__ = [
    "AppliedDocument",
    "DocumentManifest",
    "applied_documents",
    "apply_document",
    "build_document",
    "read_private_key",
    "verify_document",
]
