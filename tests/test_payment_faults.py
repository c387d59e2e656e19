"""SPEC §3: a fault armed for "the next payment" lasts the whole payment, Twilio's retries
included, as Twilio's side sees it. The connector emulator plays Twilio (its 10 s timeout at
the tests' time scale, five retries) against fakeproc over real HTTP; the controller arms the
faults as a pytest user would.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fakeproc.cli import main
from fakeproc.testing import Controller
from fakeproc.twilio import Card, Connector, Payment

from conftest import TEST_SCALE, LiveServer

CARD = Card("4111111111111111", 8, 2035, cvv="123", postal_code="94111")
ATTEMPTS = 6  # the first and Twilio's five retries


@pytest.fixture
def fakeproc(app) -> Controller:
    return Controller(app)


def twilio(server: LiveServer) -> Connector:
    """Twilio's side with its own 10 s timeout, scaled as the server is."""
    return Connector(server.url, time_scale=TEST_SCALE)


def patient(server: LiveServer) -> Connector:
    """A wider budget (600 ms) for payments no fault touches: a busy machine must not turn a
    prompt answer into a timeout."""
    return Connector(server.url, timeout=60.0, time_scale=TEST_SCALE)


def pay(connector: Connector) -> Payment:
    return connector.charge(CARD, "10.00")


def assert_untouched(server: LiveServer, fakeproc: Controller) -> None:
    """The payment after the armed one gets the usual answer at once."""
    after = pay(patient(server))
    assert after.result == "success", after.fields
    assert [a.outcome for a in after.attempts] == ["answered"]
    assert fakeproc.transaction(after.transaction_id)["attempts"][0]["rules"] == []


def test_the_next_payment_hangs_on_every_attempt(server, fakeproc):
    rule = fakeproc.hang_next()
    payment = pay(twilio(server))

    assert [a.outcome for a in payment.attempts] == ["timeout"] * ATTEMPTS
    assert payment.result == "payment-connector-error"
    fakeproc.wait_idle()
    record = fakeproc.transaction(payment.transaction_id)
    assert [a["delivery"] for a in record["attempts"]] == ["hung"] * ATTEMPTS
    assert [a["rules"] for a in record["attempts"]] == [[f"rule:{rule['id']}"]] * ATTEMPTS
    assert (record["status"], record["issued"], record["orphaned"]) == ("failed", 0, False)
    assert fakeproc.rules()[0]["remaining"] == 0
    assert_untouched(server, fakeproc)


def test_hang_charge_anyway_leaves_an_orphan(server, fakeproc):
    fakeproc.hang_next(charge=True)
    payment = pay(twilio(server))

    assert [a.outcome for a in payment.attempts] == ["timeout"] * ATTEMPTS
    assert payment.result == "payment-connector-error"
    fakeproc.wait_idle()
    fakeproc.assert_orphaned(payment.transaction_id)
    fakeproc.assert_charged_once(payment.transaction_id)
    assert [a["kind"] for a in fakeproc.transaction(payment.transaction_id)["attempts"]] == [
        "original"] + ["replay"] * (ATTEMPTS - 1)
    assert_untouched(server, fakeproc)


def test_the_next_payment_waits_12_s_on_every_attempt(server, fakeproc):
    fakeproc.delay_next(12)
    payment = pay(twilio(server))

    assert [a.outcome for a in payment.attempts] == ["timeout"] * ATTEMPTS
    fakeproc.wait_idle()
    record = fakeproc.transaction(payment.transaction_id)
    assert [a["late"] for a in record["attempts"]] == [True] * ATTEMPTS
    assert record["issued"] == 1 and record["orphaned"]
    assert_untouched(server, fakeproc)


def test_a_dropped_payment_drops_every_retry(server, fakeproc):
    fakeproc.drop_next()
    # Every attempt is dropped at once: the wider budget keeps a busy machine from turning a
    # drop into a timeout (a clean-clone run once saw one).
    payment = pay(patient(server))

    assert {a.outcome for a in payment.attempts} <= {"connection_closed", "connection_reset"}
    assert len(payment.attempts) == ATTEMPTS
    fakeproc.wait_idle()
    fakeproc.assert_orphaned(payment.transaction_id)
    assert_untouched(server, fakeproc)


@pytest.mark.parametrize("arm", [
    pytest.param(lambda f: f.delay_next(12, attempt=1), id="delay"),
    pytest.param(lambda f: f.hang_next(attempt=1), id="hang"),
])
def test_first_attempt_only_lets_twilio_s_retry_get_the_answer(server, fakeproc, arm):
    arm(fakeproc)
    payment = pay(twilio(server))

    assert payment.attempts[0].outcome == "timeout"
    assert payment.result == "success", [a.outcome for a in payment.attempts]
    fakeproc.wait_idle()
    fakeproc.assert_charged_once(payment.transaction_id)
    assert_untouched(server, fakeproc)


def test_fakeproc_pay_sees_the_whole_payment_hang(server, fakeproc):
    """The same through the command a QA engineer types."""
    fakeproc.hang_next()
    result = CliRunner().invoke(main, [  # at the server's own time scale, read from it
        "pay", server.url + "/", "--card", "4111111111111111", "--expiry", "08/35",
        "--cvv", "123", "--amount", "10.00"])

    assert result.exit_code == 1, result.output
    assert result.output.count(": timeout after") == ATTEMPTS
    assert "Result=payment-connector-error" in result.output
