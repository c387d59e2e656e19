"""A transaction's page in a real browser says literally what happened to each attempt: a hung
or dropped attempt was never answered, a broken answer is named for what is wrong with it, each
kind of attempt has its own mark, colour and word in the timeline and the legend, an attempt in
flight grows live against Twilio's budget, and an orphan says why it is one."""

from __future__ import annotations

import re
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

from browser_support import (  # noqa: F401  (fixtures are used by name)
    WAIT_MS,
    admin,
    browser,
    empty_store,
    expect,
    logged_in_state,
    open_page,
    panel,
)
from conftest import card_payload

pytestmark = pytest.mark.slow

# (rule action, the attempt's mark, the words it must say). The server's time scale is 0.01:
# Twilio's 10 s budget is 0.1 s, a 65 s hang 0.65 s.
ATTEMPTS = [
    ({"type": "approve"}, "answered", r"^answered in 0\.\d{3} s$"),
    ({"type": "delay", "seconds": 12}, "late",
     r"^answered in 0\.1\d\d s, after Twilio's 0\.1 s: Twilio had given up on it$"),
    ({"type": "hang", "seconds": 65}, "hung", r"^held 0\.6[5-9]\d s, closed without an answer$"),
    ({"type": "drop"}, "dropped", r"^connection dropped after 0\.\d{3} s, without an answer$"),
    ({"type": "http_error", "status": 503}, "http_error", r"^HTTP 503, after 0\.\d{3} s$"),
    ({"type": "malformed", "variant": "not_json"}, "broken",
     r"^HTTP 200, body is not JSON, after 0\.\d{3} s$"),
    ({"type": "malformed", "variant": "truncated"}, "broken",
     r"^HTTP 200, truncated: the body stops short of its Content-Length, after"),
    ({"type": "malformed", "variant": "empty"}, "broken", r"^HTTP 200, empty body, after"),
    ({"type": "malformed", "variant": "html", "status": 200}, "broken", r"^HTTP 200, HTML page,"),
    ({"type": "malformed", "variant": "missing_id"}, "broken", r"^HTTP 200, no charge_id key,"),
    ({"type": "malformed", "variant": "wrong_id_key"}, "broken",
     r"^HTTP 200, wrong id key \(token_id for charge_id\), after"),
    ({"type": "malformed", "variant": "null_id_no_error"}, "broken",
     r"^HTTP 200, charge_id null and no error_code, after"),
]
MARKS = ["answered", "late", "broken", "http_error", "hung", "dropped", "in_flight",
         "interrupted"]


def send(base: str, body: dict[str, Any], path: str = "/") -> None:
    """One attempt, as Twilio sends it; a hung or dropped one ends in a closed connection."""
    try:
        requests.post(base + path, json=body, timeout=30)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        pass


def open_transaction(page: Any, base: str, transaction_id: str) -> Any:
    page.goto(f"{base}/admin/transactions/{quote(transaction_id, safe='')}")
    expect(page.locator("ol.timeline > li.attempt").first).to_be_visible()
    return page.locator("ol.timeline > li.attempt")


@pytest.mark.parametrize(("action", "mark", "words"), ATTEMPTS,
                         ids=[f"{a['type']}-{a.get('variant', '')}" for a, _, _ in ATTEMPTS])
def test_each_attempt_is_drawn_as_what_it_was(admin, panel, action, mark, words):
    rule = {"action": {**action, **({"charge": True} if action["type"] in (
        "hang", "drop", "http_error", "malformed") else {})}, "remaining": 1}
    assert requests.post(panel.url + "/api/rules", json=rule, timeout=30).ok
    body = card_payload()
    send(panel.url, body)
    attempt = open_transaction(admin, panel.url, body["transaction_id"]).first

    expect(attempt).to_have_attribute("data-mark", mark)
    said = attempt.locator(".attempt-words").inner_text()
    assert re.search(words, said), said
    if mark not in ("answered", "late"):
        assert "answered" not in attempt.locator(".attempt-times").inner_text()
    badge = attempt.locator(".badge-mark")
    legend = admin.locator(f".legend li.mark-{mark}")
    word = legend.locator("strong").inner_text()
    glyph = legend.locator(".mark").inner_text()
    expect(badge).to_have_text(f"{glyph} {word}")  # readable without its colour
    colour = "el => getComputedStyle(el).backgroundColor"
    assert badge.evaluate(colour) == legend.locator(".mark").evaluate(colour)


def test_every_mark_has_its_own_colour_glyph_and_word_in_the_legend(admin, panel):
    body = card_payload()
    send(panel.url, body)
    open_transaction(admin, panel.url, body["transaction_id"])
    items = admin.locator(".legend li")
    expect(items).to_have_count(len(MARKS))
    seen = [items.nth(i).evaluate(
        "li => [li.className, li.querySelector('.mark').textContent,"
        " li.querySelector('strong').textContent,"
        " getComputedStyle(li.querySelector('.mark')).backgroundColor]")
        for i in range(len(MARKS))]
    assert [item[0] for item in seen] == [f"mark-{key}" for key in MARKS]
    for column in (1, 2, 3):  # glyph, word and colour: none shared by two marks
        assert len({item[column] for item in seen}) == len(MARKS), seen


def test_an_orphan_says_why_and_links_to_the_orphans(admin, panel):
    rule = {"action": {"type": "hang", "seconds": 12, "charge": True}, "remaining": 1}
    assert requests.post(panel.url + "/api/rules", json=rule, timeout=30).ok
    body = card_payload()
    for _ in range(6):  # the first attempt and Twilio's five retries, all held past the budget
        send(panel.url, body)
    attempts = open_transaction(admin, panel.url, body["transaction_id"])
    expect(attempts).to_have_count(6)
    charge_id = requests.get(f"{panel.url}/api/transactions/{body['transaction_id']}",
                             timeout=30).json()["charge_id"]
    why = admin.get_by_role("note")
    expect(why).to_have_text(
        f"Orphan: charged ({charge_id}); Twilio got no usable answer to any of its 6 attempts. "
        "All orphans →")
    why.get_by_role("link", name="All orphans →").click()
    expect(admin).to_have_url(re.compile(r"/admin/transactions\?orphaned=1$"))
    expect(admin.locator(f'tr[data-transaction-id="{body["transaction_id"]}"]')).to_be_visible()


def test_an_answered_transaction_has_no_orphan_sentence(admin, panel):
    body = card_payload()
    send(panel.url, body)
    open_transaction(admin, panel.url, body["transaction_id"])
    expect(admin.get_by_role("note")).to_have_count(0)


@pytest.fixture
def slow_connector(panel: Any) -> Any:
    """A connector whose Twilio waits 600 s (6 s under the test scale), so that an attempt in
    flight is well inside its budget while the test watches it."""
    created = requests.post(panel.url + "/api/connectors", timeout=30,
                            json={"unique_name": "patient", "timeout_seconds": 600})
    assert created.status_code == 201, created.text
    yield "/connectors/patient/"
    requests.delete(panel.url + "/api/connectors/patient", timeout=30)


def test_an_attempt_in_flight_grows_live_then_shows_how_it_ended(admin, panel, slow_connector):
    rule = {"action": {"type": "hang", "seconds": 120, "charge": True}, "remaining": 1}
    assert requests.post(panel.url + "/api/rules", json=rule, timeout=30).ok
    body = card_payload()
    sender = threading.Thread(target=send, args=(panel.url, body, slow_connector))
    sender.start()
    try:
        wait_open(panel.url, body["transaction_id"])
        attempt = open_transaction(admin, panel.url, body["transaction_id"]).first
        admin.evaluate("window.__marker = 1")
        expect(attempt).to_have_attribute("data-mark", "in_flight")
        expect(attempt.locator(".badge-mark")).to_have_text("… in flight")
        expect(attempt.locator(".budget-label")).to_have_text("6 s")
        first = bar_percent(attempt)
        assert first < 100 / 1.5, "an attempt inside its budget is drawn past the budget line"
        expect(attempt.locator(".attempt-words")).to_have_text(
            re.compile(r"^in flight for \d+\.\d{3} s$"))
        admin.wait_for_function(  # the bar grows with the time, without a reload
            "w => parseFloat(document.querySelector('.attempt .budget-bar').style.width) > w",
            arg=first + 2, timeout=WAIT_MS)
        assert admin.evaluate("window.__marker") == 1

        # When the hang ends, the page follows without a reload and stops following.
        expect(attempt).to_have_attribute("data-mark", "hung", timeout=WAIT_MS)
        attempt = admin.locator("ol.timeline > li.attempt").first
        expect(attempt.locator(".attempt-words")).to_have_text(
            re.compile(r"^held 1\.2\d\d s, closed without an answer$"))
        expect(admin.get_by_text("following live")).to_have_count(0)
        expect(admin.get_by_role("note")).to_contain_text(
            "Twilio got no usable answer to its only attempt")
        assert admin.evaluate("window.__marker") == 1, "the page reloaded instead of updating"
    finally:
        sender.join(30)


def wait_open(base: str, transaction_id: str) -> None:
    """Wait (real seconds, at most 10) until the transaction's first attempt is recorded open."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = requests.get(f"{base}/api/transactions/{transaction_id}", timeout=30)
        if response.ok and response.json()["attempts"][0]["delivery"] is None:
            return
        time.sleep(0.005)
    raise AssertionError(f"{transaction_id} was never seen with an open attempt")


def bar_percent(attempt: Any) -> float:
    return attempt.locator(".budget-bar").evaluate(
        "bar => bar.getBoundingClientRect().width / bar.parentElement.getBoundingClientRect()"
        ".width * 100")
