"""The collector's HTTP API (Starlette, served by uvicorn).

Endpoints (bodies are msgpack with string keys, formats in ``shelfwise.sync.protocol``)::

    POST /v1/summaries        {"v": 1, "device": id, "summaries": [envelope bytes, ...]}
                              -> {"acked": [[key, rev], ...]}
    GET  /v1/fleet/trending   -> {"scope": "region:<r>", "generated_ms": ms, "items": [[id, score]]}
    GET  /v1/bundle           -> {"name": ..., "files": {name: bytes}}   (404 when none)
    GET  /v1/catalog          -> the latest signed catalog document (404 when none)
    GET  /v1/offers           -> the latest signed offers document (404 when none)
    GET  /v1/health           -> {"ok": true}
    POST /v1/profiles         ProfileUpload (sealed copies)        -> ProfileAnswer
    GET  /v1/profiles/<id>    a member's copies                    -> MemberCopies
    POST /v1/tombstones       TombstoneUpload (erasures)           -> TombstoneAcks
    GET  /v1/tombstones?since=<seq>&limit=<n>  the erasure feed    -> TombstonePage
    GET  /v1/fleet/erasures   erasures each device has yet to pull -> ErasureBacklog
    POST /v1/leases           LeaseRequest (shares of fleet-wide limits) -> LeaseAnswer
    POST /v1/redemptions      LedgerUpload (the device's redemptions)    -> LedgerAcks
    POST /v1/codes/claim      CodeClaim (a central single-use code)      -> CodeAnswer
    POST /v1/codes/release    CodeClaim (a claim not used)               -> CodeAnswer
    POST /v1/codes/check      CodeClaim (what a claim would answer)      -> CodeAnswer
    POST /v1/member-uses      MemberUse (a per-customer limit, central)  -> MemberUseAnswer
    POST /v1/member-uses/release  MemberUse (a use given back)           -> MemberUseAnswer

Every /v1 call but health is HMAC-signed by the device with its own secret
(``shelfwise.sync.protocol.sign_request``). A request is checked whole before anything is
written: a body over the size limit is 413, a bad signature or clock 401 (with the
collector's time, so the device can re-sign), a device over its rate 429 (with
Retry-After), anything off-schema 400, a key owned by another device 409, and a summary
breaking a rule of ``shelfwise.upstream._rules`` (a store the device is not registered
for, a negative or implausible count, a bucket outside the accepted window) 422 with its
``reason``: that summary is quarantined, never counted. None of those change the totals;
every refusal of a known device is counted (``Storage.refusals``).

Members (``shelfwise.upstream._members``): sealed copies and tombstones are files under
blinded ids the collector cannot read; a copy older than its member's erasure is answered
``erased`` (never filed), a copy past ``MAX_COPIES`` for its member ``too_many_copies``. The
signature covers the query string too (the feed's ``since``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shelfwise import EnvelopeError, InvalidInput, KeyConflict
from shelfwise.clock import DAY_MS, now_ms
from shelfwise.sync.leasing import (
    CODES_CHECK_PATH,
    CODES_CLAIM_PATH,
    CODES_RELEASE_PATH,
    LEASES_PATH,
    LEDGER_PATH,
    MEMBER_USES_PATH,
    MEMBER_USES_RELEASE_PATH,
    CodeAnswer,
    CodeClaim,
    LeaseAnswer,
    LeaseRequest,
    LedgerAcks,
    LedgerUpload,
    MemberUse,
    MemberUseAnswer,
)
from shelfwise.sync.protocol import (
    BLINDED_RE,
    ERASURES_PATH,
    HEADER_SERVER_TIME,
    MAX_TOMBSTONES,
    PROFILES_PATH,
    TOMBSTONES_PATH,
    Envelope,
    ProfileAnswer,
    ProfileUpload,
    TombstoneAcks,
    TombstoneUpload,
    check_signature,
    pack_acks,
    pack_bundle_reply,
    pack_fleet,
    pack_wire,
    parse_auth_headers,
    unpack_envelope,
    unpack_upload,
    unpack_wire,
)

from ._rules import DEFAULT_LIMITS, CellLimits, RateLimiter, check_envelope, retry_after
from ._storage import Device, Storage

logger = logging.getLogger(__name__)

MAX_BODY = 4 << 20
MAX_SUMMARIES = 100
MAX_SKEW_MS = 5 * 60_000
TRENDING_DAYS = 7


RATE_PER_S = 5.0
BURST = 120


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str = "",
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.body = body or {}


def _msgpack(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgpack.packb(data, use_bin_type=True),
        status_code=status,
        media_type="application/msgpack",
        headers=headers,
    )


class Collector:
    """The request handlers over one storage backend (``create_app`` routes to them)."""

    def __init__(
        self,
        storage: Storage,
        *,
        bundles_dir: str | Path | None = None,
        max_body: int = MAX_BODY,
        clock: Callable[[], int] = now_ms,
        limits: CellLimits = DEFAULT_LIMITS,
        rate_per_s: float = RATE_PER_S,
        burst: int = BURST,
    ) -> None:
        self.storage = storage
        self.bundles_dir = bundles_dir
        self.max_body = max_body
        self.clock = clock
        self.limits = limits
        self.limiter = RateLimiter(rate_per_s, burst)

    # -- checks every signed request passes ---------------------------------------------
    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and not re.fullmatch(r"[0-9]{1,18}", declared):
            raise _Refused(400, "malformed Content-Length")
        if declared is not None and int(declared) > self.max_body:
            raise _Refused(413, f"body over {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, f"body over {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def authenticate(self, request: Request, body: bytes) -> Device:
        try:
            auth = parse_auth_headers(request.headers)
        except EnvelopeError as exc:
            raise _Refused(401, str(exc)) from exc
        device = await run_in_threadpool(self.storage.device, auth.device_id)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if device is None or not check_signature(
            device.secret, request.method, target, body, auth.ts_ms, auth.signature
        ):
            raise _Refused(401, "unknown device or bad signature")
        if abs(auth.ts_ms - self.clock()) > MAX_SKEW_MS:
            raise _Refused(401, "request time is too far from the collector's clock")
        return device

    async def signed(self, request: Request) -> tuple[Device, bytes]:
        """The authenticated device and the body of a signed request, within its rate."""
        body = await self.read_body(request)
        device = await self.authenticate(request, body)
        wait = self.limiter.wait_s(device.device_id)
        if wait > 0:
            raise _Refused(
                429, "too many requests", reason="rate", headers={"Retry-After": retry_after(wait)}
            )
        return device, body

    def refused(self, exc: _Refused) -> Response:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers[HEADER_SERVER_TIME] = str(self.clock())
        return _msgpack({"error": str(exc), **exc.body}, exc.status, headers)

    def parse(self, body: bytes, device: Device) -> list[tuple[Envelope, bytes]]:
        """The envelopes of an upload body, all valid, or ``_Refused`` saying why not."""
        try:
            upload = unpack_upload(body, max_len=self.max_body)
        except EnvelopeError as exc:
            raise _Refused(400, str(exc)) from exc
        if upload.device != device.device_id:
            raise _Refused(400, "unsupported protocol or a device other than the signer")
        if not upload.summaries:
            raise _Refused(400, "summaries must be a non-empty list")
        if len(upload.summaries) > MAX_SUMMARIES:
            raise _Refused(413, f"at most {MAX_SUMMARIES} summaries per request")
        envelopes = []
        for raw in upload.summaries:
            try:
                envelope = unpack_envelope(raw)
            except EnvelopeError as exc:
                raise _Refused(400, f"malformed summary: {exc}") from exc
            if envelope.device != device.device_id:
                raise _Refused(400, "a summary names a device other than the signer")
            envelopes.append((envelope, raw))
        if len({e.key for e, _ in envelopes}) != len(envelopes):
            raise _Refused(400, "an idempotency key appears twice in one request")
        return envelopes

    # -- the endpoints -------------------------------------------------------------------
    async def check(self, device: Device, envelopes: list[tuple[Envelope, bytes]]) -> None:
        """Refuse (422) the request if a summary breaks a rule; quarantine each that does."""
        now = self.clock()
        broken = [
            (envelope, raw, refusal)
            for envelope, raw in envelopes
            if (
                refusal := check_envelope(
                    envelope, stores=device.stores, now=now, limits=self.limits
                )
            )
        ]
        for envelope, raw, refusal in broken:
            await run_in_threadpool(
                self.storage.quarantine,
                device.device_id,
                envelope,
                raw,
                refusal.reason,
                refusal.detail,
            )
        if broken:
            envelope, _, refusal = broken[0]
            raise _Refused(
                422,
                f"summary {envelope.key} refused ({refusal.reason}): {refusal.detail}",
                reason=refusal.reason,
                body={"reason": refusal.reason, "key": envelope.key, "rev": envelope.rev},
            )

    async def summaries(self, request: Request) -> Response:
        device: Device | None = None
        try:
            device, body = await self.signed(request)
            envelopes = self.parse(body, device)
            await self.check(device, envelopes)
            try:
                acks = await run_in_threadpool(
                    self.storage.apply, device.device_id, [e for e, _ in envelopes]
                )
            except KeyConflict as exc:
                raise _Refused(409, str(exc), reason="key_conflict") from exc
        except _Refused as exc:
            logger.info("refused a summary upload: %s %s", exc.status, exc)
            if device is not None and exc.status in (400, 409, 413):
                # 422s are counted per quarantined summary (once, however often re-sent).
                reason = exc.reason or ("too_large" if exc.status == 413 else "malformed")
                await run_in_threadpool(self.storage.count_refusal, device.device_id, reason)
            return self.refused(exc)
        return Response(pack_acks(acks), media_type="application/msgpack")

    async def fleet_trending(self, request: Request) -> Response:
        try:
            device, _ = await self.signed(request)
        except _Refused as exc:
            return self.refused(exc)
        since = self.clock() - TRENDING_DAYS * DAY_MS
        items = await run_in_threadpool(self.storage.trending, device.region, since, 100)
        body = pack_fleet(f"region:{device.region}", self.clock(), items)
        return Response(body, media_type="application/msgpack")

    async def bundle(self, request: Request) -> Response:
        try:
            await self.signed(request)
        except _Refused as exc:
            return self.refused(exc)
        folder = _current_bundle(self.bundles_dir)
        if folder is None:
            return _msgpack({"error": "no bundle published"}, 404)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        return Response(pack_bundle_reply(folder.name, files), media_type="application/msgpack")

    async def document(self, request: Request, kind: str) -> Response:
        try:
            await self.signed(request)
        except _Refused as exc:
            return self.refused(exc)
        raw = await run_in_threadpool(self.storage.document, kind)
        if raw is None:
            return _msgpack({"error": f"no {kind} document published"}, 404)
        # Served exactly as the operator signed it: the device verifies, not us.
        return Response(raw, media_type="application/msgpack")

    async def catalog(self, request: Request) -> Response:
        return await self.document(request, "catalog")

    async def offers(self, request: Request) -> Response:
        return await self.document(request, "offers")

    # -- members across the fleet (sealed copies and tombstones) ------------------------------
    async def _members_call(self, request: Request, handle: Callable[..., Any]) -> Response:
        """Authenticate, run ``handle(device, body)`` in a thread, answer msgpack; refusals of
        a known device are counted like the summaries'."""
        device = None
        try:
            device, body = await self.signed(request)
            reply = await run_in_threadpool(handle, device, body)
        except _Refused as exc:
            if device is not None and exc.status in (400, 413):
                reason = "too_large" if exc.status == 413 else "malformed"
                await run_in_threadpool(self.storage.count_refusal, device.device_id, reason)
            return self.refused(exc)
        return Response(pack_wire(reply), media_type="application/msgpack")

    def _wire(self, body: bytes, schema: type[Any], device: Device) -> Any:
        try:
            message = unpack_wire(body, schema, max_len=self.max_body)
        except EnvelopeError as exc:
            raise _Refused(400, str(exc)) from exc
        if message.device != device.device_id:
            raise _Refused(400, "the body names a device other than the signer")
        return message

    async def profiles(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> ProfileAnswer:
            upload: ProfileUpload = self._wire(body, ProfileUpload, device)
            if len({c.copy_id for c in upload.copies}) != len(upload.copies):
                raise _Refused(400, "a copy id appears twice in one request")
            if len({c.blinded_id for c in upload.copies}) != len(upload.copies):
                raise _Refused(400, "one request carries at most one copy per member")
            outcomes = self.storage.store_copies(device.device_id, upload.copies, now=self.clock())
            for outcome in outcomes:
                if outcome.outcome not in ("stored", "erased"):
                    self.storage.count_refusal(device.device_id, f"profile_{outcome.outcome}")
            return ProfileAnswer(outcomes)

        return await self._members_call(request, handle)

    async def member_copies(self, request: Request) -> Response:
        blinded = str(request.path_params.get("blinded_id", ""))

        def handle(device: Device, body: bytes) -> Any:
            if body or not re.match(BLINDED_RE, blinded):
                raise _Refused(400, "GET /v1/profiles/<blinded id: 64 hex digits>")
            return self.storage.member_copies(blinded)

        return await self._members_call(request, handle)

    async def tombstones(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> TombstoneAcks:
            upload: TombstoneUpload = self._wire(body, TombstoneUpload, device)
            try:
                acked = self.storage.add_tombstones(
                    device.device_id, upload.tombstones, now=self.clock()
                )
            except InvalidInput as exc:
                raise _Refused(400, str(exc)) from exc
            return TombstoneAcks(acked)

        return await self._members_call(request, handle)

    async def tombstone_feed(self, request: Request) -> Response:
        query = request.query_params

        def handle(device: Device, body: bytes) -> Any:
            since, limit = query.get("since", "0"), query.get("limit", str(MAX_TOMBSTONES))
            if body or not (
                re.fullmatch(r"[0-9]{1,18}", since) and re.fullmatch(r"[0-9]{1,5}", limit)
            ):
                raise _Refused(400, "GET /v1/tombstones?since=<seq>&limit=<1..1000>")
            return self.storage.tombstones_since(
                device.device_id, int(since), int(limit), now=self.clock()
            )

        return await self._members_call(request, handle)

    async def erasures(self, request: Request) -> Response:
        return await self._members_call(
            request, lambda device, body: self.storage.erasure_backlog()
        )

    # -- offers across the fleet (shares of fleet-wide limits, the ledger) --------------------
    async def leases(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> LeaseAnswer:
            ask: LeaseRequest = self._wire(body, LeaseRequest, device)
            if len({a.offer_id for a in ask.asks}) != len(ask.asks):
                raise _Refused(400, "an offer appears twice in one lease request")
            return LeaseAnswer(
                self.storage.grant_leases(device.device_id, ask.asks, now=self.clock())
            )

        return await self._members_call(request, handle)

    async def ledger(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> LedgerAcks:
            upload: LedgerUpload = self._wire(body, LedgerUpload, device)
            ahead = self.clock() + DAY_MS
            if any(e.ts_ms > ahead for e in upload.entries):
                raise _Refused(422, "a redemption is dated more than a day ahead of the collector")
            return LedgerAcks(
                self.storage.record_ledger(device.device_id, upload.entries, now=self.clock())
            )

        return await self._members_call(request, handle)

    async def claim_code(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> CodeAnswer:
            ask: CodeClaim = self._wire(body, CodeClaim, device)
            status, offer_id = self.storage.claim_code(
                device.device_id, ask.code, ask.claim_id, now=self.clock()
            )
            if status != "claimed":
                self.storage.count_refusal(device.device_id, status)  # guessing shows here
            return CodeAnswer(status, offer_id)

        return await self._members_call(request, handle)

    async def check_code(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> CodeAnswer:
            ask: CodeClaim = self._wire(body, CodeClaim, device)
            status, offer_id = self.storage.peek_code(ask.code)
            if status == "code_unknown":
                self.storage.count_refusal(device.device_id, status)  # guessing shows here
            return CodeAnswer(status, offer_id)

        return await self._members_call(request, handle)

    async def release_code(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> CodeAnswer:
            ask: CodeClaim = self._wire(body, CodeClaim, device)
            done = self.storage.release_code(device.device_id, ask.code, ask.claim_id)
            return CodeAnswer("released" if done else "not_held")

        return await self._members_call(request, handle)

    async def member_use(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> MemberUseAnswer:
            ask: MemberUse = self._wire(body, MemberUse, device)
            status, uses = self.storage.claim_use(
                device.device_id, ask.blinded_id, ask.offer_id, ask.limit, ask.use_id,
                now=self.clock(),
            )  # fmt: skip
            return MemberUseAnswer(status, uses)

        return await self._members_call(request, handle)

    async def release_member_use(self, request: Request) -> Response:
        def handle(device: Device, body: bytes) -> MemberUseAnswer:
            ask: MemberUse = self._wire(body, MemberUse, device)
            done = self.storage.release_use(device.device_id, ask.blinded_id, ask.use_id)
            return MemberUseAnswer("released" if done else "not_held")

        return await self._members_call(request, handle)

    async def health(self, request: Request) -> Response:
        return _msgpack({"ok": True})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/summaries", self.summaries, methods=["POST"]),
            Route("/v1/fleet/trending", self.fleet_trending, methods=["GET"]),
            Route("/v1/bundle", self.bundle, methods=["GET"]),
            Route("/v1/catalog", self.catalog, methods=["GET"]),
            Route("/v1/offers", self.offers, methods=["GET"]),
            Route("/v1/health", self.health, methods=["GET"]),
            Route(PROFILES_PATH, self.profiles, methods=["POST"]),
            Route(PROFILES_PATH + "/{blinded_id}", self.member_copies, methods=["GET"]),
            Route(TOMBSTONES_PATH, self.tombstones, methods=["POST"]),
            Route(TOMBSTONES_PATH, self.tombstone_feed, methods=["GET"]),
            Route(ERASURES_PATH, self.erasures, methods=["GET"]),
            Route(LEASES_PATH, self.leases, methods=["POST"]),
            Route(LEDGER_PATH, self.ledger, methods=["POST"]),
            Route(CODES_CLAIM_PATH, self.claim_code, methods=["POST"]),
            Route(CODES_RELEASE_PATH, self.release_code, methods=["POST"]),
            Route(CODES_CHECK_PATH, self.check_code, methods=["POST"]),
            Route(MEMBER_USES_PATH, self.member_use, methods=["POST"]),
            Route(MEMBER_USES_RELEASE_PATH, self.release_member_use, methods=["POST"]),
        ]


def create_app(
    storage: Storage,
    *,
    bundles_dir: str | Path | None = None,
    max_body: int = MAX_BODY,
    clock: Callable[[], int] = now_ms,
    limits: CellLimits = DEFAULT_LIMITS,
    rate_per_s: float = RATE_PER_S,
    burst: int = BURST,
) -> Starlette:
    """The collector application over a storage backend.

    ``limits`` bound what a cell may claim; each device may send ``burst`` requests at once
    and ``rate_per_s`` after that (0: no rate limit).

    Example:
        >>> from shelfwise.upstream import SqliteStorage, create_app
        >>> app = create_app(SqliteStorage(":memory:"))
        >>> print(*sorted({route.path for route in app.routes}))  # doctest: +NORMALIZE_WHITESPACE
        /v1/bundle /v1/catalog /v1/fleet/erasures /v1/fleet/trending /v1/health /v1/offers
        /v1/profiles /v1/profiles/{blinded_id} /v1/summaries /v1/tombstones
    """
    collector = Collector(
        storage,
        bundles_dir=bundles_dir,
        max_body=max_body,
        clock=clock,
        limits=limits,
        rate_per_s=rate_per_s,
        burst=burst,
    )
    return Starlette(routes=collector.routes())


def _current_bundle(bundles_dir: str | Path | None) -> Path | None:
    """The published bundle: ``<dir>/current`` if present, else the newest sub-folder."""
    if bundles_dir is None:
        return None
    root = Path(bundles_dir)
    if (root / "current").is_dir():
        return root / "current"
    folders = (
        [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if root.is_dir()
        else []
    )
    return max(folders, key=lambda p: p.stat().st_mtime) if folders else None


__all__ = ["Collector", "create_app"]
