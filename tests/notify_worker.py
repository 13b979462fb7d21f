"""A device process for the notification kill test: queue notifications, or deliver them,
saying ``step`` after each one the receiver took (so a SIGKILL can land right there)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notify_helpers import fast_sender, queue_back_in_stock

import shelfwise
from shelfwise.notifications import Notification


class TellingSender:
    """The webhook sender, saying ``step`` once the receiver answered 2xx (before the
    store marks the notification sent)."""

    def __init__(self, url: str) -> None:
        self.inner = fast_sender(url)

    def send(self, notification: Notification) -> None:
        self.inner.send(notification)
        print("step", flush=True)


def main(mode: str, db: str, arg: str) -> None:
    with shelfwise.open(db) as sw:
        if mode == "queue":
            print(f"queued {queue_back_in_stock(sw, int(arg))}", flush=True)
            time.sleep(600)  # killed here: after the commit, before any delivery
        else:
            report = sw.notifications.deliver(TellingSender(arg))
            print(f"done {report.pending}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
