"""The upstream HTTP transport: a malformed address is refused when it is built."""

from __future__ import annotations

import pytest

import shelfwise
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
