#!/usr/bin/env python3
"""Several instances on one PostgreSQL database: charges/s on 1 and 3 `fakeproc serve`
processes under a load that retries recent transactions on other instances, and the count of
transactions charged twice (must be 0).

For each instance count, the script creates a fresh PostgreSQL database, starts that many
`python -m fakeproc serve --workers 1` processes on it (each on a port of its own, FAKEPROC_*
variables dropped, so at time scale 1), and drives them with one asyncio client over
keep-alive connections spread round robin over the instances. Each request is a new charge, or
(--retry-share of them) the same body as a recent transaction first sent to another instance:
a replay when its answer is back, a retry in flight when it is not. A share of new charges
(--slow-share) has amount 4000.20, whose first attempt the processor holds 200 ms, so that
retries wait on another instance. Every answer of a transaction must be the same bytes. After
the run it reads the database: transactions with issued_count > 1 are double charges.

    python benchmarks/multi_instance.py                      # 1 then 3 instances, 2 s + 10 s
    python benchmarks/multi_instance.py --instances 1,2,3 --duration 20
    python benchmarks/multi_instance.py --retry-share 0.3 --slow-share 0.05
    python benchmarks/multi_instance.py --wait-seconds 0     # skip the in-flight wait's cost
    python benchmarks/multi_instance.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

It needs a PostgreSQL server whose user may create databases: --database-url, else
FAKEPROC_BENCH_POSTGRES_URL, else FAKEPROC_TEST_POSTGRES_URL. Last, unless --wait-seconds 0,
it measures what one retry waiting on another instance costs the database: two instances, the
second reaching PostgreSQL through a counting proxy, a first attempt held --wait-seconds on
the first and its retry on the second; it prints the transactions, statements and round trips
the waiting instance sent, against the poll schedule (5 ms doubling to 250 ms).

Exits 1 when a transaction was charged twice, a retry got another answer than the original, a
request failed, or the wait cost more than twice its schedule; 2 when it could not run (no
PostgreSQL, a server did not start, a control API call failed).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serving and the other benchmarks, also when run from elsewhere

from hold_open import api, code_version  # noqa: E402
from load_charge import percentile  # noqa: E402
from pgwire import QueryCounter, polls_by_schedule  # noqa: E402
from serving import (  # noqa: E402
    HOST,
    ServerProcess,
    _all_pids,
    add_server_options,
    charge_body_parts,
    free_port,
    machine_cpu,
    read_head,
    run,
    self_cpu,
    stop_on_signals,
    tree_cpu,
    verdict,
    wait_for_quiet,
)

URL_VARIABLES = ("FAKEPROC_BENCH_POSTGRES_URL", "FAKEPROC_TEST_POSTGRES_URL")
SLOW_AMOUNT = "4000.20"  # magic: the first attempt is held 0.2 s, then approved
RECENT = 256  # retries pick among the last RECENT new charges
KINDS = ("new", "slow", "replay", "in flight")


# -- databases -----------------------------------------------------------------------------------

class Databases:
    """Fresh PostgreSQL databases on one server, dropped at the end unless kept."""

    def __init__(self, base_url: str, keep: bool):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.base = make_url(base_url)
        self.keep = keep
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def create(self) -> str:
        from sqlalchemy import text

        name = f"fakeproc_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def connections(self, url: str) -> int:
        """How many connections PostgreSQL has open to the database of `url`."""
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        with self.admin.connect() as connection:
            return connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                {"name": make_url(url).database}).scalar_one()

    def drop_all(self) -> None:
        from sqlalchemy import text

        if self.keep:
            if self.made:
                print(f"kept databases: {', '.join(self.made)}")
        elif self.made:
            with self.admin.connect() as connection:
                for name in self.made:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def read_back(url: str) -> dict[str, int]:
    """What the database holds after a run: transactions, retried, double charged, ..."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE attempt_count > 1),"
                " coalesce(sum(attempt_count), 0), count(*) FILTER (WHERE issued_count > 1),"
                " count(*) FILTER (WHERE status <> 'succeeded')"
                " FROM transactions")).one()
    finally:
        engine.dispose()
    return dict(zip(("transactions", "retried", "attempts", "double charged",
                     "not succeeded"), row))


def postgres_cpu() -> float:
    """CPU seconds of every running PostgreSQL process (the server and all its backends)."""
    total = 0.0
    for pid in _all_pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- the load ------------------------------------------------------------------------------------

@dataclass
class Sent:
    transaction_id: bytes
    kind: str
    at: float


class SpreadLoad:
    """A closed loop over keep-alive connections, connection c on instance c % len(ports):
    new charges, and retries of recent ones on another instance than their first."""

    def __init__(self, ports: list[int], prefix: str, connections: int, timeout: float,
                 retry_share: float, slow_share: float, seed: int):
        self.ports, self.connections, self.timeout = ports, connections, timeout
        self.retry_share, self.slow_share = retry_share, slow_share
        self.random = random.Random(seed)
        head, tail = charge_body_parts()
        self.head, self.tail = head + f"{prefix}-".encode(), tail
        self.slow_tail = tail.replace(b'"amount":"10.00"', f'"amount":"{SLOW_AMOUNT}"'.encode())
        self.count = 0
        self.recent: list[tuple[bytes, int, bytes]] = []  # (transaction_id, instance, body)
        self.answers: dict[bytes, bytes] = {}  # transaction_id -> the first answer's body
        self.stopping = False
        self.recording = False
        self.latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.answered = collections.Counter()  # in the measured window, by kind
        self.sent = collections.Counter()  # all run long, by kind
        self.errors = 0
        self.differing = 0
        self.declined = 0
        self.samples: dict[str, int] = {}
        self.active: set[_SpreadConnection] = set()

    def next_request(self, instance: int) -> tuple[Sent, bytes]:
        retry = self._pick_retry(instance) if self.random.random() < self.retry_share else None
        if retry is not None:
            transaction_id, body = retry
            kind = "replay" if transaction_id in self.answers else "in flight"
        else:
            self.count += 1
            transaction_id = b"%010d" % self.count
            slow = self.random.random() < self.slow_share
            kind = "slow" if slow else "new"
            body = self.head + transaction_id + (self.slow_tail if slow else self.tail)
            entry = (transaction_id, instance, body)
            if len(self.recent) < RECENT:
                self.recent.append(entry)
            else:
                self.recent[self.count % RECENT] = entry
        self.sent[kind] += 1
        head = (b"POST / HTTP/1.1\r\nHost: %s\r\nUser-Agent: fakeproc-bench\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (HOST.encode(), len(body)))
        return Sent(transaction_id, kind, time.perf_counter()), head + body

    def _pick_retry(self, instance: int) -> tuple[bytes, bytes] | None:
        if not self.recent:
            return None
        start = self.random.randrange(len(self.recent))
        for step in range(len(self.recent)):
            transaction_id, first, body = self.recent[(start + step) % len(self.recent)]
            if first != instance or len(self.ports) == 1:
                return transaction_id, body
        return None

    def record(self, sent: Sent, status: int, body: bytes) -> None:
        latency = time.perf_counter() - sent.at
        if status != 200:
            self.error(f"HTTP {status}: {body[:200]!r}")
            return
        if latency > self.timeout:
            self.error(f"answered after more than {self.timeout:g} s")
            return
        first = self.answers.setdefault(sent.transaction_id, body)
        if first is body:
            try:
                answer = json.loads(body)
            except ValueError:
                answer = {}
            if not str(answer.get("charge_id") or "").startswith("ch_"):
                self.declined += 1
                self.error(f"not approved: {body[:200]!r}")
        elif first != body:
            self.differing += 1
            self.error(f"another answer than the first for {sent.transaction_id.decode()}: "
                       f"{first[:120]!r} then {body[:120]!r}")
        if self.recording:
            self.latencies[sent.kind].append(latency)
            self.answered[sent.kind] += 1

    def error(self, reason: str) -> None:
        self.errors += 1
        key = reason[:200]
        self.samples[key] = self.samples.get(key, 0) + 1

    async def _keep_connected(self, instance: int) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                _, connection = await loop.create_connection(
                    lambda: _SpreadConnection(self, instance), HOST, self.ports[instance])
            except OSError as error:
                self.error(f"connect: {error}")
                await asyncio.sleep(0.1)
                continue
            self.active.add(connection)
            await connection.closed
            self.active.discard(connection)

    async def _watch_timeouts(self) -> None:
        while True:
            await asyncio.sleep(min(0.25, self.timeout / 2))
            now = time.perf_counter()
            for connection in list(self.active):
                if connection.sent is not None and now - connection.sent.at > self.timeout:
                    connection.fail(f"no answer within {self.timeout:g} s")

    async def run(self, warmup: float, duration: float, snapshot) -> tuple[float, tuple, tuple]:
        keepers = [asyncio.create_task(self._keep_connected(c % len(self.ports)))
                   for c in range(self.connections)]
        watcher = asyncio.create_task(self._watch_timeouts())
        try:
            await asyncio.sleep(warmup)
            before, started = snapshot(), time.perf_counter()
            self.recording = True
            await asyncio.sleep(duration)
            self.recording = False
            seconds, after = time.perf_counter() - started, snapshot()
            self.stopping = True
            # Let the requests in flight finish (not counted), then close every connection.
            _, pending = await asyncio.wait(keepers, timeout=self.timeout + 1)
            for task in pending:
                task.cancel()
            for connection in list(self.active):
                connection.fail("still unanswered when the run ended")
                connection.transport.abort()
            return seconds, before, after
        finally:
            watcher.cancel()
            for task in keepers:
                task.cancel()


class _SpreadConnection(asyncio.Protocol):
    """One keep-alive connection to one instance, one request in flight at a time."""

    def __init__(self, load: SpreadLoad, instance: int):
        self.load, self.instance = load, instance
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need = -1
        self.body_at = 0
        self.status = 0
        self.sent: Sent | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        if self.load.stopping:
            self.transport.close()
            return
        self.sent, raw = self.load.next_request(self.instance)
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if self.need < 0:
            try:
                head = read_head(buffer)
            except ValueError as error:
                self.fail(str(error))
                return
            if head is None:
                self.buffer = buffer
                return
            self.status, self.body_at, self.need = head.status, head.body_at, head.end
        if len(buffer) < self.need:
            self.buffer = buffer
            return
        body, extra = buffer[self.body_at:self.need], buffer[self.need:]
        sent, self.sent, self.buffer, self.need = self.sent, None, b"", -1
        self.load.record(sent, self.status, body)
        if extra:
            self.fail(f"{len(extra)} unexpected bytes after a response")
        else:
            self.send()

    def fail(self, reason: str) -> None:
        if self.sent is not None:
            self.sent = None
            self.load.error(reason)
        self.transport.abort()

    def connection_lost(self, exc) -> None:
        if self.sent is not None:
            self.sent = None
            self.load.error(f"connection lost with a request in flight ({exc or 'closed'})")
        if not self.closed.done():
            self.closed.set_result(None)


# -- one row: N instances ------------------------------------------------------------------------

@dataclass
class Row:
    instances: int
    seconds: float = 0.0
    answered: collections.Counter = field(default_factory=collections.Counter)
    sent: collections.Counter = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    differing: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core
    peak_connections: int = 0  # to the run's database, sampled every 0.25 s
    notes: list[str] = field(default_factory=list)

    @property
    def charges_per_second(self) -> float:
        return (self.answered["new"] + self.answered["slow"]) / self.seconds

    @property
    def requests_per_second(self) -> float:
        return sum(self.answered.values()) / self.seconds

    def latency_ms(self, pct: float, kinds: tuple[str, ...] = KINDS) -> float:
        values = sorted(v for kind in kinds for v in self.latencies.get(kind, []))
        return 1000 * percentile(values, pct)

    @property
    def double_charged(self) -> int:
        return self.stored.get("double charged", -1)


def start_instances(url: str, count: int, args, workdir: Path, prefix: str,
                    urls: list[str] | None = None) -> list[ServerProcess]:
    """`count` instances on one database (or each on its own URL of `urls`), one after
    another: each is ready (it answered a charge) before the next starts."""
    servers = []
    for i in range(count):
        port = free_port()
        argv = [*args.fakeproc_cmd, "serve", "--port", str(port), "--database-url",
                (urls or [url] * count)[i], "--workers", str(args.workers)]
        servers.append(ServerProcess(f"{prefix}-instance{i}-{port}", argv, workdir, port))
    try:
        for server in servers:
            server.start(f"{prefix}-{server.port}")  # probes with a charge
    except RuntimeError:
        for server in servers:
            server.stop()
        raise
    return servers


def bench(count: int, databases: Databases, args, workdir: Path) -> Row:
    row = Row(count)
    url = databases.create()
    prefix = f"mi{count}-{uuid.uuid4().hex[:6]}"
    if args.quiet_wait:
        wait_for_quiet(args.quiet_limit, args.quiet_wait)
    servers = start_instances(url, count, args, workdir, prefix)
    print(f"# {count} instance(s) on {url.rsplit('/', 1)[-1]}: ports "
          f"{', '.join(str(s.port) for s in servers)}", flush=True)
    try:
        load = SpreadLoad([s.port for s in servers], prefix, args.connections, args.timeout,
                          args.retry_share, args.slow_share, args.seed)

        def snapshot() -> tuple[float, float, float, float, float, float]:
            busy, total = machine_cpu()
            return (time.perf_counter(), sum(tree_cpu(s.proc.pid) for s in servers),
                    postgres_cpu(), self_cpu(), busy, total)

        with _PeakConnections(databases, url) as peak:
            row.seconds, before, after = asyncio.run(load.run(args.warmup, args.duration,
                                                              snapshot))
        row.peak_connections = peak.peak
        wall = after[0] - before[0]
        row.cpu = {name: 100 * (after[i] - before[i]) / wall
                   for i, name in ((1, "server"), (2, "postgres"), (3, "generator"))}
        machine = 100 * (os.cpu_count() or 1) * (after[4] - before[4]) / max(after[5] - before[5],
                                                                            1e-9)
        row.cpu["other"] = machine - sum(row.cpu.values())
        row.answered, row.sent, row.latencies = load.answered, load.sent, load.latencies
        row.errors, row.differing = load.errors, load.differing
        for reason, times in sorted(load.samples.items(), key=lambda item: -item[1])[:10]:
            row.notes.append(f"{times} x {reason}")
        tails = [s.log_tail(20) for s in servers]
    finally:
        for server in servers:
            server.stop()
    row.stored = read_back(url)
    if row.double_charged:
        row.notes.append(f"{row.double_charged} transactions charged more than once")
    if row.stored["not succeeded"]:
        row.errors += row.stored["not succeeded"]
        row.notes.append(f"{row.stored['not succeeded']} stored transactions not succeeded")
    for tail in tails:
        if any(word in tail for word in ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT")):
            row.notes.append("server log (tail):\n" + tail)
    print(f"#   {row.charges_per_second:,.0f} charges/s, {row.requests_per_second:,.0f} req/s, "
          f"p50 {row.latency_ms(50, ('new',)):.1f} ms, p99 {row.latency_ms(99, ('new',)):.1f} ms, "
          f"{row.double_charged} double charges, {row.differing} differing answers, "
          f"{row.errors} errors", flush=True)
    return row


class _PeakConnections:
    """Samples the database's open connections on a thread for the duration of a with-block."""

    def __init__(self, databases: Databases, url: str):
        self.databases, self.url, self.peak = databases, url, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.25):
            try:
                self.peak = max(self.peak, self.databases.connections(self.url))
            except Exception:  # noqa: BLE001 - a missed sample only lowers the peak
                pass

    def __enter__(self) -> _PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def print_rows(rows: list[Row], args) -> None:
    print()
    print(f"{args.connections} keep-alive connections spread over the instances, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s measured; {args.retry_share:.0%} of "
          f"requests retry a recent transaction on another instance, {args.slow_share:.0%} of "
          f"new charges held 200 ms; --workers {args.workers} each")
    columns = ("instances", "charges/s", "req/s", "p50 ms", "p99 ms", "retry p50", "retry p99",
               "in-flight retries", "errors", "differing", "double charges")
    table = []
    for r in rows:
        table.append((str(r.instances), f"{r.charges_per_second:,.0f}",
                      f"{r.requests_per_second:,.0f}", f"{r.latency_ms(50, ('new',)):.1f}",
                      f"{r.latency_ms(99, ('new',)):.1f}",
                      f"{r.latency_ms(50, ('replay', 'in flight')):.1f}",
                      f"{r.latency_ms(99, ('replay', 'in flight')):.1f}",
                      f"{r.answered['in flight']:,}", str(r.errors), str(r.differing),
                      str(r.double_charged)))
    _table(columns, table)
    print("p50/p99: new charges at 10.00; retry: replays and retries in flight together. "
          "double charges: transactions with issued_count > 1 in the database")
    print()
    columns = ("instances", "requests", "new", "slow", "replays", "in flight", "stored",
               "retried", "attempts", "peak conns", "server CPU", "postgres CPU", "gen CPU",
               "other CPU")
    table = [(str(r.instances), f"{sum(r.answered.values()):,}", f"{r.answered['new']:,}",
              f"{r.answered['slow']:,}", f"{r.answered['replay']:,}",
              f"{r.answered['in flight']:,}", f"{r.stored.get('transactions', 0):,}",
              f"{r.stored.get('retried', 0):,}", f"{r.stored.get('attempts', 0):,}",
              str(r.peak_connections),
              *(f"{r.cpu.get(k, float('nan')):.0f}%" for k in ("server", "postgres",
                                                               "generator", "other")))
             for r in rows]
    _table(columns, table)
    print(f"requests ... in flight: answered in the measured window; stored ... attempts: the "
          f"database after the run (warm-up included); peak conns: connections\nto the "
          f"database, sampled every 0.25 s. CPU: % of one core ({os.cpu_count()} "
          f"cores = {100 * (os.cpu_count() or 1)}%); postgres: every PostgreSQL process")
    for r in rows:
        for note in r.notes:
            print(f"  {r.instances} instance(s): {note}")


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


# -- what one in-flight wait costs ---------------------------------------------------------------

def wait_cost(databases: Databases, args, workdir: Path) -> tuple[list[str], bool]:
    """One retry waiting `--wait-seconds` on another instance: what its instance sends to
    PostgreSQL meanwhile. Returns the report's lines and whether the cost is within twice
    the schedule."""
    from sqlalchemy.engine import make_url

    url = databases.create()
    parsed = make_url(url)
    counter = QueryCounter(parsed.host or HOST, parsed.port or 5432)
    proxied = parsed.set(host=HOST, port=counter.port,
                         query={**parsed.query, "sslmode": "disable"})
    prefix = f"wait-{uuid.uuid4().hex[:6]}"
    holding, = start_instances(url, 1, args, workdir, prefix)
    try:
        status, rule, _ = api(holding.port, "POST", "/api/rules", {
            "match": {"description_contains": "wait cost", "attempt": 1},
            "action": {"type": "delay", "seconds": args.wait_seconds},
            "note": "benchmarks/multi_instance.py"})
        if status != 201:
            raise RuntimeError(f"POST /api/rules answered {status}: {rule}")
        # Started after the rule, so its start-up probe has loaded the rules already.
        waiting, = start_instances(url, 1, args, workdir, f"{prefix}-w",
                                   [proxied.render_as_string(hide_password=False)])
        try:
            body = json.loads(b"x".join(charge_body_parts()))
            body.update(transaction_id=f"{prefix}-tx", description="wait cost")
            with _Background(api, holding.port, "POST", "/", body,
                             args.wait_seconds + 30) as original:
                _until_in_flight(holding.port, body["transaction_id"])
                before, started = counter.counts(), time.perf_counter()
                status, answer, _ = api(waiting.port, "POST", "/", body,
                                        args.wait_seconds + 30)
                waited, used = time.perf_counter() - started, counter.counts() - before
            first = original.result()
            # The same retry once more, now a replay that waits for nothing: its own work.
            before = counter.counts()
            api(waiting.port, "POST", "/", body)
            replay = counter.counts() - before
        finally:
            waiting.stop()
    finally:
        holding.stop()
        counter.close()
    if status != 200 or answer != first[1] or not str(answer.get("charge_id")).startswith("ch_"):
        raise RuntimeError(f"the retry got {status} {answer}, the original {first[:2]}")
    polls = polls_by_schedule(waited)
    waited_only = {key: used[key] - replay[key] for key in used}
    lines = [
        (f"a retry that waited {waited:.2f} s on another instance (the first attempt held "
         f"{args.wait_seconds:g} s):"),
        (f"  schedule: {polls} polls (at once, after 5, 10, 20, 40, 80, 160 ms, then every "
         f"250 ms), one read transaction each"),
        (f"  measured: {used['transactions']} transactions, {used['statements']} statements, "
         f"{used['round trips']} round trips from the waiting instance, its own work included"),
        (f"  a replay of it that waited for nothing: {replay['transactions']} transactions, "
         f"{replay['statements']} statements, {replay['round trips']} round trips"),
        (f"  so the wait itself: {waited_only['transactions']} transactions, "
         f"{waited_only['statements']} statements, {waited_only['round trips']} round trips; "
         f"after the first 0.3 s, 4 polls per second"),
    ]
    return lines, used["transactions"] <= 2 * polls + 4


class _Background:
    """Run a call on a thread for the duration of a with-block."""

    def __init__(self, call, *args):
        self._result: tuple | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call, args), daemon=True)

    def _run(self, call, args) -> None:
        try:
            self._result = call(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            self._error = error

    def __enter__(self) -> _Background:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join()

    def result(self) -> tuple:
        if self._error is not None:
            raise RuntimeError(f"the original attempt failed: {self._error}")
        return self._result


def _until_in_flight(port: int, transaction_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, record, _ = api(port, "GET", f"/api/transactions/{transaction_id}")
        if status == 200 and record["status"] == "in_flight":
            return
        time.sleep(0.005)
    raise RuntimeError(f"{transaction_id} was never seen in flight")


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server (a user that may create databases); default: "
                             + " or ".join(f"${name}" for name in URL_VARIABLES))
    parser.add_argument("--instances", default="1,3",
                        help="instance counts, one row each (1,3)")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn workers per instance (1: three instances on two cores)")
    parser.add_argument("--duration", type=float, default=10, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds (2)")
    parser.add_argument("--connections", "-c", type=int, default=48,
                        help="keep-alive connections, spread round robin (48: 16 per instance "
                             "at 3)")
    parser.add_argument("--retry-share", type=float, default=0.2,
                        help="share of requests that retry a recent transaction (0.2)")
    parser.add_argument("--slow-share", type=float, default=0.02,
                        help=f"share of new charges at {SLOW_AMOUNT}, held 200 ms (0.02)")
    parser.add_argument("--seed", type=int, default=1, help="the load's random choices (1)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="per-request timeout in seconds; a slower answer is an error (10)")
    parser.add_argument("--wait-seconds", type=float, default=10.0,
                        help="hold of the first attempt whose retry waits on another instance "
                             "(10; 0: skip that measurement)")
    add_server_options(parser, 60, "Before each row",
                       "the databases and the temporary directory (server logs)")
    args = parser.parse_args(argv)
    try:
        args.counts = [int(n) for n in args.instances.split(",")]
    except ValueError:
        parser.error("--instances takes counts like 1,3")
    if not args.counts or min(args.counts) < 1:
        parser.error("--instances takes counts of at least 1")
    if not 0 <= args.retry_share < 1 or not 0 <= args.slow_share <= 1:
        parser.error("--retry-share is in [0, 1), --slow-share in [0, 1]")
    args.database_url = args.database_url or next(
        (os.environ[name] for name in URL_VARIABLES if os.environ.get(name)), None)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.database_url:
        print("# the benchmark needs PostgreSQL: --database-url or "
              + " or ".join(f"${name}" for name in URL_VARIABLES), file=sys.stderr)
        return 2

    stop_on_signals()
    workdir = Path(tempfile.mkdtemp(prefix="fakeproc-multi-"))
    rows: list[Row] = []
    try:
        databases = Databases(args.database_url, args.keep)
    except Exception as error:  # noqa: BLE001 - any failure to reach the server
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    try:
        print(f"# code: {code_version()}", flush=True)
        for count in args.counts:
            rows.append(bench(count, databases, args, workdir))
        print_rows(rows, args)
        wait_ok = True
        if args.wait_seconds > 0:
            print()
            lines, wait_ok = wait_cost(databases, args, workdir)
            print("\n".join(lines))
    except (RuntimeError, OSError) as error:
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - e.g. the database server went away
        if type(error).__module__.split(".")[0] not in ("sqlalchemy", "psycopg"):
            raise
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        databases.drop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    missed = [f"{r.instances} instance(s): {r.double_charged} double charges, {r.differing} "
              f"differing answers, {r.errors} errors" for r in rows
              if r.double_charged or r.differing or r.errors]
    if not wait_ok:
        missed.append("the in-flight wait cost more than twice its poll schedule")
    return verdict(missed, "no double charge, every retry answered as its original")


if __name__ == "__main__":
    run(main)
