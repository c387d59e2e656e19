"""A pizza shop's phone line, built the way Twilio's own docs show it: Flask, the `twilio`
helper library's `VoiceResponse` for the TwiML, and its `RequestValidator` turning away any
request that Twilio did not sign."""

from __future__ import annotations

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

AUTH_TOKEN = "fakeprocfakeprocfakeprocfakeproc"  # the emulator's documented default
TOTAL = "23.50"


def create_app(auth_token: str = AUTH_TOKEN) -> Flask:
    app = Flask("pizza_line")
    validator = RequestValidator(auth_token)
    app.config["PAY_STATUS"] = []

    @app.before_request
    def only_twilio() -> None:
        form = request.form.to_dict() if request.method == "POST" else {}
        if not validator.validate(request.url, form,
                                  request.headers.get("X-Twilio-Signature", "")):
            abort(403)

    @app.post("/voice")
    def voice() -> Response:
        response = VoiceResponse()
        menu = Gather(num_digits=1, action="/menu", timeout=3)
        menu.say("Welcome to Pizza Line. Press 1 to pay for your order, or 2 for our hours.")
        response.append(menu)
        response.say("We did not hear a choice. Goodbye.")
        response.hangup()
        return twiml(response)

    @app.post("/menu")
    def menu() -> Response:
        response = VoiceResponse()
        if request.form.get("Digits") == "2":
            response.say("We are open from noon to midnight.")
            response.redirect("/voice")
            return twiml(response)
        response.say("Your order comes to 23 dollars and 50 cents.")
        pay = response.pay(charge_amount=TOTAL, action="/paid", status_callback="/pay-status",
                           description="Pizza order PZ-1042", max_attempts=2)
        pay.prompt(for_="payment-card-number").say(
            "Please key in your card number, then press pound.")
        pay.parameter(name="order_id", value="PZ-1042")
        return twiml(response)

    @app.post("/paid")
    def paid() -> Response:
        response = VoiceResponse()
        if request.form["Result"] == "success":
            response.say("Thank you, your payment went through. Your pizza is on its way.")
        else:
            response.say("Sorry, we could not take your payment. Please call us again.")
        response.hangup()
        return twiml(response)

    @app.post("/pay-status")
    def pay_status() -> tuple[str, int]:
        app.config["PAY_STATUS"].append(
            (request.form["For"], request.form["Attempt"], request.form.get("ErrorType")))
        return "", 204

    return app


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), content_type="text/xml")
