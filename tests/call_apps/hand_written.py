"""A charity's donation line whose TwiML is written by hand, as plain XML strings: callers on
the block list are rejected, the amount is gathered, and the card is charged without asking
for its security or postal code."""

from __future__ import annotations

from flask import Flask, request

BLOCKED = "+15557770000"
XML = {"Content-Type": "text/xml"}


def create_app() -> Flask:
    app = Flask("donations")

    @app.post("/voice")
    def voice() -> tuple[str, dict[str, str]]:
        if request.form["From"] == BLOCKED:
            return '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/>' \
                   "</Response>", XML
        return """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>Thank you for calling the Harbour Trust.</Say>
  <Pause length="1"/>
  <Gather action="amount" numDigits="4" timeout="5">
    <Say>Please enter the amount you wish to give, in dollars, then press pound.</Say>
  </Gather>
  <Say>We did not get an amount.</Say>
  <Redirect>voice</Redirect>
</Response>""", XML

    @app.post("/amount")
    def amount() -> tuple[str, dict[str, str]]:
        dollars = request.form["Digits"]
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Say>You are giving {dollars} dollars.</Say>
  <Pay chargeAmount="{dollars}.00" description="Donation" securityCode="false"
       postalCode="false" action="/thanks">
    <Parameter name="campaign" value="spring"/>
  </Pay>
  <Say>This is never said: the action URL decides what comes next.</Say>
</Response>""", XML

    @app.post("/thanks")
    def thanks() -> tuple[str, dict[str, str]]:
        if request.form["Result"] == "success":
            body = "<Say>Thank you for your gift.</Say><Play>https://cdn.example.org/" \
                   "thanks.mp3</Play>"
        else:
            body = f"<Say>Your gift could not be taken: {request.form['Result']}.</Say>"
        return f"<Response>{body}<Hangup/></Response>", XML

    return app
