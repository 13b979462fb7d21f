"""The kiosk web app: a thin JSON adapter over the shelfwise SDK plus static HTML/CSS/JS.

Business logic lives in the SDK; the routes map HTTP to SDK calls and SDK errors to JSON
(``{"error": ..., "message": ..., "reason": ...}``), so the kiosk never crashes on bad input.
The routes are grouped by area: ``session_api`` (sign-in, privacy, location), ``scan_api``
(scan, for you, search), ``cart_api`` (cart, codes, checkout), ``staff_api`` and ``phone_api``
(the phone app's profile screen); members' profiles across kiosks are in ``members``; their state
is the ``Kiosk`` of ``kiosk.py``. ``guard.Guard`` stands in front of them all (hosts, origins,
CSRF, JSON only, body limits, security headers).

Example:
    >>> import shelfwise
    >>> from starlette.testclient import TestClient
    >>> sw = shelfwise.open(":memory:", store_id="s1")
    >>> app = create_app(sw, KioskConfig(staff_pin="58029374"))
    >>> client = TestClient(app, base_url="http://localhost")
    >>> client.headers["X-CSRF-Token"] = client.get("/api/state").json()["csrf"]
    >>> client.post("/api/session/start", json={}).json()["session"]["kind"]
    'anonymous'
    >>> sw.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

import shelfwise

from . import cart_api, phone_api, scan_api, session_api, staff_api
from .guard import Guard
from .kiosk import STATIC, Kiosk, KioskConfig

logger = logging.getLogger(__name__)


def create_app(sw: shelfwise.Shelfwise, config: KioskConfig) -> Starlette:
    """The Starlette app serving the kiosk pages and its JSON API over ``sw``."""
    kiosk = Kiosk(sw, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(sweep_idle(kiosk)), asyncio.create_task(sync_loop(kiosk))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes: list[BaseRoute] = [
        *session_api.ROUTES,
        *scan_api.ROUTES,
        *cart_api.ROUTES,
        *staff_api.ROUTES,
        *phone_api.ROUTES,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                Guard, allowed_hosts=frozenset(config.allowed_hosts), csrf_key=kiosk.csrf_key
            )
        ],
    )
    app.state.kiosk = kiosk
    return app


async def sweep_idle(kiosk: Kiosk) -> None:
    """End idle sessions every few seconds, for as long as the app runs."""
    while True:
        await asyncio.sleep(min(5.0, max(0.5, kiosk.config.idle_s / 4)))
        try:
            await asyncio.to_thread(kiosk.end_idle)
        except Exception:  # keep sweeping whatever one round did
            logger.exception("idle sweep failed")


async def sync_loop(kiosk: Kiosk) -> None:
    """Sync with the upstream every ``sync_every_s`` seconds, when one is configured."""
    while kiosk.config.upstream:  # offline is normal: failures are shown, never raised
        await asyncio.to_thread(kiosk.sync_once)
        await asyncio.sleep(kiosk.config.sync_every_s)


__all__ = ["Kiosk", "KioskConfig", "create_app"]
