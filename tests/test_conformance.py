"""`fakeproc check`: passes fakeproc as Twilio expects it, fails it under `reprocess`, and fails
a processor written wrong on purpose, naming the checks each one fails."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, request

from fakeproc.cli import main
from fakeproc.twilio.conformance import FAIL, PASS, check

from conftest import TEST_SCALE, LiveServer

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


def test_fakeproc_with_duplicate_error_passes_every_check_as_twilio_judges_it(server, client):
    """A retry refused as a duplicate, with the original id, is the other answer the Generic
    Pay Connector allows; the call emulator takes it as the charge too."""
    client.patch("/api/connectors/Default", json={"idempotency": "duplicate_error"})
    report = check(server.url, time_scale=SCALE)
    assert set(statuses(report).values()) == {PASS}, report.render()
    assert "refused as a duplicate with the original charge_id" in report.render()


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


def test_a_processor_that_leaves_some_requests_unanswered_fails_the_budget_check():
    """Charges are answered at once; tokenize requests never are. The endpoint is not silent,
    so every check runs, and the budget check counts the attempts that outlasted 0.1 s (Twilio's
    10 s at the test scale)."""
    app, never = Flask("half"), threading.Event()

    @app.post("/")
    def pay() -> Any:
        if request.get_json()["method"] == "tokenize":
            never.wait(1)
        return {"charge_id": "ch_1", "error_code": None, "error_message": None}

    with LiveServer(app) as half:
        report = check(half.url, time_scale=TEST_SCALE)
    never.set()
    result = {item.name: item for item in report.checks}
    assert result["charge_card_shape"].status == PASS
    budget = result["answers_within_budget"]
    assert budget.status == FAIL and "took longer than 0.1 s, e.g. tokenize" in budget.detail, \
        budget


def idempotent_but_blind_to_amounts(fresh_charge_for_a_changed_amount: bool) -> Flask:
    """Replays by transaction_id, but never compares the amount: a retry with another amount
    gets the first charge again, or (the other way wrong) is charged anew."""
    app, charged = Flask("blind"), {}

    @app.post("/")
    def pay() -> Any:
        body = request.get_json()
        key = "token_id" if body["method"] == "tokenize" else "charge_id"
        if body.get("cardnumber", "").endswith("2"):
            return {key: None, "error_code": "card_declined", "error_message": "declined"}
        seen = charged.get(body["transaction_id"])
        if seen is None or (fresh_charge_for_a_changed_amount and seen[1] != body.get("amount")):
            seen = charged[body["transaction_id"]] = ("id_" + secrets.token_hex(8),
                                                      body.get("amount"))
        return {key: seen[0], "error_code": None, "error_message": None}

    return app


@pytest.mark.parametrize("fresh, words", [
    (False, "the original charge id came back for a different amount"),
    (True, "a different amount under the same transaction_id was charged"),
])
def test_a_retry_with_another_amount_that_gets_a_charge_id_fails_the_mismatch_check(fresh,
                                                                                   words):
    with LiveServer(idempotent_but_blind_to_amounts(fresh)) as blind:
        report = check(blind.url, time_scale=SCALE)
    result = {item.name: item for item in report.checks}
    assert result["mismatched_retry_refused"].status == FAIL
    assert words in result["mismatched_retry_refused"].detail
    assert result["replay_same_answer"].status == PASS  # it is idempotent otherwise


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
    report = json.loads(result.stdout)  # progress goes to stderr: stdout stays JSON
    assert report["passed"] is True and report["failed"] == []
    assert [item["name"] for item in report["checks"]] == ALL_CHECKS


# -- quick to read: progress, one-line bodies, a silent endpoint, tokenize -------------------

def test_every_check_is_reported_as_it_ends_with_its_time(server):
    from fakeproc.twilio import Connector
    from fakeproc.twilio.conformance import Checker

    heard: list[str] = []
    checker = Checker(Connector(server.url, time_scale=SCALE))
    report = checker.run(on_check=lambda done: heard.append(done.name))
    assert heard == ALL_CHECKS
    assert all(item.seconds > 0 for item in report.checks)
    slow = next(item for item in report.checks if item.name == "slow_first_attempt_reaches_retry")
    assert slow.seconds >= 10 * SCALE  # it waited out a timeout: 0.5 s


def test_the_command_prints_each_check_before_the_run_ends():
    """A processor that never answers fakeproc's slow amount: while `check` still waits on
    that check, the lines of the checks before it are already out."""
    app, release = Flask("slow-amount"), threading.Event()

    @app.post("/")
    def pay() -> Any:
        body = request.get_json()
        if body.get("amount") == "4012.00":
            release.wait(30)
        key = "token_id" if body["method"] == "tokenize" else "charge_id"
        return {key: key[:2] + secrets.token_hex(8), "error_code": None, "error_message": None}

    with LiveServer(app) as processor:
        command = [sys.executable, "-m", "fakeproc", "check", processor.url, "--time-scale",
                   str(SCALE)]
        running = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                   stderr=subprocess.DEVNULL)
        try:
            seen = []
            for line in running.stdout:
                seen.append(line)
                if "mismatched_retry_refused" in line:
                    break
            assert running.poll() is None, "the lines came only at the end"
            assert any(line.startswith("  ok    charge_card_shape") for line in seen), seen
            assert re.search(r"  \d+\.\d\d s  ", seen[-1]), seen[-1]
        finally:
            release.set()
            running.communicate(timeout=30)  # reads what is left and closes the pipe


def silent_endpoint() -> tuple[socket.socket, list[socket.socket]]:
    """A port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, held


def test_against_an_endpoint_that_never_answers_check_ends_after_one_timeout():
    listener, held = silent_endpoint()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        started = time.monotonic()
        result = CliRunner().invoke(main, ["check", url, "--time-scale", str(SCALE)])
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        for connection in held:
            connection.close()
    # At scale 1 that is one 10 s timeout, well inside 90 s; here 0.5 s (plus the 0.5 s
    # health question that finds no fakeproc there).
    assert elapsed < 90 * SCALE, (elapsed, result.output)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("  FAIL  ")]
    assert len(lines) == len(ALL_CHECKS), result.output
    assert "no answer: timeout" in lines[0]
    assert all("not run: no request answered so far (the first: timeout after" in line
               for line in lines[1:]), result.output


def test_a_quoted_body_is_one_line_of_at_most_200_characters():
    app = Flask("html")
    page = "<html>\n<head><title>Oops</title></head>\n<body>\n" + "<p>trace</p>\n" * 400 \
        + "</body></html>"

    @app.post("/")
    def pay() -> Any:
        return page, 200, {"Content-Type": "text/html"}

    with LiveServer(app) as processor:
        result = CliRunner().invoke(main, ["check", processor.url, "--time-scale", str(SCALE)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    checks = [line for line in lines if line.startswith(("  ok", "  FAIL", "  skip"))]
    assert len(checks) == len(ALL_CHECKS), result.output
    for line in checks:
        for quoted in re.findall(r"(<html>.*?)(?: then |$)", line):
            assert len(quoted) <= 200, quoted
    assert "<html> <head><title>Oops</title></head> <body> <p>trace</p>" in result.output
    assert len(lines) == len(ALL_CHECKS) + 2, result.output  # the header and the summary


def test_a_tokenize_answer_with_a_charge_id_fails_the_tokenize_checks():
    app = Flask("charges-on-tokenize")

    @app.post("/")
    def pay() -> Any:
        answer = {"charge_id": "ch_" + secrets.token_hex(8), "error_code": None,
                  "error_message": None}
        if request.get_json()["method"] == "tokenize":
            answer["token_id"] = "tok_" + secrets.token_hex(8)
        return answer

    with LiveServer(app) as processor:
        report = check(processor.url, time_scale=SCALE)
    result = statuses(report)
    assert result["tokenize_card_shape"] == result["tokenize_ach_shape"] == FAIL
    assert result["charge_card_shape"] == PASS
    assert "a tokenize answer carries a charge_id" in report.render()


# -- on the server's clock ---------------------------------------------------------------------

def test_without_a_time_scale_check_runs_at_the_server_s(server):
    """Not told the scale, `check` reads the server's (0.05): its slow first attempt (0.6 s)
    outlasts Twilio's 0.5 s there and reaches the retry, which a 10 s budget never shows."""
    result = CliRunner().invoke(main, ["check", server.url])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"Generic Pay Connector conformance of {server.url}: each attempt given 0.5 s "
        "(Twilio's 10 s at time scale 0.05)")
    assert "  ok    slow_first_attempt_reaches_retry" in result.stdout
    assert result.stderr == ""


def test_told_another_scale_check_warns_in_one_line_and_json_stays_json(server):
    result = CliRunner().invoke(main, ["check", server.url, "--time-scale", "0.1", "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [f"fakeproc: warning: the fakeproc at {server.url} runs at time scale "
                        "0.05, not 0.1: its delays and hangs are scaled by 0.05, Twilio's "
                        "timeout here by 0.1"]
    assert "each attempt given 1 s (Twilio's 10 s at time scale 0.1)" in result.stderr
    report = json.loads(result.stdout)
    # Twilio's 1 s outlasts the server's 0.6 s delay: that check has nothing to see.
    assert {item["name"]: item["status"] for item in report["checks"]}[
        "slow_first_attempt_reaches_retry"] == "skip"


@pytest.mark.parametrize("health", [
    None,  # no /api/health at all: a 404
    ("<html><body>status page</body></html>", 200, {"Content-Type": "text/html"}),
    ({"status": "ok"}, 200, {}),  # some other service's health, no scale
    ({"status": "ok", "time_scale": "fast"}, 200, {}),
    ({"status": "ok", "time_scale": 0}, 200, {}),
], ids=["404", "html", "no-scale", "text-scale", "zero-scale"])
def test_another_processor_s_health_leaves_check_in_real_time_without_a_word(health):
    app = Flask("elsewhere")

    @app.post("/")
    def pay() -> Any:
        key = "token_id" if request.get_json()["method"] == "tokenize" else "charge_id"
        return {key: key[:2] + secrets.token_hex(8), "error_code": None, "error_message": None}

    if health is not None:
        app.add_url_rule("/api/health", "health", lambda: health)
    with LiveServer(app) as processor:
        result = CliRunner().invoke(main, ["check", processor.url + "/"])
    assert result.stdout.splitlines()[0].endswith(": each attempt given 10 s"), result.output
    assert result.stderr == ""
    # Its answers come at once: at Twilio's real 10 s the slow check has nothing to see.
    assert "  skip  slow_first_attempt_reaches_retry" in result.stdout, result.output
    assert "amount 4012.00 is not slow here" in result.stdout
