#!/usr/bin/env python3
"""Peers in the same run: fakeproc on SQLite, fakeproc on PostgreSQL and mountebank's stateless
stub, loaded alike and interleaved, with fakeproc's req/s as a share of mountebank's.

Each round starts the three servers one after the other on loopback (the order reverses every
other round) and loads each with load_charge.py's asyncio client: --connections keep-alive
connections posting Generic Pay Connector charges, a unique transaction_id per request, a
--warmup then a --duration measured. fakeproc runs `python -m fakeproc serve --workers 2` on a
fresh SQLite file, then on a fresh PostgreSQL database (dropped at the end); after each run the
store must hold one succeeded transaction per answer. mountebank (pinned below, installed with
npm into --peers-dir) runs one imposter whose POST / answers a fixed approved charge.

    python benchmarks/peers.py                       # 2 rounds, 2 s warm-up + 10 s each
    python benchmarks/peers.py --rounds 3 --duration 20
    python benchmarks/peers.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Targets (issue 16): fakeproc >= 0.5x mountebank's req/s on SQLite and >= 0.35x on PostgreSQL,
p99 under 50 ms, no error; judged on the medians over rounds. Exits 1 when one is missed, 2
when the benchmark could not run (npm, PostgreSQL, a server that did not start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the other benchmarks, also when run from elsewhere

from hold_open import code_version  # noqa: E402
from load_charge import PythonLoad, Result, measure_load, verify_database  # noqa: E402
from multi_instance import URL_VARIABLES, Databases, _table, read_back  # noqa: E402
from serving import (  # noqa: E402
    CLK_TCK,
    HOST,
    CpuSnapshot,
    ServerProcess,
    _all_pids,
    add_server_options,
    free_port,
    machine_cpu,
    run,
    scratch,
    self_cpu,
    stop_on_signals,
    tree_cpu,
    verdict,
    wait_for_quiet,
)

MOUNTEBANK = "mountebank@2.9.1"
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SERVERS = ("mountebank", "fakeproc-sqlite", "fakeproc-postgres")
TARGETS = {"fakeproc-sqlite": 0.5, "fakeproc-postgres": 0.35}  # share of mountebank's req/s
P99_TARGET_MS = 50.0
CHARGE_ANSWER = {"charge_id": "ch_peers00000000", "error_code": None, "error_message": None}


# -- mountebank ----------------------------------------------------------------------------------

def install_mountebank(folder: Path) -> Path:
    """mountebank's `mb` script, installed into `folder` with npm unless the pinned version is
    already there. It is a peer to measure against, never a dependency of fakeproc."""
    name, version = MOUNTEBANK.split("@")
    package = folder / "node_modules" / name / "package.json"
    if not package.exists() or json.loads(package.read_text())["version"] != version:
        print(f"# installing {MOUNTEBANK} into {folder}", flush=True)
        subprocess.run(["npm", "install", "--prefix", str(folder), "--save-exact", "--no-audit",
                        "--no-fund", MOUNTEBANK], check=True, stdout=subprocess.DEVNULL)
    return package.parent / "bin" / "mb"


def mountebank_argv(mb: Path, port: int, workdir: Path) -> list[str]:
    """`mb start` with one imposter on `port`: POST / answers CHARGE_ANSWER, anything else 404."""
    # mountebank answers `Connection: close` and chunked unless told otherwise; the generator
    # keeps connections alive and reads Content-Length (mb fills in the real length).
    headers = {"Content-Type": "application/json", "Connection": "keep-alive",
               "Content-Length": "0"}
    imposter = {"protocol": "http", "port": port, "name": "charge",
                "defaultResponse": {"statusCode": 404},
                "stubs": [{"predicates": [{"equals": {"method": "POST", "path": "/"}}],
                           "responses": [{"is": {"statusCode": 200, "headers": headers,
                                                 "body": json.dumps(CHARGE_ANSWER)}}]}]}
    config = workdir / f"imposters-{port}.json"
    config.write_text(json.dumps({"imposters": [imposter]}))
    admin = free_port()
    while admin == port:
        admin = free_port()
    return ["node", str(mb), "start", "--port", str(admin), "--host", HOST, "--localOnly",
            "--configfile", str(config), "--noParse", "--loglevel", "warn", "--nologfile",
            "--pidfile", str(workdir / f"mb-{port}.pid")]


# -- one server, one run -------------------------------------------------------------------------

class CountingLoad(PythonLoad):
    """load_charge.py's asyncio client, also counting every 2xx answer, warm-up included: each
    is a charge fakeproc must have stored as succeeded."""

    answered = 0

    def record(self, sent_at: float, status: int, raw: bytes) -> None:
        self.answered += 200 <= status < 300
        super().record(sent_at, status, raw)


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process, with the backends that already ended (the
    postmaster's reaped children): under this load fakeproc's pool opens and closes overflow
    connections, and a backend gone before the second snapshot would drop out of the sum."""
    ticks = 0
    for pid in _all_pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ticks += sum(int(value) for value in stat[stat.rindex(")") + 2:].split()[11:15])
    return ticks / CLK_TCK


def measure(server: ServerProcess, result: Result, args, prefix: str, postgres: bool) -> int:
    """Load `server` and fill `result`; returns the 2xx answers, the start-up probe included."""
    load = CountingLoad(server.port, prefix, args.connections, args.timeout)

    def snapshot() -> CpuSnapshot:
        busy, total = machine_cpu()
        own = tree_cpu(server.proc.pid) + (postgres_cpu() if postgres else 0.0)
        return CpuSnapshot(time.perf_counter(), own, self_cpu(), busy, total)

    measure_load(load, snapshot, result, args, shown_errors=5)
    return load.answered + 1


def check_store(result: Result, answered: int, stored: int, succeeded: int) -> None:
    """Every answered charge must be stored and succeeded; each one off counts as an error."""
    off = abs(answered - succeeded) + stored - succeeded
    result.notes.append(f"stored {stored:,} transactions, {succeeded:,} succeeded, for "
                        f"{answered:,} answers (probe included)")
    if off:
        result.errors += off
        result.notes.append(f"{off} stored transactions do not match the answers")


def bench(kind: str, args, workdir: Path, databases: Databases, mb: Path) -> Result:
    port = free_port()
    prefix = f"peers-{uuid.uuid4().hex[:8]}"
    url = None
    if kind == "mountebank":
        argv = mountebank_argv(mb, port, workdir)
    else:
        url = (databases.create() if kind == "fakeproc-postgres"
               else f"sqlite:///{workdir / f'{prefix}.db'}")
        argv = [*args.fakeproc_cmd, "serve", "--port", str(port), "--database-url", url,
                "--workers", str(args.workers)]
    result = Result(kind, args.workers if url else 1, "python")
    server = ServerProcess(f"{kind}-{port}", argv, workdir, port)
    if args.quiet_wait:
        wait_for_quiet(args.quiet_limit, args.quiet_wait)
    print(f"# {kind} on port {port}", flush=True)
    try:
        server.start(prefix)
        answered = measure(server, result, args, prefix, kind == "fakeproc-postgres")
    finally:
        server.stop()
    if kind == "fakeproc-sqlite":
        stored, statuses = verify_database(Path(url.removeprefix("sqlite:///")))
        check_store(result, answered, stored, statuses.get("succeeded", 0))
    elif kind == "fakeproc-postgres":
        counts = read_back(url)
        stored = counts["transactions"]
        check_store(result, answered, stored, stored - counts["not succeeded"])
    print(f"#   {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
          f"{result.errors} errors", flush=True)
    return result


# -- the report ----------------------------------------------------------------------------------

Rounds = list[dict[str, Result]]


def ratio(rounds: Rounds, number: int, kind: str) -> float:
    peer = rounds[number][SERVERS[0]].rps
    return rounds[number][kind].rps / peer if peer else float("nan")


def summary(rounds: Rounds, kind: str) -> dict[str, float]:
    """Medians over rounds: req/s, p50, p99, share of mountebank's req/s; errors are summed."""
    runs = [results[kind] for results in rounds]
    return {"rps": statistics.median(r.rps for r in runs),
            "p50": statistics.median(r.p50_ms for r in runs),
            "p99": statistics.median(r.p99_ms for r in runs),
            "share": statistics.median(ratio(rounds, n, kind) for n in range(len(rounds))),
            "errors": sum(r.errors for r in runs)}


def print_report(rounds: Rounds, args) -> None:
    print(f"\n{args.connections} keep-alive connections, {args.warmup:g} s warm-up + "
          f"{args.duration:g} s measured per server, charges with unique transaction_ids; "
          f"fakeproc --workers {args.workers}, mountebank one node process; the run order "
          "reverses every other round")
    columns = ("round", "server", "req/s", "p50 ms", "p99 ms", "errors", "x mountebank",
               "server CPU", "gen CPU", "other CPU")
    table = []
    for number, results in enumerate(rounds):
        for kind in SERVERS:
            r = results[kind]
            share = "" if kind == SERVERS[0] else f"{ratio(rounds, number, kind):.2f}"
            table.append((str(number + 1), kind, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}",
                          f"{r.p99_ms:.1f}", str(r.errors), share, f"{r.server_cpu:.0f}%",
                          f"{r.generator_cpu:.0f}%", f"{r.other_cpu:.0f}%"))
    _table(columns, table)
    print(f"CPU: % of one core in the measured window ({os.cpu_count()} cores = "
          f"{100 * (os.cpu_count() or 1)}%); server CPU on PostgreSQL includes every postgres "
          "process;\nother CPU: every other process on the machine (skews every figure)")
    print("\nmedians over rounds (errors: the sum)")
    columns = ("server", "req/s", "p50 ms", "p99 ms", "errors", "x mountebank", "target")
    table = []
    for kind in SERVERS:
        m, target = summary(rounds, kind), TARGETS.get(kind)
        table.append((kind, f"{m['rps']:,.0f}", f"{m['p50']:.1f}", f"{m['p99']:.1f}",
                      str(m["errors"]), f"{m['share']:.2f}" if target else "",
                      f">= {target}x, p99 < {P99_TARGET_MS:g} ms" if target else ""))
    _table(columns, table)
    for number, results in enumerate(rounds):
        for kind in SERVERS:
            for note in results[kind].notes:
                print(f"  round {number + 1}, {kind}: {note}")


def missed_targets(rounds: Rounds) -> list[str]:
    missed = []
    for kind in SERVERS:
        m, target = summary(rounds, kind), TARGETS.get(kind)
        if m["errors"]:
            missed.append(f"{kind}: {m['errors']} errors")
        if target and not m["share"] >= target:
            missed.append(f"{kind}: {m['share']:.2f}x mountebank's req/s, target >= {target}x")
        if target and not m["p99"] < P99_TARGET_MS:
            missed.append(f"{kind}: p99 {m['p99']:.1f} ms, target < {P99_TARGET_MS:g} ms")
    return missed


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three servers (2)")
    parser.add_argument("--duration", type=float, default=10, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds (2)")
    parser.add_argument("--connections", "-c", type=int, default=50,
                        help="concurrent keep-alive connections (50)")
    parser.add_argument("--workers", type=int, default=2, help="fakeproc's gunicorn workers (2)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="per-request timeout in seconds; a slower answer is an error (10)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL server (a user that may create databases); default: "
                             + ", ".join(f"${name}" for name in URL_VARIABLES)
                             + f", else {LOCAL_POSTGRES}")
    parser.add_argument("--peers-dir", type=Path, default=HERE / ".peers",
                        help="where npm installs mountebank (benchmarks/.peers)")
    add_server_options(parser, 60, "Before each server",
                       "the databases and the temporary directory (server logs)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds takes at least 1")
    args.database_url = args.database_url or next(
        (os.environ[name] for name in URL_VARIABLES if os.environ.get(name)), LOCAL_POSTGRES)
    return args


def could_not_run(error: Exception) -> int:
    """Exit status 2 for what stops the benchmark from running (npm, a server that did not
    start, PostgreSQL); anything else is a bug and raises again."""
    if not isinstance(error, (RuntimeError, OSError, subprocess.SubprocessError)) and (
            type(error).__module__.split(".")[0] not in ("sqlalchemy", "psycopg")):
        raise error
    print(f"# the benchmark could not run: {error}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    rounds: Rounds = []
    try:
        mb = install_mountebank(args.peers_dir)
        databases = Databases(args.database_url, args.keep)
    except Exception as error:  # noqa: BLE001 - sorted by could_not_run
        return could_not_run(error)
    print(f"# code: {code_version()}; peer: {MOUNTEBANK}", flush=True)
    with scratch("fakeproc-peers-", args.keep) as workdir:
        try:
            for number in range(args.rounds):
                order = SERVERS if number % 2 == 0 else SERVERS[::-1]
                rounds.append({kind: bench(kind, args, workdir, databases, mb)
                               for kind in order})
        except Exception as error:  # noqa: BLE001 - sorted by could_not_run
            return could_not_run(error)
        finally:
            databases.drop_all()
    print_report(rounds, args)
    missed = missed_targets(rounds)
    return verdict(missed, "every target met")


if __name__ == "__main__":
    run(main)
