"""The pytest plugin as its users meet it: sample test files run by pytester in a subprocess
(so each has its own plugin state), with fakeproc installed and nothing else configured."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

EVERY_FIXTURE = '''
import requests

TIMEOUT = 10 * 0.01  # Twilio's 10 s, at the plugin's default time scale


def post(server, body, timeout=5):
    return requests.post(server.url + "/", json=body, auth=server.auth, timeout=timeout)


def test_app_and_client(fakeproc_app, fakeproc_client, fakeproc_payload):
    assert fakeproc_app.config["TIME_SCALE"] == 0.01
    answer = fakeproc_client.post("/", json=fakeproc_payload()).get_json()
    assert answer["charge_id"].startswith("ch_")


def test_server_fields(fakeproc_server):
    assert fakeproc_server.url == f"http://127.0.0.1:{fakeproc_server.port}"
    assert fakeproc_server.username is None and fakeproc_server.password is None
    assert requests.get(fakeproc_server.url + "/api/health", timeout=5).ok


def test_each_test_starts_from_an_empty_store(fakeproc):
    assert fakeproc.transactions() == [] and fakeproc.rules() == []


def test_decline_and_approve_next(fakeproc, fakeproc_server, fakeproc_payload):
    fakeproc.decline_next("lost_card", count=2, message="Reported lost")
    declined = [fakeproc_payload(), fakeproc_payload()]
    for body in declined:
        assert post(fakeproc_server, body).json()["error_message"] == "Reported lost"
    fakeproc.approve_next(amount="2001.00")  # beats the magic decline amount
    approved = fakeproc_payload(amount="2001.00")
    assert post(fakeproc_server, approved).json()["charge_id"]
    fakeproc.assert_declined(declined[0]["transaction_id"], "lost_card")
    fakeproc.assert_not_charged(declined[1]["transaction_id"])
    fakeproc.assert_charged_once(approved["transaction_id"])
    assert [t["status"] for t in fakeproc.transactions()] == ["succeeded", "declined", "declined"]
    assert len(fakeproc.transactions(status="declined")) == 2


def test_delay_next_times_out_once_and_the_retry_gets_the_charge(fakeproc, fakeproc_server,
                                                                  fakeproc_payload):
    fakeproc.delay_next(12, attempt=1)
    body = fakeproc_payload()
    try:
        post(fakeproc_server, body, timeout=TIMEOUT)
        raise AssertionError("the first attempt should have timed out")
    except requests.Timeout:
        pass
    answer = post(fakeproc_server, body, timeout=2)
    assert answer.json()["charge_id"] == fakeproc.transaction(body["transaction_id"])["charge_id"]
    fakeproc.assert_retried(body["transaction_id"], attempts=2)
    fakeproc.assert_charged_once(body["transaction_id"])
    (retry,) = fakeproc.retries()
    assert retry["transaction_id"] == body["transaction_id"]


def test_hang_with_charge_is_an_orphan(fakeproc, fakeproc_server, fakeproc_payload):
    fakeproc.hang_next(charge=True, seconds=11)  # every attempt of the next payment
    body = fakeproc_payload()
    for _ in range(6):
        try:
            post(fakeproc_server, body, timeout=TIMEOUT)
        except requests.Timeout:
            continue
        raise AssertionError("a hung attempt was answered")
    fakeproc.wait_idle()  # the last hang ends 0.11 s after it began
    fakeproc.assert_retried(body["transaction_id"], attempts=6)
    fakeproc.assert_orphaned(body["transaction_id"])
    (orphan,) = fakeproc.orphans()
    assert orphan["transaction_id"] == body["transaction_id"]


def test_drop_fail_and_malformed_next(fakeproc, fakeproc_server, fakeproc_payload):
    fakeproc.drop_next()
    try:
        post(fakeproc_server, fakeproc_payload())
        raise AssertionError("the connection should have been dropped")
    except requests.ConnectionError:
        pass
    fakeproc.fail_next(503, body="busy")
    answer = post(fakeproc_server, fakeproc_payload())
    assert (answer.status_code, answer.text) == (503, "busy")
    fakeproc.malformed_next("html")
    assert post(fakeproc_server, fakeproc_payload()).text.lstrip().startswith("<")


def test_add_rule_remove_rule_and_connectors(fakeproc, fakeproc_server, fakeproc_payload):
    rule = fakeproc.add_rule({"card_brand": "amex"},
                             {"type": "decline", "error_code": "fraudulent"},
                             priority=5, note="no amex")
    assert fakeproc.rules()[0]["note"] == "no amex"
    fakeproc.remove_rule(rule["id"])
    assert fakeproc.rules() == []
    fakeproc.add_connector("Shop", username="shop", password="pw", idempotency="reprocess")
    body = fakeproc_payload()
    url = fakeproc_server.url + "/connectors/Shop"
    assert requests.post(url, json=body, timeout=5).status_code == 401
    assert requests.post(url, json=body, auth=("shop", "pw"), timeout=5).json()["charge_id"]
    fakeproc.assert_charged_once(body["transaction_id"], connector="Shop")
    fakeproc.update_connector("Shop", password="new")
    assert requests.post(url, json=fakeproc_payload(), auth=("shop", "pw"),
                         timeout=5).status_code == 401


def test_reset_forgets_transactions_and_rules(fakeproc, fakeproc_client, fakeproc_payload):
    fakeproc.decline_next()
    fakeproc_client.post("/", json=fakeproc_payload())
    fakeproc.reset()
    assert fakeproc.transactions() == [] and fakeproc.rules() == []


def test_payloads_are_realistic_and_overridable(fakeproc_payload):
    card = fakeproc_payload()
    assert card["method"] == "charge" and card["cardnumber"] and card["description"]
    ach = fakeproc_payload("tokenize", ach=True, description=None)
    assert ach["bankaccountnumber"] and "amount" not in ach and "description" not in ach
    assert fakeproc_payload(scenario="hang")["parameters"]["fakeproc_scenario"] == "hang"
'''

FAILING_HELPERS = '''
def test_charged_once(fakeproc, fakeproc_client, fakeproc_payload):
    body = fakeproc_payload(amount="2001.00")
    fakeproc_client.post("/", json=body)
    fakeproc.assert_charged_once(body["transaction_id"])


def test_retried(fakeproc, fakeproc_client, fakeproc_payload):
    body = fakeproc_payload()
    fakeproc_client.post("/", json=body)
    fakeproc.assert_retried(body["transaction_id"], attempts=3)


def test_unknown(fakeproc, fakeproc_client, fakeproc_payload):
    fakeproc_client.post("/", json=fakeproc_payload(transaction_id="PKknown"))
    fakeproc.assert_declined("PKmissing")


def test_refused_rule(fakeproc):
    fakeproc.decline_next("Not A Code")


def test_orphaned(fakeproc, fakeproc_client, fakeproc_payload):
    body = fakeproc_payload()
    fakeproc_client.post("/", json=body)
    fakeproc.assert_orphaned(body["transaction_id"])
'''


def test_a_sample_using_every_fixture_and_controller_method_passes(pytester):
    pytester.makepyfile(test_sample=EVERY_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)


def test_failing_helpers_say_what_did_happen(pytester):
    pytester.makepyfile(test_failing=FAILING_HELPERS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines([
        "*PK* was charged 0 times, not once",
        "*charge on Default: declined insufficient_funds, no id, issued 0, orphaned False",
        "*attempt 1 (original): response 200, rules magic:amount=2001.00",
        "*PK* had 1 attempt(s), expected 3 attempts",
        "*fakeproc has no transaction PKmissing; the latest it has: PKknown",
        "*FakeprocError: POST /api/rules: action.error_code: String should match pattern*",
        "*PK* is not an orphan",
        "*charge on Default: succeeded, ch_*, issued 1, orphaned False",
    ])


def test_an_error_inside_fakeproc_fails_the_test_that_caused_it(pytester):
    pytester.makepyfile(test_boom='''
import requests

def boom(*args, **kwargs):
    raise RuntimeError("the ledger broke")

def test_panel(fakeproc_server, monkeypatch):
    monkeypatch.setattr("fakeproc.store.ledger.counts", boom)
    requests.get(fakeproc_server.url + "/admin/live", timeout=5)

def test_next_test_is_clean(fakeproc_server):
    assert requests.get(fakeproc_server.url + "/admin/live", timeout=5).ok
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the ledger broke*",
                                 "*FakeprocServerError: fakeproc raised 1 error(s)*"])


def test_ini_options_set_credentials_port_and_time_scale(pytester):
    pytester.makeini("""
[pytest]
fakeproc_username = twilio
fakeproc_password = s3cret
fakeproc_time_scale = 0.5
fakeproc_seed = 42
""")
    pytester.makepyfile(test_ini='''
import requests

def test_settings(fakeproc_server, fakeproc_app, fakeproc_payload):
    assert fakeproc_app.config["TIME_SCALE"] == 0.5
    assert fakeproc_server.auth == ("twilio", "s3cret")
    body = fakeproc_payload()
    assert requests.post(fakeproc_server.url + "/", json=body, timeout=5).status_code == 401
    ok = requests.post(fakeproc_server.url + "/", json=body, auth=fakeproc_server.auth, timeout=5)
    assert ok.json()["charge_id"]

def test_seeded_payloads_repeat(fakeproc_payload):
    from fakeproc.testing.payloads import Payloads
    assert fakeproc_payload() == Payloads(42)()
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_override_fixtures_and_pytest_flask_side_by_side(pytester):
    port = _free_port()
    pytester.makeconftest(f'''
import flask
import pytest

@pytest.fixture(scope="session")
def fakeproc_port():
    return {port}

@pytest.fixture(scope="session")
def fakeproc_time_scale():
    return 0.02

@pytest.fixture
def app():  # pytest-flask's fixture, for the team's own app
    shop = flask.Flask("shop")
    shop.add_url_rule("/", "home", lambda: "shop")
    return shop
''')
    pytester.makepyfile(test_override=f'''
def test_both(fakeproc_server, fakeproc_app, client):
    assert fakeproc_server.port == {port}
    assert fakeproc_app.config["TIME_SCALE"] == 0.02
    assert client.get("/").data == b"shop"
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def _free_port() -> int:
    from conftest import free_port

    return free_port()


def test_the_readme_shows_the_examples_that_run():
    """The README's pytest example is tests/examples/test_pay_flows.py, so it cannot rot."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    example = (root / "tests" / "examples" / "test_pay_flows.py").read_text()
    assert example[example.index("import pytest"):] in (root / "README.md").read_text()


PYTEST_FLASK_APP = '''
import pytest
from flask import Flask


@pytest.fixture
def app():
    shop = Flask("shop")

    @shop.post("/voice")
    def voice():
        return '<Response><Pay chargeAmount="9.99" action="/paid"/></Response>'

    @shop.post("/paid")
    def paid():
        return "<Response><Say>Done.</Say></Response>"

    return shop


def test_pytest_flask_s_app_is_a_target(twilio_call, app, client):
    assert client.post("/voice").status_code == 200  # pytest-flask's own client, as usual
    call = twilio_call(app, "/voice", press=["4111111111111111", "1230", "123", "94110"])
    call.assert_result("success")


def test_a_failing_check_prints_the_transcript(twilio_call, app):
    call = twilio_call(app, "/voice", press=["4111111111111112"])
    call.assert_result("success")
'''


def test_twilio_call_takes_pytest_flask_s_app_and_prints_the_transcript_on_failure(pytester):
    pytester.makepyfile(test_flow=PYTEST_FLASK_APP)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*expected every <Pay> to end with success, got *too-many-failed-attempts*",
        "*call CA* from +15005550006 to +15005550001 (time scale 0.01)",
        "*caller presses ************1112 at payment-card-number",
        "*<Pay> Result=too-many-failed-attempts (input-timeout)",
    ])
    shown = [line for line in result.stdout.lines if line.startswith("E ")]
    assert shown and not [line for line in shown if "4111111111111112" in line]


def test_the_readme_shows_the_call_flow_example_that_runs():
    """The README's call-flow example is tests/examples/test_call_flow.py."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    example = (root / "tests" / "examples" / "test_call_flow.py").read_text()
    assert example[example.index("from flask import"):] in (root / "README.md").read_text()
