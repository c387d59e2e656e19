"""The admin panel through Flask's test client: login, CSRF, escaping, and each page doing what
its buttons say (browser tests are in test_admin_browser.py)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from typing import Any

import pytest

from conftest import card_payload

PASSWORD = "letmein-42"
SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror="window.__xss=2">'
PAGES = ["/admin/", "/admin/live", "/admin/live/rules", "/admin/transactions", "/admin/retries",
         "/admin/rules", "/admin/connectors", "/admin/connectors/Default", "/admin/settings",
         "/admin/settings/export.csv", "/admin/settings/export.json", "/admin/logout"]
POSTS = ["/admin/quick-arm", "/admin/rules", "/admin/rules/1/toggle", "/admin/rules/1/delete",
         "/admin/connectors", "/admin/connectors/Default", "/admin/connectors/Other/delete",
         "/admin/settings", "/admin/logout"]
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: Any, page: str = "/admin/") -> str:
    match = _TOKEN.search(client.get(page).get_data(as_text=True))
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def post_form(client: Any, path: str, data: dict[str, Any], page: str = "/admin/") -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, page), **data})


def log_in(client: Any, password: str = PASSWORD) -> Any:
    return post_form(client, "/admin/login", {"password": password}, "/admin/login")


def charge(client: Any, **overrides: Any) -> dict[str, Any]:
    body = card_payload(**overrides)
    response = client.post("/", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return body | response.get_json()


def rules_of(client: Any) -> list[dict[str, Any]]:
    return client.get("/api/rules").get_json()["data"]


# -- login -----------------------------------------------------------------------------------

@pytest.fixture
def locked(make_app):
    return make_app(ADMIN_PASSWORD=PASSWORD).test_client()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_a_visitor_to_the_login_when_a_password_is_set(locked, page):
    response = locked.get(page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


@pytest.mark.parametrize("path", POSTS)
def test_every_form_is_refused_before_login_even_with_a_valid_csrf_token(locked, path):
    token = csrf_token(locked, "/admin/login")
    response = locked.post(path, data={"csrf_token": token, "action": "decline",
                                       "count": "1", "confirm": "reset"})
    assert response.status_code == 401
    assert rules_of(locked) == []


def test_the_right_password_logs_in_and_returns_to_the_page_asked_for(locked):
    token = csrf_token(locked, "/admin/login")
    response = locked.post("/admin/login?next=/admin/rules",
                           data={"csrf_token": token, "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/rules"
    assert locked.get("/admin/rules").status_code == 200


def test_a_wrong_password_is_refused_and_says_so(locked):
    response = log_in(locked, "guess")
    assert response.status_code == 200
    assert "not the admin password" in response.get_data(as_text=True)
    assert locked.get("/admin/").status_code == 302


def test_login_never_redirects_to_another_site(locked):
    for target in ("https://evil.example/", "//evil.example/admin", "/admin//evil.example"):
        token = csrf_token(locked, "/admin/login")
        response = locked.post(f"/admin/login?next={target}",
                               data={"csrf_token": token, "password": PASSWORD})
        assert response.headers["Location"] == "/admin/"


def test_logging_out_takes_a_post_with_its_token(locked):
    log_in(locked)
    assert locked.get("/admin/logout").status_code == 200  # a page with the button
    assert locked.get("/admin/").status_code == 200
    assert locked.post("/admin/logout", data={}).status_code == 400
    assert post_form(locked, "/admin/logout", {}).status_code == 302
    assert locked.get("/admin/").status_code == 302


def test_the_admin_token_logs_in_when_no_password_is_set(make_app):
    client = make_app(ADMIN_TOKEN="t0ken-xyz").test_client()
    assert client.get("/admin/").status_code == 302
    assert log_in(client, "t0ken-xyz").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_session_cookie_is_http_only_and_same_site(locked):
    response = log_in(locked)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_login_holds_on_another_app_on_the_same_store(make_app):
    """Several processes share a store: the session key is the store's, not the process's."""
    first = make_app(ADMIN_PASSWORD=PASSWORD).test_client()
    log_in(first)
    second = make_app(ADMIN_PASSWORD=PASSWORD).test_client()
    second.set_cookie("session", first.get_cookie("session").value)
    assert second.get("/admin/").status_code == 200


# -- CSRF ------------------------------------------------------------------------------------

def test_a_form_post_without_a_csrf_token_is_refused_and_changes_nothing(client):
    response = client.post("/admin/quick-arm", data={"action": "decline", "count": "1",
                                                     "error_code": "lost_card"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert rules_of(client) == []


def test_a_token_from_another_session_is_refused(make_app):
    stranger, victim = make_app().test_client(), make_app().test_client()
    token = csrf_token(stranger)
    victim.get("/admin/")
    response = victim.post("/admin/settings", data={"csrf_token": token, "confirm": "reset"})
    assert response.status_code == 400


def test_the_processor_and_the_api_need_no_csrf_token(client):
    charge(client)
    assert client.post("/api/rules", json={"action": {"type": "approve"}}).status_code == 201


# -- what a request brought is shown inert ---------------------------------------------------

def test_script_and_attribute_injection_render_as_text_everywhere(client):
    body = charge(client, transaction_id=f"tx-{SCRIPT}", description=f"{SCRIPT} {IMG}",
                  parameters={"note": IMG, IMG: SCRIPT})
    client.post("/", json={k: v for k, v in body.items() if k in card_payload()})  # a retry
    detail = f"/admin/transactions/{body['transaction_id']}"
    for page in ("/admin/", "/admin/live", "/admin/transactions", "/admin/retries", detail):
        text = client.get(page).get_data(as_text=True)
        assert "<script>window" not in text and "<img src=x" not in text, page
        assert html.escape(SCRIPT, quote=False) in text or "\\u003cscript" in text, page


def test_the_live_rules_fragment_shows_a_rules_match_as_text(client):
    rule = {"match": {"transaction_id": f"tx-{SCRIPT}"}, "action": {"type": "approve"}}
    assert client.post("/api/rules", json=rule).status_code == 201
    text = client.get("/admin/live/rules").get_data(as_text=True)
    assert "<script>window" not in text
    assert html.escape(SCRIPT, quote=False) in text
    assert 'name="csrf_token"' in text  # its delete buttons post with a token


# -- quick arm and rules ---------------------------------------------------------------------

def test_quick_arm_declines_exactly_the_next_payment_with_the_chosen_code(client):
    response = post_form(client, "/admin/quick-arm", {
        "action": "decline", "error_code": "lost_card", "count": "1", "connector": ""})
    assert response.status_code == 302
    (rule,) = rules_of(client)
    assert rule["action"] == {"type": "decline", "error_code": "lost_card"}
    assert rule["remaining"] == 1
    assert charge(client)["error_code"] == "lost_card"
    assert charge(client)["charge_id"].startswith("ch_")
    assert "No rules armed" in client.get("/admin/").get_data(as_text=True)


def test_quick_arm_delay_hang_and_http_error_make_the_matching_rules(client):
    client.post("/api/connectors", json={"unique_name": "Shop"})
    for fields, action in (
            ({"action": "delay", "seconds": "12"}, {"type": "delay", "seconds": 12.0}),
            ({"action": "hang", "seconds": "30", "charge": "y"},
             {"type": "hang", "seconds": 30.0, "charge": True}),
            ({"action": "http_error", "status": "503"},
             {"type": "http_error", "status": 503, "charge": False})):
        response = post_form(client, "/admin/quick-arm",
                             {"count": "3", "connector": "Shop", **fields})
        assert response.status_code == 302
        rule = rules_of(client)[0]
        assert {k: v for k, v in rule["action"].items() if k in action} == action
        assert rule["match"] == {"connector": "Shop"} and rule["remaining"] == 3


@pytest.mark.parametrize("attempts,match,note", [
    ("every", {}, "quick-arm: hang the next 1 payment"),
    ("first", {"attempt": 1}, "quick-arm: hang the first attempt of the next 1 payment"),
])
def test_quick_arm_asks_every_attempt_or_the_first_only(client, attempts, match, note):
    response = post_form(client, "/admin/quick-arm",
                         {"action": "hang", "seconds": "65", "count": "1", "attempts": attempts})
    assert response.status_code == 302
    (rule,) = rules_of(client)
    assert (rule["match"], rule["note"]) == (match, note)


def test_quick_arm_every_attempt_holds_the_retries_of_the_payment(client):
    post_form(client, "/admin/quick-arm", {"action": "http_error", "status": "503",
                                           "count": "1", "attempts": "every"})
    body = card_payload()
    assert [client.post("/", json=body).status_code for _ in range(3)] == [503, 503, 503]
    assert client.post("/", json=card_payload()).status_code == 200


def effect_of(client: Any, **fields: str) -> str:
    response = client.get("/admin/quick-arm/effect", query_string=fields,
                          headers={"HX-Request": "true"})
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "<" not in text, "the sentence comes alone and escaped (it names <Pay>)"
    return html.unescape(text)


@pytest.mark.parametrize("fields,words", [
    ({"action": "hang", "attempts": "every"},
     "No attempt of the next payment is ever answered: Twilio gives up after 5 retries with "
     "payment-connector-error; nothing is charged."),
    ({"action": "hang", "attempts": "every", "charge": "y", "count": "3"},
     "No attempt of each of the next 3 payments is ever answered: Twilio gives up after 5 "
     "retries with payment-connector-error; the charge is made anyway (an orphan)."),
    ({"action": "hang", "attempts": "first"},
     "The first attempt of the next payment is never answered: Twilio's retry gets the "
     "answer."),
    ({"action": "delay", "seconds": "12", "attempts": "first"},
     "The first attempt of the next payment is answered after 12 s, past Twilio's 10 s: "
     "Twilio's retry gets the answer, and the charge is made once."),
    ({"action": "delay", "seconds": "12", "attempts": "every"},
     "Every attempt of the next payment is answered after 12 s, past Twilio's 10 s: Twilio "
     "gives up after 5 retries with payment-connector-error, although the charge was made "
     "(an orphan)."),
    ({"action": "delay", "seconds": "4", "attempts": "every"},
     "The next payment is answered after 4 s, inside Twilio's 10 s: it goes through on its "
     "first attempt."),
    ({"action": "drop", "attempts": "first"},
     "The first connection of the next payment is closed without an answer: Twilio's retry "
     "gets the answer."),
    ({"action": "http_error", "status": "503", "attempts": "every"},
     "The next payment gets HTTP 503: Twilio does not retry an HTTP answer, so <Pay> ends at "
     "once with payment-connector-error."),
    ({"action": "decline", "error_code": "lost_card"},
     "The next payment is declined with lost_card: Twilio's <Pay> ends at once with "
     "payment-connector-error and that code; a retry would hear the same."),
])
def test_quick_arm_says_what_twilio_will_do(client, fields, words):
    assert effect_of(client, **fields) == words


def test_quick_arm_effect_uses_the_chosen_connector_s_timeout(client):
    client.post("/api/connectors", json={"unique_name": "Slow", "timeout_seconds": 20})
    assert "inside Twilio's 20 s" in effect_of(client, action="delay", seconds="12",
                                               connector="Slow", attempts="every")


def test_the_dashboard_shows_the_default_choice_and_arming_repeats_it(client):
    text = html.unescape(client.get("/admin/").get_data(as_text=True))
    assert "The next payment is declined with insufficient_funds" in text
    assert re.search(r'<input checked [^>]*value="every"> Every attempt', text)
    response = post_form(client, "/admin/quick-arm", {"action": "hang", "count": "1",
                                                      "attempts": "first"})
    flashed = html.unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Twilio's retry gets the answer" in flashed


def test_quick_arm_refuses_a_bad_count_with_a_message(client):
    response = post_form(client, "/admin/quick-arm", {"action": "decline", "count": "0"})
    assert response.status_code == 400
    assert "count" in response.get_data(as_text=True)
    assert rules_of(client) == []


def test_a_preset_fills_the_rule_form(client):
    text = client.get("/admin/rules?preset=delay-next").get_data(as_text=True)
    assert re.search(r'<option selected value="delay">', text)
    assert 'name="seconds" type="number" step="any" value="12.0"' in text or \
        re.search(r'name="seconds"[^>]*value="12.0"', text)


def test_the_rule_form_stores_match_action_and_lifetime(client):
    response = post_form(client, "/admin/rules", {
        "method": "charge", "card_brand": "visa", "amount_min": "10", "amount_max": "99.50",
        "match_parameters": "plan=gold\nregion = eu", "action": "delay", "seconds": "12",
        "outcome": "decline", "outcome_error_code": "do_not_honor", "remaining": "2",
        "probability": "0.5", "priority": "7", "enabled": "y", "note": "slow gold",
        "variant": "not_json", "charge": ""}, "/admin/rules")
    assert response.status_code == 302, response.get_data(as_text=True)
    (rule,) = rules_of(client)
    assert rule["match"] == {"method": "charge", "card_brand": "visa", "amount_min": "10",
                             "amount_max": "99.50",
                             "parameters": {"plan": "gold", "region": "eu"}}
    assert rule["action"] == {"type": "delay", "seconds": 12.0,
                              "outcome": {"type": "decline", "error_code": "do_not_honor"}}
    assert (rule["remaining"], rule["probability"], rule["priority"], rule["note"]) == (
        2, 0.5, 7, "slow gold")


def test_a_wrong_rule_is_refused_naming_the_field_and_nothing_is_stored(client):
    response = post_form(client, "/admin/rules", {
        "action": "decline", "error_code": "Not A Code", "variant": "not_json"},
        "/admin/rules")
    assert response.status_code == 400
    assert "action.error_code" in response.get_data(as_text=True)
    assert rules_of(client) == []


def test_rules_can_be_disabled_enabled_and_deleted(client):
    rule = client.post("/api/rules", json={"action": {"type": "approve"}}).get_json()
    toggle, delete = f"/admin/rules/{rule['id']}/toggle", f"/admin/rules/{rule['id']}/delete"
    post_form(client, toggle, {})
    assert rules_of(client)[0]["enabled"] is False
    post_form(client, toggle, {})
    assert rules_of(client)[0]["enabled"] is True
    assert post_form(client, delete, {}).status_code == 302
    assert rules_of(client) == []
    assert post_form(client, delete, {}).status_code == 404


# -- connectors ------------------------------------------------------------------------------

def test_a_connector_is_created_and_its_password_is_never_shown(client):
    response = post_form(client, "/admin/connectors", {
        "unique_name": "Shop", "username": "shop-user", "password": "hunter2-secret",
        "mode": "open", "idempotency": "reprocess", "timeout_seconds": "8"}, "/admin/connectors")
    assert response.status_code == 302
    shop = client.get("/api/connectors/Shop").get_json()
    assert shop == {"unique_name": "Shop", "username": "shop-user", "has_password": True,
                    "mode": "open", "idempotency": "reprocess", "magic_values": False,
                    "timeout_seconds": 8.0}
    for page in ("/admin/connectors", "/admin/connectors/Shop"):
        assert "hunter2-secret" not in client.get(page).get_data(as_text=True)


def test_editing_a_connector_keeps_its_password_unless_one_is_typed_or_removed(client):
    client.post("/api/connectors", json={"unique_name": "Shop", "username": "u",
                                         "password": "p"})
    form = {"username": "u", "mode": "test", "idempotency": "replay", "magic_values": "y",
            "timeout_seconds": "10"}
    page = "/admin/connectors/Shop"
    assert post_form(client, page, form, page).status_code == 302
    assert client.get("/api/connectors/Shop").get_json()["has_password"] is True
    post_form(client, page, {**form, "clear_password": "y"}, page)
    assert client.get("/api/connectors/Shop").get_json()["has_password"] is False


def test_a_duplicate_connector_name_is_refused_with_a_message(client):
    response = post_form(client, "/admin/connectors", {
        "unique_name": "Default", "mode": "test", "idempotency": "replay",
        "timeout_seconds": "10"}, "/admin/connectors")
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)


def test_the_default_connector_cannot_be_deleted(client):
    response = post_form(client, "/admin/connectors/Default/delete", {})
    assert response.status_code == 409
    assert client.get("/api/connectors/Default").status_code == 200


# -- transactions, timeline, retries ---------------------------------------------------------

def test_the_list_filters_and_pages_like_the_api(client):
    for _ in range(52):
        charge(client)
    declined = charge(client, amount="2001.00")
    first = client.get("/admin/transactions").get_data(as_text=True)
    assert first.count("data-transaction-id=") == 50 and 'rel="next"' in first
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1)
    second = client.get(html.unescape(older)).get_data(as_text=True)
    assert second.count("data-transaction-id=") == 3 and 'rel="next"' not in second
    only = client.get("/admin/transactions?status=declined").get_data(as_text=True)
    assert only.count("data-transaction-id=") == 1 and declined["transaction_id"] in only
    found = client.get(f"/admin/transactions?q={declined['transaction_id']}")
    assert found.get_data(as_text=True).count("data-transaction-id=") == 1


def test_a_bad_filter_is_a_message_not_an_error(client):
    response = client.get("/admin/transactions?status=lost")
    assert response.status_code == 200
    assert "status must be one of" in response.get_data(as_text=True)


def test_the_timeline_shows_each_attempt_late_marks_and_the_budget(client):
    body = card_payload(amount="4012.00")  # 12 s first attempt: late for Twilio's 10 s
    client.post("/", json=body)
    client.post("/", json=body)
    text = client.get(f"/admin/transactions/{body['transaction_id']}").get_data(as_text=True)
    assert 'data-attempt="1"' in text and 'data-attempt="2"' in text
    assert re.findall(r'data-mark="(\w+)"', text) == ["late", "answered"]
    assert "magic:amount=4012.00" in text
    assert "Twilio waits 0.1 s" in text  # the 10 s budget under the test time scale
    assert "4111111111111111" not in text and "123" not in re.findall(r'"cvv": "[^"]*"', text)


def test_an_unknown_transaction_is_a_404_page(client):
    response = client.get("/admin/transactions/nope")
    assert response.status_code == 404 and "no transaction nope" in response.get_data(
        as_text=True)


def test_the_retries_page_lists_retried_transactions_with_gaps(client):
    body = card_payload()
    client.post("/", json=body)
    client.post("/", json=body)
    charge(client)
    text = client.get("/admin/retries").get_data(as_text=True)
    assert body["transaction_id"] in text and text.count("<tr>") == 2  # header + one


def test_the_dashboard_counts_and_lists_the_latest(client):
    charge(client)
    charge(client, amount="2001.00")
    text = client.get("/admin/live").get_data(as_text=True)
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', text))
    assert counts["today"] == "2" and counts["succeeded"] == "1" and counts["declined"] == "1"
    assert text.count("data-transaction-id=") == 2


# -- settings --------------------------------------------------------------------------------

def test_reset_needs_the_word_and_then_forgets_transactions(client):
    charge(client)
    client.post("/api/rules", json={"action": {"type": "approve"}})
    refused = post_form(client, "/admin/settings", {"confirm": "yes"})
    assert refused.status_code == 400 and "Nothing was deleted" in refused.get_data(as_text=True)
    assert len(client.get("/api/transactions").get_json()["data"]) == 1
    assert post_form(client, "/admin/settings", {"confirm": "reset"}).status_code == 302
    assert client.get("/api/transactions").get_json()["data"] == []
    assert len(rules_of(client)) == 1
    post_form(client, "/admin/settings", {"confirm": "reset", "rules": "y"})
    assert rules_of(client) == []


def test_exports_carry_every_transaction_and_no_card_number(client):
    made = [charge(client)["transaction_id"] for _ in range(3)]
    made.append(charge(client, description="=HYPERLINK(\"x\")")["transaction_id"])
    exported = client.get("/admin/settings/export.json")
    assert exported.headers["Content-Disposition"].endswith("fakeproc-transactions.json")
    assert [t["transaction_id"] for t in json.loads(exported.data)] == made[::-1]
    rows = list(csv.DictReader(io.StringIO(
        client.get("/admin/settings/export.csv").get_data(as_text=True))))
    assert [r["transaction_id"] for r in rows] == made[::-1]
    assert rows[0]["description"] == "'=HYPERLINK(\"x\")"  # no formula for spreadsheets
    assert "4111111111111111" not in exported.get_data(as_text=True)


def test_settings_show_the_time_scale_and_the_magic_values(client):
    text = client.get("/admin/settings").get_data(as_text=True)
    assert 'id="time-scale">0.01<' in text
    assert "2001 insufficient_funds" in text and "fakeproc_scenario" in text


@pytest.mark.parametrize("path, status", [
    ("/admin/transactions?q=a%00b", 400), ("/admin/transactions?connector=%00", 400),
    ("/admin/transactions/tx%00", 404), ("/admin/connectors/Shop%00", 404)])
def test_what_no_store_can_hold_is_a_clear_4xx_page(client, path, status):
    """PostgreSQL text cannot hold a NUL: refused before any query, on every store alike."""
    response = client.get(path)
    assert response.status_code == status
    assert "NUL" in response.get_data(as_text=True) or "no " in response.get_data(as_text=True)
