"""End-to-end: the real kiosk server in a subprocess, driven in Debian's chromium by Playwright.

Nothing is downloaded: chromium is /usr/bin/chromium (scripts/setup.sh --system installs it).
Screenshots of every screen go to the test's output folder; set SHELFWISE_SCREENSHOTS=docs/screenshots
to refresh the committed set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_kiosk_api import NUTELLA, PIN, YOGURT, busy_member_card, demo_bundle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IDLE_S = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The kiosk as a user starts it, on a seeded temp store, with an unreachable upstream."""
    folder = tmp_path_factory.mktemp("kiosk-e2e")
    bundle = demo_bundle(folder / "bundle")
    port = free_port()
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable, "-m", "shelfwise.kiosk_demo", "--port", str(port),
            "--db", str(folder / "store.db"), "--bundle", str(bundle), "--staff-pin", PIN,
            "--idle-seconds", str(IDLE_S), "--upstream", "http://127.0.0.1:9",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/api/state", timeout=1).read()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError((folder / "server.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh dev,demo --system")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server: str, tmp_path: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(server + "/")
    yield page
    context.close()


SHOTS = (
    Path(os.environ.get("SHELFWISE_SCREENSHOTS", ""))
    if os.environ.get("SHELFWISE_SCREENSHOTS")
    else None
)


def shot(page, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, SHOTS / out.name)


def scan(page, code: str) -> None:  # type: ignore[no-untyped-def]
    """A USB scanner is a keyboard: it types the digits and presses Enter."""
    page.get_by_test_id("who").get_by_text("e").wait_for()  # the session has started
    page.locator("#screen-scan").wait_for(state="visible")
    page.locator("#scan-input").press_sequentially(code)
    page.locator("#scan-input").press("Enter")


def test_new_shopper_scans_a_real_barcode_and_sees_suggestions(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shot(page, "01-welcome", tmp_path)
    page.get_by_role("button", name="Start without signing in").click()
    scan(page, YOGURT)
    card = page.get_by_test_id("product-card")
    card.get_by_text("Latteria sociale Merano").wait_for()
    assert card.locator(".tile").count() > 0, "suggestions under the product card"
    assert "Why:" in card.locator(".tile .why").first.inner_text()
    shot(page, "02-scan-product-card", tmp_path)
    card.get_by_role("button", name="Add to cart").click()
    page.locator("nav").get_by_role("button", name="Cart").click()
    page.get_by_test_id("cart-table").wait_for()
    shot(page, "03-cart", tmp_path)


def test_member_signs_in_with_a_loyalty_card_and_sees_personal_results(
    page, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    page.locator("#card-input").fill(busy_member_card())
    page.locator("#card-input").press("Enter")
    page.get_by_test_id("buy-again").wait_for()
    assert "you bought this" in page.get_by_test_id("buy-again").inner_text()
    page.get_by_test_id("personal").wait_for()
    assert "Member" in page.get_by_test_id("who").inner_text()
    page.locator("#search-input").fill("latte")
    page.locator("#search-input").press("Enter")
    page.get_by_test_id("search-results").wait_for()
    shot(page, "04-for-you-member", tmp_path)
    page.locator("nav").get_by_role("button", name="Privacy").click()
    page.get_by_test_id("privacy-summary").wait_for()
    shot(page, "05-privacy", tmp_path)


def test_a_refused_code_shows_its_reason(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Start without signing in").click()
    scan(page, NUTELLA)
    page.get_by_test_id("product-card").wait_for()
    page.get_by_test_id("product-card").get_by_role("button", name="Add to cart").click()
    page.locator("nav").get_by_role("button", name="Cart").click()
    page.locator("#code-input").fill("SAVE-NOT-REAL")
    page.get_by_role("button", name="Use code").click()
    refused = page.get_by_test_id("redeem-refused")
    refused.wait_for()
    text = refused.inner_text()
    assert "Code refused" in text and "code_" in text
    shot(page, "06-code-refused", tmp_path)


def test_inactivity_reset_leaves_nothing_of_the_previous_shopper(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator("#card-input").fill(busy_member_card())
    page.locator("#card-input").press("Enter")
    page.get_by_test_id("buy-again").wait_for()
    member = page.get_by_test_id("who").inner_text()
    page.locator("nav").get_by_role("button", name="Scan").click()
    scan(page, YOGURT)
    page.get_by_test_id("product-card").wait_for()
    # Nobody touches the kiosk: the page returns to the welcome screen by itself.
    page.locator("#screen-welcome").wait_for(state="visible", timeout=(IDLE_S + 10) * 1000)
    body = page.locator("body").inner_text()
    assert "Latteria" not in body and member not in body and "you bought this" not in body
    for screen in ["scan", "foryou", "cart", "privacy", "phone"]:
        html = page.locator(f"#screen-{screen}").inner_html()
        assert "Latteria" not in html and "you bought this" not in html
    # The server ended the session too: the next shopper's page knows nothing of them.
    page.reload()
    page.locator("#screen-welcome").wait_for(state="visible")
    assert page.get_by_test_id("who").inner_text() == ""
    shot(page, "07-after-idle-reset", tmp_path)


def test_the_staff_screen_refuses_without_the_pin(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="Staff").click()
    page.locator("#staff-pin").fill("0000")
    page.locator("#staff-pin").press("Enter")
    page.locator("#staff-error").get_by_text("wrong staff PIN").wait_for()
    assert page.get_by_test_id("staff-panel").count() == 0
    page.locator("#staff-pin").fill(PIN)
    page.locator("#staff-pin").press("Enter")
    page.get_by_test_id("staff-panel").wait_for()
    page.get_by_test_id("funnel-chart").wait_for()
    status = page.get_by_test_id("sync-status").inner_text()
    assert "Queued summaries" in status and "Last error" in status
    assert "{" not in status, "the sync status is a readable table, not a raw record"
    assert page.locator("#staff-login").is_hidden(), "the PIN form goes away once unlocked"
    shot(page, "08-staff", tmp_path)


def test_phone_view_triggers_a_geofence_for_a_consenting_member(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.locator("#signin-location").check()
    page.locator("#card-input").fill(busy_member_card())
    page.locator("#card-input").press("Enter")
    page.get_by_test_id("buy-again").wait_for()
    page.locator("nav").get_by_role("button", name="Phone app").click()
    plot = page.locator("#geo-plot")
    plot.locator("circle").first.wait_for()
    box = plot.bounding_box()
    # the store sits at 45.4781, 9.2270 on a plot spanning 45.4500..45.4820, 9.2000..9.2310
    x = box["x"] + box["width"] * (9.2270 - 9.2000) / 0.0310
    y = box["y"] + box["height"] * (45.4820 - 45.4781) / 0.0320
    page.mouse.click(x, y)
    result = page.get_by_test_id("geo-result")
    page.wait_for_function(
        "document.querySelector('[data-testid=geo-result]').innerText.length > 0"
    )
    assert "store-citta-studi" in result.inner_text(), result.inner_text()
    assert "enter" in result.inner_text()
    shot(page, "09-phone-geofence", tmp_path)
