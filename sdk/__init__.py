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

from ._errors import (
    AuthenticationFailed,
    AuthLocked,
    BundleError,
    BundleVerificationError,
    CollectorConflict,
    ConsentRequired,
    EnvelopeError,
    ExportCheckFailed,
    InvalidBarcode,
    InvalidCatalog,
    InvalidEvent,
    InvalidInput,
    InvalidLocation,
    InvalidOffer,
    InvalidRun,
    InvalidTrainConfig,
    InvalidTrainingData,
    KeyConflict,
    ModelRuntimeError,
    OfferRejected,
    ProfileSealError,
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
    VersionConflict,
    WeakSecret,
)
from ._facade import Shelfwise, Shopper, open
from .auth import AuditEntry, Backoff, Throttle, check_pin_strength, hash_secret, verify_secret
from .barcode.decode import decode_image
from .barcode.gtin import ParsedBarcode, expand_upce, normalize_gtin, parse_barcode
from .barcode.layout import InStoreLayout
from .cart import CartLine
from .catalog import Catalog, Item
from .events import EVENT_TYPES, Event
from .geo import Fence, FenceIndex, GeofenceEvent, Geofences, circle, polygon
from .identity import PURPOSES, SEGMENTS, ShopperInfo
from .model.bundle import Manifest, SideTables
from .model.runtime import LoadedModel, ModelHandle
from .notifications import DeliveryReport, Notification, Notifications
from .offers import (
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
from .offers.watches import Watch
from .profile import MemberProfile
from .recommend import SURFACES, Context, ItemFilter, Recommendation
from .recommend.reasons import Reason, best_language
from .reports import DayReport
from .scan import ScanCard
from .sync.outbox import OutboxStatus, ReleaseInfo
from .sync.privacy import PrivacyPolicy
from .sync.upload import Credentials, SyncReport
from .webhooks import WebhookSender

__version__ = "0.1.0"

__all__ = [
    "AuditEntry",
    "AuthLocked",
    "AuthenticationFailed",
    "Backoff",
    "BundleError",
    "BundleVerificationError",
    "CartLine",
    "Catalog",
    "CollectorConflict",
    "ConsentRequired",
    "Context",
    "Credentials",
    "DayReport",
    "Decision",
    "DeliveryReport",
    "EVENT_TYPES",
    "EnvelopeError",
    "Event",
    "ExportCheckFailed",
    "Fence",
    "FenceIndex",
    "GeofenceEvent",
    "Geofences",
    "InStoreLayout",
    "InvalidBarcode",
    "InvalidCatalog",
    "InvalidEvent",
    "InvalidInput",
    "InvalidLocation",
    "InvalidOffer",
    "InvalidRun",
    "InvalidTrainConfig",
    "InvalidTrainingData",
    "Item",
    "ItemFilter",
    "KeyConflict",
    "LoadedModel",
    "Manifest",
    "MemberProfile",
    "ModelHandle",
    "ModelRuntimeError",
    "Notification",
    "Notifications",
    "OFFER_REASONS",
    "Offer",
    "OfferContext",
    "OfferRejected",
    "Offers",
    "OutboxStatus",
    "PURPOSES",
    "ParsedBarcode",
    "PrivacyPolicy",
    "ProfileSealError",
    "RankedOffer",
    "Reason",
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
    "ShopperInfo",
    "SideTables",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "SyncError",
    "SyncRejected",
    "SyncReport",
    "SyncRetryable",
    "SyncUnauthorized",
    "Throttle",
    "UnknownItem",
    "UnknownShopper",
    "UpdateRefused",
    "VersionConflict",
    "Watch",
    "WeakSecret",
    "WebhookSender",
    "__version__",
    "best_language",
    "check_pin_strength",
    "circle",
    "decode_image",
    "expand_upce",
    "hash_secret",
    "normalize_gtin",
    "open",
    "parse_barcode",
    "parse_offer",
    "polygon",
    "verify_secret",
]

# Public names report the package they are imported from (``shelfwise.InvalidBarcode`` in a
# traceback, not ``shelfwise._errors.InvalidBarcode``); private modules stay an implementation detail.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = __name__
del _name, _obj
