#!/usr/bin/env python3
"""Held connections: 500 charges held open by a rule while fresh charges keep flowing.

Starts `python -m fakeproc serve` (default workers) on a fresh SQLite file, arms a rule that
matches descriptions containing "hold", opens 500 matching charges at once (one connection
each, unique transaction_ids), and while they are held loads fresh, non-matching charges at a
steady rate over ~20 keep-alive connections. Phase `delay` holds each matching charge for the
delay and then approves it; phase `hang` holds the connection for the hang and then closes it
with no answer. Per phase it prints how many were held at once, the fresh charges' req/s and
p50/p99 latency, the held answers' deviation from the configured hold, and the server's RSS
(master + workers) before and while holding. Exits 1 when a target is missed or any request
failed unexpectedly, 2 when the benchmark itself could not run.

    python benchmarks/hold_open.py                          # delay then hang, 8 s each
    python benchmarks/hold_open.py --phases delay --delay 10
    python benchmarks/hold_open.py --rate 200 --held 1000
    python benchmarks/hold_open.py --profile                # + py-spy of every worker

Targets: fresh p99 < 100 ms (--p99-target), held median deviation within ±50 ms
(--deviation-target), all held at once, no failed request. The asyncio client and py-spy come
from load_charge.py; the request bytes and the server process handling from serving.py.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serving and load_charge, also when run from elsewhere

from load_charge import PythonLoad, _Connection, finish_profiles, percentile, start_profiles  # noqa: E402
from serving import (  # noqa: E402
    HOST,
    TXID_DIGITS,
    RequestFactory,
    ServerProcess,
    _proc_stat,
    add_server_options,
    free_port,
    machine_cpu,
    process_tree,
    run,
    scratch,
    self_cpu,
    stop_on_signals,
    tree_cpu,
    verdict,
    wait_for_quiet,
)

HOLD_WORD = "hold"
HELD_DESCRIPTION = "please hold"
EXPECTED_STATUS = {"fresh": "succeeded", "delay": "succeeded", "hang": "failed"}


# -- request bytes -------------------------------------------------------------------------------

class DescribedRequests(RequestFactory):
    """load_charge's pre-built charge requests, with another description."""

    def __init__(self, port: int, prefix: str, description: str):
        super().__init__(port, prefix)
        head, body_head = self.head.split(b"\r\n\r\n", 1)
        old = b'"description":"pizza"'
        new = b'"description":' + json.dumps(description).encode()
        if (body_head + self.tail).count(old) != 1:
            raise RuntimeError("load_charge.charge_body_parts() changed its description")
        body_head, self.tail = body_head.replace(old, new), self.tail.replace(old, new)
        length = len(body_head) + TXID_DIGITS + len(self.tail)
        head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % length, head)
        self.head = head + b"\r\n\r\n" + body_head
        self.prefix = prefix

    def transaction_id(self, count: int) -> str:
        return f"{self.prefix}-{count:0{TXID_DIGITS}d}"


# -- the fresh load: load_charge's client, paced ---------------------------------------------

class _PacedConnection(_Connection):
    """A keep-alive connection that sends on a fixed schedule instead of on each answer.

    Latency counts from the scheduled send time, so an answer that makes the next request late
    shows up in that request's latency too (no coordinated omission)."""

    def __init__(self, load: PacedLoad, slot: int):
        super().__init__(load)
        self.slot = slot
        self.timer: asyncio.TimerHandle | None = None

    def send(self) -> None:
        if self.load.stopping:
            self.transport.close()
            return
        wait = self.load.schedule[self.slot] - time.perf_counter()
        if wait > 0:
            self.timer = asyncio.get_running_loop().call_later(wait, self._fire)
        else:
            self._fire()

    def _fire(self) -> None:
        self.timer = None
        if self.load.stopping or self.transport.is_closing():
            self.transport.close()
            return
        self.busy = True
        self.sent_at = self.load.schedule[self.slot]
        self.load.schedule[self.slot] += self.load.period
        self.load.sent += 1
        self.transport.write(self.load.requests.next())

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        super().connection_lost(exc)


class PacedLoad(PythonLoad):
    """`connections` keep-alive connections sending `rate` requests/s between them, each on its
    own staggered schedule; latencies are kept for requests scheduled inside the window."""

    def __init__(self, port: int, prefix: str, connections: int, rate: float, timeout: float):
        super().__init__(port, prefix, connections, timeout)
        self.requests = DescribedRequests(port, prefix, "pizza")
        self.period = connections / rate  # per connection
        start = time.perf_counter() + 0.05
        self.schedule = [start + slot * self.period / connections for slot in range(connections)]
        self.window = (float("inf"), float("inf"))
        self.sent = 0
        self.timed: list[tuple[float, float]] = []  # (scheduled, latency) in the window
        self.keepers: list[asyncio.Task] = []
        self.watcher: asyncio.Task | None = None

    def record(self, sent_at: float, status: int, raw: bytes) -> None:
        self.recording = self.window[0] <= sent_at < self.window[1]
        super().record(sent_at, status, raw)
        if self.recording:
            self.timed.append((sent_at, time.perf_counter() - sent_at))

    async def _keep_connected(self, slot: int) -> None:  # one slot's connection, reopened
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                _, connection = await loop.create_connection(
                    lambda: _PacedConnection(self, slot), HOST, self.port)
            except OSError as error:
                self.error(f"connect: {error}")
                await asyncio.sleep(0.1)
                continue
            self.active.add(connection)
            await connection.closed
            self.active.discard(connection)

    def start(self) -> None:
        self.keepers = [asyncio.create_task(self._keep_connected(slot))
                        for slot in range(self.connections)]
        self.watcher = asyncio.create_task(self._watch_timeouts())

    async def stop(self) -> None:
        """Stop sending, let the requests in flight finish, close every connection."""
        self.stopping = True
        for connection in list(self.active):
            if not connection.busy:
                connection.transport.close()
        _, pending = await asyncio.wait(self.keepers, timeout=self.timeout + 1)
        for task in pending:
            task.cancel()
        for connection in list(self.active):
            if connection.busy:
                connection.fail("still unanswered when the run ended")
            connection.transport.abort()
        if self.watcher:
            self.watcher.cancel()


# -- the held requests ---------------------------------------------------------------------------

@dataclass
class Held:
    transaction_id: str
    sent: float = 0.0  # perf_counter
    sent_wall: float = 0.0  # time.time(), to compare with the server's timestamps
    ended: float = 0.0
    ended_wall: float = 0.0
    status: int = 0
    body: bytes = b""
    received: int = 0  # bytes
    how: str = ""  # "answer", "closed", "reset", "timeout", "connect"
    detail: str = ""


class _HeldConnection(asyncio.Protocol):
    """One request on its own connection: waits for a whole answer, or for the server to
    close the connection (a hang)."""

    def __init__(self, group: HoldGroup, held: Held, raw: bytes):
        self.group, self.held, self.raw = group, held, raw
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need = -1

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.held.sent, self.held.sent_wall = time.perf_counter(), time.time()
        transport.write(self.raw)
        self.group.opened(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.held.received += len(data)
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            if not head.startswith(b"http/1.") or not match:
                self.finish("answer", f"unparsable response head {self.buffer[:200]!r}")
                self.transport.abort()
                return
            self.held.status = int(head[9:12])
            self.need = end + 4 + int(match.group(1))
        if len(self.buffer) >= self.need:
            self.held.body = self.buffer[self.buffer.find(b"\r\n\r\n") + 4:self.need]
            self.finish("answer")
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        if exc is None:
            self.finish("closed", "" if not self.buffer else f"after {len(self.buffer)} bytes")
        else:
            self.finish("reset", str(exc) or type(exc).__name__)

    def finish(self, how: str, detail: str = "") -> None:
        if self.held.how:
            return
        self.held.ended, self.held.ended_wall = time.perf_counter(), time.time()
        self.held.how, self.held.detail = how, detail
        self.group.ended(self)


class HoldGroup:
    """N held requests opened at once; counts how many are open at any moment."""

    def __init__(self, port: int, prefix: str, count: int):
        self.port = port
        self.requests = DescribedRequests(port, prefix, HELD_DESCRIPTION)
        self.held = [Held(self.requests.transaction_id(i + 1)) for i in range(count)]
        self.open_now = 0
        self.max_open = 0
        self.open_at_first_end: int | None = None
        self.connections: list[_HeldConnection] = []
        self.remaining = count
        self.all_ended = asyncio.get_running_loop().create_future()
        self.all_sent_at = 0.0
        self.first_sent_at = 0.0

    def opened(self, connection: _HeldConnection) -> None:
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        self.connections.append(connection)

    def ended(self, connection: _HeldConnection) -> None:
        if connection.held.sent:
            if self.open_at_first_end is None:
                self.open_at_first_end = self.open_now
            self.open_now -= 1
        self.remaining -= 1
        if self.remaining == 0 and not self.all_ended.done():
            self.all_ended.set_result(None)

    async def open_all(self) -> None:
        loop = asyncio.get_running_loop()
        self.first_sent_at = time.perf_counter()

        async def one(held: Held, raw: bytes) -> None:
            try:
                await loop.create_connection(lambda: _HeldConnection(self, held, raw),
                                             HOST, self.port)
            except OSError as error:
                held.how, held.detail = "connect", str(error)
                held.ended, held.ended_wall = time.perf_counter(), time.time()
                self.remaining -= 1
                if self.remaining == 0 and not self.all_ended.done():
                    self.all_ended.set_result(None)

        await asyncio.gather(*(one(held, self.requests.next()) for held in self.held))
        self.all_sent_at = time.perf_counter()

    async def wait(self, deadline: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.all_ended),
                                   max(0.0, deadline - time.perf_counter()))
        except asyncio.TimeoutError:
            for connection in list(self.connections):
                if not connection.held.how:
                    connection.finish("timeout", "no answer or close before the deadline")
                    connection.transport.abort()


class RemoteHoldGroup:
    """A HoldGroup run in a process of its own.

    The fresh load times each request from its *scheduled* send. Sharing its event loop with
    the held group would charge the server for the client's own stalls: opening 500
    connections at once, and reading 500 answers that arrive together, each keep that loop
    busy for tens of milliseconds."""

    def __init__(self, port: int, prefix: str, count: int, hold_for: float):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self.process = context.Process(target=_hold_in_child,
                                       args=(port, prefix, count, hold_for, child_end),
                                       daemon=True)
        self.process.start()
        child_end.close()
        if self._pipe.recv() != "ready":
            raise RuntimeError("the held-request process did not start")
        self.held: list[Held] = []
        self.max_open = 0
        self.open_at_first_end: int | None = None
        self.first_sent_at = self.all_sent_at = 0.0
        self._done: asyncio.Future | None = None

    async def open_all(self) -> None:
        self._pipe.send("go")
        self._done = asyncio.ensure_future(asyncio.to_thread(self._follow))
        while not self.all_sent_at and not self._done.done():
            await asyncio.sleep(0.005)

    def _follow(self) -> None:
        while True:
            kind, payload = self._pipe.recv()
            if kind == "sent":
                self.first_sent_at, self.all_sent_at = payload
            elif kind == "first_end":
                self.open_at_first_end = payload
            else:
                self.held, self.max_open, self.open_at_first_end = payload
                return

    async def wait(self, deadline: float) -> None:
        await self._done
        await asyncio.to_thread(self.process.join, 5)


def _hold_in_child(port: int, prefix: str, count: int, hold_for: float, pipe) -> None:
    async def run() -> None:
        group = HoldGroup(port, prefix, count)
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # "go"
        deadline = time.perf_counter() + hold_for
        ended = group.ended

        def report_first(connection: _HeldConnection) -> None:
            first = group.open_at_first_end is None
            ended(connection)
            if first and group.open_at_first_end is not None:
                pipe.send(("first_end", group.open_at_first_end))

        group.ended = report_first
        await group.open_all()
        pipe.send(("sent", (group.first_sent_at, group.all_sent_at)))
        await group.wait(deadline)
        pipe.send(("done", (group.held, group.max_open, group.open_at_first_end)))

    asyncio.run(run())


# -- server-side figures -------------------------------------------------------------------------

def rss_kib(root: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Total VmRSS (KiB) of a process and its descendants, and each one's (pid, VmRSS, Pss).
    Forked workers share pages with the master, which VmRSS counts in each: Pss splits them."""
    each = []
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = int(status.split("VmRSS:", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = int(rollup.split("\nPss:", 1)[1].split()[0])
        except (OSError, IndexError):
            pss = 0
        each.append((pid, rss, pss))
    return sum(rss for _, rss, _ in each), each


def api(port: int, method: str, path: str, body: dict | None = None,
        timeout: float = 30.0) -> tuple[int, object, float]:
    """One control API call on a fresh connection: (status, decoded JSON, seconds)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload,
                           headers={"Content-Type": "application/json"} if payload else {})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw[:300]
    return response.status, decoded, time.perf_counter() - started


def arm(port: int, action: dict) -> int:
    status, body, _ = api(port, "POST", "/api/rules",
                          {"match": {"description_contains": HOLD_WORD}, "action": action,
                           "note": "benchmarks/hold_open.py"})
    if status != 201:
        raise RuntimeError(f"POST /api/rules answered {status}: {body}")
    return body["id"]


def disarm(port: int, rule_id: int) -> None:
    status, body, _ = api(port, "DELETE", f"/api/rules/{rule_id}")
    if status != 204:
        raise RuntimeError(f"DELETE /api/rules/{rule_id} answered {status}: {body}")


@dataclass
class Sample:
    at: float  # seconds after the held requests were opened
    in_flight: int | None  # the server's count of this phase's held transactions
    more: bool  # the page was full: there are more than the limit
    get_ms: float
    rss_kib: int


def in_flight(port: int, prefix: str) -> tuple[int, bool, float]:
    status, body, seconds = api(port, "GET", "/api/transactions?status=in_flight&limit=500")
    if status != 200:
        raise RuntimeError(f"GET /api/transactions answered {status}: {body}")
    mine = sum(1 for item in body["data"] if item["transaction_id"].startswith(prefix))
    return mine, body["next_cursor"] is not None, seconds


def _utc(text: str | None) -> float | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def read_database(path: Path) -> tuple[dict[tuple[str, str], int], dict[str, tuple]]:
    """After the server stopped: transactions by (kind, status), where kind is the part of the
    transaction_id naming the phase and role; and each held attempt's server timestamps."""
    counts: dict[tuple[str, str], int] = {}
    timings: dict[str, tuple] = {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        for txid, status in connection.execute("SELECT transaction_id, status FROM transactions"):
            kind = txid.split("-")[1] if txid.count("-") >= 2 else "other"
            counts[(kind, status)] = counts.get((kind, status), 0) + 1
        for txid, received, responded in connection.execute(
                "SELECT t.transaction_id, a.received_at, a.responded_at FROM attempts a "
                "JOIN transactions t ON t.id = a.transaction_pk WHERE a.number = 1"):
            timings[txid] = (_utc(received), _utc(responded))
    return counts, timings


# -- one phase -----------------------------------------------------------------------------------

@dataclass
class Phase:
    name: str  # "delay", "hang", then "delay2", "hang2"... when a kind runs again
    seconds: float
    kind: str  # "delay" or "hang"
    held: list[Held] = field(default_factory=list)
    open_at_first_end: int | None = None
    max_open: int = 0
    send_spread_ms: float = float("nan")  # first connection opened .. last request written
    samples: list[Sample] = field(default_factory=list)
    rss_before_kib: int = 0
    rss_before_each: list = field(default_factory=list)
    rss_held_each: list = field(default_factory=list)
    fresh_latencies: list[float] = field(default_factory=list)
    fresh_timed: list[tuple[float, float]] = field(default_factory=list)  # (t, latency)
    start: float = 0.0  # perf_counter when the held requests were opened
    # (t, CPU s of each server process, generator CPU s, machine busy s, machine total s)
    cpu_track: list[tuple[float, tuple[float, ...], float, float, float]] = \
        field(default_factory=list)
    start_wall: float = 0.0
    fresh_seconds: float = 0.0
    fresh_errors: int = 0
    fresh_error_samples: dict[str, int] = field(default_factory=dict)
    fresh_offered: float = 0.0
    server_cpu: float = float("nan")  # % of one core during the hold window
    generator_cpu: float = float("nan")
    other_cpu: float = float("nan")
    problems: list[str] = field(default_factory=list)

    @property
    def rss_held_kib(self) -> int:
        return max((s.rss_kib for s in self.samples), default=0)

    @property
    def deviations_ms(self) -> list[float]:
        return sorted(1000 * (h.ended - h.sent - self.seconds) for h in self.held if self.ok(h))

    def ok(self, held: Held) -> bool:
        if self.kind == "delay":
            if held.how != "answer" or held.status != 200:
                return False
            try:
                body = json.loads(held.body)
            except ValueError:
                return False
            return bool(body.get("charge_id")) and body.get("error_code") is None
        return held.how == "closed" and held.received == 0

    def failure(self, held: Held) -> str:
        if held.how == "answer":
            return f"{held.how} HTTP {held.status}: {held.body[:160]!r}"
        return f"{held.how} after {held.received} bytes {held.detail}".strip()


async def run_phase(kind: str, name: str, seconds: float, server: ServerProcess, args,
                    run_prefix: str, settle: float) -> Phase:
    port, master = server.port, server.proc.pid
    phase = Phase(name, seconds, kind)
    held_prefix = f"{run_prefix}-{name}"
    action = {"type": kind, "seconds": seconds}
    rule_id = await asyncio.to_thread(arm, port, action)
    load = PacedLoad(port, f"{run_prefix}-fresh{name}", args.connections, args.rate,
                     args.timeout)
    load.start()
    try:
        await asyncio.sleep(settle)  # connections open, fresh load at its steady rate
        phase.rss_before_kib, phase.rss_before_each = rss_kib(master)
        group = await asyncio.to_thread(RemoteHoldGroup, port, held_prefix, args.held,
                                        seconds + args.held_timeout)
        cpu_before = (time.perf_counter(), tree_cpu(master), self_cpu(), *machine_cpu())
        window_start = time.perf_counter()
        phase.start, phase.start_wall = window_start, time.time()
        load.window = (window_start, float("inf"))
        sent_before = load.sent
        sampler = asyncio.create_task(sample(phase, group, port, master, held_prefix, args,
                                             window_start))
        tracker = asyncio.create_task(track_cpu(phase, process_tree(master), window_start))
        await group.open_all()
        phase.send_spread_ms = 1000 * (group.all_sent_at - group.first_sent_at)
        await group.wait(window_start + seconds + args.held_timeout)
        window_end = time.perf_counter()
        load.window = (window_start, window_end)
        cpu_after = (time.perf_counter(), tree_cpu(master), self_cpu(), *machine_cpu())
        await sampler
        tracker.cancel()
    finally:
        await load.stop()
        await asyncio.to_thread(disarm, port, rule_id)
    wall = cpu_after[0] - cpu_before[0]
    phase.server_cpu = 100 * (cpu_after[1] - cpu_before[1]) / wall
    phase.generator_cpu = 100 * (cpu_after[2] - cpu_before[2]) / wall
    machine = 100 * (os.cpu_count() or 1) * (cpu_after[3] - cpu_before[3]) / max(
        cpu_after[4] - cpu_before[4], 1e-9)
    phase.other_cpu = machine - phase.server_cpu - phase.generator_cpu
    phase.held = group.held
    phase.max_open, phase.open_at_first_end = group.max_open, group.open_at_first_end
    phase.fresh_latencies = sorted(load.latencies)
    phase.fresh_timed = [(at - window_start, latency) for at, latency in load.timed]
    phase.fresh_seconds = window_end - window_start
    phase.fresh_errors, phase.fresh_error_samples = load.errors, load.error_samples
    phase.fresh_offered = (load.sent - sent_before) / phase.fresh_seconds
    return phase


async def track_cpu(phase: Phase, pids: list[int], start: float, every: float = 0.1) -> None:
    """Phase.cpu_track rows every `every` s; a process that is gone counts as 0."""
    while True:
        cpu = tuple(stat[2] if (stat := _proc_stat(pid)) else 0.0 for pid in pids)
        phase.cpu_track.append((time.perf_counter() - start, cpu, self_cpu(), *machine_cpu()))
        await asyncio.sleep(every)


async def sample(phase: Phase, group: HoldGroup, port: int, master: int, prefix: str, args,
                 start: float) -> None:
    """The server's in-flight count and RSS, `--samples` times: one sample is taken 1 s before
    the hold ends, more are spread from 2 s into the hold (once the arrival burst is over) to
    that point. Each GET lists up to 500 transactions and stalls one worker while it does."""
    while not group.all_sent_at:
        await asyncio.sleep(0.05)
    first = max(group.all_sent_at - start + 0.5, min(2.0, phase.seconds / 4))
    last = max(first, phase.seconds - 1.0)
    count = args.samples
    times = [last] if count == 1 else \
        [first + (last - first) * i / (count - 1) for i in range(count)]
    for at in times:
        await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
        if group.open_at_first_end is not None:
            break  # the first held request already ended: not all are held any more
        taken = time.perf_counter() - start
        total, each = rss_kib(master)
        try:
            mine, more, seconds = await asyncio.to_thread(in_flight, port, prefix)
        except (OSError, RuntimeError, http.client.HTTPException) as error:
            phase.problems.append(f"in-flight sample failed: {error}")
            mine, more, seconds = None, False, float("nan")
        phase.samples.append(Sample(taken, mine, more, 1000 * seconds, total))
        if total >= phase.rss_held_kib:
            phase.rss_held_each = each
    if not phase.samples:  # RSS with everything held, at least
        total, each = rss_kib(master)
        phase.samples.append(Sample(time.perf_counter() - start, None, False, float("nan"),
                                    total))
        phase.rss_held_each = each


async def run_all(server: ServerProcess, args, run_prefix: str) -> tuple[list[Phase], list[str]]:
    """The warm-up, then each phase; returns the phases and the warm-up's problems."""
    # The fresh load alone first, so that every worker has served charges before the RSS
    # baseline and the first hold.
    warm = PacedLoad(server.port, f"{run_prefix}-warm", args.connections, args.rate,
                     args.timeout)
    warm.start()
    await asyncio.sleep(args.warmup)
    await warm.stop()
    problems = [f"warm-up: {count} x {reason}" for reason, count in warm.error_samples.items()]
    phases = []
    for index, kind in enumerate(args.phase_names):
        seconds = args.delay if kind == "delay" else args.hang
        runs = args.phase_names[:index].count(kind)
        name = f"{kind}{runs + 1}" if runs else kind
        print(f"# phase {name}: {args.held} held for {seconds:g} s, fresh load {args.rate:g} "
              f"req/s over {args.connections} connections", flush=True)
        phases.append(await run_phase(kind, name, seconds, server, args, run_prefix,
                                      settle=1.0))
    return phases, problems


# -- report --------------------------------------------------------------------------------------

def _ms(values: list[float], pct: float) -> str:
    return f"{percentile(values, pct):+.1f}" if values else "n/a"


def report(phase: Phase, args, timings: dict[str, tuple], counts: dict) -> list[str]:
    """Print one phase; return the targets it missed."""
    missed = []
    n = len(phase.held)
    good = [h for h in phase.held if phase.ok(h)]
    failed = [h for h in phase.held if not phase.ok(h)]
    server_counts = [s.in_flight for s in phase.samples if s.in_flight is not None]
    server_max = max(server_counts) if server_counts else None
    print()
    print(f"== {phase.name}: {n} charges held {phase.seconds:g} s "
          f"({'then approved' if phase.kind == 'delay' else 'then the connection closed'})")
    print(f"held at once      client: {phase.open_at_first_end} still open when the first "
          f"ended ({phase.max_open} at most); all {n} written within "
          f"{phase.send_spread_ms:.0f} ms")
    asked = [s for s in phase.samples if s.get_ms == s.get_ms]  # not NaN: a GET was made
    for s in asked:
        shown = "n/a" if s.in_flight is None else f"{s.in_flight}{'+' if s.more else ''}"
        print(f"                  server: {shown} in_flight at +{s.at:.1f} s "
              f"(GET /api/transactions took {s.get_ms:.0f} ms)")
    if not asked:
        print("                  server: not asked (--samples 0, or the first held request "
              "ended before the sample)")
    if phase.open_at_first_end != n or (server_max is not None and server_max < n):
        missed.append(f"{phase.name}: not all {n} held at once (client {phase.open_at_first_end},"
                      f" server {server_max})")
    lat = phase.fresh_latencies
    rps = len(lat) / phase.fresh_seconds if phase.fresh_seconds else 0.0
    p50, p99 = 1000 * percentile(lat, 50), 1000 * percentile(lat, 99)
    print(f"fresh charges     {rps:,.1f} req/s answered (offered {phase.fresh_offered:,.1f}) "
          f"over {phase.fresh_seconds:.1f} s, {len(lat)} requests; p50 {p50:.1f} ms, "
          f"p90 {1000 * percentile(lat, 90):.1f} ms, p99 {p99:.1f} ms, "
          f"max {1000 * (lat[-1] if lat else float('nan')):.1f} ms; {phase.fresh_errors} failed")
    for reason, count in sorted(phase.fresh_error_samples.items(), key=lambda i: -i[1])[:5]:
        print(f"                  {count} x {reason}")
    if not lat or not p99 < args.p99_target:
        missed.append(f"{phase.name}: fresh p99 {p99:.1f} ms, target < {args.p99_target:g} ms")
    if rps < 0.9 * args.rate:
        missed.append(f"{phase.name}: fresh charges answered at {rps:.1f} req/s, "
                      f"below 90% of the {args.rate:g} req/s offered")
    dev = phase.deviations_ms
    median = statistics.median(dev) if dev else float("nan")
    worst = max(dev, key=abs) if dev else float("nan")
    print(f"held answers      {len(good)}/{n} as expected; time − {phase.seconds:g} s: "
          f"median {median:+.1f} ms, min {_ms(dev, 0)} ms, p90 {_ms(dev, 90)} ms, "
          f"max {_ms(dev, 100)} ms (max |deviation| {abs(worst):.1f} ms)")
    kinds: dict[str, int] = {}
    for h in failed:
        key = phase.failure(h)[:160]
        kinds[key] = kinds.get(key, 0) + 1
    for reason, count in sorted(kinds.items(), key=lambda i: -i[1])[:5]:
        print(f"                  {count} x {reason}")
    if not dev or not abs(median) <= args.deviation_target:
        missed.append(f"{phase.name}: held median deviation {median:+.1f} ms, target within "
                      f"±{args.deviation_target:g} ms")
    # Where the deviation comes from, with the server's own timestamps.
    arrive, hold, back = [], [], []
    for h in good:
        received, responded = timings.get(h.transaction_id, (None, None))
        if received is None or responded is None:
            continue
        arrive.append(1000 * (received - h.sent_wall))
        hold.append(1000 * (responded - received - phase.seconds))
        back.append(1000 * (h.ended_wall - responded))
    if arrive:
        arrive.sort(), hold.sort(), back.sort()
        print("  breakdown (ms)  sent → server received_at: "
              f"p50 {_ms(arrive, 50)}, max {_ms(arrive, 100)}; received_at → responded_at − "
              f"{phase.seconds:g} s: p50 {_ms(hold, 50)}, max {_ms(hold, 100)}; "
              f"responded_at → client: p50 {_ms(back, 50)}, max {_ms(back, 100)}")
    if args.timeline > 0:
        print_timeline(phase, args.timeline, timings)
    before, during = phase.rss_before_kib, phase.rss_held_kib
    pss_before = sum(pss for _, _, pss in phase.rss_before_each)
    pss_during = sum(pss for _, _, pss in phase.rss_held_each)
    print(f"server RSS        {before / 1024:,.1f} MiB before, {during / 1024:,.1f} MiB with "
          f"{n} held (+{(during - before) / 1024:,.1f} MiB, "
          f"{(during - before) / max(n, 1):,.1f} KiB per held request); PSS "
          f"{pss_before / 1024:,.1f} -> {pss_during / 1024:,.1f} MiB")
    print("                  VmRSS before: " + ", ".join(
        f"{pid} {kib / 1024:.1f}" for pid, kib, _ in phase.rss_before_each)
        + " | held: " + ", ".join(f"{pid} {kib / 1024:.1f}" for pid, kib, _ in
                                  phase.rss_held_each) + " (pid MiB, master first)")
    print(f"CPU during hold   server {phase.server_cpu:.0f}%, generator "
          f"{phase.generator_cpu:.0f}%, other {phase.other_cpu:.0f}% (of one core; "
          f"{os.cpu_count()} cores)")
    if phase.fresh_errors:
        missed.append(f"{phase.name}: {phase.fresh_errors} fresh charges failed")
    if failed:
        missed.append(f"{phase.name}: {len(failed)} held requests not answered as expected")
    for kind, want in ((phase.name, EXPECTED_STATUS[phase.kind]),
                       (f"fresh{phase.name}", "succeeded")):
        wrong = {status: c for (k, status), c in counts.items() if k == kind and status != want}
        if wrong:
            missed.append(f"{phase.name}: stored {kind} transactions not {want}: {wrong}")
    stored = sum(c for (k, _), c in counts.items() if k == phase.name)
    if counts and stored != n:
        missed.append(f"{phase.name}: {stored} held transactions stored, {n} sent")
    for problem in phase.problems:
        missed.append(f"{phase.name}: {problem}")
    return missed


def print_timeline(phase: Phase, step: float, timings: dict[str, tuple]) -> None:
    """Per time slice since the held requests were opened: the fresh charges scheduled in it
    and their latency, and how many held requests the server received and answered in it."""
    end = max([t for t, _ in phase.fresh_timed] + [h.ended - phase.start for h in phase.held])
    slices = int(end // step) + 1
    fresh: list[list[float]] = [[] for _ in range(slices)]
    for at, latency in phase.fresh_timed:
        fresh[min(slices - 1, max(0, int(at // step)))].append(1000 * latency)
    received, responded, ended = [0] * slices, [0] * slices, [0] * slices
    for h in phase.held:
        ended[min(slices - 1, max(0, int((h.ended - phase.start) // step)))] += 1
        server = timings.get(h.transaction_id, (None, None))
        for stamp, counter in zip(server, (received, responded)):
            if stamp is not None:
                counter[min(slices - 1, max(0, int((stamp - phase.start_wall) // step)))] += 1
    cores = os.cpu_count() or 1

    def cpu_between(t0: float, t1: float) -> tuple[str, str, str]:
        inside = [row for row in phase.cpu_track if t0 <= row[0] <= t1 + 1e-9]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < step / 2:
            return "-", "-", "-"
        (a, cpu_a, gen_a, busy_a, total_a), (b, cpu_b, gen_b, busy_b, total_b) = \
            inside[0], inside[-1]
        each = [100 * (y - x) / (b - a) for x, y in zip(cpu_a, cpu_b)]
        server, generator = sum(each), 100 * (gen_b - gen_a) / (b - a)
        machine = 100 * cores * (busy_b - busy_a) / max(total_b - total_a, 1e-9)
        workers = "/".join(f"{v:.0f}" for v in each[1:])  # [0] is the master
        return (f"{server:.0f}% ({workers})", f"{generator:.0f}%",
                f"{max(0.0, machine - server - generator):.0f}%")

    print(f"  timeline ({step:g} s slices from opening the held requests; CPU in % of one core)")
    print("     t s   fresh  p50 ms  max ms   held: received  responded  ended   CPU: server "
          "(each worker)  generator  other")
    for i in range(slices):
        values = sorted(fresh[i])
        p50 = f"{percentile(values, 50):7.1f}" if values else "      -"
        top = f"{values[-1]:7.1f}" if values else "      -"
        server_cpu, generator_cpu, other_cpu = cpu_between(i * step, (i + 1) * step)
        print(f"  {i * step:6.1f}  {len(values):6d} {p50} {top}   {received[i]:14d} "
              f"{responded[i]:10d} {ended[i]:6d} {server_cpu:>27} {generator_cpu:>10} "
              f"{other_cpu:>6}")


# -- main ----------------------------------------------------------------------------------------

def code_version() -> str:
    """The commit of the checkout this script sits in, + "dirty" when fakeproc/ has changes:
    figures only compare between runs of the same code."""
    repo = HERE.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--",
                                "fakeproc"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit[:72]}{' (+ uncommitted changes in fakeproc/)' if dirty else ''}" \
        if commit else "unknown"


def raise_nofile(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < needed:
            raise RuntimeError(f"RLIMIT_NOFILE: need {needed}, the hard limit is {hard}")
        return f"raised RLIMIT_NOFILE {soft} -> {new}"
    return f"RLIMIT_NOFILE {soft}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--phases", default="delay,hang",
                        help="which holds to run, in order: delay and/or hang, each as often "
                             "as wanted (delay,hang)")
    parser.add_argument("--held", type=int, default=500, help="requests held at once (500)")
    parser.add_argument("--delay", type=float, default=8.0, help="delay rule seconds (8)")
    parser.add_argument("--hang", type=float, default=8.0, help="hang rule seconds (8)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="fresh charges per second, offered on a fixed schedule (100)")
    parser.add_argument("--connections", "-c", type=int, default=20,
                        help="keep-alive connections for the fresh charges (20)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of fresh load before the first phase (2)")
    parser.add_argument("--samples", type=int, default=1,
                        help="GET /api/transactions?status=in_flight samples per hold, the "
                             "first 1 s before it ends (1; 0: count client-side only)")
    parser.add_argument("--timeline", type=float, default=1.0, metavar="SECONDS",
                        help="print fresh latency and held arrivals per time slice of this "
                             "length (1; 0: don't)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="fresh request timeout in seconds (5)")
    parser.add_argument("--held-timeout", type=float, default=10.0,
                        help="seconds past the hold before a held request counts as lost (10)")
    parser.add_argument("--p99-target", type=float, default=100.0, metavar="MS")
    parser.add_argument("--deviation-target", type=float, default=50.0, metavar="MS")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default: fakeproc's own default)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record every worker for the whole run (keeps files)")
    add_server_options(parser, 30, "First",
                       "the temporary directory (database, server log)")
    args = parser.parse_args(argv)
    args.phase_names = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phase_names or not set(args.phase_names) <= {"delay", "hang"}:
        parser.error("--phases takes delay and/or hang")
    if args.held < 1:
        parser.error("--held must be at least 1")
    if args.held > 500 and args.samples:
        parser.error("GET /api/transactions counts at most 500: use --samples 0 beyond that")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    # Our side: every held connection plus the fresh ones; the server inherits the limit and
    # needs as many sockets spread over its workers.
    print(f"# {raise_nofile(2 * (args.held + args.connections) + 256)}", flush=True)
    with scratch("fakeproc-hold-", args.keep or args.profile) as workdir:
        return _run(args, workdir)


def _run(args, workdir: Path) -> int:
    run_prefix = f"hold{uuid.uuid4().hex[:6]}"
    db_path = workdir / "hold.db"
    port = free_port()
    argv = [*args.fakeproc_cmd, "serve", "--port", str(port), "--database-url",
            f"sqlite:///{db_path}"]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    server = ServerProcess(f"fakeproc-{port}", argv, workdir, port)
    profiles: list = []
    notes = SimpleNamespace(notes=[])
    started = time.monotonic()
    try:
        if args.quiet_wait:
            wait_for_quiet(args.quiet_limit, args.quiet_wait)
        started = time.monotonic()
        print(f"# code: {code_version()}", flush=True)
        print(f"# {' '.join(argv)}", flush=True)
        server.start(run_prefix)
        workers = server.workers()
        print(f"# ready in {time.monotonic() - started:.1f} s: master {server.proc.pid}, "
              f"{len(workers)} workers {workers}", flush=True)
        if args.profile:
            total = args.warmup + sum(args.delay if p == "delay" else args.hang
                                      for p in args.phase_names) + 6 * len(args.phase_names)
            profiles = start_profiles(server, SimpleNamespace(warmup=0, duration=int(total) + 1),
                                      workdir, run_prefix)
        phases, missed = asyncio.run(run_all(server, args, run_prefix))
    except RuntimeError as error:
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        try:
            finish_profiles(profiles, notes)
        finally:
            log_tail = server.log_tail(20)
            server.stop()
    try:
        counts, timings = read_database(db_path)
    except sqlite3.Error as error:
        counts, timings = {}, {}
        missed.append(f"could not read the database: {error}")
    for phase in phases:
        missed += report(phase, args, timings, counts)
    print()
    print("stored transactions: " + ", ".join(f"{kind} {status} {count}" for (kind, status), count
                                               in sorted(counts.items())))
    for note in notes.notes:
        print(note)
    if any(word in log_tail for word in ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT")):
        print("server log (tail):\n" + log_tail)
    print(f"whole run {time.monotonic() - started:.1f} s (after the quiet wait)")
    return verdict(missed, "all targets met")


if __name__ == "__main__":
    run(main)
