#!/usr/bin/env python3
"""A retry storm on one PostgreSQL: several instances, hundreds of requests at once.

Starts --instances (3) `fakeproc serve --workers W` on a fresh PostgreSQL database and sends
--payments (100) charges, each --copies (5) times, all at once from one thread per request,
the copies of a payment spread round the instances. Each payment's amount is 4003.00, the
magic 3 s delay of the first attempt (real time), so that its copies meet an attempt in flight
on another instance. It samples the database's connections meanwhile, then prints the answers
by HTTP status, their latency, the payments whose copies did not all get the same charge id,
the transactions left in flight, and the peak connections against PostgreSQL's
max_connections.

    python benchmarks/storm.py
    python benchmarks/storm.py --instances 3 --workers 2 --payments 100 --copies 5
    python benchmarks/storm.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Targets (issue 17): no answer other than HTTP 200, one charge id per payment, nothing left in
flight, and the connections within the instances' pools. Exits 1 when one is missed, 2 when
the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the other benchmarks, also when run from elsewhere

from multi_instance import URL_VARIABLES, Databases, start_instances  # noqa: E402
from serving import add_server_options, run, scratch, stop_on_signals, verdict  # noqa: E402

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POOL_SIZE = 10  # fakeproc's PostgreSQL connections per worker (fakeproc.store.schema)


def charge(transaction_id: str) -> bytes:
    return json.dumps({
        "method": "charge", "transaction_id": transaction_id, "cardnumber": "4111111111111111",
        "cvv": "123", "expiry_month": "08", "expiry_year": "2035", "amount": "4003.00",
        "currency_code": "USD", "description": "storm", "postal_code": "94111"}).encode()


def send(url: str, body: bytes, start: threading.Barrier, out: list, index: int) -> None:
    start.wait()
    began = time.perf_counter()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except OSError as error:
        status, text = 0, str(error).encode()
    out[index] = (status, text, time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    databases = Databases(args.database_url, args.keep)
    try:
        with scratch("fakeproc-storm-", args.keep) as workdir:
            return storm(args, databases, workdir)
    except (RuntimeError, OSError) as error:
        print(f"# the benchmark could not run: {error}", file=sys.stderr)
        return 2
    finally:
        databases.drop_all()


def storm(args: argparse.Namespace, databases: Databases, workdir: Path) -> int:
    url = databases.create()
    servers = start_instances(url, args.instances, args, workdir, "storm")
    try:
        ids = [f"storm-{uuid.uuid4().hex[:12]}" for _ in range(args.payments)]
        sends = [(f"http://127.0.0.1:{servers[(n + k) % len(servers)].port}/", charge(tid))
                 for n, tid in enumerate(ids) for k in range(args.copies)]
        answers: list = [None] * len(sends)
        start = threading.Barrier(len(sends))
        threads = [threading.Thread(target=send, args=(target, body, start, answers, i))
                   for i, (target, body) in enumerate(sends)]
        peak, done = [0], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], databases.connections(url))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
        done.set()
        watcher.join()
        in_flight = read_in_flight(servers[0].port)
    finally:
        for server in servers:
            server.stop()
    return report(args, answers, ids, seconds, peak[0], in_flight, databases)


def read_in_flight(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/transactions"
                                "?status=in_flight&limit=500", timeout=30) as answer:
        return len(json.load(answer)["data"])


def report(args, answers: list, ids: list[str], seconds: float, peak: int, in_flight: int,
           databases: Databases) -> int:
    statuses = Counter(status for status, _, _ in answers)
    latencies = sorted(elapsed for _, _, elapsed in answers)
    split = [0] * len(ids)
    for n in range(len(ids)):
        copies = answers[n * args.copies:(n + 1) * args.copies]
        charged = {json.loads(text).get("charge_id") if status == 200 else None
                   for status, text, _ in copies}
        split[n] = len(charged) != 1 or None in charged
    pools = args.instances * args.workers * POOL_SIZE
    with databases.admin.connect() as connection:
        from sqlalchemy import text

        limit = int(connection.execute(text("SHOW max_connections")).scalar_one())
    print(f"{len(answers)} requests ({args.payments} payments x {args.copies}) over "
          f"{args.instances} instances of {args.workers} workers, all at once, in {seconds:.1f} s")
    print("answers by status: " + ", ".join(f"HTTP {s or 'none'}: {c}"
                                            for s, c in sorted(statuses.items())))
    print(f"latency: p50 {statistics.median(latencies):.2f} s, "
          f"max {latencies[-1]:.2f} s (the first attempts hold 3 s)")
    print(f"payments whose copies did not share one charge id: {sum(split)}")
    print(f"transactions left in flight: {in_flight}")
    print(f"peak connections to the database: {peak} (pools: {pools}; "
          f"PostgreSQL's max_connections: {limit})")
    missed = []
    if set(statuses) != {200}:
        missed.append(f"{len(answers) - statuses[200]} answers were not HTTP 200")
    if any(split):
        missed.append(f"{sum(split)} payments got more than one answer")
    if in_flight:
        missed.append(f"{in_flight} transactions left in flight")
    if peak > pools:
        missed.append(f"{peak} connections, more than the pools' {pools}")
    return verdict(missed, "all targets met")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--instances", type=int, default=3, help="fakeproc instances (3)")
    parser.add_argument("--workers", type=int, default=2, help="workers per instance (2)")
    parser.add_argument("--payments", type=int, default=100, help="payments (100)")
    parser.add_argument("--copies", type=int, default=5, help="requests per payment (5)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server (a user that may create databases); default: "
                             + ", ".join(f"${name}" for name in URL_VARIABLES)
                             + f", else {LOCAL_POSTGRES}")
    add_server_options(parser, 0, "Before the storm", "the database and the server logs")
    args = parser.parse_args(argv)
    args.database_url = args.database_url or next(
        (os.environ[name] for name in URL_VARIABLES if os.environ.get(name)), LOCAL_POSTGRES)
    return args


if __name__ == "__main__":
    run(main)
