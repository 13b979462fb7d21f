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
    UnknownItem,
    UnknownShopper,
)
from ._events import EVENT_TYPES, Event
from ._facade import CartLine, Shelfwise, Shopper, open
from ._identity import PURPOSES, SEGMENTS
from ._recommend import SURFACES, Recommendation

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "BundleVerificationError",
    "CartLine",
    "Catalog",
    "ConsentRequired",
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
    "PURPOSES",
    "Recommendation",
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
    "SyncRetryable",
    "UnknownItem",
    "UnknownShopper",
    "__version__",
    "open",
]
