"""A utility's bill line: an ACH debit with the team's own `<Prompt>` for every step, its
re-prompts by error type and attempt, and the account number entered twice to be sure."""

from __future__ import annotations

from flask import Flask, request

XML = {"Content-Type": "text/xml"}
PAY = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Pay paymentMethod="ach-debit" bankAccountType="consumer-savings" chargeAmount="84.20"
       action="/done" statusCallback="/status" maxAttempts="2" timeout="8">
    <Prompt for="bank-routing-number">
      <Say>Enter the nine-digit routing number of your bank.</Say>
    </Prompt>
    <Prompt for="bank-routing-number" errorType="invalid-bank-routing-number">
      <Say>That routing number is not valid. Try again.</Say>
    </Prompt>
    <Prompt for="bank-routing-number" errorType="timeout" attempt="2 3">
      <Say>We did not hear anything. Enter the routing number.</Say>
    </Prompt>
    <Prompt for="bank-account-number">
      <Say>Enter your account number.</Say>
    </Prompt>
    <Prompt for="bank-account-number" requireMatchingInputs="true">
      <Say>Enter your account number again.</Say>
    </Prompt>
    <Prompt for="bank-account-number" errorType="input-matching-failed">
      <Say>The two numbers were different. Enter your account number.</Say>
    </Prompt>
    <Prompt for="payment-processing">
      <Say>Please hold while we set up the payment.</Say>
    </Prompt>
  </Pay>
</Response>"""


def create_app() -> Flask:
    app = Flask("bill_line")
    app.config["STATUS"] = []

    @app.post("/voice")
    def voice() -> tuple[str, dict[str, str]]:
        return PAY, XML

    @app.post("/status")
    def status() -> tuple[str, int]:
        app.config["STATUS"].append(dict(request.form))
        return "", 204

    @app.post("/done")
    def done() -> tuple[str, dict[str, str]]:
        result = request.form["Result"]
        if result == "success":
            said = "Your bill is paid. Goodbye."
        elif result == "too-many-failed-attempts":
            said = f"We could not take the payment ({request.form['PaymentError']})."
        else:
            said = "The payment did not go through."
        return f"<Response><Say>{said}</Say></Response>", XML

    return app
