"""What the pytest plugin hands a test: a controller that arms faults and reads transactions
through the control API, assertion helpers whose failures tell what did happen, and the
collector of errors raised inside fakeproc while a test ran."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..config import DEFAULT_CONNECTOR as DEFAULT


class FakeprocError(Exception):
    """The control API refused a call (a malformed rule, an unknown transaction, …)."""


class FakeprocServerError(AssertionError):
    """fakeproc itself failed while the test ran; the cause is its own exception."""


class Controller:
    """The test's handle on fakeproc: every call goes through the control API, so a rule
    armed here is validated exactly as one sent over HTTP."""

    def __init__(self, app: Any):
        self.app = app
        self._client = app.test_client()
        token = app.config.get("ADMIN_TOKEN")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    # -- arming ------------------------------------------------------------------------------

    def add_rule(self, match: dict[str, Any] | None = None, action: dict[str, Any] | None = None,
                 **lifetime: Any) -> dict[str, Any]:
        """Any rule: `match`, `action` and lifetime (`remaining`, `probability`, `enabled`,
        `priority`, `note`) as in the control API."""
        if action is None:
            raise TypeError("add_rule needs an action, e.g. {'type': 'decline', ...}")
        return self._call("POST", "/api/rules",
                          {"match": match or {}, "action": action, **lifetime})

    def decline_next(self, code: str = "card_declined", count: int = 1,
                     message: str | None = None, **match: Any) -> dict[str, Any]:
        """Decline the next `count` transactions (matching `match`) with `code`."""
        action = {"type": "decline", "error_code": code}
        if message is not None:
            action["error_message"] = message
        return self.add_rule(match, action, remaining=count)

    def approve_next(self, count: int = 1, **match: Any) -> dict[str, Any]:
        return self.add_rule(match, {"type": "approve"}, remaining=count)

    def delay_next(self, seconds: float, attempt: int | None = None, count: int = 1,
                   **match: Any) -> dict[str, Any]:
        """Hold every attempt of the next `count` payments `seconds` (configured time) before
        answering; `attempt=1` holds only their first attempts, so Twilio's retry is answered
        at once."""
        if attempt is not None:
            match["attempt"] = attempt
        return self.add_rule(match, {"type": "delay", "seconds": seconds}, remaining=count)

    def hang_next(self, charge: bool = False, seconds: float | None = None, count: int = 1,
                  **match: Any) -> dict[str, Any]:
        """Hold every attempt of the next `count` payments without a byte, then close;
        `charge=True` charges anyway (an orphan once Twilio gives up). `attempt=1` hangs only
        first attempts."""
        action: dict[str, Any] = {"type": "hang", "charge": charge}
        if seconds is not None:
            action["seconds"] = seconds
        return self.add_rule(match, action, remaining=count)

    def drop_next(self, charge: bool = True, count: int = 1, **match: Any) -> dict[str, Any]:
        """Close every connection of the next `count` payments with no response at all."""
        return self.add_rule(match, {"type": "drop", "charge": charge}, remaining=count)

    def fail_next(self, status: int = 500, body: str | None = None, count: int = 1,
                  **match: Any) -> dict[str, Any]:
        """Answer every attempt of the next `count` payments with HTTP `status` (and
        `body`)."""
        action: dict[str, Any] = {"type": "http_error", "status": status}
        if body is not None:
            action["body"] = body
        return self.add_rule(match, action, remaining=count)

    def malformed_next(self, variant: str = "not_json", count: int = 1,
                       **match: Any) -> dict[str, Any]:
        """Answer every attempt of the next `count` payments with a broken body (`not_json`,
        `html`, `empty`, `missing_id`, `null_id_no_error`, `wrong_id_key`, `truncated`)."""
        return self.add_rule(match, {"type": "malformed", "variant": variant}, remaining=count)

    def rules(self) -> list[dict[str, Any]]:
        return self._all("/api/rules")

    def remove_rule(self, rule_id: int) -> None:
        self._call("DELETE", f"/api/rules/{rule_id}")

    def add_connector(self, unique_name: str, **settings: Any) -> dict[str, Any]:
        """A connector besides Default (`username`, `password`, `mode`, `idempotency`,
        `magic_values`, `timeout_seconds`); Twilio reaches it at /connectors/<unique_name>."""
        return self._call("POST", "/api/connectors", {"unique_name": unique_name, **settings})

    def update_connector(self, unique_name: str = DEFAULT, **settings: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/api/connectors/{unique_name}", settings)

    # -- reading -----------------------------------------------------------------------------

    def transactions(self, **filters: Any) -> list[dict[str, Any]]:
        """Every transaction, newest first; filters as in the API (`status`, `connector`,
        `method`, `retried=True`, `orphaned=True`, `q`)."""
        query = {key: str(value).lower() if isinstance(value, bool) else value
                 for key, value in filters.items()}
        return self._all("/api/transactions", query)

    def transaction(self, transaction_id: str, connector: str | None = None) -> dict[str, Any]:
        """One transaction with its attempts."""
        query = {"connector": connector} if connector else {}
        return self._call("GET", f"/api/transactions/{transaction_id}", query=query)

    def retries(self) -> list[dict[str, Any]]:
        return self._all("/api/retries")

    def orphans(self) -> list[dict[str, Any]]:
        return self.transactions(orphaned=True)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait (real seconds) until no attempt is still held or being answered: a hang or a
        delay the client gave up on ends later, and only then are its late and orphan marks
        final."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            open_ = [t["transaction_id"] for t in self.transactions()
                     if any(a["responded_at"] is None
                            for a in self.transaction(t["transaction_id"],
                                                      t["connector"])["attempts"])]
            if not open_:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"attempts still open after {timeout} s: {open_}")
            time.sleep(0.01)

    def reset(self, rules: bool = True, connectors: bool = False) -> None:
        """Forget transactions (and rules); with `connectors`, drop every connector but
        Default and put Default back as the app was configured."""
        self._call("POST", "/api/reset", {"rules": rules})
        if connectors:
            for connector in self._all("/api/connectors"):
                if connector["unique_name"] != DEFAULT:
                    self._call("DELETE", f"/api/connectors/{connector['unique_name']}")
            config = self.app.config
            self.update_connector(DEFAULT, username=config.get("USERNAME"),
                                  password=config.get("PASSWORD") or "", mode="test",
                                  idempotency="replay", magic_values=True, timeout_seconds=10.0)

    # -- assertions --------------------------------------------------------------------------

    def assert_charged_once(self, transaction_id: str, connector: str | None = None) -> None:
        """One charge (or token) was issued, whatever the retries."""
        __tracebackhide__ = True
        record = self._record(transaction_id, connector)
        if record["issued"] != 1:
            raise AssertionError(f"{transaction_id} was charged {record['issued']} times, "
                                 f"not once\n{describe(record)}")

    def assert_not_charged(self, transaction_id: str, connector: str | None = None) -> None:
        __tracebackhide__ = True
        record = self._record(transaction_id, connector)
        if record["issued"]:
            raise AssertionError(f"{transaction_id} was charged\n{describe(record)}")

    def assert_declined(self, transaction_id: str, code: str | None = None,
                        connector: str | None = None) -> None:
        __tracebackhide__ = True
        record = self._record(transaction_id, connector)
        if record["status"] != "declined" or (code and record["error_code"] != code):
            wanted = f"declined with {code}" if code else "declined"
            raise AssertionError(f"{transaction_id} was not {wanted}\n{describe(record)}")

    def assert_retried(self, transaction_id: str, attempts: int | None = None,
                       connector: str | None = None) -> None:
        """More than one attempt arrived (exactly `attempts`, when given)."""
        __tracebackhide__ = True
        record = self._record(transaction_id, connector)
        count = len(record["attempts"])
        if count < 2 or (attempts is not None and count != attempts):
            wanted = f"{attempts} attempts" if attempts is not None else "a retry"
            raise AssertionError(f"{transaction_id} had {count} attempt(s), expected {wanted}"
                                 f"\n{describe(record)}")

    def assert_orphaned(self, transaction_id: str, connector: str | None = None) -> None:
        """Charged, but no attempt's answer reached the client in time."""
        __tracebackhide__ = True
        record = self._record(transaction_id, connector)
        if not record["orphaned"]:
            raise AssertionError(f"{transaction_id} is not an orphan\n{describe(record)}")

    # -- plumbing ----------------------------------------------------------------------------

    def _record(self, transaction_id: str, connector: str | None) -> dict[str, Any]:
        __tracebackhide__ = True
        response = self._client.get(f"/api/transactions/{transaction_id}", headers=self._headers,
                                    query_string={"connector": connector} if connector else {})
        if response.status_code == 404:
            latest = [t["transaction_id"] for t in self.transactions()[:5]]
            raise AssertionError(f"fakeproc has no transaction {transaction_id}; the latest "
                                 f"it has: {', '.join(latest) or 'none at all'}")
        return self._checked("GET", "/api/transactions/…", response)

    def _all(self, path: str, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            page = self._call("GET", path,
                              query={**(query or {}), "limit": 500,
                                     **({"cursor": cursor} if cursor else {})})
            items.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    def _call(self, method: str, path: str, body: Any = None,
              query: dict[str, Any] | None = None) -> Any:
        response = self._client.open(path, method=method, json=body, query_string=query or {},
                                     headers=self._headers)
        return self._checked(method, path, response)

    @staticmethod
    def _checked(method: str, path: str, response: Any) -> Any:
        if response.status_code >= 400:
            error = (response.get_json(silent=True) or {}).get("error", response.status)
            raise FakeprocError(f"{method} {path}: {error}")
        return response.get_json() if response.data else None


def describe(record: dict[str, Any]) -> str:
    """A transaction and its attempts as a failure message shows them."""
    ids = record.get("charge_id") or record.get("token_id") or "no id"
    lines = [f"  {record['method']} on {record['connector']}: {record['status']}"
             f"{' ' + record['error_code'] if record['error_code'] else ''}, {ids}, "
             f"issued {record['issued']}, orphaned {record['orphaned']}"]
    for attempt in record.get("attempts", []):
        marks = [mark for mark in ("late",) if attempt.get(mark)]
        gap = attempt["gap_seconds"]
        lines.append(
            f"  attempt {attempt['number']} ({attempt['kind']}): "
            f"{attempt['delivery'] or 'in flight'} {attempt['status_code'] or ''}".rstrip()
            + (f", {gap:.3f} s after the previous" if gap is not None else "")
            + (f", {', '.join(marks)}" if marks else "")
            + (f", rules {', '.join(attempt['rules'])}" if attempt.get("rules") else ""))
    return "\n".join(lines)


class ServerErrors(logging.Handler):
    """Keeps the errors fakeproc logged with a traceback (an unexpected exception in a view,
    an error in the server thread) so that the test that caused them fails."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            with self._guard:
                self._records.append(record)

    def mark(self) -> int:
        with self._guard:
            return len(self._records)

    def raise_since(self, mark: int) -> None:
        __tracebackhide__ = True
        with self._guard:
            fresh = self._records[mark:]
        if fresh:
            first = fresh[0]
            raise FakeprocServerError(
                f"fakeproc raised {len(fresh)} error(s) while the test ran; the first: "
                f"{first.getMessage()}: {first.exc_info[1]!r}") from first.exc_info[1]
