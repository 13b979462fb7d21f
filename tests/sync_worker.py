"""A device process for the SIGKILL tests: summarise or sync in small steps until done."""

from __future__ import annotations

import sys

import shelfwise
from shelfwise.sync.outbox import rebuild_dirty, summarise
from shelfwise.sync.protocol import Credentials
from shelfwise.sync.transport import HttpTransport
from shelfwise.sync.upload import Uploader


def main(mode: str, db: str, url: str = "", device: str = "", secret: str = "") -> None:
    with shelfwise.open(db) as sw:
        if mode == "summarise":
            while summarise(
                sw.store,
                device_id=device,
                k=1,
                max_events=40,
                max_releases=1,
                include_open_hour=True,
            ):
                print("step", flush=True)
        else:
            creds = Credentials(device, bytes.fromhex(secret))
            rebuild_dirty(sw.store)
            uploader = Uploader(
                sw.store,
                HttpTransport(url, timeout_s=5),
                creds,
                sleep=lambda s: None,
                batch_records=2,
            )
            uploader.run(progress=lambda done, total: print("step", flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
