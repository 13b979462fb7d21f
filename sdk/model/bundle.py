"""The model bundle format: the one contract between ``shelfwise.export`` and the runtime.

A bundle is a folder::

    manifest.json        the Manifest below, as JSON (sorted keys)
    manifest.sig         optional ed25519 signature of manifest.json's exact bytes
    model.onnx           inputs: history int64 [batch, L] (left padded with 0), k int64 [1]
                         outputs: scores float32 [batch, k], items int64 [batch, k], and
                         optionally the user vector float32 [batch, d] (``output_user``)
    items.json           the vocabulary: a JSON list of item ids; model index = position + 1
    item_vectors.npy     optional [num_items + 1, d] item embeddings (row 0 = padding), stored
                         as float16 (they only serve cosine similarity; half the bytes) and
                         read as float32
    feature_table.npy    optional float32 [features, d]: one row per item feature (row 0 =
                         none), read through the manifest's ``features`` encoding
                         (``shelfwise.model.encoding.FeatureEncoding``): an item outside the
                         vocabulary gets the sum of its features' rows as its vector
    side_tables.msgpack  optional SideTables: co-occurrence, popularity, repeat intervals

The manifest lists the sha256 of every other file, so signing the manifest signs the bundle.
Export writes bundles with ``write_bundle``; the runtime reads them with ``read_bundle``.

Example:
    >>> import tempfile, pathlib
    >>> from shelfwise.model.bundle import Manifest, write_bundle, read_bundle
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "b"
    >>> manifest = Manifest(model_name="demo", model_version="1", max_history=4)
    >>> _ = write_bundle(folder, manifest, model_onnx=b"not really onnx", items=["a", "b"])
    >>> read_bundle(folder).items
    ['a', 'b']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from .._errors import BundleVerificationError, InvalidInput
from .encoding import FeatureEncoding

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MODEL = "model.onnx"
ITEMS = "items.json"
ITEM_VECTORS = "item_vectors.npy"
SIDE_TABLES = "side_tables.msgpack"
FEATURE_TABLE = "feature_table.npy"


@dataclass(frozen=True)
class Manifest:
    """What a bundle is, what it needs and how it was checked.

    ``files`` (name -> sha256) is filled in by ``write_bundle``; ``training`` carries the
    data fingerprint, metrics, parity and quantization results that export measured.
    ``features`` is the item feature encoding (``FeatureEncoding.to_dict``) of a bundle
    with a feature table, empty otherwise; ``output_user`` names the graph's user-vector
    output when it has one (new items are scored against it).
    """

    model_name: str
    model_version: str
    max_history: int
    format_version: int = FORMAT_VERSION
    num_items: int = 0
    embedding_dim: int = 0
    opset: int = 0
    min_onnxruntime: str = "1.17"
    created_ms: int = 0
    expires_ms: int | None = None
    input_history: str = "history"
    input_k: str = "k"
    output_scores: str = "scores"
    output_items: str = "items"
    output_user: str = ""
    quantization: str = "none"
    files: Mapping[str, str] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, so the same manifest always signs the same."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse manifest bytes; unknown keys are an error, so a newer format is not misread."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleVerificationError(f"manifest.json is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BundleVerificationError("manifest.json must hold a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleVerificationError(
                f"bundle format version {version!r} is not supported by this runtime "
                f"(it reads version {FORMAT_VERSION}); export the bundle again or upgrade"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BundleVerificationError(f"manifest.json has unknown fields: {unknown}")
        try:
            manifest = cls(**data)
        except TypeError as exc:
            raise BundleVerificationError(f"manifest.json is incomplete: {exc}") from exc
        manifest.check_types()
        return manifest

    def check_types(self) -> None:
        """Refuse a manifest whose fields have the wrong types (they would fail much later)."""
        problems = []
        for name in ("model_name", "model_version", "min_onnxruntime", "quantization"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be text")
        for name in ("input_history", "input_k", "output_scores", "output_items"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                problems.append(f"{name} must be a tensor name")
        if not isinstance(self.output_user, str):
            problems.append("output_user must be a tensor name or empty")
        if self.features:
            try:
                FeatureEncoding.from_dict(self.features)
            except (ValueError, TypeError) as exc:
                problems.append(str(exc))
        for name in ("num_items", "embedding_dim", "opset", "created_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be a non-negative integer")
        if (
            isinstance(self.max_history, bool)
            or not isinstance(self.max_history, int)
            or not 1 <= self.max_history <= 10_000
        ):
            problems.append("max_history must be an integer between 1 and 10000")
        if self.expires_ms is not None and (
            isinstance(self.expires_ms, bool) or not isinstance(self.expires_ms, int)
        ):
            problems.append("expires_ms must be integer milliseconds or null")
        if not isinstance(self.files, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.files.items()
        ):
            problems.append("files must map file names to sha256 hex digests")
        if not isinstance(self.training, Mapping):
            problems.append("training must be an object")
        if problems:
            raise BundleVerificationError("manifest.json is malformed: " + "; ".join(problems))


@dataclass(frozen=True)
class SideTables:
    """Tables computed from the training data that the non-model surfaces read.

    - ``cooccurrence``: item -> [(other item, lift, pair count)], best first
    - ``popularity``: scope -> {item: count}; scopes are ``"all"``, ``"hour:07"``,
      ``"category:dairy"``, ``"store:12"``
    - ``repeat_days``: item -> median days between two purchases by the same shopper
    """

    cooccurrence: Mapping[str, list[tuple[str, float, int]]] = field(default_factory=dict)
    popularity: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    repeat_days: Mapping[str, float] = field(default_factory=dict)
    # scope -> every item of ``popularity[scope]`` with its share, most popular first
    # (ranked once per scope: sorting a 12k-item scope took ~2.5 ms on every request).
    _ranked: dict[str, list[tuple[str, float]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def most_popular(self, scope: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items of ``scope`` with their share of its count, best
        first (ties in the table's order); ``[]`` for a scope the bundle does not have.

        Example:
            >>> SideTables(popularity={"all": {"tea": 1, "milk": 3}}).most_popular("all", 1)
            [('milk', 0.75)]
        """
        ranked = self._ranked.get(scope)
        if ranked is None:
            table = self.popularity.get(scope, {})
            total = sum(table.values()) or 1.0
            ordered = sorted(table.items(), key=lambda pair: -pair[1])
            ranked = self._ranked[scope] = [(item, count / total) for item, count in ordered]
        return ranked[:n]

    def to_msgpack(self) -> bytes:
        return msgpack.packb(
            {
                "cooccurrence": {k: [list(t) for t in v] for k, v in self.cooccurrence.items()},
                "popularity": {k: dict(v) for k, v in self.popularity.items()},
                "repeat_days": dict(self.repeat_days),
            }
        )

    @classmethod
    def from_msgpack(cls, raw: bytes) -> SideTables:
        try:
            data = msgpack.unpackb(raw)
            return cls(
                cooccurrence={
                    k: [(str(o), float(lift), int(n)) for o, lift, n in v]
                    for k, v in data.get("cooccurrence", {}).items()
                },
                popularity=data.get("popularity", {}),
                repeat_days=data.get("repeat_days", {}),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BundleVerificationError(f"side_tables.msgpack is malformed: {exc}") from exc


@dataclass(frozen=True)
class BundleFiles:
    """A bundle read from disk and verified, not yet loaded into onnxruntime."""

    path: Path
    manifest: Manifest
    model_bytes: bytes
    items: list[str]
    item_vectors: np.ndarray | None
    side_tables: SideTables
    signed: bool
    features: FeatureEncoding | None = None
    feature_table: np.ndarray | None = None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bundle(
    folder: str | Path,
    manifest: Manifest,
    *,
    model_onnx: bytes,
    items: list[str],
    item_vectors: np.ndarray | None = None,
    side_tables: SideTables | None = None,
    feature_table: np.ndarray | None = None,
    sign_key: bytes | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> Manifest:
    """Write a complete bundle atomically (into a temp folder, then renamed into place).

    ``sign_key`` is a raw 32-byte ed25519 private key; the signature covers manifest.json,
    which holds every other file's sha256. ``feature_table`` goes with ``manifest.features``;
    ``extra_files`` (name -> bytes) are written and checksummed beside the others (e.g.
    ``model.tflite`` for the LiteRT backend). Returns the manifest as written.

    Example: see the module docstring.
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
    try:
        (staging / MODEL).write_bytes(model_onnx)
        (staging / ITEMS).write_text(json.dumps(list(items)))
        if item_vectors is not None:
            np.save(staging / ITEM_VECTORS, np.ascontiguousarray(item_vectors, dtype=np.float16))
        if feature_table is not None:
            if not manifest.features:
                raise ValueError("a feature table needs the manifest's features encoding")
            np.save(staging / FEATURE_TABLE, np.ascontiguousarray(feature_table, dtype=np.float32))
        (staging / SIDE_TABLES).write_bytes((side_tables or SideTables()).to_msgpack())
        for name, data in (extra_files or {}).items():
            if (
                Path(name).name != name
                or (staging / name).exists()
                or name in (MANIFEST, SIGNATURE)
            ):
                raise InvalidInput(f"extra bundle file name {name!r} is not a free plain name")
            (staging / name).write_bytes(data)
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        final = dataclasses.replace(
            manifest,
            files=files,
            num_items=manifest.num_items or len(items),
            created_ms=manifest.created_ms or int(time.time() * 1000),
        )
        raw = final.to_json()
        (staging / MANIFEST).write_bytes(raw)
        if sign_key is not None:
            (staging / SIGNATURE).write_bytes(sign_manifest(raw, sign_key))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def sign_manifest(manifest_bytes: bytes, private_key: bytes) -> bytes:
    """ed25519-sign manifest bytes with a raw 32-byte private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(private_key).sign(manifest_bytes)


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key: bytes) -> None:
    """Raise ``BundleVerificationError`` unless ``signature`` is valid for ``public_key``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError) as exc:
        raise BundleVerificationError(
            "bundle signature does not match the pinned public key; refusing to load it"
        ) from exc


def read_private_key(path: str | Path) -> bytes:
    """An ed25519 private key file: raw 32 bytes, 64 hex characters, or PEM (PKCS#8).

    Signs bundles (``shelfwise export --sign-key``) and upstream documents alike.

    Example:
        >>> import tempfile, pathlib
        >>> key = pathlib.Path(tempfile.mkdtemp()) / "k"
        >>> _ = key.write_text("11" * 32)
        >>> read_private_key(key) == bytes.fromhex("11" * 32)
        True
    """
    raw = Path(path).read_bytes()
    if len(raw) == 32:
        return raw
    text = raw.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:
            pass
    if text.startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as exc:  # malformed, or protected by a password
            raise InvalidInput(f"{path}: not a usable PEM private key: {exc}") from exc
        if isinstance(key, Ed25519PrivateKey):
            return key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
    raise InvalidInput(f"{path}: expected a raw 32-byte, hex or PEM ed25519 private key")


def generate_signing_key() -> tuple[bytes, bytes]:
    """A new ed25519 key pair as raw bytes ``(private, public)``.

    Example:
        >>> private, public = generate_signing_key()
        >>> len(private), len(public)
        (32, 32)
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, public


def read_bundle(
    folder: str | Path,
    *,
    public_key: bytes | None = None,
    now_ms: int | None = None,
) -> BundleFiles:
    """Read and verify a bundle: format version, sha256 of every file, signature, expiry.

    With ``public_key`` the bundle must carry a valid signature by that key.
    Raises ``BundleVerificationError`` saying which check failed (unreadable files included).
    """
    try:
        return _read_bundle(Path(folder), public_key, now_ms)
    except OSError as exc:  # permissions, a file vanishing mid-read, a folder named like a file
        raise BundleVerificationError(f"bundle {folder} could not be read: {exc}") from exc


def _read_bundle(path: Path, public_key: bytes | None, now_ms: int | None) -> BundleFiles:
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleVerificationError(f"{path} is not a bundle: it has no {MANIFEST}")
    raw = manifest_path.read_bytes()
    manifest = Manifest.from_json(raw)
    signature_path = path / SIGNATURE
    if public_key is not None:
        if not signature_path.is_file():
            raise BundleVerificationError(f"{path} is not signed, but a signature is required")
        verify_signature(raw, signature_path.read_bytes(), public_key)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if manifest.expires_ms is not None and manifest.expires_ms < now:
        raise BundleVerificationError(
            f"bundle {manifest.model_name} {manifest.model_version} expired; not installing it"
        )
    for required in (MODEL, ITEMS):
        if required not in manifest.files:
            raise BundleVerificationError(f"manifest lists no checksum for {required}")
    model_bytes = b""
    for name, expected in manifest.files.items():
        file_path = path / name
        if Path(name).name != name or not file_path.is_file():
            raise BundleVerificationError(f"bundle file {name} is missing")
        if name == MODEL:  # hash the very bytes onnxruntime will load, not a second read
            model_bytes = file_path.read_bytes()
            actual = hashlib.sha256(model_bytes).hexdigest()
        else:
            actual = sha256_file(file_path)
        if actual != expected:
            raise BundleVerificationError(
                f"bundle file {name} is corrupt: sha256 {actual[:12]}... != {expected[:12]}..."
            )
    items = _read_items(path / ITEMS)
    if manifest.num_items and manifest.num_items != len(items):
        raise BundleVerificationError(
            f"manifest says {manifest.num_items} items but items.json lists {len(items)}"
        )
    vectors = (
        _read_vectors(path / ITEM_VECTORS, ITEM_VECTORS) if ITEM_VECTORS in manifest.files else None
    )
    if vectors is not None and vectors.shape[0] != len(items) + 1:
        raise BundleVerificationError(
            f"item_vectors.npy has {vectors.shape[0]} rows; expected {len(items) + 1} "
            "(one per item plus the padding row 0)"
        )
    features, table = _read_features(path, manifest, vectors)
    return BundleFiles(
        path=path,
        manifest=manifest,
        model_bytes=model_bytes,
        items=items,
        item_vectors=vectors,
        side_tables=SideTables.from_msgpack((path / SIDE_TABLES).read_bytes())
        if SIDE_TABLES in manifest.files
        else SideTables(),
        signed=signature_path.is_file() and public_key is not None,
        features=features,
        feature_table=table,
    )


def _read_features(
    path: Path, manifest: Manifest, vectors: np.ndarray | None
) -> tuple[FeatureEncoding | None, np.ndarray | None]:
    """The feature encoding and table, checked against each other (both or neither)."""
    listed = FEATURE_TABLE in manifest.files
    if not manifest.features and not listed:
        return None, None
    if not manifest.features or not listed:
        raise BundleVerificationError(
            "a bundle's feature table and its manifest features come together; this one has "
            "only one of them"
        )
    encoding = FeatureEncoding.from_dict(manifest.features)  # checked by from_json already
    table = _read_vectors(path / FEATURE_TABLE, FEATURE_TABLE)
    dim = vectors.shape[1] if vectors is not None else manifest.embedding_dim
    if table.shape[0] != encoding.size or (dim and table.shape[1] != dim):
        raise BundleVerificationError(
            f"{FEATURE_TABLE} is {table.shape[0]} x {table.shape[1]}; the encoding needs "
            f"{encoding.size} rows of {dim or 'the embedding'} width"
        )
    if not np.isfinite(table).all():
        raise BundleVerificationError(f"{FEATURE_TABLE} holds non-finite values")
    return encoding, table


def _read_items(path: Path) -> list[str]:
    try:
        items = json.loads(path.read_bytes())
    except ValueError as exc:
        raise BundleVerificationError(f"items.json is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BundleVerificationError("items.json must be a JSON list of item id strings")
    if len(set(items)) != len(items):
        raise BundleVerificationError("items.json lists an item id twice")
    return items


def _read_vectors(path: Path, name: str) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BundleVerificationError(f"{name} is unreadable: {exc}") from exc
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise BundleVerificationError(f"{name} must be a 2-D array of numbers")
    return vectors.astype(np.float32, copy=False)
