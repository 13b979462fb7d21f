"""shelfwise: private, offline personalization for retail edge devices.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:", store_id="store-12") as sw:
    ...     _ = sw.catalog.import_rows([
    ...         {"item_id": "milk", "name": "Whole milk", "category": "dairy"},
    ...         {"item_id": "bread", "name": "Rye bread", "category": "bakery"},
    ...     ])
    ...     shopper = sw.start_session()
    ...     _ = shopper.view("milk")
    ...     [r.item.name for r in shopper.recommend("recently-viewed")]
    ['Whole milk']
"""

from ._bundle import Manifest, SideTables
from ._catalog import Catalog, Item
from ._errors import (
    BundleError,
    BundleVerificationError,
    ConsentRequired,
    InvalidBarcode,
    InvalidCatalog,
    InvalidEvent,
    InvalidInput,
    InvalidLocation,
    InvalidOffer,
    InvalidTrainingData,
    ModelRuntimeError,
    OfferRejected,
    ShelfwiseError,
    StoreBusy,
    StoreClosed,
    StoreError,
    SyncError,
    SyncRejected,
    SyncRetryable,
    SyncUnauthorized,
    UnknownItem,
    UnknownShopper,
)
from ._events import EVENT_TYPES, Event
from ._facade import CartLine, Shelfwise, Shopper, open
from ._identity import PURPOSES, SEGMENTS
from ._outbox import OutboxStatus, ReleaseInfo
from ._recommend import SURFACES, Recommendation
from ._summaries import PrivacyPolicy
from ._sync import Credentials, SyncReport

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "BundleVerificationError",
    "CartLine",
    "Catalog",
    "ConsentRequired",
    "Credentials",
    "EVENT_TYPES",
    "Event",
    "InvalidBarcode",
    "InvalidCatalog",
    "InvalidEvent",
    "InvalidInput",
    "InvalidLocation",
    "InvalidOffer",
    "InvalidTrainingData",
    "Item",
    "Manifest",
    "ModelRuntimeError",
    "OfferRejected",
    "OutboxStatus",
    "PURPOSES",
    "PrivacyPolicy",
    "Recommendation",
    "ReleaseInfo",
    "SEGMENTS",
    "SURFACES",
    "Shelfwise",
    "ShelfwiseError",
    "Shopper",
    "SideTables",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "SyncError",
    "SyncRejected",
    "SyncReport",
    "SyncRetryable",
    "SyncUnauthorized",
    "UnknownItem",
    "UnknownShopper",
    "__version__",
    "open",
]
