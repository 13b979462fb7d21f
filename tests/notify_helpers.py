"""A real webhook receiver for the notification tests: dedupes by Idempotency-Key, checks the
signature, and fails on purpose (5xx, 429, dropped connections, a refused notification)."""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sync_helpers import serving

import shelfwise
from shelfwise.webhooks import IDEMPOTENCY_HEADER, verify_signature

SECRET = b"webhook-secret-0123456789abcdef"


@dataclass
class Receiver:
    """What the app backend saw. ``script``: the answers to give, in order, before answering
    200 to everything (``"503"``, ``"429"``, ``"drop"``: take the notification, then close
    the connection without answering; ``"cut"``: close before taking it); ``refuse``: ids
    answered 422 every time."""

    script: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> payload
    requests: Counter[str] = field(default_factory=Counter)  # id -> requests carrying it
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, key: str, body: bytes, headers: dict[str, str]) -> str:
        with self.lock:
            self.requests[key] += 1
            if not verify_signature(SECRET, body, headers):
                self.bad_signatures += 1
                return "401"
            step = self.script.pop(0) if self.script else "200"
            if step == "cut":
                return step
            if key in self.refuse:
                return "422"
            if step in {"200", "drop"} and key not in self.delivered:
                self.delivered[key] = json.loads(body)  # acted on once, whatever comes again
            return step


class _Handler(http.server.BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = self.headers.get(IDEMPOTENCY_HEADER, "")
        step = self.receiver.answer(key, body, dict(self.headers.items()))
        if step in {"drop", "cut"}:
            self.close_connection = True
            self.connection.shutdown(2)  # the device sees the connection die, no answer
            return
        status = int(step)
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def receiver(
    script: list[str] | None = None, refuse: set[str] | None = None
) -> Iterator[tuple[str, Receiver]]:
    """A threaded HTTP server on a free local port; yields (url, what it saw)."""
    seen = Receiver(list(script or []), set(refuse or ()))
    handler = type("Handler", (_Handler,), {"receiver": seen})
    with serving(handler) as url:
        yield f"{url}/hooks/offers", seen


def fast_sender(url: str, **kw: Any) -> shelfwise.WebhookSender:
    """A sender whose retries wait milliseconds, not seconds."""
    return shelfwise.WebhookSender(
        url, SECRET, timeout_s=5, wait_initial_s=0.001, wait_max_s=0.01, **kw
    )


def queue_back_in_stock(sw: shelfwise.Shelfwise, members: int, *, channel: str = "app_push") -> int:
    """``members`` consenting members watch a kettle that comes back in stock; the triggers
    run for the app, which queues one notification each. Returns how many were queued."""
    sw.catalog.import_rows([{"item_id": "kettle", "name": "Kettle", "price": 30, "in_stock": 0}])
    sw.offers.define(
        {
            "offer_id": "kettle-back",
            "title": "The kettle is back: 3.00 off",
            "reward": {"type": "amount", "value": 3},
            "trigger": {"type": "back_in_stock"},
        }
    )
    for n in range(members):
        sw.member(f"L-{n}", consents={"offers": True}).watch("kettle")
    sw.catalog.set_stock("kettle", True)
    return len(sw.offers.run_triggers(channel=channel))


__all__ = ["SECRET", "Receiver", "fast_sender", "queue_back_in_stock", "receiver"]
