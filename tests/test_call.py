"""SPEC §9: the call emulator plays Twilio for a whole inbound call. Each rule of the contract
against small TwiML apps written inline (`call_apps.scripted`), through the `twilio_call`
fixture: the app runs in this process, the processor is the plugin's own fakeproc."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from call_apps.scripted import Scripted

VISA, CVV, EXPIRY, ZIP = "4111111111111111", "123", "1230", "94111"
CARD_PRESSES = [VISA + "#", EXPIRY, CVV, ZIP]
SCALE = 0.01  # the plugin's default time scale
CA, AC = re.compile(r"^CA[0-9a-f]{32}$"), re.compile(r"^AC[0-9a-f]{32}$")
DONE = "<Response><Say>Thank you.</Say></Response>"


def pay_app(pay: str = '<Pay chargeAmount="10.00" statusCallback="/status"/>',
            after: str = "", action: Any = DONE, **routes: Any) -> Scripted:
    """A voice URL answering one <Pay> (whose action is the document URL unless given)."""
    return Scripted({"/voice": f"<Response>{pay}{after}</Response>", "/status": ("", 204),
                     "/done": action, **routes})


def processor_requests(fakeproc: Any) -> list[dict[str, Any]]:
    return [attempt["request"] for t in fakeproc.transactions()
            for attempt in fakeproc.transaction(t["transaction_id"], t["connector"])["attempts"]]


# -- requests to the app --------------------------------------------------------------------

def test_every_request_carries_the_standard_parameters_and_twilio_s_signature(twilio_call):
    app = Scripted({"/voice": "<Response><Redirect>/next</Redirect></Response>",
                    "/next": "<Response><Say>Hello.</Say></Response>"})
    call = twilio_call(app, "/voice")

    call.assert_completed()
    assert [item["path"] for item in app.received] == ["/voice", "/next"]
    for item in app.received:
        form = item["form"]
        assert item["signed"], item
        assert CA.match(form["CallSid"]) and AC.match(form["AccountSid"])
        assert {k: form[k] for k in ("From", "To", "Caller", "Called", "CallStatus",
                                     "Direction", "ApiVersion")} == {
            "From": "+15005550006", "To": "+15005550001", "Caller": "+15005550006",
            "Called": "+15005550001", "CallStatus": "in-progress", "Direction": "inbound",
            "ApiVersion": "2010-04-01"}
    assert app.received[0]["form"]["CallSid"] == app.received[1]["form"]["CallSid"]
    assert call.call_sid == app.received[0]["form"]["CallSid"]


def test_a_get_voice_url_gets_the_parameters_in_its_query_string_signed(twilio_call):
    app = Scripted({"/voice": "<Response><Say>Hi.</Say></Response>"})
    call = twilio_call(app, "/voice?lang=en", method="GET", caller_id="+441234567890")

    call.assert_completed()
    (item,) = app.received
    assert item["method"] == "GET" and item["signed"] and item["form"] == {}
    assert item["args"]["lang"] == "en" and item["args"]["From"] == "+441234567890"


def test_another_auth_token_signs_every_request(twilio_call):
    app = Scripted({"/voice": "<Response><Say>Hi.</Say></Response>"}, auth_token="s3cret")
    twilio_call(app, "/voice", auth_token="s3cret")
    assert app.received[0]["signed"]
    twilio_call(app, "/voice")
    assert not app.received[1]["signed"]


def test_relative_urls_resolve_against_the_current_document(twilio_call):
    app = Scripted({"/ivr/start": "<Response><Redirect>next</Redirect></Response>",
                    "/ivr/next": "<Response><Redirect>../end</Redirect></Response>",
                    "/end": "<Response><Hangup/></Response>"})
    twilio_call(app, "/ivr/start").assert_completed()
    assert [item["path"] for item in app.received] == ["/ivr/start", "/ivr/next", "/end"]


# -- the verbs -----------------------------------------------------------------------------

def test_say_play_and_pause(twilio_call):
    app = Scripted({"/voice": '<Response><Say>One.</Say><Play>https://cdn.example/a.mp3</Play>'
                              '<Pause length="20"/><Say loop="2">Two.</Say></Response>'})
    started = time.monotonic()
    call = twilio_call(app, "/voice")

    assert time.monotonic() - started >= 20 * SCALE
    assert call.said == ["One.", "Two.", "Two."]
    kinds = [(e["kind"], e.get("url") or e.get("seconds") or e.get("text"))
             for e in call.events if e["kind"] in ("say", "play", "pause")]
    assert kinds == [("say", "One."), ("play", "https://cdn.example/a.mp3"), ("pause", 20),
                     ("say", "Two."), ("say", "Two.")]


def test_gather_posts_the_digits_to_its_action(twilio_call):
    app = Scripted({
        "/voice": '<Response><Gather numDigits="2" action="/menu" method="GET">'
                  '<Say>Choose.</Say></Gather><Say>Not reached.</Say></Response>',
        "/menu": lambda form: f"<Response><Say>You chose {form['Digits']}.</Say></Response>"})
    call = twilio_call(app, "/voice", press=["123"])

    call.assert_completed()
    assert call.said == ["Choose.", "You chose 12."]
    assert app.received[1]["args"]["Digits"] == "12" and app.received[1]["method"] == "GET"


def test_gather_finishes_on_its_key_and_defaults_to_the_document_url(twilio_call):
    seen = []

    def voice(form: dict[str, str]) -> str:
        seen.append(form)
        if "Digits" in form:
            return f"<Response><Say>Got {form['Digits']}.</Say></Response>"
        return '<Response><Gather finishOnKey="*"><Say>Enter.</Say></Gather></Response>'

    call = twilio_call(Scripted({"/voice": voice}), "/voice", press=["42*"])
    assert call.said == ["Enter.", "Got 42."]
    assert seen[1]["Digits"] == "42" and seen[1]["FinishedOnKey"] == "*"


def test_gather_with_no_input_goes_on_to_the_next_verb_unless_asked_to_post(twilio_call):
    app = Scripted({
        "/voice": '<Response><Gather timeout="3" action="/x"><Say>Press.</Say></Gather>'
                  '<Say>Nothing pressed.</Say>'
                  '<Gather actionOnEmptyResult="true" action="/empty"/></Response>',
        "/empty": lambda form: f"<Response><Say>Empty {form['Digits']!r}.</Say></Response>"})
    started = time.monotonic()
    call = twilio_call(app, "/voice", press=["silence"])

    assert time.monotonic() - started >= 3 * SCALE
    assert call.said == ["Press.", "Nothing pressed.", "Empty ''."]
    assert [item["path"] for item in app.received] == ["/voice", "/empty"]


def test_redirect_follows_its_method_and_hangup_and_reject_end_the_call(twilio_call):
    app = Scripted({
        "/voice": '<Response><Redirect method="GET">/a</Redirect><Say>No.</Say></Response>',
        "/a": "<Response><Say>A.</Say><Hangup/><Say>No.</Say></Response>",
        "/busy": '<Response><Reject reason="busy"/><Say>No.</Say></Response>'})
    call = twilio_call(app, "/voice")
    assert call.said == ["A."] and app.received[1]["method"] == "GET"
    assert [e["kind"] for e in call.events][-2:] == ["hangup", "end"]
    rejected = twilio_call(app, "/busy")
    assert rejected.said == [] and any(e["kind"] == "reject" and e["reason"] == "busy"
                                       for e in rejected.events)


def test_a_hang_up_during_a_gather_ends_the_call(twilio_call):
    app = Scripted({"/voice": '<Response><Gather action="/x"/><Say>No.</Say></Response>'})
    call = twilio_call(app, "/voice", press=["hangup"])
    assert call.said == [] and call.status == "completed"
    assert len(app.received) == 1


@pytest.mark.parametrize("answer,named", [
    (("<Response/>", 500), "answered HTTP 500"),
    (("<html><body>Oops</body></html>", 200), "whose root is <html>"),
    (("not xml at all", 200), "not TwiML"),
    (("<Response><Dial>+1555</Dial></Response>", 200), "does not play: <Dial>"),
], ids=["http-500", "html", "not-xml", "unknown-verb"])
def test_an_answer_the_call_cannot_go_on_with_is_an_application_error(twilio_call, answer,
                                                                       named):
    app = Scripted({"/voice": "<Response><Say>Hi.</Say><Redirect>/broken</Redirect></Response>",
                    "/broken": answer})
    call = twilio_call(app, "/voice")

    assert call.status == "failed" and named in call.error
    assert call.error.startswith("http://localhost/broken")
    with pytest.raises(AssertionError, match=re.escape(named)):
        call.assert_completed()


# -- <Pay>: steps, statusCallbacks, the action -----------------------------------------------

def test_a_card_payment_step_by_step(twilio_call, fakeproc):
    app = pay_app('<Pay chargeAmount="12.50" action="/done" statusCallback="/status">'
                  '<Parameter name="order" value="A-7"/></Pay>', after="<Say>Skipped.</Say>")
    call = twilio_call(app, "/voice", press=CARD_PRESSES)

    call.assert_completed()
    call.assert_result("success")
    assert [(cb["For"], cb["Attempt"]) for cb in call.status_callbacks] == [
        ("payment-card-number", "1"), ("expiration-date", "1"), ("security-code", "1"),
        ("postal-code", "1"), ("payment-processing", "1")]
    assert call.status_callbacks == app.posted("/status")
    last = call.status_callbacks[-1]
    assert {k: last[k] for k in ("PaymentCardNumber", "PaymentCardType", "ExpirationDate",
                                 "SecurityCode", "PaymentCardPostalCode")} == {
        "PaymentCardNumber": "xxxx-xxxx-xxxx-1111", "PaymentCardType": "visa",
        "ExpirationDate": EXPIRY, "SecurityCode": "xxx", "PaymentCardPostalCode": ZIP}
    (posted,) = app.posted("/done")
    assert posted == call.action_params
    charge = fakeproc.transactions()[0]
    assert {k: posted[k] for k in ("Result", "PaymentConfirmationCode", "PaymentMethod",
                                   "PaymentCardNumber", "PaymentCardType", "ExpirationDate",
                                   "SecurityCode", "PaymentCardPostalCode")} == {
        "Result": "success", "PaymentConfirmationCode": charge["charge_id"],
        "PaymentMethod": "credit-card", "PaymentCardNumber": "xxxx-xxxx-xxxx-1111",
        "PaymentCardType": "visa", "ExpirationDate": EXPIRY, "SecurityCode": "***",
        "PaymentCardPostalCode": ZIP}
    assert posted["CallSid"] == call.call_sid and posted["CallStatus"] == "in-progress"
    assert call.said[-1] == "Thank you." and "Skipped." not in call.said
    (sent,) = processor_requests(fakeproc)
    assert {k: sent[k] for k in ("method", "amount", "currency_code", "expiry_month",
                                 "expiry_year", "postal_code", "parameters")} == {
        "method": "charge", "amount": "12.50", "currency_code": "USD", "expiry_month": "12",
        "expiry_year": "30", "postal_code": ZIP, "parameters": {"order": "A-7"}}


def test_a_tokenize_when_the_charge_amount_is_0_or_absent(twilio_call, fakeproc):
    for pay in ('<Pay chargeAmount="0" action="/done"/>', '<Pay action="/done"/>'):
        call = twilio_call(pay_app(pay), "/voice", press=CARD_PRESSES)
        call.assert_result("success")
        assert call.action_params["PaymentToken"].startswith("tok_")
        assert "PaymentConfirmationCode" not in call.action_params
    assert [t["method"] for t in fakeproc.transactions()] == ["tokenize", "tokenize"]


def test_the_attributes_shape_the_steps_and_the_request(twilio_call, fakeproc):
    fakeproc.add_connector("Shop")
    pay = ('<Pay chargeAmount="20" currency="eur" description="Order 7" securityCode="false" '
           'postalCode="10115" paymentConnector="Shop" validCardTypes="visa discover" '
           'action="/done"/>')
    call = twilio_call(pay_app(pay), "/voice", press=["6011111111111117", EXPIRY])

    call.assert_result("success")
    assert [e["step"] for e in call.events if e["kind"] == "press"] == [
        "payment-card-number", "expiration-date"]
    (transaction,) = fakeproc.transactions()
    assert transaction["connector"] == "Shop"
    (sent,) = processor_requests(fakeproc)
    assert (sent["currency_code"], sent["description"], sent["postal_code"], sent["cvv"]) == (
        "EUR", "Order 7", "10115", None)
    assert call.action_params["PaymentCardType"] == "discover"
    assert "SecurityCode" not in call.action_params


def test_postal_code_false_and_its_minimum_length(twilio_call):
    none = twilio_call(pay_app('<Pay chargeAmount="5" postalCode="false" action="/done"/>'),
                       "/voice", press=[VISA, EXPIRY, CVV])
    none.assert_result("success")
    short = twilio_call(pay_app('<Pay chargeAmount="5" minPostalCodeLength="5" action="/done" '
                                'statusCallback="/status"/>'),
                        "/voice", press=[VISA, EXPIRY, CVV, "123", "12345"])
    short.assert_result("success")
    assert [cb.get("ErrorType") for cb in short.status_callbacks if cb["For"] == "postal-code"
            ] == [None, "invalid-postal-code", None]


def test_the_timeout_is_how_long_an_entry_is_waited_for(twilio_call):
    started = time.monotonic()
    call = twilio_call(pay_app('<Pay chargeAmount="5" timeout="30" maxAttempts="1" '
                               'action="/done"/>'), "/voice", press=["silence", "silence"])
    assert time.monotonic() - started >= 2 * 30 * SCALE
    call.assert_result("too-many-failed-attempts")
    assert call.action_params["PaymentError"] == "input-timeout"


@pytest.mark.parametrize("attribute,named", [
    ('chargeAmount="-0.5"', "chargeAmount='-0.5' (not a number between 0.00 - 1,000,000.00)"),
    ('chargeAmount="1000001"', "chargeAmount='1000001'"),
    ('chargeAmount="ten"', "chargeAmount='ten'"),
    ('paymentMethod="cash"', "paymentMethod='cash'"),
    ('maxAttempts="4"', "maxAttempts='4'"),
    ('timeout="0"', "timeout='0'"),
    ('securityCode="maybe"', "securityCode='maybe'"),
    ('validCardTypes="visa bitcoin"', "validCardTypes='visa bitcoin'"),
    ('tokenType="forever"', "tokenType='forever'"),
    ('bankAccountType="piggy"', "bankAccountType='piggy'"),
    ('language="xx-yy"', "language='xx-yy'"),
    ('currency="dollars"', "currency='dollars'"),
    ('input="speech"', "input='speech'"),
    ('minPostalCodeLength="-1"', "minPostalCodeLength='-1'"),
    ('action="http://pay.example.com/done"', "action='http://pay.example.com/done'"),
    ('action="ftp://localhost/done"', "action='ftp://localhost/done'"),
], ids=lambda value: value.split("=")[0] if "=" in value else value)
def test_an_invalid_attribute_ends_the_pay_with_validation_error(twilio_call, fakeproc,
                                                                 attribute, named):
    action = "" if attribute.startswith("action") else ' action="/done"'
    app = pay_app(f'<Pay {attribute}{action} statusCallback="/status"/>',
                  after="<Say>After.</Say>")
    call = twilio_call(app, "/voice", press=CARD_PRESSES)

    call.assert_result("validation-error")
    assert named in call.action_params["PaymentError"]
    assert app.posted("/status") == [] and fakeproc.transactions() == []
    assert not any(e["kind"] == "press" for e in call.events)  # nothing was asked


def test_http_actions_pass_on_this_machine_but_not_under_strict(twilio_call):
    def voice(form: dict[str, str]) -> str:  # the action is the document itself
        return DONE if "Result" in form else '<Response><Pay chargeAmount="5"/></Response>'

    app = Scripted({"/voice": voice})  # http://localhost
    relaxed = twilio_call(app, "/voice", press=CARD_PRESSES)
    relaxed.assert_result("success")
    assert any(e["kind"] == "note" and "https" in e["text"] for e in relaxed.events)
    twilio_call(app, "/voice", press=CARD_PRESSES, strict=True).assert_result(
        "validation-error")


# -- entries: validation, re-prompts, maxAttempts -------------------------------------------------

@pytest.mark.parametrize("presses,step,error", [
    (["4111111111111112"], "payment-card-number", "invalid-card-number"),
    (["378282246310005"], "payment-card-number", "invalid-card-type"),
    ([VISA, "1320"], "expiration-date", "invalid-date"),
    ([VISA, "0120"], "expiration-date", "invalid-date"),
    ([VISA, "123"], "expiration-date", "invalid-date"),
    ([VISA, EXPIRY, "12"], "security-code", "invalid-security-code"),
    ([VISA, EXPIRY, CVV, "#"], "postal-code", "invalid-postal-code"),
    (["silence"], "payment-card-number", "input-timeout"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_invalid_entry_raises_its_error_type_and_is_asked_again(twilio_call, presses, step,
                                                                      error):
    app = pay_app('<Pay chargeAmount="5" validCardTypes="visa mastercard" action="/done" '
                  'statusCallback="/status" maxAttempts="2"/>')
    good = {"payment-card-number": VISA, "expiration-date": EXPIRY, "security-code": CVV,
            "postal-code": ZIP}
    steps = list(good)
    fixed = presses + [good[s] for s in steps[steps.index(step):]]
    call = twilio_call(app, "/voice", press=fixed)

    call.assert_result("success")
    mine = [(cb["Attempt"], cb.get("ErrorType")) for cb in call.status_callbacks
            if cb["For"] == step]
    assert mine == [("1", None), ("1", error), ("2", None)]


def test_amex_security_codes_have_four_digits(twilio_call):
    app = pay_app('<Pay chargeAmount="5" action="/done" statusCallback="/status"/>')
    call = twilio_call(app, "/voice", press=["378282246310005", EXPIRY, CVV, "1234", ZIP])
    call.assert_result("success")
    assert [cb.get("ErrorType") for cb in call.status_callbacks
            if cb["For"] == "security-code"] == [None, "invalid-security-code", None]


def test_ach_steps_and_their_errors(twilio_call, fakeproc):
    app = pay_app('<Pay paymentMethod="ach-debit" chargeAmount="30" bankAccountType='
                  '"commercial-checking" action="/done" statusCallback="/status" '
                  'maxAttempts="2"/>')
    call = twilio_call(app, "/voice", press=["121000359", "121000358", "1234", "123456789"])

    call.assert_result("success")
    assert [(cb["For"], cb.get("ErrorType")) for cb in call.status_callbacks] == [
        ("bank-routing-number", None), ("bank-routing-number", "invalid-bank-routing-number"),
        ("bank-routing-number", None), ("bank-account-number", None),
        ("bank-account-number", "invalid-bank-account-number"), ("bank-account-number", None),
        ("payment-processing", None)]
    assert {k: call.action_params[k] for k in ("PaymentMethod", "BankAccountNumber",
                                               "BankRoutingNumber", "BankAccountType")} == {
        "PaymentMethod": "ach-debit", "BankAccountNumber": "*******89",
        "BankRoutingNumber": "121000358", "BankAccountType": "commercial-checking"}
    assert fakeproc.transactions()[0]["payment_method"] == "ach-debit"


@pytest.mark.parametrize("max_attempts,entries", [(None, 2), ("1", 2), ("2", 3), ("3", 4)])
def test_max_attempts_is_how_many_re_prompts(twilio_call, fakeproc, max_attempts, entries):
    attribute = f' maxAttempts="{max_attempts}"' if max_attempts else ""
    app = pay_app(f'<Pay chargeAmount="5"{attribute} action="/done" statusCallback="/status"/>',
                  after="<Say>Not after a failed pay.</Say>")
    call = twilio_call(app, "/voice", press=["4111111111111112"] * 5)

    call.assert_result("too-many-failed-attempts")
    assert call.action_params["PaymentError"] == "invalid-card-number"
    assert sum(1 for e in call.events if e["kind"] == "press") == entries
    assert fakeproc.transactions() == []
    assert call.said[-1] == "Thank you."  # the action's TwiML


# -- <Prompt> -------------------------------------------------------------------------------

PROMPTS = '''<Pay chargeAmount="5" action="/done" maxAttempts="3">
  <Prompt for="payment-card-number"><Say>Card number, please.</Say></Prompt>
  <Prompt for="payment-card-number" attempt="2 3"><Say>Card number, again.</Say></Prompt>
  <Prompt for="payment-card-number" errorType="invalid-card-type" attempt="2">
    <Say>We take Visa only.</Say></Prompt>
  <Prompt for="expiration-date" cardType="visa"><Say>Visa expiry?</Say></Prompt>
  <Prompt for="expiration-date"><Say>Expiry?</Say></Prompt>
  <Prompt for="security-code" errorType="timeout"><Say>Still there?</Say></Prompt>
  <Prompt for="payment-processing"><Say>Processing.</Say><Pause length="1"/></Prompt>
</Pay>'''


def test_prompts_are_chosen_by_step_error_type_card_type_and_attempt(twilio_call):
    app = pay_app(PROMPTS.replace('chargeAmount="5"', 'chargeAmount="5" '
                                  'validCardTypes="visa"'))
    call = twilio_call(app, "/voice", press=["5555555555554444", "4111111111111112", VISA,
                                             EXPIRY, "silence", CVV, ZIP])
    call.assert_result("success")
    assert call.said == [
        "Card number, please.",  # attempt 1
        "We take Visa only.",  # attempt 2 after invalid-card-type: the most specific
        "Card number, again.",  # attempt 3 after invalid-card-number
        "Visa expiry?",  # cardType visa is more specific than the plain one
        "Please enter the card's security code.",  # no prompt: the default phrase
        "Still there?",  # after a timeout
        "Please enter the billing postal code.",
        "Processing.", "Thank you."]
    defaults = [e["text"] for e in call.events if e["kind"] == "say" and e.get("default")]
    assert defaults == ["Please enter the card's security code.",
                        "Please enter the billing postal code."]


def test_require_matching_inputs_asks_twice_and_compares(twilio_call):
    pay = '''<Pay paymentMethod="ach-debit" chargeAmount="5" action="/done"
               statusCallback="/status">
      <Prompt for="bank-account-number"><Say>Account number?</Say></Prompt>
      <Prompt for="bank-account-number" requireMatchingInputs="true">
        <Say>Once more, to be sure.</Say></Prompt></Pay>'''
    call = twilio_call(pay_app(pay), "/voice",
                       press=["121000358", "123456789", "123456780", "123456789", "123456789"])
    call.assert_result("success")
    assert [cb.get("ErrorType") for cb in call.status_callbacks
            if cb["For"] == "bank-account-number"] == [None, "input-matching-failed", None]
    assert call.said.count("Once more, to be sure.") == 2


# -- the caller: *, hanging up ------------------------------------------------------------------

@pytest.mark.parametrize("presses", [["*"], [VISA, "*"], [VISA, EXPIRY, "12*"]],
                         ids=["first-entry", "second-entry", "after-digits"])
def test_star_interrupts_the_pay(twilio_call, fakeproc, presses):
    app = pay_app('<Pay chargeAmount="5" action="/done"/>')
    call = twilio_call(app, "/voice", press=presses)

    call.assert_result("caller-interrupted-with-star")
    assert fakeproc.transactions() == []
    assert app.posted("/done")[0]["Result"] == "caller-interrupted-with-star"
    assert call.said[-1] == "Thank you."


def test_a_hang_up_posts_the_action_but_runs_nothing_after(twilio_call, fakeproc):
    app = pay_app('<Pay chargeAmount="5" action="/done"/>')
    call = twilio_call(app, "/voice", press=[VISA, "hangup"])

    call.assert_result("caller-hung-up")
    (posted,) = app.posted("/done")
    assert posted["Result"] == "caller-hung-up" and posted["CallStatus"] == "completed"
    assert posted["PaymentCardNumber"] == "xxxx-xxxx-xxxx-1111"
    assert "Thank you." not in call.said and fakeproc.transactions() == []
    call.assert_completed()


# -- TEST mode, the processor, every Result ---------------------------------------------------

def test_test_mode_blocks_other_cards_before_the_processor(twilio_call, fakeproc):
    live_card = "4242424242424242"
    app = pay_app('<Pay chargeAmount="5" action="/done"/>')
    call = twilio_call(app, "/voice", press=[live_card, EXPIRY, CVV, ZIP])

    call.assert_result("payment-connector-error")
    assert "TEST mode" in call.action_params["PaymentError"]
    assert fakeproc.transactions() == []
    # --live lifts it: the card reaches the processor, whose own test mode declines it.
    lifted = twilio_call(app, "/voice", press=[live_card, EXPIRY, CVV, ZIP], live=True)
    lifted.assert_result("payment-connector-error")
    assert lifted.action_params["ConnectorError"] == "test_mode_live_card"


def test_a_decline_reaches_the_action_url_with_its_code(twilio_call, fakeproc):
    fakeproc.decline_next("insufficient_funds")
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    call.assert_result("payment-connector-error")
    assert call.action_params["ConnectorError"] == "insufficient_funds"
    assert call.action_params["PaymentError"] == "The card has insufficient funds."
    assert [a["outcome"] for a in call.pays[0]["connector_attempts"]] == ["answered"]


def test_a_processor_that_never_answers_is_retried_five_times(twilio_call, fakeproc):
    fakeproc.hang_next()
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    call.assert_result("payment-connector-error")
    assert [a["outcome"] for a in call.pays[0]["connector_attempts"]] == ["timeout"] * 6
    # The plugin's time scale, 0.01: Twilio's 10 s lasted 0.1 s, and the message says so.
    assert call.action_params["PaymentError"] == (
        "the payment processor did not answer within 0.1 s (Twilio's 10 s at time scale "
        "0.01); 6 attempts")


def test_the_processor_s_parameters_reach_the_app(twilio_call, fakeproc):
    fakeproc.add_rule({}, {"type": "approve", "parameters": {"risk": "low"}})
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    call.assert_result("success")
    assert call.action_params["PayConnector_risk"] == "low"


def test_a_connector_that_cannot_be_reached_is_an_internal_error(twilio_call, fakeproc):
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES, connectors={"Default": "ftp://127.0.0.1/pay"})
    call.assert_result("internal-error")
    assert "has no usable URL" in call.action_params["PaymentError"]


def test_the_call_sid_shows_on_the_payment_s_transaction(twilio_call, fakeproc):
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    (transaction,) = fakeproc.transactions()
    (attempt,) = fakeproc.transaction(transaction["transaction_id"])["attempts"]
    assert call.call_sid in attempt["user_agent"]


def test_a_retry_answered_duplicate_transaction_with_the_id_is_the_charge(twilio_call,
                                                                          fakeproc):
    """Under duplicate_error the processor answers Twilio's retry with an error carrying the
    original charge id: the charge was made, and the caller is told so."""
    fakeproc.update_connector(idempotency="duplicate_error")
    fakeproc.delay_next(12, attempt=1)
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    call.assert_result("success")
    (transaction,) = fakeproc.transactions()
    assert call.action_params["PaymentConfirmationCode"] == transaction["charge_id"]
    assert call.action_params["ConnectorError"] == "duplicate_transaction"


# -- nothing secret anywhere ------------------------------------------------------------------

def test_no_card_number_account_number_or_security_code_leaves_the_emulator(twilio_call,
                                                                          fakeproc, caplog):
    """Not in the transcript, the JSON, any request to the app, the log, or the store."""
    secrets_ = [VISA, "123456789"]
    card_app = pay_app('<Pay chargeAmount="5" maxAttempts="2" action="/done" '
                       'statusCallback="/status"/>')
    ach_app = pay_app('<Pay paymentMethod="ach-debit" chargeAmount="5" action="/done" '
                      'statusCallback="/status"/>')
    with caplog.at_level("DEBUG"):
        card = twilio_call(card_app, "/voice",
                           press=[VISA, EXPIRY, "4321", "silence", CVV, ZIP])
        ach = twilio_call(ach_app, "/voice", press=["121000358", "123456789"])
    card.assert_result("success")
    ach.assert_result("success")
    seen = [card.transcript, repr(card.to_dict()), ach.transcript, repr(ach.to_dict()),
            repr(card_app.received), repr(ach_app.received), caplog.text,
            repr([fakeproc.transaction(t["transaction_id"]) for t in fakeproc.transactions()])]
    assert [secret for secret in secrets_ if any(secret in text for text in seen)] == []
    # A security code is too short to look for in free text: every place that shows one.
    codes = [form["SecurityCode"] for item in card_app.received for form in [item["form"]]
             if "SecurityCode" in form]
    assert codes and set(codes) <= {"xxx", "***"}
    keys = [e["keys"] for e in card.events if e["kind"] == "press" and
            e["step"] == "security-code"]
    assert keys == ["****", "silence", "***"]
    stored = [a["request"]["cvv"] for t in fakeproc.transactions()
              for a in fakeproc.transaction(t["transaction_id"])["attempts"]
              if a["request"].get("cvv")]
    assert stored == ["***"]


def test_the_payment_s_page_in_the_admin_panel_names_the_call(twilio_call, fakeproc):
    call = twilio_call(pay_app('<Pay chargeAmount="5" action="/done"/>'), "/voice",
                       press=CARD_PRESSES)
    (transaction,) = fakeproc.transactions()
    page = fakeproc.app.test_client().get(f"/admin/transactions/{transaction['transaction_id']}")
    assert page.status_code == 200 and call.call_sid in page.get_data(as_text=True)


def test_the_defaults_of_an_attribute_free_pay(twilio_call, fakeproc):
    def voice(form: dict[str, str]) -> str:  # the action is this document's URL
        verb = "Hangup" if "Result" in form else "Pay"
        return f"<Response><{verb}/></Response>"

    app = Scripted({"/voice": voice})
    started = time.monotonic()
    call = twilio_call(app, "/voice", press=["silence", "silence"])
    assert time.monotonic() - started >= 2 * 5 * SCALE  # timeout 5, maxAttempts 1
    call.assert_result("too-many-failed-attempts")
    assert [item["path"] for item in app.received] == ["/voice", "/voice"]
    ach = twilio_call(pay_app('<Pay paymentMethod="ach-debit" action="/done"/>'), "/voice",
                      press=["121000358", "12345678"])
    ach.assert_result("success")  # no chargeAmount: a tokenize
    assert ach.action_params["BankAccountType"] == "consumer-checking"
    assert ach.action_params["PaymentToken"].startswith("tok_")
    (transaction,) = fakeproc.transactions()
    assert (transaction["connector"], transaction["method"]) == ("Default", "tokenize")
