"""`fakeproc check`: does a processor endpoint behave as Twilio's Generic Pay Connector expects?

Each check sends real requests through the connector emulator and judges the answers: the
response shape of charge and tokenize, card and ACH; the id key kept on errors; idempotent
replays; one charge for concurrent duplicates; a refused mismatched retry; a slow first
attempt's result reaching the retry; every answer inside the timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .action_fields import DUPLICATE
from .gpc_client import Attempt, Connector
from .payment_details import BankAccount, Card

PASS, FAIL, SKIP = "pass", "fail", "skip"
DUPLICATES = 10
# fakeproc's magic amount for a 12 s first attempt; any other processor sees a plain amount.
SLOW_AMOUNT = "4012.00"
_YEAR = date.today().year + 3
TEST_CARD = Card("4111111111111111", 12, _YEAR, "123", "94111")
REFUSED_CARD = Card("4111111111111112", 12, _YEAR, "123", "94111")  # fails the Luhn check
TEST_ACCOUNT = BankAccount("123456789", "121000358")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    seconds: float = 0.0  # real time the check took


MARKS = {PASS: "ok  ", FAIL: "FAIL", SKIP: "skip"}


def render_check(check: Check, width: int = 32) -> str:
    """One line: verdict, name, time taken, what was seen."""
    return f"  {MARKS[check.status]}  {check.name:<{width}}  {check.seconds:6.2f} s  {check.detail}"


@dataclass
class Report:
    url: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if check.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "passed": self.passed, "failed": self.failed,
                "checks": [vars(check) for check in self.checks]}

    def render(self) -> str:
        lines = [f"Generic Pay Connector conformance of {self.url}", ""]
        lines += [render_check(check) for check in self.checks]
        return "\n".join([*lines, "", self.summary()])

    def summary(self) -> str:
        counts = {status: sum(c.status == status for c in self.checks)
                  for status in (PASS, FAIL, SKIP)}
        seconds = sum(check.seconds for check in self.checks)
        return (f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped in "
                f"{seconds:.1f} s" + (f": {', '.join(self.failed)}" if self.failed else ""))


class Checker:
    """Runs the checks against one endpoint; every answered attempt is kept for the budget."""

    def __init__(self, connector: Connector, slow_amount: str = SLOW_AMOUNT):
        self.connector = connector
        self.slow_amount = slow_amount
        self.budget = connector.timeout * connector.time_scale
        self._seen: list[tuple[str, Attempt]] = []
        self._lock = threading.Lock()

    def run(self, on_check: Callable[[Check], None] | None = None) -> Report:
        """Every check in turn; `on_check` hears each as it ends. Once the endpoint has
        answered nothing at all, the checks left are failed at once rather than each waiting
        out Twilio's timeout again."""
        report = Report(self.connector.url)
        checks: list[tuple[str, Callable[[], tuple[str, str]]]] = [
            ("charge_card_shape", lambda: self._shape("charge", TEST_CARD)),
            ("tokenize_card_shape", lambda: self._shape("tokenize", TEST_CARD)),
            ("charge_ach_shape", lambda: self._shape("charge", TEST_ACCOUNT)),
            ("tokenize_ach_shape", lambda: self._shape("tokenize", TEST_ACCOUNT)),
            ("error_keeps_id_key", self._error_keeps_id_key),
            ("replay_same_answer", self._replay),
            ("concurrent_duplicates_one_charge", self._concurrent_duplicates),
            ("mismatched_retry_refused", self._mismatched_retry),
            ("slow_first_attempt_reaches_retry", self._slow_first_attempt),
            ("answers_within_budget", self._within_budget),
        ]
        for name, check in checks:
            started = time.monotonic()
            silence = self._silence()
            status, detail = (FAIL, f"not run: {silence}") if silence else check()
            report.checks.append(Check(name, status, detail, time.monotonic() - started))
            if on_check is not None:
                on_check(report.checks[-1])
        return report

    def _silence(self) -> str | None:
        """Why the endpoint is taken for silent: it has answered none of the requests sent
        so far (a timeout, a refused or broken connection each time)."""
        with self._lock:
            seen = [attempt for _, attempt in self._seen]
        if not seen or any(attempt.answered for attempt in seen):
            return None
        first = seen[0]
        return f"no request answered so far (the first: {first.outcome} after " \
               f"{first.elapsed:.2f} s)"

    # -- the checks ------------------------------------------------------------------------

    def _shape(self, method: str, payment: Card | BankAccount) -> tuple[str, str]:
        attempt = self._send(self._body(method, payment), method)
        problem = _answer_problem(attempt, method)
        if problem is None and attempt.parsed.get("error_code") is not None:
            problem = (f"a TEST-mode {type(payment).__name__.lower()} was refused: "
                       f"{attempt.parsed.get('error_code')}")
        issued = attempt.parsed.get(id_key(method)) if isinstance(attempt.parsed, dict) else None
        if problem is None and method == "tokenize" and attempt.parsed.get("charge_id"):
            problem = (f"a tokenize answer carries a charge_id "
                       f"({attempt.parsed['charge_id']}): was the card charged?")
        return _verdict(problem, f"{id_key(method)} {issued}"
                        + (", no charge_id" if method == "tokenize" else ""))

    def _error_keeps_id_key(self) -> tuple[str, str]:
        attempt = self._send(self._body("charge", REFUSED_CARD), "error")
        key = id_key("charge")
        problem = _http_problem(attempt)
        if problem is None:
            answer = attempt.parsed
            if key not in answer:
                problem = f"the answer has no {key} key: {_short(attempt)}"
            elif answer[key] is not None:
                problem = f"a card failing the Luhn check was charged: {key} {answer[key]}"
            elif not answer.get("error_code"):
                problem = f"no error_code on a refused card: {_short(attempt)}"
        return _verdict(problem, f"{key} null with error_code "
                                 f"{attempt.parsed and attempt.parsed.get('error_code')}")

    def _replay(self) -> tuple[str, str]:
        body = self._body("charge", TEST_CARD)
        first, again = self._send(body, "replay"), self._send(body, "replay")
        problem = _answer_problem(first, "charge") or _answer_problem(again, "charge")
        if problem is None and not _same_outcome(first, again):
            problem = (f"the retry got a different answer: {_short(first)} then "
                       f"{_short(again)}")
        if problem is None and again.parsed != first.parsed:
            return PASS, ("the retry was refused as a duplicate with the original charge_id "
                          "(the other answer the Generic Pay Connector allows)")
        return _verdict(problem, "the retry got the first answer again")

    def _concurrent_duplicates(self) -> tuple[str, str]:
        body = self._body("charge", TEST_CARD)
        start = threading.Barrier(DUPLICATES)

        def send() -> Attempt:
            start.wait()
            return self._send(body, "duplicates")

        with ThreadPoolExecutor(DUPLICATES) as pool:
            attempts = list(pool.map(lambda _: send(), range(DUPLICATES)))
        problems = [p for p in (_answer_problem(a, "charge") for a in attempts) if p]
        ids = {a.parsed.get("charge_id") for a in attempts if a.parsed}
        if problems:
            return FAIL, f"{len(problems)} of {DUPLICATES} not answered well: {problems[0]}"
        if len(ids) != 1:
            return FAIL, f"{DUPLICATES} identical requests at once got {len(ids)} charge ids"
        return PASS, f"{DUPLICATES} identical requests at once, one charge id"

    def _mismatched_retry(self) -> tuple[str, str]:
        body = self._body("charge", TEST_CARD)
        first = self._send(body, "mismatch")
        changed = self._send({**body, "amount": _other_amount(body["amount"])}, "mismatch")
        problem = _answer_problem(first, "charge") or _http_problem(changed)
        if problem is None:
            answer = changed.parsed
            if answer.get("charge_id") is not None:
                same = answer["charge_id"] == first.parsed.get("charge_id")
                problem = ("the original charge id came back for a different amount" if same
                           else "a different amount under the same transaction_id was charged")
            elif not answer.get("error_code"):
                problem = f"refused without an error_code: {_short(changed)}"
        return _verdict(problem, "refused with error_code "
                                 f"{changed.parsed and changed.parsed.get('error_code')}")

    def _slow_first_attempt(self) -> tuple[str, str]:
        body = {**self._body("charge", TEST_CARD), "amount": self.slow_amount}
        payment = self.connector.pay(body)
        first, last = payment.attempts[0], payment.attempts[-1]
        if first.answered:
            return SKIP, (f"the first attempt was answered in {first.elapsed:.2f} s: "
                          f"amount {self.slow_amount} is not slow here (--slow-amount)")
        problem = _answer_problem(last, "charge")
        if problem is None and not last.parsed.get("charge_id"):
            problem = f"the retry got no charge: {_short(last)}"
        if problem is None:
            replay = self._send(body, "slow")
            if _answer_problem(replay, "charge") or replay.parsed != last.parsed:
                problem = f"a later replay disagrees: {_short(last)} then {_short(replay)}"
        return _verdict(problem, f"first attempt timed out; attempt {last.number} got "
                                 f"{last.parsed and last.parsed.get('charge_id')}")

    def _within_budget(self) -> tuple[str, str]:
        if not any(attempt.answered for _, attempt in self._seen):
            return FAIL, "no request was answered at all"
        late = [(label, a) for label, a in self._seen if a.elapsed > self.budget]
        slowest = max((a.elapsed for _, a in self._seen), default=0.0)
        if late:
            label, attempt = late[0]
            return FAIL, (f"{len(late)} answer(s) took longer than {self.budget:g} s, e.g. "
                          f"{label}: {attempt.elapsed:.2f} s")
        return PASS, f"{len(self._seen)} answers, the slowest {slowest:.3f} s of {self.budget:g} s"

    # -- plumbing ----------------------------------------------------------------------------

    def _body(self, method: str, payment: Card | BankAccount) -> dict[str, Any]:
        return self.connector.build(method, payment, "10.00" if method == "charge" else None,
                                    description="fakeproc check")

    def _send(self, body: dict[str, Any], label: str) -> Attempt:
        attempt = self.connector.send(body)
        with self._lock:
            self._seen.append((label, attempt))
        return attempt


def id_key(method: str) -> str:
    return "token_id" if method == "tokenize" else "charge_id"


def check(url: str, username: str | None = None, password: str | None = None,
          time_scale: float = 1.0, slow_amount: str = SLOW_AMOUNT) -> Report:
    """The conformance report of the processor endpoint at `url`."""
    connector = Connector(url, username, password, time_scale=time_scale)
    return Checker(connector, slow_amount).run()


def _http_problem(attempt: Attempt) -> str | None:
    if not attempt.answered:
        return f"no answer: {attempt.outcome}" + (f" ({attempt.error})" if attempt.error else "")
    if attempt.status != 200:
        return f"HTTP {attempt.status}: {_short(attempt)}"
    if not isinstance(attempt.parsed, dict):
        return f"the body is not a JSON object: {_short(attempt)}"
    return None


def _answer_problem(attempt: Attempt, method: str) -> str | None:
    """Why an answer is not a well-formed success for `method`, or None."""
    problem = _http_problem(attempt)
    if problem is not None:
        return problem
    key, answer = id_key(method), attempt.parsed
    if key not in answer:
        return f"no {key} key: {_short(attempt)}"
    if answer.get("error_code") is None and not (isinstance(answer[key], str) and answer[key]):
        return f"{key} is not an id although error_code is null: {_short(attempt)}"
    return None


def _same_outcome(first: Attempt, again: Attempt) -> bool:
    """Whether a retry's answer tells the first one's outcome, as Twilio judges it (see
    `action_fields`): the same answer, or `duplicate_transaction` with the same id."""
    if again.parsed == first.parsed:
        return True
    answer, original = again.parsed, first.parsed
    return (isinstance(answer, dict) and isinstance(original, dict)
            and answer.get("error_code") == DUPLICATE
            and answer.get("charge_id") not in (None, "")
            and answer.get("charge_id") == original.get("charge_id"))


def _verdict(problem: str | None, success: str) -> tuple[str, str]:
    return (FAIL, problem) if problem else (PASS, success)


def _other_amount(amount: str) -> str:
    return f"{float(amount) + 1:.2f}"


def _short(attempt: Attempt, limit: int = 200) -> str:
    """The body as one line of at most `limit` characters."""
    text = " ".join(attempt.body.decode("utf-8", "replace").split())
    return (text[:limit - 1] + "…") if len(text) > limit else (text or "(empty body)")
