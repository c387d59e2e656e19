"""The README's example of testing a call flow without a phone (it runs with the suite)."""

from flask import Flask, request

app = Flask("shop")


@app.post("/voice")
def voice():
    return ('<Response><Say>Your order comes to 12 dollars.</Say>'
            '<Pay chargeAmount="12.00" action="/paid"/></Response>')


@app.post("/paid")
def paid():
    if request.form["Result"] == "success":
        return "<Response><Say>Thank you, your order is on its way.</Say></Response>"
    return "<Response><Say>Sorry, the payment did not go through.</Say></Response>"


def test_a_paid_order_is_confirmed(twilio_call):
    call = twilio_call(app, "/voice", press=["4111111111111111#", "1230", "123", "94110"])

    call.assert_result("success")
    call.assert_said("your order is on its way")


def test_a_declined_card_is_told_so(twilio_call, fakeproc):
    fakeproc.decline_next("insufficient_funds")
    call = twilio_call(app, "/voice", press=["4111111111111111#", "1230", "123", "94110"])

    call.assert_result("payment-connector-error")
    assert call.action_params["ConnectorError"] == "insufficient_funds"
    call.assert_said("did not go through")
