"""Offers across the fleet, the device's side: shares of fleet-wide limits and the ledger.

Run by ``sw.sync`` after the documents came down (so the offers it asks shares for are the
chain's current ones), and on its own by ``sw.offers.exchange_leases(url, credentials)``:

1. **The ledger up** (``POST /v1/redemptions``): every redemption committed here and every one
   voided since, once each, so the collector can reconcile what the fleet redeemed and report
   any over-redemption with the devices involved. A record names the offer, the order, the
   amount and the time; the member only by their blinded id and a code only by a keyed hash
   (``HMAC-SHA256(chain secret, code)``), never readable. A record leaves ``ledger_reports``'
   queue only when the collector acknowledged it.
2. **Shares** (``POST /v1/leases``): what ``shelfwise.offers.leases.lease_asks`` says to ask
   for, answered with each offer's new share, applied in one transaction.

Offline or refused, nothing is lost: the ledger stays queued, shares stay as they were (a
lapsed share stops redemptions of its offer here, never more).

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     _ = sw.offers.define({"offer_id": "o", "title": "O",
    ...                            "reward": {"type": "amount", "value": 1},
    ...                            "limits": {"scope": "fleet", "budget": 500}})
    ...     report = exchange_offers(sw.store, sw.offers, "http://127.0.0.1:9",
    ...                              shelfwise.Credentials("k1", b"s" * 16))
    >>> report.shares_asked, report.shares_granted, report.error is not None  # offline
    (1, 0, True)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from .._errors import ShelfwiseError, SyncError
from ..clock import now_ms
from ..offers.leases import LeaseAsk, LeaseGrant, apply_grant, lease_asks
from ..store.connection import Store
from .protocol import DEVICE_RE, MAX_INT, Credentials, pack_wire, unpack_wire
from .transport import HttpTransport, SignedClient, transport_for

if TYPE_CHECKING:
    from ..offers import Offers
    from .fleet import Fleet

logger = logging.getLogger(__name__)

LEASES_PATH = "/v1/leases"
LEDGER_PATH = "/v1/redemptions"
CODES_CLAIM_PATH = "/v1/codes/claim"
CODES_RELEASE_PATH = "/v1/codes/release"
CODES_CHECK_PATH = "/v1/codes/check"
MEMBER_USES_PATH = "/v1/member-uses"
MEMBER_USES_RELEASE_PATH = "/v1/member-uses/release"
MAX_ASKS = 1000
MAX_ENTRIES = 1000

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\A[^\s]+\Z")]
_Hash = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")]
_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
_Device = Annotated[str, msgspec.Meta(pattern=DEVICE_RE)]
_Money = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]


class WireAsk(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    offer_id: _Id
    seq: _Count
    used_redemptions: _Count
    used_budget: _Money
    keep: bool
    want_redemptions: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
    want_budget: Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]


class LeaseRequest(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    device: _Device
    asks: Annotated[list[WireAsk], msgspec.Meta(max_length=MAX_ASKS)]


class WireGrant(msgspec.Struct, array_like=True, frozen=True):
    offer_id: _Id
    seq: _Count
    redemptions: _Count | None
    budget: _Money | None
    ttl_ms: Annotated[int, msgspec.Meta(ge=0, le=31 * 86_400_000)]
    status: Literal["granted", "resync", "not_fleet"]


class LeaseAnswer(msgspec.Struct):
    grants: Annotated[list[WireGrant], msgspec.Meta(max_length=MAX_ASKS)]


class LedgerEntry(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    redemption_id: _Id
    offer_id: _Id
    order_id: Annotated[str, msgspec.Meta(max_length=128)] | None
    amount: _Money
    ts_ms: _Count
    voided: bool
    code_hash: _Hash | None
    member: _Hash | None


class LedgerUpload(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    device: _Device
    entries: Annotated[list[LedgerEntry], msgspec.Meta(max_length=MAX_ENTRIES)]


class LedgerAcks(msgspec.Struct):
    stored: _Count


class CodeClaim(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/codes/claim`` and ``/v1/codes/release``: one central code, one claim."""

    v: Literal[1]
    device: _Device
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=32, pattern=r"\A[0-9A-Z]+\Z")]
    claim_id: _Id


class CodeAnswer(msgspec.Struct):
    status: Literal["claimed", "available", "code_used", "code_unknown", "released", "not_held"]
    offer_id: _Id | None = None


class MemberUse(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/member-uses`` (and ``/release``): one use of a per-customer-limited offer by
    a member (blinded), counted centrally; ``use_id`` makes a retry count once."""

    v: Literal[1]
    device: _Device
    blinded_id: _Hash
    offer_id: _Id
    limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    use_id: _Hash


class MemberUseAnswer(msgspec.Struct):
    status: Literal["granted", "limit", "released", "not_held"]
    uses: _Count = 0  # the member's other uses of the offer in the fleet


class CollectorAuthority:
    """The collector as the authority of centrally issued codes and of members' uses of
    per-customer-limited offers, for ``sw.offers``
    (``sw.offers.use_collector(CollectorAuthority(url, credentials, blind=sw.fleet.blinded_id))``).

    ``claim`` answers ``(status, offer id)``; ``claim_use`` ``(granted | limit, the member's
    other uses)``; an unreachable or refusing collector raises ``SyncError`` (the engine turns
    it into ``code_unconfirmed``, or applies the offer's offline policy). Without ``blind``
    (no chain secret) members' uses are not checked centrally.

    Example:
        >>> import shelfwise
        >>> from shelfwise.offers.codes import new_code
        >>> authority = CollectorAuthority("http://127.0.0.1:9", shelfwise.Credentials("k1", b"s" * 16))
        >>> with shelfwise.open(":memory:") as sw:
        ...     sw.offers.use_collector(authority)
        ...     _ = sw.member("L-1")
        ...     sw.offers.redeem(new_code(), shopper_id="L-1", cart_total=5)
        Traceback (most recent call last):
        ...
        shelfwise.OfferRejected: the chain's server cannot be reached to check this code: ...
    """

    def __init__(
        self,
        url: str | HttpTransport,
        credentials: Credentials,
        *,
        timeout_s: float = 5.0,
        blind: Callable[[str], str] | None = None,
    ) -> None:
        self.transport = transport_for(url, timeout_s)
        self.credentials = credentials
        self.blind = blind

    def _use(self, store: Store, path: str, shopper_id: str, offer_id: str, limit: int,
             use_id: str) -> MemberUseAnswer:  # fmt: skip
        if self.blind is None:
            raise SyncError("members' uses are checked centrally only with a chain secret")
        client = SignedClient(store, self.transport, self.credentials)
        message = MemberUse(1, self.credentials.device_id, self.blind(shopper_id), offer_id,
                            limit, use_id)  # fmt: skip
        reply = client.request("POST", path, pack_wire(message)).body
        answer: MemberUseAnswer = unpack_wire(reply, MemberUseAnswer)
        return answer

    def claim_use(
        self, store: Store, shopper_id: str, offer_id: str, limit: int, use_id: str
    ) -> tuple[str, int]:
        """Count one use of a per-customer-limited offer for a member, if under ``limit``."""
        answer = self._use(store, MEMBER_USES_PATH, shopper_id, offer_id, limit, use_id)
        return answer.status, answer.uses

    def release_use(self, store: Store, shopper_id: str, offer_id: str, use_id: str) -> bool:
        """Give a counted use back (its order was voided, or the offer was not applied)."""
        try:
            path = MEMBER_USES_RELEASE_PATH
            return self._use(store, path, shopper_id, offer_id, 1, use_id).status == "released"
        except ShelfwiseError as exc:
            logger.info("kept a member's use counted centrally (release failed: %s)", exc)
            return False

    def _ask(self, store: Store, path: str, code: str, claim_id: str) -> CodeAnswer:
        client = SignedClient(store, self.transport, self.credentials)
        body = pack_wire(CodeClaim(1, self.credentials.device_id, code, claim_id))
        answer: CodeAnswer = unpack_wire(client.request("POST", path, body).body, CodeAnswer)
        return answer

    def claim(self, store: Store, code: str, claim_id: str) -> tuple[str, str | None]:
        """Ask for a code: ``claimed`` (it is this device's now), ``code_used``, ``code_unknown``."""
        answer = self._ask(store, CODES_CLAIM_PATH, code, claim_id)
        return answer.status, answer.offer_id

    def peek(self, store: Store, code: str) -> tuple[str, str | None]:
        """What a claim would answer (``available``, ``code_used``, ``code_unknown``), claiming
        nothing."""
        answer = self._ask(store, CODES_CHECK_PATH, code, "peek")
        return answer.status, answer.offer_id

    def release(self, store: Store, code: str, claim_id: str) -> bool:
        """Give an unused claim back; False when the collector did not (or cannot) take it."""
        try:
            return self._ask(store, CODES_RELEASE_PATH, code, claim_id).status == "released"
        except ShelfwiseError as exc:
            logger.info("kept a claimed code (release failed: %s)", exc)
            return False


@dataclass(frozen=True)
class OffersExchange:
    """What one exchange of offers with the collector did."""

    ledger_sent: int = 0
    shares_asked: int = 0
    shares_granted: int = 0
    requests: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def code_hash(code: str, chain_secret: bytes | None) -> str:
    """The keyed hash a code is reported under (plain SHA-256 without a chain secret).

    Example:
        >>> len(code_hash("ABCDEFGHJKMN2", b"c" * 32))
        64
    """
    if chain_secret is None:
        return hashlib.sha256(code.encode()).hexdigest()
    return hmac.new(chain_secret, b"code:" + code.encode(), hashlib.sha256).hexdigest()


def pending_ledger(store: Store, members: Fleet | None, limit: int) -> list[LedgerEntry]:
    """Redemptions the collector has not heard of (committed) or not as voided (gone here)."""
    db = store.read()
    entries = []
    for row in db.query(
        "SELECT r.*, s.kind FROM redemptions r LEFT JOIN shoppers s USING (shopper_id) "
        "LEFT JOIN ledger_reports l USING (redemption_id) WHERE l.redemption_id IS NULL "
        "ORDER BY r.ts_ms LIMIT ?",
        [limit],
    ):
        member = None
        if members is not None and members.enabled and row["kind"] == "member":
            member = members.blinded_id(row["shopper_id"])
        secret = members.chain_secret if members else None
        code = code_hash(row["code"], secret) if row["code"] else None
        entries.append(
            LedgerEntry(
                row["redemption_id"],
                row["offer_id"],
                row["order_id"],
                round(max(0.0, float(row["amount"])), 2),
                int(row["ts_ms"]),
                False,
                code,
                member,
            )
        )
    for row in db.query(
        "SELECT l.redemption_id FROM ledger_reports l LEFT JOIN redemptions r "
        "USING (redemption_id) WHERE l.state = 'committed' AND r.redemption_id IS NULL LIMIT ?",
        [max(0, limit - len(entries))],
    ):
        entries.append(LedgerEntry(row["redemption_id"], "-", None, 0.0, 0, True, None, None))
    return entries


def _mark_reported(store: Store, entries: Sequence[LedgerEntry]) -> None:
    with store.write() as db:
        for entry in entries:
            db.execute(
                "INSERT INTO ledger_reports (redemption_id, state) VALUES (?, ?) "
                "ON CONFLICT(redemption_id) DO UPDATE SET state = excluded.state",
                [entry.redemption_id, "voided" if entry.voided else "committed"],
            )


def _send_ledger(client: SignedClient, store: Store, members: Fleet | None) -> int:
    sent = 0
    while True:
        entries = pending_ledger(store, members, MAX_ENTRIES)
        if not entries:
            return sent
        body = pack_wire(LedgerUpload(1, client.credentials.device_id, entries))
        unpack_wire(client.request("POST", LEDGER_PATH, body).body, LedgerAcks)
        _mark_reported(store, entries)
        sent += len(entries)


def _ask_shares(
    client: SignedClient, store: Store, asks: Sequence[LeaseAsk], clock: Callable[[], int]
) -> int:
    wire = [WireAsk(**a.__dict__) for a in asks]
    body = pack_wire(LeaseRequest(1, client.credentials.device_id, wire))
    answer = unpack_wire(client.request("POST", LEASES_PATH, body).body, LeaseAnswer)
    asked = {a.offer_id: a.seq for a in asks}
    granted = 0
    stamp = clock()
    with store.write() as db:
        for g in answer.grants:
            if g.offer_id not in asked:
                continue  # an answer to a question not asked: ignored
            grant = LeaseGrant(g.offer_id, g.seq, g.redemptions, g.budget, g.ttl_ms, g.status)
            granted += apply_grant(db, grant, asked[g.offer_id], stamp)
    return granted


def exchange_offers(
    store: Store,
    offers: Offers,
    url: str | HttpTransport,
    credentials: Credentials,
    *,
    members: Fleet | None = None,
    timeout_s: float = 30.0,
    clock: Callable[[], int] = now_ms,
) -> OffersExchange:
    """The ledger up, then shares of fleet-wide limits (see the module docstring); with
    ``members`` (``sw.fleet``, opened with a chain secret) members are reported by blinded id
    and codes by a keyed hash. Never raises because the collector is unreachable or refuses (``error`` says so).

    Example: see the module docstring.
    """
    client = SignedClient(store, transport_for(url, timeout_s), credentials, clock=clock)
    sent = granted = 0
    asks: list[LeaseAsk] = []
    error = None
    try:
        sent = _send_ledger(client, store, members)
        asks = lease_asks(store, offers.all(), clock())
        if asks:
            granted = _ask_shares(client, store, asks, clock)
    except ShelfwiseError as exc:
        error = f"offers: {exc}"
        logger.info("offers exchange stopped: %s", exc)
    logger.info("offers: %d ledger records sent, %d shares granted", sent, granted)
    return OffersExchange(sent, len(asks), granted, client.requests, error)


__all__ = [
    "CODES_CHECK_PATH",
    "CODES_CLAIM_PATH",
    "CODES_RELEASE_PATH",
    "LEASES_PATH",
    "LEDGER_PATH",
    "CodeAnswer",
    "CollectorAuthority",
    "CodeClaim",
    "LeaseAnswer",
    "LeaseRequest",
    "MEMBER_USES_PATH",
    "MEMBER_USES_RELEASE_PATH",
    "MemberUse",
    "MemberUseAnswer",
    "LedgerAcks",
    "LedgerEntry",
    "LedgerUpload",
    "OffersExchange",
    "WireAsk",
    "WireGrant",
    "code_hash",
    "exchange_offers",
    "pending_ledger",
]
