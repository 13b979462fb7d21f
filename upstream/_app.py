"""The collector's HTTP API (Starlette, served by uvicorn).

Endpoints (bodies are msgpack with string keys)::

    POST /v1/summaries        {"v": 1, "device": id, "summaries": [envelope bytes, ...]}
                              -> {"acked": [[key, rev], ...]}
    GET  /v1/fleet/trending   -> {"scope": "region:<r>", "generated_ms": ms, "items": [[id, score]]}
    GET  /v1/bundle           -> {"name": ..., "files": {name: bytes}}   (404 when none)
    GET  /v1/catalog          -> the latest signed catalog document (404 when none)
    GET  /v1/offers           -> the latest signed offers document (404 when none)
    GET  /v1/health           -> {"ok": true}

Every /v1 call but health is HMAC-signed by the device with its own secret
(``shelfwise.sync.upload.sign_request``). A request is checked whole before anything is written:
a body over the size limit is 413, a bad signature or clock 401 (with the collector's time,
so the device can re-sign), anything off-schema 400, a key owned by another device 409.
None of those change the totals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shelfwise import KeyConflict
from shelfwise.sync.privacy import Envelope, EnvelopeError, safe_unpack, unpack_envelope
from shelfwise.sync.upload import (
    HEADER_DEVICE,
    HEADER_SERVER_TIME,
    HEADER_SIGNATURE,
    HEADER_TIME,
    PROTOCOL,
    check_signature,
)

from ._storage import Device, Storage

logger = logging.getLogger(__name__)

MAX_BODY = 4 << 20
MAX_SUMMARIES = 100
MAX_SKEW_MS = 5 * 60_000
TRENDING_DAYS = 7


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _msgpack(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgpack.packb(data, use_bin_type=True),
        status_code=status,
        media_type="application/msgpack",
        headers=headers,
    )


def create_app(
    storage: Storage,
    *,
    bundles_dir: str | Path | None = None,
    max_body: int = MAX_BODY,
    clock: Callable[[], int] = lambda: int(time.time() * 1000),
) -> Starlette:
    """The collector application over a storage backend.

    Example:
        >>> from shelfwise.upstream import SqliteStorage, create_app
        >>> app = create_app(SqliteStorage(":memory:"))
        >>> print(*sorted(route.path for route in app.routes))
        /v1/bundle /v1/catalog /v1/fleet/trending /v1/health /v1/offers /v1/summaries
    """

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            raise _Refused(413, f"body over {max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise _Refused(413, f"body over {max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def authenticate(request: Request, body: bytes) -> Device:
        device_id = request.headers.get(HEADER_DEVICE, "")
        stamp = request.headers.get(HEADER_TIME, "")
        signature = request.headers.get(HEADER_SIGNATURE, "")
        if not device_id or not stamp.isdigit() or len(signature) != 64:
            raise _Refused(401, "missing or malformed authentication headers")
        device = await run_in_threadpool(storage.device, device_id[:64])
        if device is None or not check_signature(
            device.secret, request.method, request.url.path, body, int(stamp), signature
        ):
            raise _Refused(401, "unknown device or bad signature")
        if abs(int(stamp) - clock()) > MAX_SKEW_MS:
            raise _Refused(401, "request time is too far from the collector's clock")
        return device

    def refused(exc: _Refused) -> Response:
        headers = {HEADER_SERVER_TIME: str(clock())} if exc.status == 401 else None
        return _msgpack({"error": str(exc)}, exc.status, headers)

    def parse(body: bytes, device: Device) -> list[Envelope]:
        try:
            data = safe_unpack(body, max_len=max_body)
        except EnvelopeError as exc:
            raise _Refused(400, str(exc)) from exc
        if not isinstance(data, dict) or set(data) != {"v", "device", "summaries"}:
            raise _Refused(400, "body must be {v, device, summaries}")
        if data["v"] != PROTOCOL or data["device"] != device.device_id:
            raise _Refused(400, "unsupported protocol or a device other than the signer")
        summaries = data["summaries"]
        if not isinstance(summaries, list) or not summaries:
            raise _Refused(400, "summaries must be a non-empty list")
        if len(summaries) > MAX_SUMMARIES:
            raise _Refused(413, f"at most {MAX_SUMMARIES} summaries per request")
        envelopes = []
        for raw in summaries:
            if not isinstance(raw, bytes):
                raise _Refused(400, "each summary must be msgpack bytes")
            try:
                envelope = unpack_envelope(raw)
            except EnvelopeError as exc:
                raise _Refused(400, f"malformed summary: {exc}") from exc
            if envelope.device != device.device_id:
                raise _Refused(400, "a summary names a device other than the signer")
            envelopes.append(envelope)
        if len({e.key for e in envelopes}) != len(envelopes):
            raise _Refused(400, "an idempotency key appears twice in one request")
        return envelopes

    async def summaries(request: Request) -> Response:
        try:
            body = await read_body(request)
            device = await authenticate(request, body)
            envelopes = parse(body, device)
            try:
                acks = await run_in_threadpool(storage.apply, device.device_id, envelopes)
            except KeyConflict as exc:
                raise _Refused(409, str(exc)) from exc
        except _Refused as exc:
            logger.info("refused a summary upload: %s %s", exc.status, exc)
            return refused(exc)
        return _msgpack({"acked": [[key, rev] for key, rev in acks]})

    async def fleet_trending(request: Request) -> Response:
        try:
            device = await authenticate(request, await read_body(request))
        except _Refused as exc:
            return refused(exc)
        since = clock() - TRENDING_DAYS * 86_400_000
        items = await run_in_threadpool(storage.trending, device.region, since, 100)
        return _msgpack(
            {
                "scope": f"region:{device.region}",
                "generated_ms": clock(),
                "items": [[item, score] for item, score in items],
            }
        )

    async def bundle(request: Request) -> Response:
        try:
            await authenticate(request, await read_body(request))
        except _Refused as exc:
            return refused(exc)
        folder = _current_bundle(bundles_dir)
        if folder is None:
            return _msgpack({"error": "no bundle published"}, 404)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        return _msgpack({"name": folder.name, "files": files})

    def document(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                await authenticate(request, await read_body(request))
            except _Refused as exc:
                return refused(exc)
            raw = await run_in_threadpool(storage.document, kind)
            if raw is None:
                return _msgpack({"error": f"no {kind} document published"}, 404)
            # Served exactly as the operator signed it: the device verifies, not us.
            return Response(raw, media_type="application/msgpack")

        return serve

    async def health(request: Request) -> Response:
        return _msgpack({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/summaries", summaries, methods=["POST"]),
            Route("/v1/fleet/trending", fleet_trending, methods=["GET"]),
            Route("/v1/bundle", bundle, methods=["GET"]),
            Route("/v1/catalog", document("catalog"), methods=["GET"]),
            Route("/v1/offers", document("offers"), methods=["GET"]),
            Route("/v1/health", health, methods=["GET"]),
        ]
    )


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


__all__ = ["create_app"]
