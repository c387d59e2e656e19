"""The README's pytest examples: what a team testing its <Pay> flows writes with the plugin.
Here `requests` stands in for Twilio posting to the processor; the timeouts are Twilio's 10 s
at the plugin's default time scale (0.01)."""

import pytest
import requests

TWILIO_TIMEOUT = 10 * 0.01


def pay(server, body, timeout=5):
    return requests.post(server.url + "/", json=body, auth=server.auth, timeout=timeout)


def test_a_decline_reaches_the_app_with_its_code(fakeproc, fakeproc_server, fakeproc_payload):
    fakeproc.decline_next("insufficient_funds")
    body = fakeproc_payload(amount="42.00")

    answer = pay(fakeproc_server, body).json()

    assert answer == {"charge_id": None, "error_code": "insufficient_funds",
                      "error_message": "The card has insufficient funds."}
    fakeproc.assert_declined(body["transaction_id"], "insufficient_funds")


def test_a_slow_processor_is_retried_and_charges_once(fakeproc, fakeproc_server,
                                                     fakeproc_payload):
    fakeproc.delay_next(12, attempt=1)  # past Twilio's 10 s: the first attempt times out
    body = fakeproc_payload()

    with pytest.raises(requests.Timeout):
        pay(fakeproc_server, body, timeout=TWILIO_TIMEOUT)
    retry = pay(fakeproc_server, body)  # the same transaction_id, as Twilio retries

    assert retry.json()["charge_id"].startswith("ch_")
    fakeproc.assert_retried(body["transaction_id"], attempts=2)
    fakeproc.assert_charged_once(body["transaction_id"])


def test_a_processor_that_never_answers_leaves_an_orphan(fakeproc, fakeproc_server,
                                                         fakeproc_payload):
    fakeproc.hang_next(charge=True)  # every attempt of the payment: charged, never answered
    body = fakeproc_payload()

    for _ in range(6):  # the first attempt and Twilio's five retries
        with pytest.raises(requests.Timeout):
            pay(fakeproc_server, body, timeout=TWILIO_TIMEOUT)
    fakeproc.wait_idle()

    fakeproc.assert_orphaned(body["transaction_id"])
