#!/usr/bin/env python3
"""Admin transaction pages: first page, filters, page two and searches over 100,000 transactions.

Builds (once, then cached) a SQLite store of --rows transactions, or with --database-url a
PostgreSQL one, shaped exactly as fakeproc stores them: several connectors in test and open
mode, charges and tokens, cards and ACH, approvals, declines, failed and in-flight transactions,
retries with up to four attempts, orphans, thousands of distinct last 4 digits, with their
attempts. It starts `python -m fakeproc serve --workers 1` on a copy of that store and, over one
keep-alive connection, times `GET /admin/transactions` for the first page, each filter, a
filtered page two, and searches by transaction id, charge id, last 4 and one that matches
nothing: --repeats requests each after --warmup. It also times `GET /api/transactions` with the
same parameters (the page's JSON twin, the same domain function) and checks the JSON answers
against the store. Prints p50/p95/max per page and surface. Exits 1 when a p95 misses --target
or an answer is wrong, 2 when the benchmark could not run (the store, the server, or the admin
page missing).

    python benchmarks/admin_pages.py                     # 100,000 rows, page and API, 20 each
    python benchmarks/admin_pages.py --surfaces api      # the JSON twin only
    python benchmarks/admin_pages.py --plans             # + the plan of each query
    python benchmarks/admin_pages.py --rows 300000 --rebuild
    python benchmarks/admin_pages.py --rows 1000000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

A SQLite store is cached in --cache-dir (~/.cache/fakeproc-bench), keyed by row count, seed,
schema revision and the builder's version; a run copies it, so the cached file is never written
to. A PostgreSQL store is the database fakeproc_bench_admin_<rows>_seed<seed> on the server of
--database-url, the rest of its key in the database's comment; a run serves a copy made with
CREATE DATABASE … TEMPLATE and drops it at the end. Both stores hold the same rows for a seed
(times are relative to the build, fingerprints under each store's key). Building 100,000 rows
takes about 20 s. Target: p95 < 100 ms (--target). The server process handling and the quiet
wait come from serving.py.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serving and the other benchmarks, also when run from elsewhere

from hold_open import code_version  # noqa: E402
from load_charge import percentile  # noqa: E402
from serving import (  # noqa: E402
    HOST,
    ServerProcess,
    add_server_options,
    free_port,
    run,
    scratch,
    stop_on_signals,
    wait_for_quiet,
)

# Bump when the generated data changes: cached stores of another version are rebuilt.
BUILDER_VERSION = 1
PAGE_PATH = "/admin/transactions"
API_PATH = "/api/transactions"
PAGE_TEMPLATE = HERE.parent / "templates" / "admin" / "transactions.html"
PAGE_SIZE = 50
NO_MATCH = "no-such-transaction"

# (unique_name, mode, share of the traffic in %); the smallest one is the connector filter.
CONNECTORS = (("Default", "test", 40), ("checkout", "test", 25), ("ivr-payments", "open", 15),
              ("subscriptions", "test", 12), ("donations", "open", 6), ("legacy-ach", "open", 2))
# What happens to a transaction, in 1/10,000: the rest is approved at the first attempt.
FATES = (("declined", 1000), ("retried", 400), ("failed", 150), ("orphaned", 40),
         ("mismatch", 10))
DECLINE_AMOUNTS = {2000: "do_not_honor", 2001: "insufficient_funds",
                   2002: "card_velocity_exceeded", 2004: "expired_card", 2012: "lost_card",
                   2013: "stolen_card", 2014: "fraudulent", 2046: "card_declined"}
TEST_CARD_SHARES = {"4111111111111111": 45, "5555555555554444": 20, "378282246310005": 10,
                    "6011111111111117": 8, "3566002020360505": 5, "3065930009020004": 4,
                    "6200000000000005": 4, "6771798021000008": 4}
ROUTING_NUMBERS = ("110000000", "021000021")
DESCRIPTIONS = (None, "pizza", "Invoice payment", "Monthly plan", "Donation", "Order by phone")
IN_FLIGHT_NEWEST = 20  # open right now, at the newest end
IN_FLIGHT_STALE = 5  # left in flight by a server that stopped mid-hang, spread out
SPAN = timedelta(days=30)
TWILIO_AGENT = "TwilioProxy/1.1"


# -- the store -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instrument:
    """A card or bank account: the request fields that carry it, in the clear, as Twilio sends
    them; `wire.parse` masks them like any request before anything is stored."""

    body: dict
    test: bool  # a TEST-mode number


def _luhn_complete(partial: str) -> str:
    digits = [int(d) for d in reversed(partial + "0")]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2)
                for i, d in enumerate(digits))
    return partial + str((10 - total % 10) % 10)


class StoreMaker:
    """Transactions and attempts as rows for `insert(Transaction)` and `insert(Attempt)`."""

    def __init__(self, rows: int, seed: int, fingerprints, now: datetime):
        from fakeproc.processor import wire
        from fakeproc.processor.outcomes import MESSAGES

        self.wire, self.messages = wire, MESSAGES
        self.rows, self.rng, self.fingerprints = rows, random.Random(seed), fingerprints
        self.start = now - SPAN
        self.step = SPAN / rows
        self.year = f"{(now.year + 3) % 100:02d}"
        self.test_cards = [Instrument(self._card(n), True) for n in TEST_CARD_SHARES]
        self.card_weights = list(TEST_CARD_SHARES.values())
        self.live_cards = [Instrument(self._card(self._live_number()), False)
                           for _ in range(max(4000, rows // 25))]
        self.test_accounts = [Instrument(self._account(n), True) for n in ("12345678",
                                                                            "123456789")]
        self.live_accounts = [Instrument(self._account(str(self.rng.randrange(10**8, 10**12))),
                                         False) for _ in range(500)]
        self.connectors = [name for name, _, _ in CONNECTORS]
        self.modes = {name: mode for name, mode, _ in CONNECTORS}
        self.shares = [share for _, _, share in CONNECTORS]
        self.fates = [fate for fate, _ in FATES] + ["approved"]
        self.fate_weights = [w for _, w in FATES] + [10_000 - sum(w for _, w in FATES)]
        stale = rows - IN_FLIGHT_NEWEST
        self.in_flight = set(range(rows - IN_FLIGHT_NEWEST + 1, rows + 1)) | {
            stale * k // (IN_FLIGHT_STALE + 1) for k in range(1, IN_FLIGHT_STALE + 1)}
        self._fingerprint_cache: dict[str, str] = {}
        self.attempt_pk = 0

    def _card(self, number: str) -> dict:
        cvv = "1234" if number.startswith(("34", "37")) else "123"
        return {"cardnumber": number, "cvv": cvv, "expiry_month": "08", "expiry_year": self.year}

    def _account(self, number: str) -> dict:
        return {"bankaccountnumber": number,
                "routingnumber": self.rng.choice(ROUTING_NUMBERS), "type": "ach-debit"}

    def _live_number(self) -> str:
        prefix, length = self.rng.choice((("4", 16), ("4", 16), ("5", 16), ("37", 15)))
        if prefix == "5":
            prefix += str(self.rng.randrange(1, 6))
        body = prefix + "".join(str(self.rng.randrange(10)) for _ in range(length - 1
                                                                             - len(prefix)))
        return _luhn_complete(body)

    def batches(self, size: int):
        """(transactions, attempts) lists of at most `size` transactions each."""
        for first in range(1, self.rows + 1, size):
            transactions, attempts = [], []
            for pk in range(first, min(first + size, self.rows + 1)):
                row, its_attempts = self.transaction(pk)
                transactions.append(row)
                attempts += its_attempts
            yield transactions, attempts

    def transaction(self, pk: int) -> tuple[dict, list[dict]]:
        rng = self.rng
        connector = rng.choices(self.connectors, self.shares)[0]
        mode = self.modes[connector]
        method = "tokenize" if rng.random() < 0.2 else "charge"
        instrument = self._instrument(connector, mode)
        fate = "in_flight" if pk in self.in_flight else rng.choices(self.fates,
                                                                     self.fate_weights)[0]
        if not instrument.test and mode == "test" and fate not in ("failed", "in_flight"):
            fate = "live_card"  # declined by the allow-list whatever else was planned
        body, rules, error_code = self._body(pk, method, instrument, fate)
        request = self.wire.parse(json.dumps(body).encode())
        created = self.start + self.step * pk + timedelta(microseconds=rng.randrange(1000))
        attempts_count = {"retried": rng.choice((2, 2, 2, 3, 4)), "failed": rng.choice((1, 2, 3)),
                          "orphaned": rng.choice((1, 2, 3)), "mismatch": 2}.get(fate, 1)
        decided = fate not in ("failed", "in_flight")
        approved = decided and error_code is None
        result_id = (("tok_" if method == "tokenize" else "ch_") + f"{rng.getrandbits(128):032x}"
                     if approved else None)
        answer = self.wire.answer(method, result_id, error_code,
                                  self.messages.get(error_code) if error_code else None)
        gaps = [None] + [round(rng.uniform(10.0, 10.6), 6) for _ in range(attempts_count - 1)]
        received = [created]
        for gap in gaps[1:]:
            received.append(received[-1] + timedelta(seconds=gap))
        row = {
            "id": pk, "connector": connector, "transaction_id": request.transaction_id,
            "method": method, "payment_method": request.payment_method,
            "status": ("in_flight" if fate == "in_flight" else "failed" if fate == "failed"
                       else "succeeded" if approved else "declined"),
            "result_id": result_id, "error_code": error_code,
            "error_message": answer["error_message"],
            "response_status": 200 if decided else None,
            "response_body": answer if decided else None,
            "amount_millis": int(request.amount * 1000) if request.amount is not None else None,
            "currency": request.currency, "card_brand": request.brand, "last4": request.last4,
            "fingerprint": self._fingerprint(request), "routing_number": request.routing_number,
            "postal_code": request.postal_code, "description": request.masked.get("description"),
            "parameters": request.masked.get("parameters"), "attempt_count": attempts_count,
            "issued_count": int(approved), "orphaned": fate == "orphaned" and approved,
            "protocol_violation": fate == "mismatch",
            "settle_by": created + timedelta(seconds=42) if fate == "in_flight" else None,
            "created_at": created, "last_attempt_at": received[-1],
            "settled_at": created + timedelta(milliseconds=2) if decided else None,
        }
        attempts = [self._attempt(pk, n + 1, fate, received[n], gaps[n], rules, request,
                                  answer, result_id, last=n == attempts_count - 1)
                    for n in range(attempts_count)]
        return row, attempts

    def _instrument(self, connector: str, mode: str) -> Instrument:
        rng = self.rng
        ach = rng.random() < (0.85 if connector == "legacy-ach" else 0.04)
        live = rng.random() < (0.65 if mode == "open" else 0.07)
        if ach:
            return rng.choice(self.live_accounts if live else self.test_accounts)
        if live:
            return rng.choice(self.live_cards)
        return rng.choices(self.test_cards, self.card_weights)[0]

    def _body(self, pk: int, method: str, instrument: Instrument,
              fate: str) -> tuple[dict, list[str], str | None]:
        """The request as Twilio sends it, the magic values it fired and the decline code."""
        rng = self.rng
        amount = f"{rng.randrange(100, 25_000) / 100:.2f}"
        scenario, cvv, postal, rules, error_code = None, None, "94111", [], None
        if fate == "live_card":
            error_code = "test_mode_live_card"
        elif fate == "declined":
            whole = rng.choice(list(DECLINE_AMOUNTS))
            if method == "tokenize" or not instrument.body.get("cardnumber"):
                scenario, error_code = "decline:insufficient_funds", "insufficient_funds"
            elif rng.random() < 0.15:
                cvv, error_code = "000", "incorrect_cvc"
            else:
                amount, error_code = f"{whole}.00", DECLINE_AMOUNTS[whole]
        elif fate in ("retried", "in_flight"):
            amount = f"{rng.choice((4012, 4012, 4015, 4025))}.00"
        elif fate == "failed":
            amount = rng.choice(("4100.00", "4503.00", "4429.00"))
        elif fate == "orphaned":
            amount = rng.choice(("4101.00", "4301.00", "4302.00"))
        if method == "tokenize" and fate in ("retried", "in_flight", "failed", "orphaned"):
            scenario = {"retried": "delay:12", "in_flight": "delay:40", "orphaned": "hang_charge",
                        "failed": "hang"}[fate]
        if scenario:
            rules.append(f"magic:scenario={scenario}")
        elif cvv:
            rules.append("magic:cvv=000")
        elif fate not in ("approved", "live_card", "mismatch"):
            rules.append(f"magic:amount={amount}")
        body = {"method": method,
                "transaction_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                **instrument.body}
        if cvv and "cvv" in body:
            body["cvv"] = cvv
        if method == "charge":
            body["amount"] = amount
        body["currency_code"] = "USD"
        description = DESCRIPTIONS[pk % len(DESCRIPTIONS)]
        if description:
            body["description"] = description
        if "cardnumber" in body:
            body["postal_code"] = postal
        parameters = {"customer_ref": f"cust-{pk % 9973}"} if pk % 3 == 0 else {}
        if scenario:
            parameters["fakeproc_scenario"] = scenario
        if parameters:
            body["parameters"] = parameters
        return body, rules, error_code

    def _fingerprint(self, request) -> str:
        key = f"{request.payment_method}:{request.number}"
        if key not in self._fingerprint_cache:
            self._fingerprint_cache[key] = self.fingerprints.of(request)
        return self._fingerprint_cache[key]

    def _attempt(self, pk: int, number: int, fate: str, received: datetime, gap: float | None,
                 rules: list[str], request, answer: dict, result_id: str | None,
                 last: bool) -> dict:
        """One attempt as the processor records it; what differs is how it was delivered."""
        rng = self.rng
        self.attempt_pk += 1
        kind = "original" if number == 1 else "replay"
        delivery, status_code, late, intact = "response", 200, False, True
        body = json.dumps(answer, separators=(",", ":"))
        took = rng.uniform(0.002, 0.02)
        violation = False
        if fate in ("retried", "in_flight") and not last:
            late, took = True, 12.0 + rng.uniform(0, 3)
        elif fate == "in_flight":
            delivery, status_code, body, took = None, None, None, None
        elif fate == "failed":
            kind, intact = "fault", False
            if request.amount == Decimal(4100) or request.method == "tokenize":
                delivery, status_code, body, late, took = "hung", None, None, True, 65.0
            else:
                status_code = int(request.amount) - 4000
                body = f"{status_code} {HTTPStatus(status_code).phrase}"
        elif fate == "orphaned":
            intact = False
            if request.amount == Decimal(4302):
                body = json.dumps({k: v for k, v in answer.items() if k not in ("charge_id",
                                                                                  "token_id")},
                                  separators=(",", ":"))
            elif request.amount == Decimal(4301):
                delivery, status_code, body = "dropped", None, None
            else:
                delivery, status_code, body, late, took = "hung", None, None, True, 65.0
        elif fate == "mismatch" and number > 1:
            kind, violation = "mismatch", True
            message = (f"transaction_id {request.transaction_id} was already used with a "
                       "different amount")
            body = json.dumps(self.wire.answer(request.method, None, "duplicate_transaction",
                                               message), separators=(",", ":"))
        masked = dict(request.masked)
        if fate == "mismatch" and number > 1 and "amount" in masked:
            masked["amount"] = f"{Decimal(masked['amount']) + 1:.2f}"
        return {
            "id": self.attempt_pk, "transaction_pk": pk, "number": number, "kind": kind,
            "received_at": received,
            "responded_at": received + timedelta(seconds=took) if took is not None else None,
            "gap_seconds": gap, "delivery": delivery, "status_code": status_code,
            "response_body": body,
            "result_id": result_id if kind in ("original", "replay") else None,
            "late": late, "intact": intact, "protocol_violation": violation,
            "rules": rules if kind != "mismatch" else [], "request": masked,
            "client_ip": f"54.172.60.{pk % 250 + 1}", "user_agent": TWILIO_AGENT,
        }


def schema_revision() -> str:
    from alembic.script import ScriptDirectory

    from fakeproc.store.schema import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or "none"


def cache_key(args) -> str:
    """What a cached store must match: rows, seed, schema revision and the builder's version."""
    return f"{args.rows}-seed{args.seed}-schema{schema_revision()}-v{BUILDER_VERSION}"


def build_store(url: str, rows: int, seed: int) -> None:
    """A fresh store at `url`: the app's migrations, its connectors, then the rows in bulk."""
    from fakeproc import create_app
    from fakeproc.control import connectors
    from fakeproc.control.schemas import ConnectorCreate
    from fakeproc.store.models import Attempt, Transaction, db
    from fakeproc.web.runtime import runtime

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        for name, mode, _ in CONNECTORS:
            if name != "Default":
                connectors.create(ConnectorCreate(unique_name=name, mode=mode),
                                  runtime().fingerprints)
        maker = StoreMaker(rows, seed, runtime().fingerprints, datetime.now(timezone.utc))
        postgres = db.engine.dialect.name == "postgresql"
        write = _copy_rows if postgres else _insert_rows
        for transactions, attempts in maker.batches(5000):
            write(db.session, Transaction, transactions)
            write(db.session, Attempt, attempts)
            db.session.commit()
        _finish_build(db.session, postgres)
        db.session.commit()
        db.engine.dispose()


def _insert_rows(session, model, rows: list[dict]) -> None:
    from sqlalchemy import insert

    session.execute(insert(model), rows)


def _copy_rows(session, model, rows: list[dict]) -> None:
    """The rows through COPY, each value bound as SQLAlchemy binds it (JSONB, naive UTC)."""
    connection = session.connection()
    dialect = connection.dialect
    columns = [model.__table__.c[name] for name in rows[0]]
    binds = [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in columns]
    statement = (f"COPY {model.__tablename__} ({', '.join(c.name for c in columns)}) "
                 "FROM STDIN")
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([bind(row[name]) if bind else row[name] for name, bind in binds])


def _finish_build(session, postgres: bool) -> None:
    from sqlalchemy import text

    if postgres:  # the rows came with their ids: the sequences must follow
        for table in ("transactions", "attempts"):
            session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))
    else:
        session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


class SQLiteStore:
    """The store as a file in --cache-dir; a run serves a copy, so the cache is never written."""

    def __init__(self, args):
        self.args = args
        self.path = Path(args.cache_dir).expanduser() / f"admin-pages-{cache_key(args)}.db"
        self.name = str(self.path)

    def prepare(self) -> str:
        """Build the store when missing or --rebuild; say how it came."""
        if self.path.exists() and not self.args.rebuild:
            return "cached"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        building = self.path.with_name(f"{self.path.name}.building-{os.getpid()}")
        started = time.monotonic()
        print(f"# building {self.args.rows:,} transactions into {self.path} ...", flush=True)
        try:
            build_store(f"sqlite:///{building}", self.args.rows, self.args.seed)
            building.replace(self.path)
        finally:
            for leftover in (building, *(Path(f"{building}{s}") for s in (
                    "-wal", "-shm", ".lock", ".version"))):
                leftover.unlink(missing_ok=True)
        return f"built in {time.monotonic() - started:.0f} s"

    @contextlib.contextmanager
    def copy(self, workdir: Path) -> Iterator[str]:
        """The URL of a copy of the store for one run."""
        db_path = workdir / "admin.db"
        shutil.copyfile(self.path, db_path)
        yield f"sqlite:///{db_path}"

    def size(self) -> int:
        return self.path.stat().st_size


class PostgresStore:
    """The store as a database on the server of --database-url, named by rows and seed, with the
    rest of its cache key as the database's comment, set once the build is complete. A run
    serves a copy (CREATE DATABASE … TEMPLATE), dropped at the end."""

    def __init__(self, args):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.args, self.base = args, make_url(args.database_url)
        self.name = f"fakeproc_bench_admin_{args.rows}_seed{args.seed}"
        self.key = f"admin-pages-{cache_key(args)}"
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT")

    def url(self, database: str) -> str:
        return self.base.set(database=database).render_as_string(hide_password=False)

    def _sql(self, statement: str, database: str | None = None, **params):
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(database), isolation_level="AUTOCOMMIT") \
            if database else self.admin
        try:
            with engine.connect() as connection:
                result = connection.execute(text(statement), params)
                return result.all() if result.returns_rows else []
        finally:
            if database:
                engine.dispose()

    def prepare(self) -> str:
        """Build the store when missing, of another key, unfinished or --rebuild."""
        found = self._sql("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                          "WHERE datname = :name", name=self.name)
        if found and found[0][0] == self.key and not self.args.rebuild:
            return "cached"
        started = time.monotonic()
        print(f"# building {self.args.rows:,} transactions into database {self.name} on "
              f"{self.base.host}:{self.base.port or 5432} ...", flush=True)
        self._sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._sql(f'CREATE DATABASE "{self.name}"')
        build_store(self.url(self.name), self.args.rows, self.args.seed)
        self._sql("VACUUM ANALYZE", database=self.name)
        self._sql(f"COMMENT ON DATABASE \"{self.name}\" IS '{self.key}'")
        return f"built in {time.monotonic() - started:.0f} s"

    @contextlib.contextmanager
    def copy(self, workdir: Path) -> Iterator[str]:
        """The URL of a copy of the store for one run; FILE_COPY copies the files as they are
        rather than through the WAL (PostgreSQL 15 and later)."""
        run_name = f"fakeproc_bench_admin_run_{os.getpid()}"
        version = self._sql("SHOW server_version_num")[0][0]
        strategy = " STRATEGY FILE_COPY" if int(version) >= 150000 else ""
        self._sql(f'CREATE DATABASE "{run_name}" TEMPLATE "{self.name}"{strategy}')
        try:
            yield self.url(run_name)
        finally:
            if self.args.keep:
                print(f"kept database: {run_name}")
            else:
                self._sql(f'DROP DATABASE IF EXISTS "{run_name}" WITH (FORCE)')
            self.admin.dispose()

    def size(self) -> int:
        return self._sql("SELECT pg_database_size(:name)", name=self.name)[0][0]


# -- what is timed ---------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    params: dict[str, str]
    where: str  # the same filter in SQL, to count what the store holds
    check: Callable[[dict], bool]  # every listed transaction must pass
    page_two: bool = False  # follow the cursor of the same filter's first page
    matches: int = 0  # transactions in the store that match
    newest: str | None = None  # the transaction_id the page must list first
    expected: int = 0  # transactions the page should list


def make_cases(url: str) -> list[Case]:
    """The pages to time, with search targets picked from the store (rare where it matters)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        total = _one(conn, "SELECT max(id) FROM transactions")
        txid = _one(conn, "SELECT transaction_id FROM transactions WHERE id = :id",
                    id=total // 2)
        charge_id = _one(
            conn, "SELECT result_id FROM transactions WHERE id <= :id AND method = 'charge' "
            "AND result_id IS NOT NULL ORDER BY id DESC LIMIT 1", id=total // 3)
        rare_last4 = _one(
            conn, "SELECT last4 FROM transactions WHERE length(last4) = 4 GROUP BY last4 "
            "ORDER BY count(*), last4 LIMIT 1")
        small = min(CONNECTORS, key=lambda c: c[2])[0]
        large = max(CONNECTORS, key=lambda c: c[2])[0]
    cases = [
        Case("first page", {}, "1 = 1", lambda t: True),
        *(Case(f"status={s}", {"status": s}, f"status = '{s}'",
               lambda t, s=s: t["status"] == s) for s in ("succeeded", "declined", "failed",
                                                           "in_flight")),
        Case("method=tokenize", {"method": "tokenize"}, "method = 'tokenize'",
             lambda t: t["method"] == "tokenize"),
        *(Case(f"connector={name}", {"connector": name}, f"connector = '{name}'",
               lambda t, name=name: t["connector"] == name) for name in (small, large)),
        Case("retried=1", {"retried": "1"}, "attempt_count > 1", lambda t: t["retried"]),
        Case("orphaned=1", {"orphaned": "1"}, "orphaned", lambda t: t["orphaned"]),
        Case("declined on checkout", {"status": "declined", "connector": "checkout"},
             "status = 'declined' AND connector = 'checkout'",
             lambda t: t["status"] == "declined" and t["connector"] == "checkout"),
        Case("status=declined, page 2", {"status": "declined"}, "status = 'declined'",
             lambda t: t["status"] == "declined", page_two=True),
        Case("orphaned=1, page 2", {"orphaned": "1"}, "orphaned",
             lambda t: t["orphaned"], page_two=True),
    ]
    for name, q in (("q=transaction id", txid), ("q=charge id", charge_id),
                    ("q=last 4, common", "1111"), ("q=last 4, rare", rare_last4),
                    ("q=no match", NO_MATCH)):
        cases.append(Case(name, {"q": q},
                          f"(transaction_id = '{q}' OR result_id = '{q}' OR last4 = '{q}')",
                          lambda t, q=q: q in (t["transaction_id"], t.get("charge_id"),
                                               t.get("token_id"), t["last4"])))
    with engine.connect() as conn:
        for case in cases:
            skip = PAGE_SIZE if case.page_two else 0
            case.matches = _one(conn, f"SELECT count(*) FROM transactions WHERE {case.where}")
            case.newest = _one(conn, "SELECT transaction_id FROM transactions WHERE "
                               f"{case.where} ORDER BY id DESC LIMIT 1 OFFSET :skip", skip=skip)
            case.expected = max(0, min(PAGE_SIZE, case.matches - skip))
    engine.dispose()
    return cases


def _one(conn, statement: str, **params):
    """The first column of the first row (None when there is none); the SQL runs on both
    SQLite and PostgreSQL."""
    from sqlalchemy import text

    return conn.execute(text(statement), params).scalar()


class Browser:
    """GET over one keep-alive connection, opened again when the server closes it."""

    def __init__(self, port: int, timeout: float):
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes, float, str]:
        """(status, body, milliseconds, content type)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers={"User-Agent": "fakeproc-admin-bench"})
            response = self.conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = (time.perf_counter() - started) * 1000
        if response.will_close:
            self.close()
        return response.status, body, elapsed, response.getheader("Content-Type", "")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Timing:
    case: Case
    path: str = ""
    millis: list[float] = field(default_factory=list)
    size: int = 0
    rows: int | None = None
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None

    def pct(self, p: float) -> float:
        return percentile(sorted(self.millis), p)


_CURSOR_LINK = re.compile(r"[?&;]cursor=(c[0-9a-f]{1,15})\b")


def first_path(base: str, case: Case) -> str:
    return base + ("?" + urlencode(case.params) if case.params else "")


def page_two_path(browser: Browser, base: str, case: Case, api: bool) -> str:
    """Page two as a user reaches it: the cursor the first page hands out."""
    status, body, _, _ = browser.get(first_path(base, case))
    if status != 200:
        raise RuntimeError(f"GET {first_path(base, case)} answered {status}")
    if api:
        cursor = json.loads(body)["next_cursor"]
    else:
        found = _CURSOR_LINK.search(body.decode("utf-8", "replace"))
        cursor = found.group(1) if found else None
    if cursor is None:
        raise RuntimeError(f"{first_path(base, case)} gave no cursor to a next page")
    return base + "?" + urlencode({**case.params, "cursor": cursor})


def time_case(browser: Browser, base: str, case: Case, args, api: bool) -> Timing:
    timing = Timing(case)
    if case.page_two and case.matches <= PAGE_SIZE:
        timing.skipped = f"{case.matches} matches: no page two (more --rows)"
        return timing
    try:
        timing.path = page_two_path(browser, base, case, api) if case.page_two \
            else first_path(base, case)
    except (RuntimeError, OSError, ValueError, KeyError) as error:
        timing.problems.append(str(error))
        return timing
    for n in range(args.warmup + args.repeats):
        try:
            status, body, millis, content_type = browser.get(timing.path)
        except (OSError, http.client.HTTPException) as error:
            timing.problems.append(f"request failed: {error}")
            return timing
        if status != 200:
            timing.problems.append(f"HTTP {status}: {body[:200]!r}")
            return timing
        if n >= args.warmup:
            timing.millis.append(millis)
    timing.size = len(body)
    if api:
        check_json(timing, body)
    else:
        check_html(timing, body, content_type)
    return timing


def check_json(timing: Timing, body: bytes) -> None:
    case = timing.case
    items = json.loads(body)["data"]
    timing.rows = len(items)
    if items and items[0]["transaction_id"] != case.newest:
        timing.problems.append(f"lists {items[0]['transaction_id']} first, not {case.newest}")
    if len(items) != case.expected:
        timing.problems.append(f"{len(items)} transactions listed, the store has {case.expected}")
    wrong = [t["transaction_id"] for t in items if not case.check(t)]
    if wrong:
        timing.problems.append(f"{len(wrong)} listed that do not match, e.g. {wrong[0]}")
    ids = [t["created_at"] for t in items]
    if ids != sorted(ids, reverse=True):
        timing.problems.append("not newest first")


def check_html(timing: Timing, body: bytes, content_type: str) -> None:
    if "html" not in content_type:
        timing.problems.append(f"Content-Type {content_type!r}, not HTML")
    newest = timing.case.newest
    if newest and newest.encode() not in body:
        timing.problems.append(f"the newest match {newest} is not on the page")


# -- the server ------------------------------------------------------------------------------

class PageServer(ServerProcess):
    """load_charge's server process, ready once /api/health answers: nothing is written."""

    def start(self, prefix: str = "", timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.log_path.parent,
                                         env=env, start_new_session=True)
        browser, deadline, last_error = Browser(self.port, 5), time.monotonic() + timeout, ""
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                       + self.log_tail())
                try:
                    status = browser.get("/api/health")[0]
                    if status == 200:
                        return
                    last_error = f"HTTP {status}"
                except (OSError, http.client.HTTPException) as error:
                    last_error = str(error)
                time.sleep(0.2)
        finally:
            browser.close()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s ({last_error}):\n"
                           + self.log_tail())


def page_state(browser: Browser) -> str | None:
    """None when the admin transactions page is there, else why not."""
    if not PAGE_TEMPLATE.exists():
        return f"{os.path.relpath(PAGE_TEMPLATE, HERE.parent)} does not exist"
    try:
        status = browser.get(PAGE_PATH)[0]
    except (OSError, http.client.HTTPException) as error:
        return f"GET {PAGE_PATH} failed: {error}"
    return None if status == 200 else f"GET {PAGE_PATH} answered {status}"


# -- query plans -----------------------------------------------------------------------------

def print_plans(url: str, cases: list[Case], runs: int = 5) -> None:
    """The statements `ledger.transactions` runs for each case, their plans and their time
    in-process (no HTTP, no rendering)."""
    from sqlalchemy import event

    from fakeproc import create_app
    from fakeproc.store import ledger
    from fakeproc.store.models import db

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
        print(f"\nquery plans ({'EXPLAIN (ANALYZE, BUFFERS)' if postgres else 'EXPLAIN QUERY PLAN'}"
              " of each statement ledger.transactions runs) and its time in-process, "
              f"median of {runs}:")
        seen: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many):
            if "FROM transactions" in statement:
                seen.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        for case in cases:
            filters = ledger.Filters(
                connector=case.params.get("connector"), status=case.params.get("status"),
                method=case.params.get("method"), retried="retried" in case.params,
                orphaned="orphaned" in case.params, q=case.params.get("q"))
            cursor = None
            if case.page_two:
                cursor = ledger.transactions(filters, PAGE_SIZE).next_cursor
                if cursor is None:
                    continue
            millis = []
            for _ in range(runs):
                seen.clear()
                started = time.perf_counter()
                ledger.transactions(filters, PAGE_SIZE, cursor)
                millis.append((time.perf_counter() - started) * 1000)
                db.session.rollback()
            print(f"  {case.name:<34} {statistics.median(millis):7.1f} ms")
            for statement, parameters in list(seen):
                _print_plan(db.session.connection(), statement, parameters, postgres)
            db.session.rollback()
        event.remove(db.engine, "before_cursor_execute", capture)
        db.engine.dispose()


def _print_plan(connection, statement: str, parameters, postgres: bool) -> None:
    indent = " " * 4
    where = statement.split("WHERE", 1)[1].split("ORDER BY")[0].strip() \
        if "WHERE" in statement else "-"
    print(f"{indent}WHERE {' '.join(where.split())}  {parameters}")
    if postgres:
        plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        for (line,) in plan:
            print(f"{indent}  {line}")
    else:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        print(f"{indent}  {'; '.join(row[3] for row in plan)}")


# -- report ----------------------------------------------------------------------------------

def print_table(title: str, timings: list[Timing], target: float) -> list[str]:
    print(f"\n{title}")
    columns = ("page", "query", "matches", "listed", "KiB", "p50 ms", "p95 ms", "max ms", "")
    rows, missed = [], []
    for t in timings:
        if t.skipped:
            rows.append((t.case.name, t.skipped, f"{t.case.matches:,}", *[""] * 5, "skipped"))
            continue
        ok = not t.problems and t.millis and t.pct(95) < target
        query = t.path.split("?", 1)[1] if "?" in t.path else ""
        query = re.sub(r"cursor=c[0-9a-f]+", "cursor=…", query)
        rows.append((t.case.name, query[:44], f"{t.case.matches:,}",
                     "" if t.rows is None else str(t.rows),
                     f"{t.size / 1024:.0f}" if t.size else "",
                     *(f"{t.pct(p):.1f}" if t.millis else "-" for p in (50, 95)),
                     f"{max(t.millis):.1f}" if t.millis else "-",
                     "ok" if ok else "MISSED" if not t.problems else "WRONG"))
        if t.problems:
            missed.append(f"{title.split(':')[0]}, {t.case.name}: {'; '.join(t.problems)}")
        elif not ok:
            missed.append(f"{title.split(':')[0]}, {t.case.name}: p95 {t.pct(95):.1f} ms, "
                          f"target < {target:.0f} ms")
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(columns, widths)))
    print(line.rstrip())
    print("-" * len(line))
    for r in rows:
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    return missed


def store_summary(url: str, size: int) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        transactions, retried, orphaned, last4s = conn.execute(text(
            "SELECT count(*), count(CASE WHEN attempt_count > 1 THEN 1 END), "
            "count(CASE WHEN orphaned THEN 1 END), count(DISTINCT last4) FROM transactions"
        )).one()
        attempts = conn.execute(text("SELECT count(*) FROM attempts")).scalar()
        by_status = dict(conn.execute(text("SELECT status, count(*) FROM transactions "
                                           "GROUP BY status")).all())
    engine.dispose()
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(by_status.items()))
    return (f"{transactions:,} transactions ({statuses}; retried {retried:,}, orphaned "
            f"{orphaned:,}, {last4s:,} distinct last 4), {attempts:,} attempts, "
            f"{size / 2**20:.0f} MiB")


# -- main ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rows", type=int, default=100_000,
                        help="transactions in the store (100000)")
    parser.add_argument("--seed", type=int, default=1, help="of the generated store (1)")
    parser.add_argument("--rebuild", action="store_true", help="build the store even if cached")
    parser.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "fakeproc-bench"),
        help="where built SQLite stores are kept (~/.cache/fakeproc-bench)")
    parser.add_argument("--database-url", metavar="URL",
                        help="build and serve the store on this PostgreSQL server instead of "
                             "SQLite, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres "
                             "(its user creates the databases; the URL's own database is only "
                             "where it connects)")
    parser.add_argument("--repeats", "-n", type=int, default=20,
                        help="timed requests per page (20)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed requests per page first (2)")
    parser.add_argument("--target", type=float, default=100.0, metavar="MS",
                        help="p95 every page must stay under (100)")
    parser.add_argument("--surfaces", default="page,api",
                        help="what to time: page (GET /admin/transactions) and/or api "
                             "(GET /api/transactions) (page,api)")
    parser.add_argument("--plans", action="store_true",
                        help="also print each query's plan (SQLite: EXPLAIN QUERY PLAN, "
                             "PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)) and in-process time")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, s (30)")
    add_server_options(parser, 30, "First",
                       "the temporary directory (server log, store copy)")
    args = parser.parse_args(argv)
    args.surface_names = [s.strip() for s in args.surfaces.split(",") if s.strip()]
    if not args.surface_names or set(args.surface_names) - {"page", "api"}:
        parser.error("--surfaces takes page and/or api")
    if args.rows < 1000:
        parser.error("--rows must be 1000 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    print(f"# code: {code_version()}", flush=True)
    try:
        store = PostgresStore(args) if args.database_url else SQLiteStore(args)
        how = store.prepare()
    except Exception as error:  # noqa: BLE001 - any failure to build means no run
        print(f"# the store could not be built: {error!r}", file=sys.stderr)
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    with scratch("fakeproc-admin-", args.keep) as workdir:
        try:
            with store.copy(workdir) as url:
                print(f"# store {store.name} ({how}): {store_summary(url, store.size())}",
                      flush=True)
                return _run(args, url, workdir)
        except SQLAlchemyError as error:
            print(f"# the store could not be copied or read: {error!r}", file=sys.stderr)
            return 2


def _run(args, url: str, workdir: Path) -> int:
    cases = make_cases(url)
    port = free_port()
    argv = [*args.fakeproc_cmd, "serve", "--port", str(port), "--database-url", url,
            "--workers", "1"]
    server = PageServer(f"fakeproc-{port}", argv, workdir, port)
    tables: list[tuple[str, list[Timing]]] = []
    missing_page = None
    try:
        if args.quiet_wait:
            wait_for_quiet(args.quiet_limit, args.quiet_wait)
        print(f"# {' '.join(argv)}", flush=True)
        started = time.monotonic()
        server.start()
        print(f"# ready in {time.monotonic() - started:.1f} s", flush=True)
        browser = Browser(port, args.timeout)
        surfaces = [("api", API_PATH)] if "api" in args.surface_names else []
        if "page" in args.surface_names:
            missing_page = page_state(browser)
            if missing_page is None:
                surfaces.append(("page", PAGE_PATH))
        for surface, base in surfaces:
            timings = [time_case(browser, base, case, args, surface == "api") for case in cases]
            tables.append((surface, timings))
        browser.close()
        log_tail = server.log_tail(20)
    except RuntimeError as error:
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        server.stop()
    missed: list[str] = []
    intro = f"{args.repeats} requests per page after {args.warmup} warm-up, one keep-alive " \
            f"connection, 1 worker; target p95 < {args.target:.0f} ms"
    titles = {"page": f"admin page: GET {PAGE_PATH} ({intro})",
              "api": f"JSON twin: GET {API_PATH}, the same parameters, not the page ({intro})"}
    for surface, timings in sorted(tables, key=lambda t: t[0] != "page"):
        missed += print_table(titles[surface], timings, args.target)
    if args.plans:
        print_plans(url, cases)
    if any(word in log_tail for word in ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT")):
        print("server log (tail):\n" + log_tail)
    if missed:
        print("\nMISSED:\n  " + "\n  ".join(missed))
    if missing_page is not None:
        print(f"\nthe admin page was NOT measured: {missing_page}")
        return 2
    if missed:
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    run(main)
