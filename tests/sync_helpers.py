"""Real collector processes and a fault-injecting HTTP proxy for the sync tests."""

from __future__ import annotations

import http.client
import http.server
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shelfwise.sync.protocol import Credentials


def view_row(seq: int, shopper: int, item: int, ts_ms: int, *, quantity: int = 1) -> dict:
    """An event row as ``shelfwise.sync.privacy.aggregate`` reads it: an anonymous view."""
    return {
        "seq": seq,
        "shopper_id": f"anon-{shopper}",
        "contributor": None,
        "type": "view",
        "item_id": f"i{item}",
        "quantity": quantity,
        "store_id": "s1",
        "ts_ms": ts_ms,
        "payload": "{}",
        "counted": True,
        "segment": None,
    }


FAULTS = ("ok", "500", "503", "429", "drop", "dup", "processed_then_500", "timeout")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited with {proc.returncode}: {proc.stderr!r}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/v1/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    raise RuntimeError("collector did not become healthy")


def upstream_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shelfwise.upstream", *args]


def backend_args(tmp_path: Path, pg_dsn: str | None) -> list[str]:
    """Collector storage arguments: SQLite in ``tmp_path`` (its key file beside it), or
    PostgreSQL with a server key file in ``tmp_path``."""
    if pg_dsn:
        return ["--pg", pg_dsn, "--server-key", str(tmp_path / "server.key")]
    return ["--db", str(tmp_path / "collector.db")]


def open_backend(backend: list[str]):
    """The storage ``backend_args`` names, opened in this process."""
    from shelfwise.upstream import open_storage

    args = dict(zip(backend[::2], backend[1::2], strict=True))
    return open_storage(db=args.get("--db"), pg=args.get("--pg"), key_file=args.get("--server-key"))


def register(
    backend: list[str], device: str, region: str = "north", stores: tuple[str, ...] = ("s1",)
) -> Credentials:
    store_args = [arg for store in stores for arg in ("--store", store)]
    out = subprocess.run(
        upstream_cmd("add-device", *backend, "--device", device, "--region", region, *store_args),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    import json

    data = json.loads(out)
    return Credentials(data["device_id"], bytes.fromhex(data["secret"]))


@contextmanager
def collector(backend: list[str], *extra: str) -> Iterator[str]:
    """A real collector process (uvicorn) on a free localhost port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        upstream_cmd("serve", *backend, "--port", str(port), *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


class FaultProxy:
    """An HTTP proxy in front of the collector that misbehaves on purpose.

    ``choose()`` picks a fault per request from ``FAULTS``: ``drop`` forwards the request
    (the collector applies it) and then hangs up without an answer; ``dup`` sends it twice;
    ``processed_then_500`` forwards it and answers 500 anyway; ``timeout`` stalls past the
    client's timeout after forwarding.
    """

    def __init__(self, upstream_port: int, choose: Callable[[], str], *, stall_s: float = 1.5):
        self.upstream_port = upstream_port
        self.choose = choose
        self.stall_s = stall_s
        self.seen: Counter[str] = Counter()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                conn.close()
                return reply.status, reply.getheaders(), data

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in {"content-length", "connection", "date", "server"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy.choose() if self.path != "/v1/health" else "ok"
                proxy.seen[fault] += 1
                if fault == "500":
                    self._answer(500, [], b"injected")
                elif fault == "503":
                    self._answer(503, [("Retry-After", "7")], b"busy")
                elif fault == "429":
                    self._answer(429, [("Retry-After", "3")], b"slow down")
                elif fault == "drop":
                    self._forward(body)
                    self.close_connection = True  # hang up: no answer at all
                elif fault == "dup":
                    self._forward(body)
                    self._answer(*self._forward(body))
                elif fault == "processed_then_500":
                    self._forward(body)
                    self._answer(500, [], b"lost the answer")
                elif fault == "timeout":
                    self._forward(body)
                    time.sleep(proxy.stall_s)
                    self.close_connection = True
                else:
                    self._answer(*self._forward(body))

            do_GET = _handle
            do_POST = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server of ``handler`` on a free local port; yields its base url."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def random_faults(seed: int, weights: dict[str, float]) -> Callable[[], str]:
    rng = random.Random(seed)
    names = list(weights)
    values = [weights[n] for n in names]
    lock = threading.Lock()

    def choose() -> str:
        with lock:
            return rng.choices(names, values)[0]

    return choose


def pg_dsn() -> str | None:
    return os.environ.get("SHELFWISE_PG_DSN") or None


def fresh_pg_database() -> Iterator[str]:
    """A new empty PostgreSQL database on the SHELFWISE_PG_DSN server; dropped afterwards.

    Without SHELFWISE_PG_DSN the test is skipped locally but FAILS in CI (CI set), so a
    PostgreSQL server that did not start is never mistaken for a pass.
    """
    import uuid

    import pytest

    dsn = pg_dsn()
    if dsn is None:
        if os.environ.get("CI"):
            pytest.fail("SHELFWISE_PG_DSN is not set in CI: PostgreSQL did not start")
        pytest.skip("PostgreSQL tests need SHELFWISE_PG_DSN (scripts/test.sh starts a server)")
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"sw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content


class LiveClient:
    """Plain HTTP to an app served by a real uvicorn server in this process."""

    def __init__(self, port: int) -> None:
        self.port = port

    def _call(
        self, method: str, path: str, content: bytes, headers: dict[str, str] | None
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=content or None, headers=headers or {})
            reply = conn.getresponse()
            return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        finally:
            conn.close()

    def post(self, path: str, content: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        return self._call("POST", path, content, headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self._call("GET", path, b"", headers)


@contextmanager
def serve_in_thread(app: object) -> Iterator[LiveClient]:
    """Serve an ASGI app with uvicorn on a free localhost port in a background thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveClient(port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class FakeCollector:
    """A collector that acknowledges every upload and answers downstream calls with whatever
    a test sets in ``replies`` (path -> (status, headers, body)): a hostile or broken
    upstream, for the device's side of the trust boundary."""

    def __init__(self) -> None:
        from shelfwise.sync.protocol import pack_acks, unpack_envelope, unpack_upload

        self.replies: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.uploads = 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path in fake.replies:
                    self._answer(*fake.replies[self.path])
                    return
                envelopes = [unpack_envelope(raw) for raw in unpack_upload(body).summaries]
                fake.uploads += 1
                self._answer(200, {}, pack_acks([(e.key, e.rev) for e in envelopes]))

            def do_GET(self) -> None:
                self._answer(*fake.replies.get(self.path, (404, {}, b"")))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCollector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
