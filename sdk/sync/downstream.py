"""Downstream: what a device pulls from its collector, verified before anything changes.

- ``pull_fleet`` stores the region's trending table (``fleet_trending``, owned here) for the
  trending surface.
- ``pull_bundle`` stages a bundle in a temp folder, verifies sha256 and the ed25519
  signature against the pinned key and its expiry, installs it beside the previous one and
  hot-swaps (health check first); on any failure the old bundle keeps serving.
  ``rollback_bundle`` swaps back.
- ``pull_document`` fetches the signed catalog or offers document and ``apply_document``
  applies it (``sync_documents``, owned here).

A signed document (format in ``shelfwise.sync.protocol``) is applied only if, in this
order: it decodes; the signature matches the pinned public key; the manifest is
well-formed and of the expected kind; the payload's sha256 and size match; it has not
expired by the kiosk's clock (corrected by the collector's clock after a
re-authentication); its version is above the one applied (the same version with the same
sha256 is "already applied", with another sha256 a replay); every row validates. Then the
catalog import (``Catalog.import_rows``) or the offer definitions (``Offers.define``) and
the new version are written in ONE transaction. Any refusal raises ``UpdateRefused`` (a
``BundleVerificationError``) with a ``reason`` and changes nothing: what the kiosk has
keeps serving, expired or not.

Example:
    >>> from shelfwise.sync.protocol import generate_signing_key
    >>> private, public = generate_signing_key()
    >>> raw = build_document("catalog", {"items": [{"item_id": "tea", "name": "Tea"}]},
    ...                      version=3, private_key=private, issued_ms=0, expires_ms=10**13)
    >>> manifest, content = verify_document(raw, kind="catalog", public_key=public, now=1)
    >>> manifest.version, content["items"][0]["name"], content["replace"]
    (3, 'Tea', True)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import (
    BundleError,
    BundleVerificationError,
    EnvelopeError,
    InvalidCatalog,
    InvalidInput,
    InvalidOffer,
    OfferRejected,
    UpdateRefused,
)
from ..catalog import Catalog, parse_item
from ..clock import now_ms
from ..model.bundle import read_bundle
from ..model.runtime import LoadedModel, ModelHandle
from ..offers import Offer, Offers, parse_offer
from ..store.connection import Store
from .protocol import (
    BUNDLE_PATH,
    DOCUMENT_PATHS,
    FLEET_PATH,
    KINDS,
    MAX_DOCUMENT,
    MAX_FLEET_BYTES,
    ROWS_KEY,
    Credentials,
    DocumentManifest,
    read_private_key,
    sign_document,
    unpack_bundle_reply,
    unpack_fleet,
    verify_document,
)
from .transport import HttpTransport, SignedClient, transport_for

logger = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 1 << 30  # the largest bundle answer read (model, items, vectors, tables)


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


def _refused(reason: str, message: str) -> UpdateRefused:
    return UpdateRefused(message, reason=reason)


# -- signed documents: building (back office) and applying (kiosk) ---------------------------


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
    _parse_rows(kind, list(content.get(ROWS_KEY[kind]) or []))
    return sign_document(
        kind,
        content,
        version=version,
        private_key=private_key,
        issued_ms=issued_ms,
        expires_ms=expires_ms,
    )


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


# -- pulling from the collector ------------------------------------------------------------------


def pull_fleet(
    store: Store, url: str | HttpTransport, credentials: Credentials, *, timeout_s: float = 30.0
) -> int:
    """Fetch trending-in-this-region from upstream into ``fleet_trending``; return rows kept.

    Raises ``SyncError`` when upstream is unreachable and ``UpdateRefused`` when what it
    sent is unusable (a NaN, negative or infinite score, wrong types, too large); either
    way what was stored before stays.
    """
    client = SignedClient(store, transport_for(url, timeout_s), credentials)
    response = client.get(FLEET_PATH, max_bytes=MAX_FLEET_BYTES)
    if response is None:
        return 0
    scope, items = unpack_fleet(response.body)  # UpdateRefused: the old table stays
    stamp = now_ms()
    with store.write() as db:
        db.execute("DELETE FROM fleet_trending WHERE scope = ?", [scope])
        db.table("fleet_trending").insert_all(
            [{"scope": scope, "item_id": i, "score": s, "updated_ms": stamp} for i, s in items]
        )
    return len(items)


def pull_document(
    store: Store,
    url: str | HttpTransport,
    credentials: Credentials,
    kind: str,
    *,
    public_key: bytes,
    catalog: Catalog | None = None,
    offers: Offers | None = None,
    now: int | None = None,
    timeout_s: float = 60.0,
) -> AppliedDocument | None:
    """Fetch upstream's signed ``catalog`` or ``offers`` document and apply it.

    Returns None when upstream publishes none. Raises ``UpdateRefused`` (tampered, wrong
    key, expired, older or replayed) or ``SyncError``; either way nothing changed. The
    expiry check uses the kiosk's clock corrected by the collector's (see ``SignedClient``).
    """
    if kind not in KINDS:
        raise InvalidInput(f"document kind must be one of {KINDS}")
    client = SignedClient(store, transport_for(url, timeout_s), credentials)
    response = client.get(DOCUMENT_PATHS[kind], max_bytes=MAX_DOCUMENT)
    if response is None:
        return None
    if now is None:
        now = now_ms() + client.offset()
    return apply_document(
        store,
        response.body,
        kind=kind,
        public_key=public_key,
        catalog=catalog,
        offers=offers,
        now=now,
    )


_NAME = re.compile(r"[^A-Za-z0-9._@\-]+")


def install_bundle(
    handle: ModelHandle,
    staged: str | Path,
    bundles_dir: str | Path,
    *,
    public_key: bytes,
    store: Store | None = None,
    now: int | None = None,
) -> LoadedModel:
    """Verify a staged bundle against the pinned key, install it and hot-swap to it.

    Refuses (``BundleVerificationError``) a bad checksum, a bad or missing signature and an
    expired manifest; a bundle failing its health check is removed again. In every failure
    the bundle served before keeps serving.
    """
    files = read_bundle(staged, public_key=public_key, now_ms=now)
    name = _NAME.sub("_", f"{files.manifest.model_name}@{files.manifest.model_version}")
    target = Path(bundles_dir) / name
    previous = handle.current
    if previous is not None and previous.files.path.resolve() == target.resolve():
        return previous
    if Path(staged).resolve() != target.resolve():
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    try:
        model = handle.swap(target)
    except BundleError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if store is not None:
        with store.write() as db:
            for key, value in (
                ("sync.bundle.previous", str(previous.files.path) if previous else ""),
                ("sync.bundle.current", str(target)),
            ):
                db.table("meta").upsert({"key": key, "value": value}, pk="key")
    _prune(Path(bundles_dir), keep={target, previous.files.path if previous else target})
    return model


def _prune(folder: Path, keep: set[Path]) -> None:
    kept = {p.resolve() for p in keep}
    for child in folder.iterdir():
        if child.is_dir() and child.resolve() not in kept and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)


def pull_bundle(
    handle: ModelHandle,
    url: str | HttpTransport,
    credentials: Credentials,
    bundles_dir: str | Path,
    *,
    store: Store,
    public_key: bytes | None = None,
    now: int | None = None,
    timeout_s: float = 60.0,
) -> LoadedModel | None:
    """Download the collector's current bundle, stage, verify and swap to it.

    Returns the new model, or None when upstream has none or it is already served.
    """
    key = public_key or handle.public_key
    if key is None:
        raise BundleVerificationError("bundles from upstream need a pinned public key")
    client = SignedClient(store, transport_for(url, timeout_s), credentials)
    response = client.get(BUNDLE_PATH, max_bytes=MAX_BUNDLE_BYTES)
    if response is None:
        return None
    try:
        files = unpack_bundle_reply(response.body, max_len=MAX_BUNDLE_BYTES)
    except EnvelopeError as exc:
        raise BundleVerificationError(f"upstream sent a malformed bundle: {exc}") from exc
    folder = Path(bundles_dir)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        for name, content in files.items():
            if Path(name).name != name or name.startswith("."):
                raise BundleVerificationError(f"bundle file name {name!r} is not a plain name")
            (staging / name).write_bytes(content)
        current = handle.current
        staged = read_bundle(staging, public_key=key, now_ms=now)
        if current is not None and current.manifest.to_json() == staged.manifest.to_json():
            return None
        return install_bundle(handle, staging, folder, public_key=key, store=store, now=now)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def rollback_bundle(handle: ModelHandle, store: Store) -> LoadedModel:
    """Swap back to the bundle served before the last install."""
    previous = store.get_meta("sync.bundle.previous")
    if not previous:
        raise BundleError("there is no previous bundle to roll back to")
    model = handle.swap(previous)
    current = store.get_meta("sync.bundle.current") or ""
    store.set_meta("sync.bundle.current", previous)
    store.set_meta("sync.bundle.previous", current)
    return model


__all__ = [
    "KINDS",
    "AppliedDocument",
    "DocumentManifest",
    "applied_documents",
    "apply_document",
    "build_document",
    "install_bundle",
    "pull_bundle",
    "pull_document",
    "pull_fleet",
    "read_private_key",
    "rollback_bundle",
    "verify_document",
]
