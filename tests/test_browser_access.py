"""The panel for a keyboard and a screen reader: every control has a name, the dashboard's focus
order follows what the eye reads at phone and desktop widths, and axe-core (bundled with
axe-playwright-python, run offline) finds no WCAG 2 A or AA violation on the main pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from browser_support import (  # noqa: F401  (fixtures are used by name)
    DESKTOP,
    PHONE,
    browser,
    charge,
    empty_store,
    expect,
    logged_in_state,
    open_page,
    panel,
)

pytestmark = pytest.mark.slow

RETRIED = "tx-retried-for-the-checks"
PAGES = ["/admin/", "/admin/transactions", f"/admin/transactions/{RETRIED}", "/admin/rules",
         "/admin/retries", "/admin/connectors", "/admin/settings"]
WIDTHS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CONTROLS = "input:not([type=hidden]), select, textarea, button"
# The dashboard's parts in the order a reader takes them: on a phone one column top to bottom;
# on a desktop the counts across the top, then the side column (quick arm, armed rules), then
# the payments list on the left.
REGIONS = {"header": "header.topbar", "counts": "#counts", "quick-arm": "form#quick-arm",
           "armed-rules": "#armed-rules", "payments": "#live"}
SLACK_PX = 2


def fill(panel: Any) -> None:
    """Something of every kind on every page: payments, a retry, a decline, an armed rule and a
    used-up one (greyed text must be readable too); a transaction whose first answer was broken
    and whose retry was answered, for the timeline's marks and legend."""
    broken = {"match": {"transaction_id": RETRIED, "attempt": 1},
              "action": {"type": "malformed", "variant": "not_json"}}
    assert requests.post(panel.url + "/api/rules", json=broken, timeout=30).ok
    charge(panel, transaction_id=RETRIED)
    charge(panel, transaction_id=RETRIED)
    charge(panel, amount="2012.00")
    for rule in ({"action": {"type": "decline", "error_code": "card_declined"},
                  "remaining": 1},
                 {"match": {"transaction_id": "tx-never-sent"}, "action": {"type": "approve"}}):
        assert requests.post(panel.url + "/api/rules", json=rule, timeout=30).ok
    charge(panel)


def open_menu(page: Any) -> bool:
    """Open the header's menu if the page is narrow enough to fold it; whether it was."""
    menu = page.get_by_role("button", name="Menu")
    if not menu.is_visible():
        return False
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    return True


def hold_still(page: Any) -> None:
    """No more live updates: a part swapped in the middle of a check would be a moving target."""
    page.evaluate("document.body.addEventListener('htmx:beforeRequest', e => e.preventDefault())")


@pytest.mark.parametrize("viewport", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_wcag_a_or_aa_violation(open_page, logged_in_state, panel, path, viewport):
    fill(panel)
    page = open_page(viewport, logged_in_state)
    page.goto(panel.url + path)
    expect(page.locator("main")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)  # the page itself, not an error page
    hold_still(page)
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_A_AA}})
    assert results.violations_count == 0, results.generate_report()
    if open_menu(page):
        results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_A_AA}})
        assert results.violations_count == 0, "menu open: " + results.generate_report()


@pytest.mark.parametrize("viewport", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_every_control_has_a_name(open_page, logged_in_state, panel, path, viewport):
    fill(panel)
    page = open_page(viewport, logged_in_state)
    page.goto(panel.url + path)
    open_menu(page)
    controls = page.locator(CONTROLS).filter(visible=True)  # the Menu button hides when wide
    expect(controls.first).to_be_attached()
    for i in range(controls.count()):
        expect(controls.nth(i)).to_have_accessible_name(re.compile(r"\w"))


def focus_stops(page: Any, limit: int = 120) -> list[dict[str, Any]]:
    """Each element Tab reaches from the top of the page, once round, with its box and part."""
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = page.evaluate("""regions => {
            const e = document.activeElement;
            if (!e || e === document.body) return null;
            const box = e.getBoundingClientRect();
            const region = Object.keys(regions).find(k => e.closest(regions[k])) || "other";
            return {html: e.outerHTML.slice(0, 80), region, visible: box.width > 0,
                    top: box.top + scrollY, bottom: box.bottom + scrollY, left: box.left};
        }""", REGIONS)
        if stop is None or (stops and stop["html"] == stops[0]["html"]):
            break
        stops.append(stop)
    return stops


def reads_after(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Below it, or on the same line to its right."""
    below = later["top"] >= earlier["bottom"] - SLACK_PX
    same_line = later["top"] < earlier["bottom"] and later["bottom"] > earlier["top"]
    return below or (same_line and later["left"] >= earlier["left"] - SLACK_PX)


@pytest.mark.parametrize("viewport", WIDTHS)
def test_the_dashboards_focus_order_follows_what_the_eye_reads(open_page, logged_in_state,
                                                                panel, viewport):
    fill(panel)
    page = open_page(viewport, logged_in_state)
    page.goto(panel.url + "/admin/")
    expect(page.locator("tr[data-transaction-id]")).to_have_count(3)
    hold_still(page)
    stops = focus_stops(page)
    assert all(stop["visible"] for stop in stops), [s["html"] for s in stops if not s["visible"]]
    parts = [stop["region"] for stop in stops]
    visited = [part for i, part in enumerate(parts) if i == 0 or parts[i - 1] != part]
    assert visited == list(REGIONS), visited  # each part once, in reading order
    for earlier, later in zip(stops, stops[1:]):
        if viewport is DESKTOP and (earlier["region"], later["region"]) == (
                "armed-rules", "payments"):
            continue  # from the foot of the side column to the top of the list on the left
        assert reads_after(earlier, later), (earlier, later)
