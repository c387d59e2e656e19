"""What every benchmark here shares: starting and stopping a fakeproc server (a gunicorn
master in its own process group), probing it, the charge requests to load it with, the CPU
each side used, waiting for a quiet machine, and the run's scaffolding (signals, a scratch
folder, Ctrl-C)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, always
CLK_TCK = os.sysconf("SC_CLK_TCK")
TXID_DIGITS = 10


# -- the request ---------------------------------------------------------------------------------

def charge_body_parts() -> tuple[bytes, bytes]:
    """A Generic Pay Connector charge body split around its transaction_id."""
    year = (dt.date.today().year + 3) % 100
    marker = "\x00TXID\x00"
    body = {
        "method": "charge",
        "transaction_id": marker,
        "cardnumber": "4111111111111111",
        "cvv": "123",
        "amount": "10.00",
        "currency_code": "USD",
        "expiry_month": "08",
        "expiry_year": f"{year:02d}",
        "description": "pizza",
        "postal_code": "94111",
        "parameters": {"customer_defined_key_1": "customer_defined_value_1",
                       "customer_defined_key_2": "customer_defined_value_2"},
    }
    text = json.dumps(body, separators=(",", ":"))
    head, tail = text.split(json.dumps(marker)[1:-1])
    return head.encode(), tail.encode()


class RequestFactory:
    """Pre-built HTTP/1.1 request bytes; only the transaction_id counter changes."""

    def __init__(self, port: int, prefix: str):
        body_head, body_tail = charge_body_parts()
        body_head += f"{prefix}-".encode()
        length = len(body_head) + TXID_DIGITS + len(body_tail)
        self.head = (f"POST / HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     f"User-Agent: TwilioProxy/1.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n\r\n").encode() + body_head
        self.tail = body_tail
        self.count = 0

    def next(self) -> bytes:
        self.count += 1
        return b"%s%010d%s" % (self.head, self.count, self.tail)


# -- reading answers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ResponseHead:
    """Where an HTTP/1.1 response's body starts and ends in a buffer, its status, and whether
    the server closes the connection after it."""

    status: int
    body_at: int
    end: int
    close: bool


def read_head(buffer: bytes) -> ResponseHead | None:
    """The head of the response at the start of `buffer` (None while it is incomplete); a
    ValueError names what cannot be read. Only the status line and Content-Length are parsed."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].lower()
    start = head.find(b"\r\ncontent-length:")
    if not head.startswith(b"http/1.") or start < 0:
        raise ValueError(f"unparsable response head {buffer[:end][:200]!r}")
    stop = head.find(b"\r\n", start + 2)
    length = int(head[start + 17:stop if stop > 0 else None])
    return ResponseHead(int(head[9:12]), end + 4, end + 4 + length,
                        b"\r\nconnection: close" in head)


# -- CPU accounting ------------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[int, int, float] | None:
    """(ppid, pgrp, cpu seconds) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat:
            parents.setdefault(stat[0], []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def tree_cpu(root: int) -> float:
    return sum(stat[2] for pid in process_tree(root) if (stat := _proc_stat(pid)))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


@dataclass
class CpuSnapshot:
    at: float
    server: float
    generator: float
    machine_busy: float
    machine_total: float

    @classmethod
    def take(cls, server_pid: int, generator: float) -> CpuSnapshot:
        busy, total = machine_cpu()
        return cls(time.perf_counter(), tree_cpu(server_pid), generator, busy, total)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the server ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A gunicorn master in its own process group, stopped (with its workers) on exit."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int):
        self.name, self.argv, self.port = name, argv, port
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, prefix: str, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.log_path.parent,
                                         env=env, start_new_session=True)
        factory = RequestFactory(self.port, f"{prefix}-probe")
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                status = probe(self.port, factory.next())
                if status == 200:
                    return
                last_error = f"HTTP {status}"
            except OSError as error:
                last_error = str(error)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s ({last_error}):\n"
                           + self.log_tail())

    def workers(self) -> list[int]:
        return [pid for pid in process_tree(self.proc.pid) if pid != self.proc.pid]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the master leads its own group
        if proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)  # gunicorn: graceful stop of master + workers
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_group(pgid)
                proc.wait(timeout=5)
        _kill_group(pgid)  # any worker that outlived its master
        self.proc = None


def _kill_group(pgid: int) -> None:
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat and stat[1] == pgid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def probe(port: int, raw_request: bytes) -> int:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(raw_request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        return response.status


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """Wait (at most max_wait s) until the machine's other processes use under limit% of one
    core over a second; returns the last reading. Other load skews every figure here."""
    start = time.monotonic()
    next_report = start
    while True:
        busy, total = machine_cpu()
        time.sleep(1.0)
        busy2, total2 = machine_cpu()
        used = 100 * (os.cpu_count() or 1) * (busy2 - busy) / max(total2 - total, 1e-9)
        now = time.monotonic()
        if used <= limit or now - start >= max_wait:
            if now - start > 2:
                print(f"# waited {now - start:.0f} s; other processes now use {used:.0f}% CPU",
                      flush=True)
            return used
        if now >= next_report:
            print(f"# waiting (up to {max_wait:.0f} s) for other processes to use under "
                  f"{limit:.0f}% CPU: now {used:.0f}%", flush=True)
            next_report = now + 15


def add_server_options(parser: argparse.ArgumentParser, quiet_wait: float, when: str,
                       kept: str) -> None:
    """The options of every benchmark that starts fakeproc: the command that serves it (split
    into argv), the wait for a quiet machine `when` (e.g. "before each run"), and --keep for
    what is `kept`."""
    parser.add_argument("--fakeproc-cmd", type=shlex.split,
                        default=f"{sys.executable} -m fakeproc",
                        help="command that takes fakeproc's `serve` arguments, e.g. to A/B a "
                             "patched server (python -m fakeproc)")
    parser.add_argument("--quiet-wait", type=float, default=quiet_wait, metavar="SECONDS",
                        help=f"{when}, wait up to this long for other processes to go under "
                             f"--quiet-limit CPU ({quiet_wait:g}; 0: don't wait)")
    parser.add_argument("--quiet-limit", type=float, default=15, metavar="PERCENT",
                        help="CPU (%% of one core) other processes may use then (15)")
    parser.add_argument("--keep", action="store_true", help=f"keep {kept}")


def verdict(missed: list[str], all_met: str) -> int:
    """The exit status of a benchmark: 1 with each missed target listed, else 0 with
    `all_met` said."""
    if missed:
        print("MISSED:\n  " + "\n  ".join(missed))
        return 1
    print(all_met)
    return 0


# -- a run ---------------------------------------------------------------------------------------

def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the run as Ctrl-C would, through the cleanup of `finally`."""
    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


@contextlib.contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A folder for the run's stores and logs, removed afterwards unless `keep`."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    finally:
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(main: Callable[[], int]) -> None:
    """Run a benchmark's `main` as a command: its status, or 130 after Ctrl-C (the servers
    are already stopped by then)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
