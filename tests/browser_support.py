"""What the admin panel's browser tests share: Chromium (Debian's, never a downloaded one)
driven by Playwright, one `fakeproc serve` per test module with an admin password and a fast
dashboard, a login kept for the module, and small helpers. A test module imports the fixtures it
uses by name; without Chromium or Playwright the importing module is skipped (or fails where CI
requires the browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import ServeGroup, ServeProcess, card_payload

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "FAKEPROC_TEST_REQUIRE_BROWSER"  # CI sets it: a missing browser fails, not skips


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _unavailable(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
try:
    from playwright import sync_api
except ImportError:
    _unavailable("browser tests need the playwright package (pip install -e '.[test]')")
expect = sync_api.expect

PASSWORD = "correct horse battery staple"
REFRESH_SECONDS = 0.3  # the dashboard polls /admin/live this often
WAIT_MS = 10_000  # longest wait for anything to show; auto-waiting returns as soon as it does
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCROLLBAR_SLACK = 2  # px: rounding of fractional widths


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory, template_db: Path) -> Iterator[ServeProcess]:
    """One `fakeproc serve` for the module, with an admin password and a fast dashboard."""
    directory = tmp_path_factory.mktemp("browser")
    store = directory / "fakeproc.db"
    shutil.copy(template_db, store)
    group = ServeGroup(directory)
    try:
        (server,) = group(f"sqlite:///{store}", FAKEPROC_ADMIN_PASSWORD=PASSWORD,
                          FAKEPROC_ADMIN_REFRESH_SECONDS=str(REFRESH_SECONDS))
        yield server
    finally:
        group.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def logged_in_state(browser: Any, panel: ServeProcess) -> dict[str, Any]:
    """Cookies of one login, so that most tests start logged in without typing it again."""
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, panel.url, PASSWORD)
        expect(page).to_have_url(panel.url + "/admin/")
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture(autouse=True)
def empty_store(panel: ServeProcess) -> None:
    """Each test starts with no transactions and no rules (the server is shared)."""
    response = requests.post(panel.url + "/api/reset", json={"rules": True}, timeout=30)
    assert response.ok, response.text


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open a page in a context of its own: `state` reuses the module's login, `options` are
    any more of Playwright's context options (a time zone, JavaScript off…)."""
    contexts = []

    def open_(viewport: dict[str, int] = DESKTOP, state: dict[str, Any] | None = None,
              **options: Any) -> Any:
        context = browser.new_context(viewport=viewport, storage_state=state, **options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page: Callable[..., Any]) -> Any:
    """A page that has not logged in."""
    return open_page()


@pytest.fixture
def admin(open_page: Callable[..., Any], logged_in_state: dict[str, Any],
          panel: ServeProcess) -> Any:
    """A logged-in page on the dashboard."""
    page = open_page(state=logged_in_state)
    page.goto(panel.url + "/admin/")
    expect(page.locator("form#quick-arm")).to_be_visible()
    return page


def log_in(page: Any, base: str, password: str, path: str = "/admin/") -> None:
    page.goto(base + path)
    expect(page).to_have_url(f"{base}/admin/login?next={path}")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def charge(panel: ServeProcess, **fields: Any) -> dict[str, Any]:
    """Send a charge to the processor endpoint as Twilio would; returns the request body."""
    body = card_payload(**fields)
    response = requests.post(panel.url + "/", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return body


def row(page: Any, transaction_id: str) -> Any:
    return page.locator(f'tr[data-transaction-id="{transaction_id}"]')


def assert_fits(page: Any, width: int) -> None:
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width + SCROLLBAR_SLACK, (
        f"{page.url} is {scroll_width} px wide in a {width} px viewport")
