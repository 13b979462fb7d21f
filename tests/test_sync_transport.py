"""The upstream HTTP transport: a malformed address is refused when it is built, and no
password put in a url ever reaches an error message."""

from __future__ import annotations

import http.server
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import serving

import shelfwise
from shelfwise.cli import main
from shelfwise.notifications import Notification
from shelfwise.sync.transport import HttpTransport


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://collector:abc", "port"),
        ("http://collector:99999", "port"),
        ("http://collector:0", "port"),
        ("http://[::1", "IPv6"),
        ("http://collector/sync path", "U+0020"),
        ("http://collector/sync\npath", "U+000A"),
        ("ftp://collector", "http or https"),
        ("collector:8443", "http or https"),
        ("https://", "host"),
        (None, "text"),
        (8443, "text"),
    ],
)
def test_a_malformed_upstream_url_is_refused_at_construction(url: object, problem: str) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="upstream url") as refused:
        HttpTransport(url)  # type: ignore[arg-type]
    assert problem in str(refused.value)


@pytest.mark.parametrize("timeout_s", [0, -1, float("nan"), float("inf"), True, "30"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(timeout_s: object) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="timeout_s"):
        HttpTransport("https://collector.example", timeout_s=timeout_s)  # type: ignore[arg-type]


def test_a_well_formed_url_gives_host_port_and_path_prefix() -> None:
    transport = HttpTransport("https://collector.example:8443/fleet/", timeout_s=5)
    assert (transport.scheme, transport.host, transport.port, transport.prefix) == (
        "https",
        "collector.example",
        8443,
        "/fleet",
    )


def _notification() -> Notification:
    return Notification(
        "n1", "L-1", "back", "tea", "app_push", "back_in_stock", "Tea is back", "", 1, 1, 2
    )


def _every_text_of(exc: BaseException) -> str:
    """The message, args and reprs of ``exc`` and of every exception chained to it."""
    texts: list[str] = []
    pending = [exc]
    while pending:
        seen = pending.pop()
        texts += [str(seen), repr(seen), *map(repr, seen.args)]
        pending += [linked for linked in (seen.__cause__, seen.__context__) if linked is not None]
    return "\n".join(texts)


SECRET_TEXT = st.text(min_size=1, max_size=40)


@settings(max_examples=300)
@given(user=st.text(max_size=20), password=st.none() | SECRET_TEXT)
def test_a_url_with_user_info_is_refused_in_words_that_never_depend_on_it(
    user: str, password: str | None
) -> None:
    userinfo = urllib.parse.quote(user, safe="")
    if password is not None:
        userinfo += ":" + urllib.parse.quote(password, safe="")
    with pytest.raises(shelfwise.InvalidInput) as refused:
        HttpTransport(f"https://{userinfo}@collector.example:8443/fleet")
    with pytest.raises(shelfwise.InvalidInput) as reference:
        HttpTransport("https://kiosk:x@collector.example:8443/fleet")
    # The same words whatever the user info: none of it can reach a log line.
    assert str(refused.value) == str(reference.value)
    assert "user info" in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__context__ is None


@settings(max_examples=300)
@given(password=SECRET_TEXT)
def test_a_raw_password_in_the_url_is_refused_and_no_piece_of_it_is_echoed(password: str) -> None:
    # Unencoded, a password may hold '/', '?', '#' or '@' and split the url anywhere; the
    # markers at both ends show whether any piece of it reached the message or its chain.
    secret = f"Pa55{password}W0rd"
    with pytest.raises(shelfwise.InvalidInput) as refused:
        HttpTransport(f"https://kiosk:{secret}@collector.example:8443/fleet")
    every_text = _every_text_of(refused.value)
    assert "Pa55" not in every_text and "W0rd" not in every_text


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://collector.example/fleet?token=s3cr3t", "a query ('?...') is not allowed"),
        ("https://collector.example/fleet?", "a query ('?...') is not allowed"),
        ("https://collector.example/fleet#s3cr3t", "a fragment ('#...') is not allowed"),
        ("https://collector.example/#s3cr3t?x", "a fragment ('#...') is not allowed"),
        ("https://collector.example/?s3cr3t#x", "a query ('?...') and a fragment ('#...') are"),
    ],
)
def test_a_url_with_a_query_or_fragment_is_refused_without_quoting_them(
    url: str, problem: str
) -> None:
    with pytest.raises(shelfwise.InvalidInput, match="upstream url") as refused:
        HttpTransport(url)
    assert problem in str(refused.value)
    assert "s3cr3t" not in _every_text_of(refused.value)


def test_a_port_error_in_a_url_with_an_at_sign_keeps_the_value_error_out_of_the_chain() -> None:
    with pytest.raises(shelfwise.InvalidInput, match="port") as refused:
        HttpTransport("http://kiosk:hunter/2@collector.example")
    assert "hunter" not in _every_text_of(refused.value)


@contextmanager
def _recording_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering 200 to every POST; yields its url and the paths asked."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, paths


def test_a_url_with_a_path_prefix_sends_each_request_under_that_prefix() -> None:
    with _recording_server() as (url, paths):
        transport = HttpTransport(url + "/fleet/", timeout_s=5)
        response = transport.request("POST", "/v1/summaries", b"\x80")
    assert (response.status, paths) == (200, ["/fleet/v1/summaries"])


def test_a_webhook_url_keeps_its_query_and_refuses_user_info_without_echoing_it() -> None:
    with _recording_server() as (url, paths):
        sender = shelfwise.WebhookSender(url + "/hooks?tenant=7", b"s" * 32, timeout_s=5)
        sender.send(_notification())
    assert paths == ["/hooks?tenant=7"]
    with pytest.raises(shelfwise.InvalidInput, match="user info") as refused:
        shelfwise.WebhookSender("https://app:hunter2@app.example/hooks", b"s" * 32)
    assert "hunter2" not in _every_text_of(refused.value)


@pytest.mark.parametrize("option", ["--url", "--webhook"])
def test_the_cli_refuses_a_url_with_a_password_in_one_line_that_does_not_show_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    db = tmp_path / "store.db"
    shelfwise.open(db).close()
    key_file = tmp_path / "kiosk.key"
    key_file.write_text(json.dumps({"device_id": "kiosk-9", "secret": "ab" * 32}))
    command = (
        ["sync", "--key-file", str(key_file)]
        if option == "--url"
        else ["notifications", "deliver", "--secret-file", str(key_file)]
    )
    url = "http://kiosk:hunter2@127.0.0.1:9/fleet"
    assert main([*command, "--db", str(db), option, url]) == 2
    out = capsys.readouterr()
    assert "user info" in out.err and len(out.err.strip().splitlines()) == 1
    assert "hunter2" not in out.err + out.out
