"""Shared by the kiosk tests: a TestClient that talks like the kiosk's own page."""

from __future__ import annotations

import functools
import warnings
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x warns at import that its TestClient will move to httpx2 (not installed).
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PIN = "58029374"  # the staff PIN of the tests (strong enough for the kiosk to accept it)
MEMBER_PIN = "7391"  # the demo cards' PIN (kiosk_demo.__main__.DEMO_MEMBER_PIN)
BASE_URL = "http://localhost"


def page_client(app: Any) -> TestClient:
    """A client on the kiosk's own origin carrying the CSRF token, as the page does."""
    client = TestClient(app, base_url=BASE_URL)
    arm(client)
    return client


def arm(client: TestClient) -> None:
    """Fetch the page's CSRF token and send it with every request from now on."""
    client.headers["X-CSRF-Token"] = client.get("/api/state").json()["csrf"]


@functools.cache
def staff_hash() -> str:
    """The tests' staff PIN hashed once (argon2id is slow on purpose)."""
    import shelfwise

    return shelfwise.hash_secret(PIN)
