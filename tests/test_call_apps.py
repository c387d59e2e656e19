"""Three TwiML apps written the way teams write them (tests/call_apps/), each played through the
`twilio_call` fixture (the app in this process) and through `fakeproc call` (the app over
HTTP), against the plugin's fakeproc."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from call_apps import ach_prompts, hand_written, helper_library
from call_apps.scripted import Scripted
from click.testing import CliRunner

from fakeproc.cli import main

from conftest import LiveServer

VISA, EXPIRY, CVV, ZIP = "4111111111111111", "1230", "123", "94111"


def cli_call(app: Any, path: str, presses: list[str], processor: str,
             *options: str) -> tuple[int, dict[str, Any]]:
    """`fakeproc call` against the app served over HTTP; (exit status, the JSON report)."""
    with LiveServer(app) as served:
        args = ["call", served.url + path, "--processor", processor, "--json",
                *[f"--press={press}" for press in presses], *options]
        result = CliRunner().invoke(main, args, env={"FAKEPROC_TIME_SCALE": None})
    return result.exit_code, json.loads(result.stdout)


# -- with Twilio's helper library ------------------------------------------------------------

def test_the_helper_library_app_takes_a_payment(twilio_call, fakeproc):
    app = helper_library.create_app()
    call = twilio_call(app, "/voice", press=["1", VISA + "#", EXPIRY, CVV, ZIP])

    call.assert_completed()
    call.assert_result("success")
    call.assert_said("Your pizza is on its way.")
    assert call.said[:3] == [
        "Welcome to Pizza Line. Press 1 to pay for your order, or 2 for our hours.",
        "Your order comes to 23 dollars and 50 cents.",
        "Please key in your card number, then press pound."]
    assert app.config["PAY_STATUS"][0] == ("payment-card-number", "1", None)
    (transaction,) = fakeproc.transactions()
    assert (transaction["amount"], transaction["description"], transaction["parameters"]) == (
        "23.50", "Pizza order PZ-1042", {"order_id": "PZ-1042"})


def test_the_helper_library_app_turns_away_requests_signed_with_another_token(twilio_call):
    call = twilio_call(helper_library.create_app(), "/voice", auth_token="not-the-token")
    assert call.status == "failed" and "answered HTTP 403" in call.error


def test_the_helper_library_app_through_the_command(fakeproc, fakeproc_server):
    fakeproc.decline_next("insufficient_funds")
    status, report = cli_call(helper_library.create_app(), "/voice",
                              ["1", VISA + "#", EXPIRY, CVV, ZIP], fakeproc_server.url,
                              "--expect-result", "payment-connector-error")
    assert status == 0, report
    (pay,) = report["pays"]
    assert pay["action_params"]["ConnectorError"] == "insufficient_funds"
    assert report["said"][-1] == "Sorry, we could not take your payment. Please call us again."


# -- hand-written XML -------------------------------------------------------------------------

def test_the_hand_written_app_charges_a_donation(twilio_call, fakeproc):
    call = twilio_call(hand_written.create_app(), "/voice", press=["25#", VISA, EXPIRY])

    call.assert_completed()
    call.assert_result("success")
    assert call.said == ["Thank you for calling the Harbour Trust.",
                         "Please enter the amount you wish to give, in dollars, then press "
                         "pound.", "You are giving 25 dollars.",
                         "Please enter your card number, then press pound.",
                         "Please enter the card's expiry date: two digits for the month, then "
                         "two for the year.",
                         "One moment while your payment is processed.",
                         "Thank you for your gift."]
    assert any(e["kind"] == "play" and e["url"].endswith("thanks.mp3") for e in call.events)
    (transaction,) = fakeproc.transactions()
    assert (transaction["amount"], transaction["parameters"]) == ("25.00",
                                                                  {"campaign": "spring"})


def test_the_hand_written_app_rejects_a_blocked_caller_and_loops_on_silence(fakeproc_server):
    status, report = cli_call(hand_written.create_app(), "/voice", [], fakeproc_server.url,
                              "--from", hand_written.BLOCKED)
    assert status == 0 and [e["kind"] for e in report["events"]][-2:] == ["reject", "end"]
    status, report = cli_call(hand_written.create_app(), "/voice", ["silence", "30#", VISA,
                                                                   EXPIRY], fakeproc_server.url)
    assert status == 0, report
    assert report["said"].count("We did not get an amount.") == 1
    assert [pay["result"] for pay in report["pays"]] == ["success"]


# -- ACH with a prompt for every step -------------------------------------------------------------

def test_the_ach_app_re_prompts_in_its_own_words(twilio_call, fakeproc):
    app = ach_prompts.create_app()
    call = twilio_call(app, "/voice", press=["silence", "121000359", "121000358",
                                             "123456789", "123456780", "123456789",
                                             "123456789"])
    call.assert_completed()
    call.assert_result("success")
    assert call.said == [
        "Enter the nine-digit routing number of your bank.",
        "We did not hear anything. Enter the routing number.",
        "That routing number is not valid. Try again.",
        "Enter your account number.", "Enter your account number again.",
        "The two numbers were different. Enter your account number.",
        "Enter your account number again.",
        "Please hold while we set up the payment.", "Your bill is paid. Goodbye."]
    steps = [(s["For"], s["Attempt"], s.get("ErrorType")) for s in app.config["STATUS"]]
    assert steps == [
        ("bank-routing-number", "1", None), ("bank-routing-number", "1", "input-timeout"),
        ("bank-routing-number", "2", None),
        ("bank-routing-number", "2", "invalid-bank-routing-number"),
        ("bank-routing-number", "3", None), ("bank-account-number", "1", None),
        ("bank-account-number", "1", "input-matching-failed"),
        ("bank-account-number", "2", None), ("payment-processing", "1", None)]
    assert call.action_params["BankAccountType"] == "consumer-savings"
    assert fakeproc.transactions()[0]["payment_method"] == "ach-debit"


def test_the_ach_app_through_the_command_gives_up_after_its_attempts(fakeproc_server):
    status, report = cli_call(ach_prompts.create_app(), "/voice",
                              ["1", "2", "3"], fakeproc_server.url)
    assert status == 0, report
    (pay,) = report["pays"]
    assert pay["result"] == "too-many-failed-attempts"
    assert pay["action_params"]["PaymentError"] == "invalid-bank-routing-number"
    assert report["said"][-1] == "We could not take the payment (invalid-bank-routing-number)."
    status, _ = cli_call(ach_prompts.create_app(), "/voice", ["1", "2", "3"],
                         fakeproc_server.url, "--expect-result", "success")
    assert status == 1


@pytest.mark.parametrize("module,presses", [
    (helper_library, ["1", VISA, "hangup"]), (hand_written, ["25#", "hangup"]),
    (ach_prompts, ["121000358", "hangup"])], ids=["helper-library", "hand-written", "ach"])
def test_every_app_hangs_up_cleanly_mid_payment(twilio_call, module, presses):
    call = twilio_call(module.create_app(), "/voice", press=presses)
    call.assert_completed()
    call.assert_result("caller-hung-up")


# -- the command itself -------------------------------------------------------------------------

def test_the_command_prints_one_line_per_event(fakeproc_server):
    with LiveServer(hand_written.create_app()) as served:
        result = CliRunner().invoke(main, ["call", served.url + "/voice", "--processor",
                                           fakeproc_server.url, "--press", "7#",
                                           "--press", VISA, "--press", EXPIRY])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"call CA[0-9a-f]{32} from \+15005550006 to \+15005550001 "
                        r"\(time scale 0\.01\)", lines[0])
    assert all(re.match(r"^ *\d+\.\d{3} s  ", line) for line in lines[1:]), lines
    text = result.stdout
    for expected in ("POST " + served.url + "/voice (voice URL): HTTP 200",
                     "say 'You are giving 7 dollars.'",
                     "caller presses ************1111 at payment-card-number",
                     "say [payment-card-number, default] 'Please enter your card number",
                     "processor attempt 1: HTTP 200 after",
                     "<Pay> Result=success",
                     "(pay action): HTTP 200  Result=success", "hangup", "end: status=completed"):
        assert expected in text, expected
    assert VISA not in text


def test_the_command_takes_the_processor_s_time_scale_and_a_connector_s_credentials(
        fakeproc, fakeproc_server):
    fakeproc.add_connector("Vault", username="twilio", password="pw")
    app = Scripted({"/voice": '<Response><Pay paymentConnector="Vault" chargeAmount="5" '
                              'action="/done"/></Response>', "/done": "<Response/>"})
    url = fakeproc_server.url.replace("http://", "http://twilio:pw@") + "/connectors/Vault/"
    status, report = cli_call(app, "/voice", [VISA, EXPIRY, CVV, ZIP], fakeproc_server.url,
                              "--connector", f"Vault={url}")
    assert status == 0, report
    assert report["pays"][0]["result"] == "success"
    assert fakeproc.transactions()[0]["connector"] == "Vault"
    status, report = cli_call(app, "/voice", [VISA, EXPIRY, CVV, ZIP], fakeproc_server.url)
    assert report["pays"][0]["action_params"]["ConnectorError"] == "unauthorized"


def test_the_command_exits_1_on_an_application_error_or_a_failing_status_callback(
        fakeproc_server):
    broken = Scripted({"/voice": ("oops", 500)})
    status, report = cli_call(broken, "/voice", [], fakeproc_server.url)
    assert status == 1 and report["status"] == "failed"
    assert report["error"].endswith("/voice answered HTTP 500: oops")
    failing = Scripted({"/voice": '<Response><Pay chargeAmount="5" action="/done" '
                                  'statusCallback="/status"/></Response>',
                        "/status": ("", 500), "/done": "<Response/>"})
    status, report = cli_call(failing, "/voice", [VISA, EXPIRY, CVV, ZIP], fakeproc_server.url)
    assert status == 1 and report["status"] == "completed"
    assert report["pays"][0]["result"] == "success"
    assert report["warnings"][0].endswith("/status answered HTTP 500")


def test_the_json_report_has_the_contract_s_shape(fakeproc_server):
    status, report = cli_call(hand_written.create_app(), "/voice", ["7#", VISA, EXPIRY],
                              fakeproc_server.url)
    assert status == 0
    assert set(report) >= {"call_sid", "status", "error", "said", "events", "requests", "pays"}
    assert all({"t", "kind"} <= set(event) for event in report["events"])
    assert all(set(request) == {"url", "method", "params", "status"}
               for request in report["requests"])
    (pay,) = report["pays"]
    assert set(pay) == {"result", "action_params", "status_callbacks", "connector_attempts"}
    assert all({"number", "outcome", "status", "elapsed"} <= set(attempt)
               for attempt in pay["connector_attempts"])
    assert pay["action_params"] == report["requests"][-1]["params"]  # the action, last


def test_a_bad_press_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["call", "http://127.0.0.1:9/", "--press", "12a"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(" call: --press is not valid: '12a' is not a press: digits (a "
                         "trailing # or * allowed), *, silence or hangup")
