"""`fakeproc check`: passes fakeproc as Twilio expects it, fails it under `reprocess`, and fails
a processor written wrong on purpose, naming the checks each one fails."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TEST_SCALE, LiveServer
from flask import Flask, request

from fakeproc.cli import main
from fakeproc.conformance import FAIL, PASS, check

# Twilio's 10 s budget becomes 0.5 s: ten duplicates at once on a busy 2-core machine stay well
# inside it, and fakeproc's 12 s magic delay (0.6 s) still outlasts it.
SCALE = 0.05

ALL_CHECKS = ["charge_card_shape", "tokenize_card_shape", "charge_ach_shape",
              "tokenize_ach_shape", "error_keeps_id_key", "replay_same_answer",
              "concurrent_duplicates_one_charge", "mismatched_retry_refused",
              "slow_first_attempt_reaches_retry", "answers_within_budget"]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"TIME_SCALE": SCALE}


def statuses(report: Any) -> dict[str, str]:
    return {item.name: item.status for item in report.checks}


def test_fakeproc_with_replay_passes_every_check(server):
    report = check(server.url, time_scale=SCALE)
    assert list(statuses(report)) == ALL_CHECKS
    assert set(statuses(report).values()) == {PASS}, report.render()
    assert report.passed and "10 passed, 0 failed" in report.render()


def test_fakeproc_with_reprocess_fails_the_idempotency_checks(server, client):
    client.patch("/api/connectors/Default", json={"idempotency": "reprocess"})
    report = check(server.url, time_scale=SCALE)
    assert report.failed == ["replay_same_answer", "concurrent_duplicates_one_charge",
                             "slow_first_attempt_reaches_retry"], report.render()
    assert "10 identical requests at once got" in report.render()


def broken_processor() -> Flask:
    """Answers with an `id` key instead of charge_id/token_id, charges every request anew
    (no idempotency), and drops the id key on errors."""
    app = Flask("broken")

    @app.post("/")
    def pay() -> Any:
        body = request.get_json()
        if body.get("cardnumber", "").endswith("2"):
            return {"error_code": "card_declined", "error_message": "declined"}
        return {"id": "x_" + secrets.token_hex(8), "error_code": None, "error_message": None}

    return app


def test_a_broken_processor_fails_naming_each_check():
    with LiveServer(broken_processor()) as broken:
        report = check(broken.url, time_scale=SCALE)
    result = statuses(report)
    assert result["answers_within_budget"] == PASS
    assert [name for name, status in result.items() if status == FAIL] == [
        "charge_card_shape", "tokenize_card_shape", "charge_ach_shape", "tokenize_ach_shape",
        "error_keeps_id_key", "replay_same_answer", "concurrent_duplicates_one_charge",
        "mismatched_retry_refused"], report.render()
    # Its first attempts are never slow: that check cannot be exercised, and says why.
    assert result["slow_first_attempt_reaches_retry"] == "skip"
    assert "no charge_id key" in report.render()


def test_a_processor_too_slow_for_the_budget_fails_that_check():
    app, gate = Flask("slow"), threading.Event()

    @app.post("/")
    def pay() -> Any:
        gate.wait(0.15)  # 150 ms against a 100 ms budget at the test scale
        key = "token_id" if request.get_json()["method"] == "tokenize" else "charge_id"
        return {key: "id_1", "error_code": None, "error_message": None}

    with LiveServer(app) as slow:
        report = check(slow.url, time_scale=TEST_SCALE)
    assert "charge_card_shape" in report.failed
    assert any("timeout" in item.detail for item in report.checks if item.status == FAIL)


@pytest.mark.parametrize("mode, code", [("replay", 0), ("reprocess", 1)])
def test_the_command_prints_a_report_and_exits_non_zero_on_failure(server, client, mode, code):
    client.patch("/api/connectors/Default", json={"idempotency": mode})
    result = CliRunner().invoke(main, ["check", server.url, "--time-scale", str(SCALE)])
    assert result.exit_code == code, result.output
    assert "Generic Pay Connector conformance of" in result.output
    if code:
        assert "FAIL  replay_same_answer" in result.output


def test_the_command_checks_credentials_and_speaks_json(server, client):
    client.patch("/api/connectors/Default", json={"username": "tw", "password": "pw"})
    refused = CliRunner().invoke(main, ["check", server.url, "--time-scale", str(SCALE)])
    assert refused.exit_code == 1 and "HTTP 401" in refused.output
    result = CliRunner().invoke(main, ["check", server.url, "--username", "tw", "--password",
                                       "pw", "--time-scale", str(SCALE), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True and report["failed"] == []
    assert [item["name"] for item in report["checks"]] == ALL_CHECKS
