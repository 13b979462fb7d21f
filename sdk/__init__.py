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

from ._barcode import ParsedBarcode, decode_image, expand_upce, normalize_gtin, parse_barcode
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
    UpdateRefused,
)
from ._events import EVENT_TYPES, Event
from ._facade import CartLine, Shelfwise, Shopper, open
from ._geo import Fence, FenceIndex, GeofenceEvent, Geofences, circle, polygon
from ._identity import PURPOSES, SEGMENTS
from ._offers import (
    OFFER_REASONS,
    Decision,
    Offer,
    OfferContext,
    Offers,
    RankedOffer,
    Redemption,
    Reservation,
    parse_offer,
)
from ._outbox import OutboxStatus, ReleaseInfo
from ._recommend import SURFACES, Recommendation
from ._scan import ScanCard
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
    "Decision",
    "EVENT_TYPES",
    "Event",
    "Fence",
    "FenceIndex",
    "GeofenceEvent",
    "Geofences",
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
    "OFFER_REASONS",
    "Offer",
    "OfferContext",
    "OfferRejected",
    "Offers",
    "OutboxStatus",
    "PURPOSES",
    "ParsedBarcode",
    "PrivacyPolicy",
    "RankedOffer",
    "Recommendation",
    "Redemption",
    "ReleaseInfo",
    "Reservation",
    "SEGMENTS",
    "SURFACES",
    "ScanCard",
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
    "UpdateRefused",
    "__version__",
    "circle",
    "decode_image",
    "expand_upce",
    "normalize_gtin",
    "open",
    "parse_barcode",
    "parse_offer",
    "polygon",
]
