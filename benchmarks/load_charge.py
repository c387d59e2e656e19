#!/usr/bin/env python3
"""Load test: fakeproc's charge path against a bare Flask app on the same gunicorn setup.

Starts `python -m fakeproc serve` on a fresh SQLite file and benchmarks/bare_app.py (same
gunicorn options and application class, one trivial JSON endpoint), loads each over loopback
with N keep-alive connections posting Generic Pay Connector charges (a unique transaction_id
per request), and prints requests/s, p50/p99 latency and errors per server. Exits 1 when any
request failed (transport error, timeout, non-2xx, or a charge fakeproc did not approve).

    python benchmarks/load_charge.py                      # 2 s warm-up + 10 s, 50 connections
    python benchmarks/load_charge.py --workers 2,3,4      # a sweep: one row per worker count
    python benchmarks/load_charge.py --generator both     # also wrk: compare the generators
    python benchmarks/load_charge.py --servers fakeproc --profile   # py-spy every worker

Load generators: by default a single-process asyncio client over raw HTTP/1.1 keep-alive sockets
(pre-built request bytes, parses only the status line and Content-Length), which measures every
request; or `wrk` with benchmarks/charge.lua (`apt-get install wrk`), cheaper per request but
whose latency figures (wrk 4.1) overweight slow requests (see README.md). Both
share the machine's cores with the server: the table shows the CPU each side used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serving import (
    HOST,
    CpuSnapshot,
    RequestFactory,
    ServerProcess,
    add_server_options,
    charge_body_parts,
    children_cpu,
    free_port,
    read_head,
    run,
    scratch,
    self_cpu,
    stop_on_signals,
    wait_for_quiet,
)

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "charge.lua"
BARE_APP = HERE / "bare_app.py"


# -- the request ---------------------------------------------------------------------------------


# -- CPU accounting ------------------------------------------------------------------------------


# -- results -------------------------------------------------------------------------------------

@dataclass
class Result:
    server: str
    workers: int
    generator: str
    requests: int = 0  # successful responses in the measured window
    seconds: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0  # failed requests, warm-up included
    server_cpu: float = float("nan")  # percent of one core, measured window
    generator_cpu: float = float("nan")
    machine_cpu: float = float("nan")  # percent of all cores
    notes: list[str] = field(default_factory=list)

    @property
    def other_cpu(self) -> float:
        return self.machine_cpu * (os.cpu_count() or 1) - self.server_cpu - self.generator_cpu

    @property
    def per_cpu_second(self) -> float:
        cpu_seconds = self.server_cpu / 100 * self.seconds
        return self.requests / cpu_seconds if cpu_seconds > 0 else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def set_cpu(self, before: CpuSnapshot, after: CpuSnapshot) -> None:
        wall = after.at - before.at
        self.server_cpu = 100 * (after.server - before.server) / wall
        self.generator_cpu = 100 * (after.generator - before.generator) / wall
        total = after.machine_total - before.machine_total
        self.machine_cpu = 100 * (after.machine_busy - before.machine_busy) / total if total else 0


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def print_table(results: list[Result]) -> None:
    columns = ("server", "workers", "generator", "req/s", "p50 ms", "p99 ms", "errors",
               "requests", "server CPU", "req/CPU-s", "gen CPU", "other CPU")
    rows = [(r.server, str(r.workers), r.generator, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}",
             f"{r.p99_ms:.1f}", str(r.errors), f"{r.requests:,}", f"{r.server_cpu:.0f}%",
             f"{r.per_cpu_second:,.0f}", f"{r.generator_cpu:.0f}%", f"{r.other_cpu:.0f}%")
            for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(columns, widths)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths))))
    print(f"CPU: % of one core during the measured window ({os.cpu_count()} cores = "
          f"{100 * (os.cpu_count() or 1)}%); req/CPU-s: requests per second of server CPU, "
          "the figure least\nskewed by other load; other CPU: every other process on the machine")
    if any(r.generator == "wrk" for r in results):
        print("wrk 4.1's latency figures overweight slow requests (benchmarks/README.md): "
              "trust its req/s,\nprefer --generator python for p50/p99")
    for r in results:
        for note in r.notes:
            print(f"  {r.server} ({r.workers} workers, {r.generator}): {note}")


# -- servers -------------------------------------------------------------------------------------


def verify_database(path: Path) -> tuple[int, dict[str, int]]:
    """Count fakeproc's stored transactions by status (the server must be stopped)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT status, count(*) FROM transactions GROUP BY status")
        statuses = dict(rows.fetchall())
    return sum(statuses.values()), statuses


# -- the asyncio load generator ------------------------------------------------------------------

class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, load: PythonLoad):
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need = -1
        self.status = 0
        self.close_after = False
        self.busy = False
        self.sent_at = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        if self.load.stopping:
            self.transport.close()
            return
        self.busy = True
        self.sent_at = time.perf_counter()
        self.transport.write(self.load.requests.next())

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
            self.status, self.need, self.close_after = head.status, head.end, head.close
        if len(buffer) < self.need:
            self.buffer = buffer
            return
        extra, self.buffer, self.need, self.busy = buffer[self.need:], b"", -1, False
        self.load.record(self.sent_at, self.status, buffer)
        if extra:
            self.fail(f"{len(extra)} unexpected bytes after a response")
        elif self.close_after:
            self.transport.close()
        else:
            self.send()

    def fail(self, reason: str) -> None:
        if self.busy:
            self.busy = False
            self.load.error(reason)
        self.transport.abort()

    def connection_lost(self, exc) -> None:
        if self.busy:
            self.busy = False
            self.load.error(f"connection lost with a request in flight ({exc or 'closed'})")
        if not self.closed.done():
            self.closed.set_result(None)


class PythonLoad:
    """N keep-alive connections, closed loop: each sends its next request on each answer."""

    def __init__(self, port: int, prefix: str, connections: int, timeout: float):
        self.port, self.connections, self.timeout = port, connections, timeout
        self.requests = RequestFactory(port, prefix)
        self.stopping = False
        self.recording = False
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: dict[str, int] = {}
        self.active: set[_Connection] = set()

    def record(self, sent_at: float, status: int, raw: bytes) -> None:
        latency = time.perf_counter() - sent_at
        if not 200 <= status < 300:
            self.error(f"HTTP {status}: {raw[-300:]!r}")
        elif latency > self.timeout:
            self.error(f"answered after more than {self.timeout:g} s")
        elif self.recording:
            self.latencies.append(latency)

    def error(self, reason: str) -> None:
        self.errors += 1
        key = reason[:160]
        self.error_samples[key] = self.error_samples.get(key, 0) + 1

    async def _keep_connected(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            try:
                _, connection = await loop.create_connection(lambda: _Connection(self),
                                                             HOST, self.port)
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
                if connection.busy and now - connection.sent_at > self.timeout:
                    connection.fail(f"no answer within {self.timeout:g} s")

    async def run(self, warmup: float, duration: float, snapshot) -> tuple[float, object, object]:
        keepers = [asyncio.create_task(self._keep_connected()) for _ in range(self.connections)]
        watcher = asyncio.create_task(self._watch_timeouts())
        try:
            await asyncio.sleep(warmup)
            before = snapshot()
            self.recording = True
            started = time.perf_counter()
            await asyncio.sleep(duration)
            self.recording = False
            seconds = time.perf_counter() - started
            after = snapshot()
            self.stopping = True
            # Let the requests in flight finish (not counted), then close every connection.
            _, pending = await asyncio.wait(keepers, timeout=self.timeout + 1)
            for task in pending:
                task.cancel()
            for connection in list(self.active):
                if connection.busy:
                    connection.fail("still unanswered when the run ended")
                connection.transport.abort()
            return seconds, before, after
        finally:
            watcher.cancel()
            for task in keepers:
                task.cancel()


def measure_load(load: PythonLoad, snapshot: Callable[[], CpuSnapshot], result: Result,
                 args, shown_errors: int = 10) -> None:
    """Run `load` (warm-up, then the measured window) and fill `result`: throughput, latency,
    errors with their most common kinds, and CPU between the two snapshots."""
    seconds, before, after = asyncio.run(load.run(args.warmup, args.duration, snapshot))
    latencies = sorted(load.latencies)
    result.requests, result.seconds, result.errors = len(latencies), seconds, load.errors
    result.p50_ms = 1000 * percentile(latencies, 50)
    result.p99_ms = 1000 * percentile(latencies, 99)
    result.set_cpu(before, after)
    samples = sorted(load.error_samples.items(), key=lambda item: -item[1])
    result.notes += [f"{count} x {reason}" for reason, count in samples[:shown_errors]]
    if len(samples) > shown_errors:
        result.notes.append(f"... and {len(samples) - shown_errors} other kinds of error")


def run_python(server: ServerProcess, result: Result, args, prefix: str) -> None:
    load = PythonLoad(server.port, prefix, args.connections, args.timeout)

    def snapshot() -> CpuSnapshot:
        return CpuSnapshot.take(server.proc.pid, self_cpu())

    measure_load(load, snapshot, result, args)


# -- the wrk load generator ----------------------------------------------------------------------

_WRK_LINE = re.compile(r"^WRK_RESULT (.*)$", re.M)


def _wrk(server: ServerProcess, args, prefix: str, seconds: int) -> tuple[dict[str, float], str]:
    body_head, body_tail = charge_body_parts()
    argv = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s",
            f"--timeout={max(1, round(args.timeout))}s", "-s", str(LUA_SCRIPT),
            f"http://{HOST}:{server.port}/", "--", prefix, body_head.decode(), body_tail.decode()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + args.timeout + 30)
    match = _WRK_LINE.search(done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = {k: float(v) for k, v in (item.split("=") for item in match.group(1).split())}
    return values, done.stdout


def run_wrk(server: ServerProcess, result: Result, args, prefix: str) -> None:
    warm, _ = _wrk(server, args, f"{prefix}-warm", args.warmup)
    before = CpuSnapshot.take(server.proc.pid, children_cpu())
    measured, output = _wrk(server, args, f"{prefix}-run", args.duration)
    after = CpuSnapshot.take(server.proc.pid, children_cpu())
    failed = 0
    for values in (warm, measured):
        failed += sum(int(values[k]) for k in ("connect", "read", "write", "status", "timeout"))
    bad = int(sum(measured[k] for k in ("read", "write", "status", "timeout")))
    result.requests = int(measured["requests"]) - bad
    result.seconds = measured["duration_us"] / 1e6
    result.errors = failed
    result.p50_ms, result.p99_ms = measured["p50_us"] / 1000, measured["p99_us"] / 1000
    result.set_cpu(before, after)
    if failed:
        result.notes.append("wrk errors: " + ", ".join(
            f"{k}={int(warm[k] + measured[k])}" for k in ("connect", "read", "write", "status",
                                                          "timeout")))
    if args.verbose:
        print(output)


# -- one benchmark -------------------------------------------------------------------------------

def bench(kind: str, workers: int, generator: str, args, workdir: Path) -> Result:
    port = free_port()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    if kind == "fakeproc":
        db_path = workdir / f"bench-{prefix}.db"
        argv = [*args.fakeproc_cmd, "serve", "--port", str(port),
                "--database-url", f"sqlite:///{db_path}", "--workers", str(workers)]
    else:
        db_path = None
        argv = [sys.executable, str(BARE_APP), "--port", str(port), "--workers", str(workers)]
    result = Result(kind, workers, generator)
    server = ServerProcess(f"{kind}-{workers}w-{generator}-{port}", argv, workdir, port)
    if args.quiet_wait:
        wait_for_quiet(args.quiet_limit, args.quiet_wait)
    print(f"# {kind}: {' '.join(argv)}", flush=True)
    try:
        server.start(prefix)
        if args.profile and kind == "fakeproc":
            profiles = start_profiles(server, args, workdir, prefix)
        else:
            profiles = []
        try:
            (run_wrk if generator == "wrk" else run_python)(server, result, args, prefix)
        finally:
            finish_profiles(profiles, result)
    finally:
        server.stop()
    if db_path is not None:
        try:
            stored, statuses = verify_database(db_path)
        except sqlite3.Error as error:
            result.notes.append(f"could not read the database: {error}")
        else:
            declined = stored - statuses.get("succeeded", 0)
            result.notes.append(f"database: {stored:,} transactions, {statuses}")
            if declined:
                result.errors += declined
                result.notes.append(f"{declined} transactions not succeeded")
            if stored < result.requests:
                result.errors += 1
                result.notes.append("fewer transactions stored than requests answered")
    print(f"#   {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
          f"{result.errors} errors", flush=True)
    return result


# -- optional profiling with py-spy --------------------------------------------------------------

def start_profiles(server: ServerProcess, args, workdir: Path, prefix: str) -> list:
    py_spy = shutil.which("py-spy")
    if not py_spy:
        print("# --profile: py-spy is not on PATH (pip install py-spy); not profiling")
        return []
    profiles = []
    for pid in server.workers():
        out = workdir / f"profile-{prefix}-{pid}.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
                "--duration", str(args.warmup + args.duration), "--nonblocking", "--idle",
                "-o", str(out)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        profiles.append((proc, out))
    return profiles


def finish_profiles(profiles: list, result: Result) -> None:
    for proc, out in profiles:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if out.exists():
            result.notes.append(f"py-spy profile (collapsed stacks): {out}")


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--duration", type=int, default=10, help="measured seconds (10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds (2)")
    parser.add_argument("--connections", "-c", type=int, default=50,
                        help="concurrent keep-alive connections (50)")
    parser.add_argument("--workers", default="2",
                        help="gunicorn workers, or a comma-separated sweep like 2,3,4 (2)")
    parser.add_argument("--generator", choices=("python", "wrk", "both"), default="python",
                        help="load generator: the asyncio client, or wrk (its latency "
                             "figures overweight slow requests, see README) (python)")
    parser.add_argument("--servers", default="fakeproc,bare",
                        help="which servers to load, comma-separated (fakeproc,bare)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="per-request timeout in seconds; a slower answer is an error (10)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record every fakeproc worker during the run (keeps files)")
    add_server_options(parser, 60, "Before each run",
                       "the temporary directory (databases, server logs)")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    args.worker_counts = [int(w) for w in args.workers.split(",")]
    args.server_kinds = [s.strip() for s in args.servers.split(",")]
    if not set(args.server_kinds) <= {"fakeproc", "bare"}:
        parser.error("--servers takes fakeproc and/or bare")
    if args.generator == "both":
        args.generators = ["wrk", "python"]
    else:
        args.generators = [args.generator]
    if "wrk" in args.generators and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --generator python")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    results: list[Result] = []
    failed = False
    with scratch("fakeproc-bench-", args.keep or args.profile) as workdir:
        for workers in args.worker_counts:
            for generator in args.generators:
                for kind in args.server_kinds:
                    try:
                        results.append(bench(kind, workers, generator, args, workdir))
                    except RuntimeError as error:
                        print(f"# {kind} with {workers} workers failed: {error}", file=sys.stderr)
                        failed = True
        print()
        print(f"{args.connections} keep-alive connections, {args.warmup} s warm-up + "
              f"{args.duration} s measured, POST / charge bodies with unique transaction_ids")
        print_table(results)
    return 1 if failed or any(r.errors for r in results) else 0


if __name__ == "__main__":
    run(main)
