"""The admin panel in a real browser: Chromium, driven by Playwright, against `fakeproc serve`
over loopback. Login, quick-arm, live updates without a reload, the attempt timeline, the rule
form, filters, escaping of what requests bring, and a phone-width layout."""

from __future__ import annotations

import json
import re

import pytest
import requests

from browser_support import (  # noqa: F401  (fixtures are used by name)
    DESKTOP,
    PASSWORD,
    PHONE,
    REFRESH_SECONDS,
    WAIT_MS,
    admin,
    assert_fits,
    browser,
    charge,
    empty_store,
    expect,
    log_in,
    logged_in_state,
    open_page,
    page,
    panel,
    row,
)
from conftest import card_payload

pytestmark = pytest.mark.slow

# -- the acceptance flow ------------------------------------------------------------------------


def test_arm_a_decline_watch_it_arrive_live_and_read_its_timeline(page, panel):
    log_in(page, panel.url, PASSWORD)
    expect(page).to_have_url(panel.url + "/admin/")

    quick_arm = page.locator("form#quick-arm")
    quick_arm.get_by_label("Action").select_option("decline")
    quick_arm.get_by_label("Error code").select_option("lost_card")
    quick_arm.get_by_label("For the next").fill("1")
    quick_arm.get_by_role("button", name="Arm").click()
    expect(page.get_by_role("status").filter(has_text="Armed rule")).to_be_visible()
    armed = page.locator(".armed-rule")
    expect(armed).to_have_count(1)
    expect(armed).to_contain_text("decline lost_card")
    expect(armed).to_contain_text("1 left")

    page.evaluate("window.__marker = 1")
    body = charge(panel)
    declined = row(page, body["transaction_id"])
    expect(declined).to_be_visible(timeout=WAIT_MS)
    expect(declined.locator(".badge-declined")).to_have_text("declined")
    expect(declined).to_contain_text("lost_card")
    expect(page.locator('[data-count="declined"]')).to_have_text("1")
    assert page.evaluate("window.__marker") == 1, "the dashboard reloaded instead of updating"
    assert page.url == panel.url + "/admin/"

    declined.get_by_role("link", name=body["transaction_id"]).click()
    expect(page.get_by_role("heading", name=body["transaction_id"])).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("lost_card")
    attempts = page.locator("ol.timeline > li.attempt")
    expect(attempts).to_have_count(1)
    expect(attempts.first.get_by_text("Attempt 1")).to_be_visible()
    expect(attempts.first.locator(".budget-line")).to_be_visible()
    expect(attempts.first.locator(".budget-label")).to_have_text("0.1 s")  # 10 s, test scale


def test_the_dashboard_keeps_updating_after_the_first_update(admin, panel):
    page = admin
    page.evaluate("window.__marker = 1")
    for _ in range(3):
        body = charge(panel)
        expect(row(page, body["transaction_id"])).to_be_visible(timeout=2_000)
    expect(page.locator('[data-count="succeeded"]')).to_have_text("3")
    assert page.evaluate("window.__marker") == 1


# -- login --------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_and_the_right_one_goes_where_asked(page, panel):
    log_in(page, panel.url, "not the password", path="/admin/transactions")
    expect(page.get_by_role("alert")).to_have_text("That password is not the admin password.")
    assert page.request.get(panel.url + "/admin/live",
                            headers={"HX-Request": "true"}).status == 401
    page.goto(panel.url + "/admin/rules")
    expect(page).to_have_url(panel.url + "/admin/login?next=/admin/rules")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(panel.url + "/admin/rules")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(panel.url + "/admin/login")
    page.goto(panel.url + "/admin/")
    expect(page).to_have_url(panel.url + "/admin/login?next=/admin/")


# -- rules --------------------------------------------------------------------------------------


def test_a_preset_fills_the_rule_form_and_the_saved_rule_is_listed(admin, panel):
    page = admin
    page.get_by_role("link", name="Rules", exact=True).click()
    expect(page.locator("td.empty")).to_have_text("No rules.")
    page.get_by_role("button", name="Decline every Amex card").click()

    form = page.locator("form#rule-form")
    expect(form.locator('[name="action"]')).to_have_value("decline")
    expect(form.locator('[name="card_brand"]')).to_have_value("amex")
    expect(form.locator('[name="error_code"]')).to_have_value("card_declined")
    expect(form.locator('[name="remaining"]')).to_have_value("")
    form.locator('[name="note"]').fill("amex is down today")
    form.get_by_role("button", name="Save rule").click()

    expect(page.get_by_role("status")).to_contain_text("saved")
    listed = page.locator("tr[data-rule-id]")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("decline card_declined")
    expect(listed).to_contain_text("card_brand=amex")
    expect(listed).to_contain_text("amex is down today")
    rules = requests.get(panel.url + "/api/rules", timeout=30).json()["data"]
    assert [(r["match"], r["action"]["error_code"]) for r in rules] == [
        ({"card_brand": "amex"}, "card_declined")]


# -- transactions -------------------------------------------------------------------------------


def test_the_status_filter_shows_only_declined_transactions(admin, panel):
    page = admin
    approved = [charge(panel) for _ in range(2)]
    declined = [charge(panel, amount="2012.00"), charge(panel, cvv="000")]
    page.get_by_role("link", name="Transactions", exact=True).click()
    expect(page.locator("tr[data-transaction-id]")).to_have_count(4)

    page.get_by_label("Status").select_option("declined")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"[?&]status=declined(&|$)"))
    rows = page.locator("tr[data-transaction-id]")
    expect(rows).to_have_count(2)
    shown = {rows.nth(i).get_attribute("data-transaction-id") for i in range(2)}
    assert shown == {body["transaction_id"] for body in declined}
    for i in range(2):
        expect(rows.nth(i).locator(".badge")).to_have_text("declined")
    for body in approved:
        expect(row(page, body["transaction_id"])).to_have_count(0)
    expect(page.get_by_label("Status")).to_have_value("declined")


def test_what_a_request_brings_is_shown_as_text_never_run(admin, panel):
    page = admin
    description = "<script>window.__xss=1</script>"
    parameter = '"><img src=x onerror="window.__xss=2">'
    user_agent = '<img src=x onerror="window.__xss=3">'
    body = card_payload(description=description, parameters={"note": parameter})
    response = requests.post(panel.url + "/", json=body, timeout=30,
                             headers={"User-Agent": user_agent})
    assert response.status_code == 200

    expect(row(page, body["transaction_id"])).to_be_visible()  # the live fragment
    page.get_by_role("link", name="Transactions", exact=True).click()
    expect(row(page, body["transaction_id"])).to_be_visible()
    row(page, body["transaction_id"]).get_by_role("link").click()
    expect(page.get_by_text(description, exact=True)).to_be_visible()
    assert json.loads(page.locator(".summary pre").inner_text()) == {"note": parameter}
    page.get_by_text("Request (masked) and response").click()
    expect(page.locator(".timeline")).to_contain_text(user_agent)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("main img, main script").count() == 0


# -- layout -------------------------------------------------------------------------------------

LONG_ID = "a-rather-long-transaction-id-0123456789"


def test_quick_arm_says_what_twilio_will_do_as_the_choice_changes(admin, panel):
    quick_arm = admin.locator("form#quick-arm")
    effect = admin.locator("#arm-effect")
    expect(effect).to_contain_text("declined with insufficient_funds")
    admin.evaluate("window.__marker = 1")

    quick_arm.get_by_label("Action").select_option("hang")
    expect(effect).to_contain_text("Twilio gives up after 5 retries")
    quick_arm.get_by_label("First attempt only").check()
    expect(effect).to_have_text(
        "The first attempt of the next payment is never answered: Twilio's retry gets the "
        "answer.")
    quick_arm.get_by_label("Every attempt").check()
    quick_arm.get_by_label("Charge anyway (an orphan)").check()
    expect(effect).to_contain_text("the charge is made anyway (an orphan)")
    assert admin.evaluate("window.__marker") == 1, "the page reloaded instead of updating"

    quick_arm.get_by_role("button", name="Arm").click()
    expect(admin.get_by_role("status").filter(has_text="Armed rule")).to_contain_text(
        "Twilio gives up after 5 retries")
    (rule,) = requests.get(panel.url + "/api/rules", timeout=30).json()["data"]
    assert (rule["match"], rule["action"]["type"], rule["action"]["charge"]) == (
        {}, "hang", True)


PHONE_PAGES = [
    "/admin/",
    "/admin/transactions",
    f"/admin/transactions/{LONG_ID}",
    "/admin/retries",
    "/admin/rules?preset=decline-next",
    "/admin/connectors",
    "/admin/settings",
]


@pytest.mark.parametrize("path", PHONE_PAGES)
def test_a_phone_wide_page_does_not_scroll_sideways(open_page, logged_in_state, panel, path):
    body = card_payload(transaction_id=LONG_ID, amount="123456.78", description="d" * 300,
                        parameters={"k" * 40: "v" * 300})
    for _ in range(2):  # a retry, for the retries page
        requests.post(panel.url + "/", json=body, timeout=30)
    charge(panel, amount="2012.00")
    page = open_page(PHONE, logged_in_state)
    page.goto(panel.url + "/admin/")
    page.locator("form#quick-arm").get_by_role("button", name="Arm").click()
    expect(page.locator(".armed-rule")).to_have_count(1)

    page.goto(panel.url + path)
    expect(page.locator("main")).to_be_visible()
    assert_fits(page, PHONE["width"])


def test_an_armed_rule_on_a_transaction_id_fits_a_phone(open_page, logged_in_state, panel):
    rule = {"match": {"transaction_id": "PK0123456789abcdef0123456789abcdef"},
            "action": {"type": "decline", "error_code": "card_declined"}}
    assert requests.post(panel.url + "/api/rules", json=rule, timeout=30).ok
    page = open_page(PHONE, logged_in_state)
    page.goto(panel.url + "/admin/")
    expect(page.locator(".armed-rule")).to_have_count(1)
    assert_fits(page, PHONE["width"])
