"""The dashboard in a real browser says exactly what is true now: the armed rules change live
(a used-up or disabled rule is greyed, says so, and sits below the armed ones), every time
says its zone and can be shown in the browser's own zone, and on a phone the header is one
line with a menu and the quick-arm form comes before the payments list."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from browser_support import (  # noqa: F401  (fixtures are used by name)
    DESKTOP,
    PHONE,
    WAIT_MS,
    admin,
    assert_fits,
    browser,
    charge,
    empty_store,
    expect,
    logged_in_state,
    open_page,
    panel,
    row,
)

pytestmark = pytest.mark.slow

UTC_CLOCK = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} UTC$")
UTC_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} UTC$")
KOLKATA = "Asia/Kolkata"  # UTC+5:30 all year: no daylight saving to trip over
ONE_LINE_PX = 70  # a header of one line: the brand and the menu button


def arm(panel: Any, **rule: Any) -> dict[str, Any]:
    """A rule armed through the control API, as a test or a script would."""
    response = requests.post(panel.url + "/api/rules", json=rule, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def never_matching(panel: Any) -> dict[str, Any]:
    return arm(panel, match={"transaction_id": "tx-never-sent"}, action={"type": "approve"},
               remaining=5, note="waits for a payment that never comes")


def measure(page: Any, *selectors: str) -> list[dict[str, Any]]:
    """Box and text colour of each element, all taken at one instant: htmx may swap a part
    between two separate calls."""
    return page.evaluate("""selectors => selectors.map(selector => {
        const element = document.querySelector(selector);
        const box = element.getBoundingClientRect();
        return {x: box.x, y: box.y, width: box.width, height: box.height,
                color: getComputedStyle(element).color};
    })""", list(selectors))


# -- the armed rules, live ------------------------------------------------------------------


def test_armed_rules_change_live_and_a_used_up_rule_greys_below_the_armed(admin, panel):
    page = admin
    page.evaluate("window.__marker = 1")
    waiting = never_matching(panel)
    once = arm(panel, action={"type": "decline", "error_code": "lost_card"}, remaining=1)
    armed = page.locator(".armed-rule")
    expect(armed).to_have_count(2)
    waiting_line = page.locator(f'[data-rule-id="{waiting["id"]}"]')
    once_line = page.locator(f'[data-rule-id="{once["id"]}"]')
    expect(once_line).to_contain_text("decline lost_card")
    expect(once_line).to_contain_text("1 left")

    charge(panel)
    expect(once_line).to_contain_text("used up")
    expect(once_line).to_contain_text("fired 1")
    expect(armed).to_have_count(1)
    expect(armed).to_have_attribute("data-rule-id", str(waiting["id"]))
    once_box, waiting_box = measure(page, f'[data-rule-id="{once["id"]}"]',
                                    f'[data-rule-id="{waiting["id"]}"]')
    assert once_box["y"] > waiting_box["y"], "the used-up rule is not below the armed one"
    assert once_box["color"] != waiting_box["color"], "the used-up rule is not greyed"
    expect(waiting_line).not_to_contain_text("used up")

    requests.patch(f"{panel.url}/api/rules/{waiting['id']}", json={"enabled": False},
                   timeout=30).raise_for_status()
    expect(waiting_line).to_contain_text("disabled")
    expect(armed).to_have_count(0)
    expect(page.get_by_text("No rules armed")).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "the dashboard reloaded instead of updating"


def test_a_deleted_rule_leaves_the_live_list_and_its_button_still_works(admin, panel):
    page = admin
    rule = never_matching(panel)
    line = page.locator(f'[data-rule-id="{rule["id"]}"]')
    expect(line).to_be_visible()  # arrived without a reload, with its delete button's token
    line.get_by_role("button", name=f"Delete rule {rule['id']}").click()
    expect(page.get_by_role("status")).to_have_text(f"Rule {rule['id']} deleted.")
    expect(line).to_have_count(0)
    assert requests.get(panel.url + "/api/rules", timeout=30).json()["data"] == []


def test_the_rules_page_says_which_rules_are_used_up_or_disabled(admin, panel):
    page = admin
    once = arm(panel, action={"type": "decline", "error_code": "card_declined"}, remaining=1)
    waiting = never_matching(panel)
    charge(panel)
    page.get_by_role("link", name="Rules", exact=True).click()
    used = page.locator(f'tr[data-rule-id="{once["id"]}"]')
    kept = page.locator(f'tr[data-rule-id="{waiting["id"]}"]')
    expect(used).to_contain_text("used up")
    expect(used).to_have_class(re.compile(r"\bmuted\b"))
    expect(kept).not_to_contain_text("used up")
    expect(kept).not_to_contain_text("disabled")

    kept.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text(f"Rule {waiting['id']} disabled.")
    expect(kept).to_contain_text("disabled")
    expect(kept).to_have_class(re.compile(r"\bmuted\b"))


# -- times say their zone -------------------------------------------------------------------


def in_kolkata(time: Any) -> str:
    """What a <time> must read in Local mode in Kolkata: its instant, 5 h 30 later, labelled."""
    stamp = datetime.fromisoformat(time.get_attribute("datetime").replace("Z", "+00:00"))
    local = stamp + timedelta(hours=5, minutes=30)
    text = f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} UTC+5:30"
    return text[11:] if time.get_attribute("data-format") == "clock" else text


def test_times_say_utc_and_the_switch_shows_them_local_remembered_and_live(open_page, panel,
                                                                          logged_in_state):
    first = charge(panel)
    page = open_page(state=logged_in_state, timezone_id=KOLKATA)
    page.goto(panel.url + "/admin/")
    time = row(page, first["transaction_id"]).locator("time")
    expect(time).to_have_text(UTC_CLOCK)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z",
                        time.get_attribute("datetime"))
    expect(page.get_by_role("radio", name="UTC")).to_be_checked()

    page.get_by_role("radio", name="Local").check()
    expect(time).to_have_text(in_kolkata(time))
    page.reload()
    expect(page.get_by_role("radio", name="Local")).to_be_checked()
    expect(time).to_have_text(in_kolkata(time))

    page.evaluate("window.__marker = 1")
    second = charge(panel)
    fresh = row(page, second["transaction_id"]).locator("time")
    expect(fresh).to_have_text(in_kolkata(fresh))
    expect(time).to_have_text(in_kolkata(time))
    assert page.evaluate("window.__marker") == 1, "the dashboard reloaded instead of updating"

    page.goto(f"{panel.url}/admin/transactions/{first['transaction_id']}")
    times = page.locator("main time")
    expect(times.first).to_have_text(in_kolkata(times.first))
    page.get_by_role("radio", name="UTC").check()
    expect(times.first).to_have_text(UTC_MOMENT)
    page.reload()
    expect(times.first).to_have_text(UTC_MOMENT)


def test_every_time_on_the_panel_says_utc_without_javascript(open_page, panel, logged_in_state):
    body = charge(panel)
    charge(panel, transaction_id=body["transaction_id"])  # a retry, for the retries page
    page = open_page(state=logged_in_state, java_script_enabled=False)
    for path in ("/admin/", "/admin/transactions", "/admin/retries",
                 f"/admin/transactions/{body['transaction_id']}"):
        page.goto(panel.url + path)
        times = page.locator("main time")
        expect(times.first).to_be_visible()
        for i in range(times.count()):
            shown = times.nth(i)
            pattern = UTC_CLOCK if shown.get_attribute("data-format") == "clock" else UTC_MOMENT
            expect(shown).to_have_text(pattern)
        expect(page.get_by_role("radio", name="Local")).to_be_hidden()  # it would do nothing


# -- a phone ---------------------------------------------------------------------------------


def test_at_phone_width_the_header_is_one_line_whose_menu_opens(open_page, panel,
                                                                logged_in_state):
    page = open_page(PHONE, logged_in_state)
    page.goto(panel.url + "/admin/")
    header = page.locator("header.topbar")
    assert header.bounding_box()["height"] < ONE_LINE_PX
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    rules = page.get_by_role("link", name="Rules", exact=True)
    expect(rules).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(rules).to_be_visible()
    expect(page.get_by_role("radio", name="Local")).to_be_visible()
    assert_fits(page, PHONE["width"])
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    menu.click()
    rules.click()
    expect(page).to_have_url(panel.url + "/admin/rules")
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")


def test_at_desktop_width_the_links_show_inline_on_one_line(admin):
    page = admin
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    tops = set()
    for name in ("Dashboard", "Transactions", "Retries", "Rules", "Connectors", "Settings"):
        link = page.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        tops.add(link.bounding_box()["y"])
    assert len(tops) == 1, f"the links wrap onto {len(tops)} lines"
    expect(page.get_by_role("radio", name="Local")).to_be_visible()


def test_at_phone_width_quick_arm_comes_before_the_payments_list(open_page, panel,
                                                                 logged_in_state):
    for _ in range(15):
        charge(panel)
    page = open_page(PHONE, logged_in_state)
    page.goto(panel.url + "/admin/")
    expect(page.locator("tr[data-transaction-id]")).to_have_count(15)
    quick_arm, listed = measure(page, "form#quick-arm", "#live")
    assert quick_arm["y"] < PHONE["height"], "the quick-arm form is below the first screen"
    assert quick_arm["y"] < listed["y"]
    assert_fits(page, PHONE["width"])


def test_at_desktop_width_the_list_is_left_and_quick_arm_and_rules_right(admin, panel):
    page = admin
    never_matching(panel)
    expect(page.locator(".armed-rule")).to_have_count(1)
    listed, quick_arm, rules = measure(page, "#live", "form#quick-arm", "#armed-rules")
    assert listed["x"] + listed["width"] <= quick_arm["x"]
    assert abs(quick_arm["x"] - rules["x"]) < 30 and rules["y"] > quick_arm["y"]
    assert listed["y"] < quick_arm["y"] + quick_arm["height"]  # side by side, not stacked
