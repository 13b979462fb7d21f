"""The shelfwise error family: every error the SDK raises on purpose is one of these.

Catch ``ShelfwiseError`` to handle them all. The tree::

    ShelfwiseError
    ├── StoreError                    the SQLite store could not do what was asked
    │   ├── StoreClosed               the facade/store was used after close()
    │   └── StoreBusy                 another writer held the file past the busy timeout
    ├── InvalidInput                  a caller passed something malformed (also a ValueError)
    │   ├── InvalidEvent              an event failed validation; nothing was written
    │   ├── InvalidBarcode            not a GTIN (reason: length, characters, check digit)
    │   ├── InvalidCatalog            a catalog row is malformed; the import wrote nothing
    │   ├── InvalidLocation           impossible coordinates or accuracy
    │   ├── InvalidOffer              an offer definition failed validation
    │   ├── InvalidTrainingData       a training data file has a malformed row (path, line)
    │   ├── InvalidTrainConfig        a training setting is out of range (field)
    │   ├── InvalidRun                a folder is not a finished, readable training run (path)
    │   ├── WeakSecret                a PIN or passphrase too easy to guess (reason)
    │   └── EnvelopeError             a summary envelope broke the wire schema
    ├── UnknownItem                   an item id or GTIN is not in the catalog (also a KeyError)
    ├── UnknownShopper                no such shopper or session
    ├── ConsentRequired               the shopper has not consented to this purpose
    ├── AuthenticationFailed          a PIN was wrong or missing (reason: pin_wrong, no_pin)
    │   └── AuthLocked                too many failures: wait ``retry_after_s`` (a lockout)
    ├── BundleError                   a model bundle could not be used
    │   ├── BundleVerificationError   checksum, signature, format version or expiry failed
    │   │   └── UpdateRefused         a signed catalog/offers document was refused (reason)
    │   ├── ModelRuntimeError         onnxruntime failed to load or run the model
    │   └── ExportCheckFailed         an exported graph did not reproduce PyTorch; nothing written
    ├── OfferRejected                 an offer/code cannot be applied (has a ``reason`` code)
    ├── ProfileSealError              a sealed member profile did not open (wrong key, tampered)
    └── SyncError                     talking to upstream (or a notification webhook) failed
        ├── SyncRetryable             network error, 5xx, 408, 429: try again later
        └── SyncRejected              any other 4xx: the payload will never be accepted
            └── SyncUnauthorized      401/403: the device's credentials were refused
    └── CollectorConflict             the collector refused a write that contradicts its records
        ├── KeyConflict               an idempotency key already belongs to another device
        └── VersionConflict           a document version not above the one published

Example:
    >>> import shelfwise
    >>> issubclass(shelfwise.UnknownItem, shelfwise.ShelfwiseError)
    True
"""

from __future__ import annotations


class ShelfwiseError(Exception):
    """Root of every error shelfwise raises on purpose."""


class StoreError(ShelfwiseError):
    """The SQLite store failed; the message says what and the change was rolled back."""


class StoreClosed(StoreError):
    """The store or facade was used after ``close()``."""


class StoreBusy(StoreError):
    """Another writer held the store past the busy timeout; retry the call."""


class InvalidInput(ShelfwiseError, ValueError):
    """A caller passed something malformed; nothing was changed."""


class InvalidEvent(InvalidInput):
    """An event failed validation; it was not recorded."""


class InvalidBarcode(InvalidInput):
    """A scanned code is not a valid GTIN.

    ``reason`` is one of ``"empty"``, ``"characters"``, ``"length"``, ``"check_digit"``.
    """

    def __init__(self, message: str, *, code: str = "", reason: str = "invalid") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class InvalidCatalog(InvalidInput):
    """A catalog row is malformed; the import was rolled back as a whole."""


class InvalidLocation(InvalidInput):
    """Coordinates or accuracy are impossible (latitude outside ±90, negative accuracy...)."""


class InvalidOffer(InvalidInput):
    """An offer definition failed validation."""


class EnvelopeError(InvalidInput):
    """A summary envelope broke the schema (the collector answers 400 and changes nothing)."""


class InvalidTrainingData(InvalidInput):
    """A training data file has a malformed row: ``path``, ``line`` (1-based) and ``reason``.

    Readers in ``shelfwise.training`` raise it unless told to skip and count bad rows.
    """

    def __init__(self, message: str, *, path: str = "", line: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.reason = reason


class InvalidTrainConfig(InvalidInput):
    """A ``TrainConfig`` setting is out of range; ``field`` names it. Nothing was read or written."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class InvalidRun(InvalidInput):
    """``path`` is not a finished training run this shelfwise can read (train, or train again)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class UnknownItem(ShelfwiseError, KeyError):
    """An item id or GTIN is not in the catalog."""

    def __init__(self, message: str, *, item: str = "") -> None:
        super().__init__(message)
        self.item = item

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownShopper(ShelfwiseError, KeyError):
    """No shopper or session with that id (it may have ended and been forgotten)."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConsentRequired(ShelfwiseError):
    """The shopper has not given consent for ``purpose``."""

    def __init__(self, message: str, *, purpose: str = "") -> None:
        super().__init__(message)
        self.purpose = purpose


class WeakSecret(InvalidInput):
    """A PIN or passphrase was refused as too easy to guess; ``reason`` says which rule.

    ``reason`` is one of ``"type"``, ``"length"``, ``"repeated"``, ``"sequence"``,
    ``"pattern"``, ``"common"``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthenticationFailed(ShelfwiseError):
    """A PIN was wrong or missing; ``reason`` is ``"pin_wrong"`` or ``"no_pin"``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthLocked(AuthenticationFailed):
    """Too many failed attempts: nothing was checked; try again in ``retry_after_s`` seconds."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, reason="locked")
        self.retry_after_s = retry_after_s


class BundleError(ShelfwiseError):
    """A model bundle could not be used."""


class BundleVerificationError(BundleError):
    """A bundle failed verification: checksum, signature, format version or expiry."""


class UpdateRefused(BundleVerificationError):
    """A signed catalog or offers update from upstream was refused; nothing was changed.

    ``reason`` is a stable code: ``malformed``, ``signature``, ``checksum``, ``kind``,
    ``expired``, ``stale`` (older than what is applied), ``replayed`` (same version, other
    content), ``invalid`` (signed, but its rows fail validation) or ``too_large``. Unsigned
    fleet tables that are unusable (NaN or negative scores, wrong types) are ``malformed``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModelRuntimeError(BundleError):
    """onnxruntime failed to load or run the bundle's model."""


class ExportCheckFailed(BundleError):
    """The exported graph did not reproduce the PyTorch model; nothing was written."""


class OfferRejected(ShelfwiseError):
    """An offer or code cannot be applied; ``reason`` is a stable machine-readable code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProfileSealError(ShelfwiseError):
    """A sealed member profile did not open: wrong key (PIN, QR), another member's, or tampered."""


class SyncError(ShelfwiseError):
    """Talking to upstream failed."""


class SyncRetryable(SyncError):
    """A transient failure (network, 5xx, 408, 429); ``retry_after`` seconds if the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SyncRejected(SyncError):
    """Upstream refused the payload (4xx other than 408/429); sending it again will not help."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SyncUnauthorized(SyncRejected):
    """Upstream did not accept this device's credentials (401/403), even after re-signing."""


class CollectorConflict(ShelfwiseError):
    """The collector refused a write that contradicts what it already holds."""


class KeyConflict(CollectorConflict):
    """An idempotency key already belongs to another device (hostile or broken client)."""


class VersionConflict(CollectorConflict):
    """A document was published with a version not above the one already published."""
