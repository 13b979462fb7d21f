"""The kiosk's state over the SDK: configuration, cookie sessions, and the views it renders.

Sessions: the browser holds an opaque random token in an HttpOnly cookie; the server maps it
to a shopper id. Only that mapping lives in memory (a restart ends every kiosk session, the
safe way); everything about the shopper lives in the store. A session idle for ``idle_s``
seconds ends server-side (anonymous sessions are forgotten by ``Shopper.end``;
``sw.end_idle_sessions`` sweeps any left behind).

Example:
    >>> import shelfwise
    >>> sw = shelfwise.open(":memory:", store_id="s1")
    >>> kiosk = Kiosk(sw, KioskConfig())
    >>> shopper = sw.start_session()
    >>> kiosk.session_view(shopper)["kind"]
    'anonymous'
    >>> sw.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request

import shelfwise
from shelfwise import ConsentRequired, InvalidBarcode, ShelfwiseError, UnknownItem, UnknownShopper
from shelfwise.clock import now_ms
from shelfwise.sync.leasing import CollectorAuthority

from .till import till_totals
from .web import ApiError, jsonable

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "sw_kiosk"
STAFF_COOKIE = "sw_staff"
CONSENT_LABELS = {
    "personalization": "Use my purchases and scans to personalise suggestions",
    "offers": "Show me offers chosen for me",
    "location": "Use my phone's location for nearby offers (app only)",
    "sync": "Include me in anonymous store statistics sent to head office",
    "sensitive": "Suggest items from sensitive categories (health, hygiene)",
    "profile_sync": "Carry my history to the chain's other kiosks, encrypted with my PIN",
}


STAFF_BACKOFF = shelfwise.Backoff(free=3, base_s=2.0, max_s=900.0)
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MAX_SHOWN_KEPT = 500  # recorded lists a tap can still be credited to (the newest)


LANGUAGE: ContextVar[str] = ContextVar("kiosk_language", default="en")


def rec_row(recommendation: shelfwise.Recommendation) -> dict[str, Any]:
    """A recommendation as the page shows it, its reason in the request's language."""
    row = recommendation.to_dict()
    row["reason"] = recommendation.reason_in(LANGUAGE.get())
    return row


@dataclass(frozen=True)
class KioskConfig:
    """How the kiosk runs (the CLI fills it in).

    ``staff_pin`` is checked (``shelfwise.WeakSecret`` if too easy to guess) and kept only as
    its argon2id hash, ``staff_pin_hash``; without either the staff screen stays locked.
    ``allowed_hosts`` are the names the kiosk answers to (its bind address is added by the
    CLI); ``kiosk_id`` names this kiosk in lockouts and the audit log (default: its device id).
    ``credentials`` are the device's upstream identity (``add-device --key-file``); members'
    profiles travel when the store was opened with a chain secret and ``upstream`` is set.
    """

    staff_pin: InitVar[str] = ""
    idle_s: float = 90.0
    upstream: str | None = None
    sync_every_s: float = 60.0
    store: dict[str, Any] = field(default_factory=dict)
    demo_cards: tuple[dict[str, Any], ...] = ()
    staff_pin_hash: str = ""
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    kiosk_id: str = ""
    credentials: shelfwise.Credentials | None = None  # provisioned; else made up once
    fleet_timeout_s: float = 5.0  # per request to the collector while a member waits

    def __post_init__(self, staff_pin: str) -> None:
        if staff_pin:
            shelfwise.check_pin_strength(staff_pin)
            object.__setattr__(self, "staff_pin_hash", shelfwise.hash_secret(staff_pin))


@dataclass
class _Session:
    shopper_id: str
    last_ms: int
    verified: bool = False  # the member gave their PIN during this session
    # The member's key (from card + PIN), in memory for this visit only: it seals their
    # profile for the chain's other kiosks. Never stored, never sent anywhere.
    key: bytes | None = field(default=None, repr=False)


class Sessions:
    """Opaque cookie token -> shopper id, with the time of the last request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, _Session] = {}

    def open(self, shopper_id: str, *, verified: bool = False, key: bytes | None = None) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._by_token[token] = _Session(shopper_id, now_ms(), verified, key)
        return token

    def touch(self, token: str | None) -> str | None:
        with self._lock:
            session = self._by_token.get(token or "")
            if session is None:
                return None
            session.last_ms = now_ms()
            return session.shopper_id

    def verify(self, token: str | None) -> None:
        """The session's member gave their second factor (until the session ends)."""
        with self._lock:
            session = self._by_token.get(token or "")
            if session is not None:
                session.verified = True

    def peek(self, token: str | None) -> _Session | None:
        with self._lock:
            return self._by_token.get(token or "")

    def close(self, token: str | None) -> _Session | None:
        with self._lock:
            return self._by_token.pop(token or "", None)

    def idle(self, idle_s: float) -> list[_Session]:
        cutoff = now_ms() - int(idle_s * 1000)
        with self._lock:
            gone = [t for t, s in self._by_token.items() if s.last_ms < cutoff]
            return [self._by_token.pop(token) for token in gone]

    def close_shopper(self, shopper_id: str) -> list[_Session]:
        with self._lock:
            gone = [t for t, s in self._by_token.items() if s.shopper_id == shopper_id]
            return [self._by_token.pop(token) for token in gone]


class Kiosk:
    """The kiosk's view of the SDK: one open ``Shelfwise`` and the kiosk sessions."""

    def __init__(self, sw: shelfwise.Shelfwise, config: KioskConfig) -> None:
        self.sw = sw
        self.config = config
        self.sessions = Sessions()
        # Staff token -> last use (ms): an unattended unlocked staff screen locks itself.
        self.staff_tokens: dict[str, int] = {}
        self.sandbox = False
        self.started_ms = now_ms()
        self.last_sync: dict[str, Any] = {"state": "never", "upstream": config.upstream}
        self.credentials = config.credentials or device_credentials(sw)
        self.kiosk_id = config.kiosk_id or self.credentials.device_id
        if config.upstream:  # central codes and members' per-customer uses: the collector's
            blind = sw.fleet.blinded_id if sw.fleet.enabled else None
            authority = CollectorAuthority(
                str(config.upstream), self.credentials, timeout_s=5, blind=blind
            )
            sw.offers.use_collector(authority)
        self._exchanging = threading.Lock()
        # Signs the CSRF cookies of this process (a restart asks the page for a new one).
        self.csrf_key = secrets.token_bytes(32)
        # Counted in the store: a restart does not reset a lockout.
        self.staff_throttle = sw.throttle("staff_pin", STAFF_BACKOFF)
        # Lists a recommender experiment served, by shown id: a tap on one of their items
        # is its click (Shopper.clicked needs the Recommendation itself). The newest only.
        self.shown: OrderedDict[str, tuple[str, dict[str, shelfwise.Recommendation]]] = (
            OrderedDict()
        )
        self._shown_lock = threading.Lock()

    # -- sessions -------------------------------------------------------------------------
    def shopper(self, request: Request) -> shelfwise.Shopper:
        """The shopper of the request's session cookie, or ``ApiError`` 401."""
        # Reasons are shown in the browser's language (English and Italian ship).
        LANGUAGE.set(shelfwise.best_language(request.headers.get("accept-language")))
        shopper_id = self.sessions.touch(request.cookies.get(SESSION_COOKIE))
        if shopper_id is None:
            raise ApiError(401, "NoSession", "no shopper session: start one", "session_ended")
        try:
            return self.sw.shopper(shopper_id)
        except UnknownShopper as exc:
            self.sessions.close_shopper(shopper_id)
            raise ApiError(401, "NoSession", "the session ended", "session_ended") from exc

    def guest(self, token: str | None) -> shelfwise.Shopper | None:
        """The anonymous shopper of the cookie's session (None: none, or a member's)."""
        session = self.sessions.peek(token)
        if session is None:
            return None
        try:
            shopper = self.sw.shopper(session.shopper_id)
        except UnknownShopper:
            return None
        return None if shopper.is_member else shopper

    def end_session(self, token: str | None) -> bool:
        """End the cookie's session, if any (see ``leave``); True if a profile was sealed."""
        session = self.sessions.close(token)
        return self.leave(session.shopper_id, session.key) if session else False

    def leave(self, shopper_id: str, key: bytes | None = None) -> bool:
        """The visit is over: a guest is forgotten, a member's cart is emptied and (with their
        key and consent) their profile sealed for the chain's other kiosks; True if sealed.

        The next person who scans the same card starts from nothing of this visit.
        """
        with self._shown_lock:  # the lists this visit was shown go with it
            for shown_id in [k for k, (owner, _) in self.shown.items() if owner == shopper_id]:
                del self.shown[shown_id]
        with contextlib.suppress(UnknownShopper):
            shopper = self.sw.shopper(shopper_id)
            if shopper.is_member:
                shopper.clear_cart()
                return self.seal(shopper, key)
            shopper.end()
        return False

    def end_visits_of(self, shopper_id: str) -> None:
        """The same card signs in again: its visits on other screens end (sealed first)."""
        for session in self.sessions.close_shopper(shopper_id):
            self.leave(session.shopper_id, session.key)

    # -- members across the chain's kiosks (sw.fleet) -----------------------------------------
    @property
    def fleet_on(self) -> bool:
        """Whether members' profiles and erasures travel (a chain secret and a collector)."""
        return bool(self.sw.fleet.enabled and self.config.upstream)

    def session_key(self, request: Request) -> bytes | None:
        """The member key held for the request's session (None: card only, or no fleet)."""
        session = self.sessions.peek(request.cookies.get(SESSION_COOKIE))
        return session.key if session else None

    def seal(self, shopper: shelfwise.Shopper, key: bytes | None) -> bool:
        """Seal the member's profile with their key for the collector, if they consented."""
        if key is None or not self.fleet_on or not shopper.has_consent("profile_sync"):
            return False
        shopper.seal_profile(key)
        return True

    def exchange(self) -> dict[str, Any]:
        """Erasures and sealed profiles to and from the collector now (members only; quick)."""
        if not self.fleet_on:
            return {"sent": False, "error": "no collector configured"}
        with self._exchanging:
            report = self.sw.fleet.exchange(
                str(self.config.upstream), self.credentials, timeout_s=self.config.fleet_timeout_s
            )
        return {"sent": report.error is None, "error": report.error, **report.to_dict()}

    def second_factor(self, request: Request) -> shelfwise.Shopper:
        """The session's shopper, if a member has given their PIN in this session.

        A guest's session is theirs alone (the cookie is the credential); a member signed in
        with the card alone gets ``ApiError`` 403 ``pin_required``.
        """
        shopper = self.shopper(request)
        session = self.sessions.peek(request.cookies.get(SESSION_COOKIE))
        if shopper.is_member and not (session and session.verified):
            raise ApiError(
                403,
                "PinRequired",
                "enter your card's PIN to see or change what the kiosk holds about you",
                "pin_required",
            )
        return shopper

    def session_view(
        self, shopper: shelfwise.Shopper | None, *, verified: bool = False
    ) -> dict[str, Any] | None:
        """The session as the page shows it (None when there is none)."""
        if shopper is None:
            return None
        info = shopper.info()
        consents = shopper.consents()
        return {
            "kind": info.kind,
            "member": info.shopper_id if info.is_member else None,
            "segment": shopper.segment() if info.is_member else "new",
            "consents": consents,
            "cart_count": sum(line.quantity for line in shopper.cart()),
            "verified": verified or not info.is_member,
            "has_pin": shopper.has_pin() if info.is_member else False,
        }

    def end_idle(self) -> int:
        """End sessions idle past the timeout (kiosk cookies and stray store sessions)."""
        ended = 0
        for session in self.sessions.idle(self.config.idle_s):
            self.leave(session.shopper_id, session.key)
            ended += 1
        return ended + self.sw.end_idle_sessions(self.config.idle_s)

    # -- staff ----------------------------------------------------------------------------
    def audit(self, token: str | None, action: str, target: str = "", detail: str = "") -> None:
        """Record a staff action: which unlock of which kiosk did what (never the PIN)."""
        self.sw.record_audit(
            actor=staff_tag(token),
            device=self.kiosk_id,
            action=action,
            target=target,
            detail=detail,
        )

    def staff_ok(self, token: str) -> bool:
        """Whether ``token`` unlocks the staff screen (and is not idle); touches it if so."""
        now = now_ms()
        cutoff = now - int(self.config.idle_s * 1000)
        for known, last in list(self.staff_tokens.items()):
            if last < cutoff:
                del self.staff_tokens[known]  # idle: locked again, the PIN is asked anew
        match = next((t for t in self.staff_tokens if hmac.compare_digest(token, t)), None)
        if match is None:
            return False
        self.staff_tokens[match] = now
        return True

    # -- product views --------------------------------------------------------------------
    def recs(self, shopper: shelfwise.Shopper, surface: str, k: int = 6, **kw: Any) -> list[Any]:
        """One surface's recommendations as JSON-ready rows ([] for an unknown item)."""
        # Recorded as shown only under an experiment: that is where impressions are counted.
        record = self.sw.recommend_experiments.running_on(surface) is not None
        try:
            results = shopper.recommend(surface, limit=k, record=record, **kw)
        except UnknownItem:
            return []
        if record and results:
            with self._shown_lock:
                self.shown[results[0].shown_id] = (
                    shopper.shopper_id,
                    {r.item.item_id: r for r in results},
                )
                while len(self.shown) > MAX_SHOWN_KEPT:
                    self.shown.popitem(last=False)
        return [rec_row(r) for r in results]

    def clicked(self, shopper: shelfwise.Shopper, shown_id: str, item_id: str) -> bool:
        """Record a tap on an item of a list this shopper was shown (False: not such a list)."""
        with self._shown_lock:
            owner, items = self.shown.get(shown_id, ("", {}))
        if owner != shopper.shopper_id or item_id not in items:
            return False
        shopper.clicked(items[item_id])
        return True

    def deals(self, shopper: shelfwise.Shopper) -> list[Any]:
        """Offers the SDK finds eligible for this shopper on the kiosk (shown = recorded)."""
        try:
            return [jsonable(o) for o in shopper.offers(channel="kiosk")]
        except ConsentRequired:
            return []

    def scan_card(self, shopper: shelfwise.Shopper, code: str) -> dict[str, Any]:
        """The product card for a scanned code: the item, deals on it, goes-with, alternatives.

        ``Shopper.scan`` records the scan (or the miss, with its reason) and builds the card.
        """
        scanned = shopper.scan(code, channel="kiosk")
        card: dict[str, Any] = jsonable(scanned)
        card["goes_with"] = [rec_row(r) for r in scanned.goes_with]
        card["alternatives"] = [rec_row(r) for r in scanned.alternatives]
        return card

    def cart_view(self, shopper: shelfwise.Shopper) -> dict[str, Any]:
        """The cart with names and prices, add-ins and the offers it is eligible for."""
        lines = shopper.cart()
        items = self.sw.catalog.get_many([line.item_id for line in lines])
        out = []
        total = 0.0
        for line in lines:
            item = items.get(line.item_id)
            price = (item.price or 0.0) if item else 0.0
            total += price * line.quantity
            out.append(
                {
                    "item_id": line.item_id,
                    "name": item.name if item else line.item_id,
                    "quantity": line.quantity,
                    "price": price,
                    "line_total": round(price * line.quantity, 2),
                }
            )
        return {
            "lines": out,
            "total": round(total, 2),
            "add_ins": self.recs(shopper, "checkout", k=4) if out else [],
            "offers": self.deals(shopper) if out else [],
        }

    # -- staff views ----------------------------------------------------------------------
    def staff_view(self) -> dict[str, Any]:
        """What the staff screen shows: switches, sync, model, today's scans and offer funnel,
        points issued and burned and order discounts, this kiosk's shares of fleet-wide offers."""
        sw = self.sw
        zone = store_zone(self.config.store)
        report = sw.day_report(timezone=zone.key)
        sync_status = sw.sync_status()
        return {
            "model_version": sw.model_version,
            "model": model_view(sw),
            "offers": [jsonable(o) for o in sw.offers.all()],
            "offers_available": True,
            "sandbox": self.sandbox,
            "sync": jsonable(sync_status),
            "last_sync": self.last_sync,
            "timezone": report.timezone,
            "today": report.day.isoformat(),
            "scans_by_hour": list(report.scans_by_hour),
            "funnel": [{"step": step, "count": n} for step, n in report.funnel],
            "rejections": [{"reason": r, "count": n} for r, n in report.rejections],
            "till": till_totals(sw, zone.key),
            "shares": [share.to_dict() for share in sw.offers.leases()],
            "catalog_items": sw.catalog.count(),
            "kiosk_id": self.kiosk_id,
            "audit": [e.to_dict() for e in sw.audit_log(limit=20, device=self.kiosk_id)],
            "fleet": {"on": self.fleet_on, **sw.fleet.status().to_dict()},
            # Per arm: lists shown, taps, CTR, purchases of shown items, lift.
            "recommend_experiments": [
                sw.recommend_experiment_report(e.experiment_id).to_dict()
                for e in sw.recommend_experiments.all()
            ],
        }

    # -- sync -----------------------------------------------------------------------------
    def sync_once(self) -> None:
        """One sync round trip to the upstream, if configured; failures are recorded."""
        upstream = self.config.upstream
        stamp = now_ms()
        if not upstream:
            self.last_sync = {"state": "off", "upstream": None, "at_ms": stamp}
            return
        try:
            with self._exchanging:  # one exchange with the collector at a time
                report = self.sw.sync(upstream, self.credentials, deadline_s=5)
            error = getattr(report, "error", None)
            self.last_sync = {
                "state": "failed" if error else "ok",
                "upstream": upstream,
                "at_ms": stamp,
                "message": str(error) if error else "",
                "report": jsonable(report),
            }
        except ShelfwiseError as exc:  # offline is normal: the outbox keeps the data
            self.last_sync = {
                "state": "failed",
                "upstream": upstream,
                "at_ms": stamp,
                "message": str(exc),
            }
        except Exception as exc:  # the kiosk must keep serving whatever the network does
            logger.warning("sync round failed: %s", type(exc).__name__)
            self.last_sync = {
                "state": "failed",
                "upstream": upstream,
                "at_ms": stamp,
                "message": str(exc),
            }


def staff_tag(token: str | None) -> str:
    """Who did it: one staff unlock, named by a digest of its token ("staff" before one)."""
    if not token:
        return "staff"
    return "staff:" + hashlib.sha256(token.encode()).hexdigest()[:6]


def kiosk_of(request: Request) -> Kiosk:
    """The ``Kiosk`` the app serving ``request`` was built around."""
    kiosk: Kiosk = request.app.state.kiosk
    return kiosk


def decode_photo(data: bytes) -> str:
    """The first retail barcode the SDK decodes in a photo (``InvalidBarcode`` if none)."""
    codes = shelfwise.decode_image(data)
    if not codes:
        raise InvalidBarcode(
            "no barcode found in the photo: hold it flat and closer", reason="no_barcode"
        )
    return str(codes[0])


def store_zone(store: dict[str, Any]) -> ZoneInfo:
    """The store's time zone from store.json; UTC when it names none or an unknown one.

    Example:
        >>> store_zone({"timezone": "Europe/Rome"}).key
        'Europe/Rome'
    """
    try:
        return ZoneInfo(str(store.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning(
            "unknown store time zone %r: the staff charts use UTC", store.get("timezone")
        )
        return ZoneInfo("UTC")


def model_view(sw: shelfwise.Shelfwise) -> dict[str, Any] | None:
    """The served bundle as the staff screen shows it (None: popularity only, no model)."""
    loaded = sw.model.current
    if loaded is None:
        return None
    manifest = loaded.manifest
    return {
        "name": manifest.model_name,
        "version": manifest.model_version,
        "quantization": manifest.quantization,
        "items": manifest.num_items,
        "created_ms": manifest.created_ms,
    }


def device_credentials(sw: shelfwise.Shelfwise) -> shelfwise.Credentials:
    """This kiosk's upstream identity: a device id and secret kept in the store's meta table.

    A real fleet provisions these (``Credentials.from_file``); the demo makes its own once.
    """
    device = sw.store.get_meta("kiosk.device_id")
    secret = sw.store.get_meta("kiosk.device_secret")
    if not device or not secret:
        device, secret = f"kiosk-{secrets.token_hex(4)}", secrets.token_hex(32)
        sw.store.set_meta("kiosk.device_id", device)
        sw.store.set_meta("kiosk.device_secret", secret)
    return shelfwise.Credentials(device, bytes.fromhex(secret))
