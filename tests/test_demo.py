"""`fakeproc demo`: Faker-made traffic sent through the processor endpoint, read back as a QA
engineer would read it, through the control API."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fakeproc import create_app
from fakeproc.cli import main
from fakeproc.demo import Shop
from fakeproc.processor import cards
from fakeproc.store.models import db

SEED = 7
# The environment must not point the demo at another store or demand credentials.
CLEAN_ENV = {name: None for name in ("FAKEPROC_DATABASE_URL", "FAKEPROC_ADMIN_TOKEN",
                                     "FAKEPROC_USERNAME", "FAKEPROC_PASSWORD")}


def demo(*args: str) -> Result:
    result = CliRunner().invoke(main, ["demo", *args], env=CLEAN_ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@contextlib.contextmanager
def control_api(database: Path) -> Iterator[Any]:
    """A test client on the demo's store, as the admin panel would read it."""
    app = create_app({"DATABASE_URL": f"sqlite:///{database}", "AUTO_MIGRATE": False})
    try:
        yield app.test_client()
    finally:
        with app.app_context():
            db.engine.dispose()


def listed(client: Any, **filters: str) -> list[dict[str, Any]]:
    response = client.get("/api/transactions", query_string={"limit": 500, **filters})
    assert response.status_code == 200
    return response.json["data"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo of the default size on a new SQLite file; its store and what it printed."""
    database = tmp_path_factory.mktemp("demo") / "demo.db"
    result = demo("--seed", str(SEED), "--database-url", f"sqlite:///{database}")
    assert result.exit_code == 0, result.output
    return database, result.output


def test_the_store_holds_every_kind_of_story(demo_run):
    database, _ = demo_run
    with control_api(database) as client:
        rows = listed(client)
        statuses = Counter(row["status"] for row in rows)
        assert len(rows) == 120
        assert statuses["succeeded"] > 60 and statuses["declined"] > 10
        assert statuses["failed"] >= 2 and statuses["in_flight"] == 0
        assert len({row["error_code"] for row in rows if row["status"] == "declined"}) >= 5
        ach = [row for row in rows if row["payment_method"] == "ach-debit"]
        assert len(ach) >= 3 and all(len(row["last4"]) == 2 for row in ach)
        tokens = [row for row in rows if row["method"] == "tokenize"]
        assert len(tokens) >= 3
        assert any(re.fullmatch(r"tok_[0-9a-f]{32}", row["token_id"] or "") for row in tokens)
        assert {row["card_brand"] for row in rows} >= {"visa", "mastercard", "amex"}
        assert all(re.fullmatch(r"PK[0-9a-f]{32}", row["transaction_id"]) for row in rows)
        assert any(row["description"].startswith("Order #") for row in rows)
        assert all(row["parameters"].get("order_ref") for row in rows)


def test_retries_are_twilio_style_and_orphans_were_charged(demo_run):
    database, _ = demo_run
    with control_api(database) as client:
        retried = [client.get(f"/api/transactions/{row['transaction_id']}").json
                   for row in listed(client, retried="true")]
        orphans = listed(client, orphaned="true")
        assert len(orphans) >= 3
        assert all(row["status"] == "succeeded" and row["charge_id"] for row in orphans)
        assert all(row["issued"] <= 1 for row in retried)  # never a second charge
        # Answered after Twilio's timeout: Twilio retried, and its retry got the answer in time.
        late = [t for t in retried if t["attempts"][0]["late"] and not t["orphaned"]
                and t["attempts"][0]["delivery"] == "response"]
        assert late and any(not t["attempts"][-1]["late"] for t in late)
        assert all(t["attempts"][-1]["response_body"] == t["attempts"][0]["response_body"]
                   for t in late)
        replays = [t for t in retried if not any(a["late"] for a in t["attempts"])
                   and all(a["delivery"] == "response" for a in t["attempts"])]
        assert replays and all(a["kind"] == "replay" for t in replays for a in t["attempts"][1:])
        deliveries = {a["delivery"] for t in retried for a in t["attempts"]}
        assert deliveries >= {"hung", "dropped"}
        assert max(len(t["attempts"]) for t in retried) == 6  # Twilio gives up after 5 retries
        # The control API rule fired on its transaction, and was taken away afterwards.
        assert any(a["rules"] and a["rules"][0].startswith("rule:")
                   for t in retried for a in t["attempts"])
        assert client.get("/api/rules").json["data"] == []


def test_the_summary_is_what_the_store_says(demo_run):
    database, output = demo_run
    with control_api(database) as client:
        rows = listed(client)
        printed = dict((name, int(n)) for name, n in re.findall(r"([a-z_A-Z]+) (\d+)", output))
        assert printed["succeeded"] == sum(row["status"] == "succeeded" for row in rows)
        assert printed["declined"] == sum(row["status"] == "declined" for row in rows)
        assert printed["retried"] == len(listed(client, retried="true"))
        assert printed["orphaned"] == len(listed(client, orphaned="true"))
        assert printed["tokenize"] == len(listed(client, method="tokenize"))
    assert f"{database}" in output


def test_no_card_number_or_cvv_reaches_the_store_or_the_output(demo_run):
    database, output = demo_run
    # The same seed makes the same cards, CVVs and accounts (only transaction ids differ).
    bodies = [j.body for j in Shop(SEED).journeys(120, holds=True)]
    numbers = {b.get("cardnumber") or b["bankaccountnumber"] for b in bodies}
    assert numbers >= set(cards.TEST_CARDS)  # with a few live-looking ones, declined
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    stored = raw.decode("latin-1")
    assert "Order #" in stored  # the file really holds the traffic
    assert [n for n in numbers if n in stored or n in output] == []
    cvvs = {b["cvv"] for b in bodies if "cvv" in b} - {"000"}
    assert [c for c in cvvs if f'"cvv": "{c}"' in stored or f'"cvv":"{c}"' in stored] == []


def test_the_same_seed_makes_the_same_traffic(demo_run, tmp_path):
    database, _ = demo_run
    again = tmp_path / "again.db"
    assert demo("--seed", str(SEED), "--database-url", f"sqlite:///{again}").exit_code == 0

    def traffic(path: Path) -> list[tuple]:
        with control_api(path) as client:
            return sorted((row["description"], row["amount"], row["last4"])
                          for row in listed(client))

    first = traffic(database)
    assert traffic(again) == first
    other_seed = {j.body["description"] for j in Shop(SEED + 1).journeys(120, holds=True)}
    assert not other_seed & {description for description, _, _ in first}


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"ADMIN_TOKEN": "s3cret"}


def test_it_sends_to_a_running_server_with_its_admin_token(server, client):
    url = ["--url", server.url]
    refused = demo(*url, "--count", "5")
    assert refused.exit_code == 1 and "admin token" in refused.output
    # Told the server runs in real time, the mix leaves out delays and hangs, and says so.
    sent = demo(*url, "--count", "30", "--seed", "3", "--admin-token", "s3cret",
                "--time-scale", "1")
    assert sent.exit_code == 0, sent.output
    assert "no delays or hangs" in sent.output
    auth = {"Authorization": "Bearer s3cret"}
    rows = client.get("/api/transactions?limit=500", headers=auth).json["data"]
    assert len(rows) == 30 and any(row["orphaned"] for row in rows)
    details = [client.get(f"/api/transactions/{row['transaction_id']}", headers=auth).json
               for row in rows]
    fired = [label for d in details for a in d["attempts"] for label in a["rules"]]
    assert fired and not [label for label in fired
                          if re.search(r"delay|hang|amount=40\d\d|amount=410[01]", label)]
    assert not any(a["delivery"] == "hung" for d in details for a in d["attempts"])


def test_a_running_server_keeps_its_own_store(tmp_path):
    both = demo("--url", "http://127.0.0.1:9", "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert both.exit_code == 2 and "--database-url" in both.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1", "ftp://127.0.0.1"])
def test_a_url_no_request_can_reach_is_a_usage_error(url):
    refused = demo("--url", url)
    assert refused.exit_code == 2, refused.output
    assert refused.output.count("\n") == 1 and "Traceback" not in refused.output
    assert f"Invalid value for --url: {url} is not" in refused.output


def test_without_a_time_scale_it_runs_at_the_running_server_s(server, client):
    """The server at --url reports its time scale (0.01 here): held stories are in the mix,
    and Twilio's side gives each attempt 0.1 s, as the server's own clock does."""
    sent = demo("--url", server.url, "--count", "40", "--seed", "3", "--admin-token", "s3cret")
    assert sent.exit_code == 0, sent.output
    assert "no delays or hangs" not in sent.output
    auth = {"Authorization": "Bearer s3cret"}
    rows = client.get("/api/transactions?limit=500", headers=auth).json["data"]
    details = [client.get(f"/api/transactions/{row['transaction_id']}", headers=auth).json
               for row in rows]
    held = [a for d in details for a in d["attempts"] if a["late"] or a["delivery"] == "hung"]
    assert held, "no delay or hang made it into the mix"


def test_long_runs_show_progress_where_there_is_no_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr("fakeproc.cli.traffic.Progress.EVERY_SECONDS", 0.0)
    result = demo("--count", "12", "--seed", "1", "--database-url", f"sqlite:///{tmp_path}/p.db")
    assert result.exit_code == 0, result.output
    lines = re.findall(r"fakeproc: ([\d,]+) of 12 transactions sent \((\d+)%\)", result.stderr)
    assert [int(done) for done, _ in lines] == list(range(0, 13))
    assert lines[-1] == ("12", "100")
    # Then the wait for held answers (4 of seed 1's first 12) has its own line.
    assert result.stderr.splitlines()[-1] == "fakeproc: waiting for the 4 held transactions to end"
    assert "fakeproc demo: 12 transactions" in result.stdout


def test_a_log_hears_when_the_work_begins_and_when_the_sending_ends(tmp_path, monkeypatch):
    """And every 5 s in between (none here, however slow the machine): no stage of a long run
    is silent."""
    monkeypatch.setattr("fakeproc.cli.traffic.Progress.EVERY_SECONDS", 3600.0)
    result = demo("--count", "12", "--seed", "1", "--database-url", f"sqlite:///{tmp_path}/p.db")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "fakeproc: 0 of 12 transactions sent (0%)", "fakeproc: 12 of 12 transactions sent (100%)",
        "fakeproc: waiting for the 4 held transactions to end"]


def test_on_a_terminal_progress_is_a_bar(tmp_path):
    """Run on a pseudo-terminal, as a user at a shell would: the bar is drawn and ends full."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fakeproc", "demo", "--count", "12", "--seed", "1",
         "--database-url", f"sqlite:///{tmp_path}/bar.db"],
        stdin=secondary, stdout=secondary, stderr=secondary, env={**env, "COLUMNS": "100"},
        close_fds=True)
    os.close(secondary)
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        process.wait(60)
    text = shown.decode("utf-8", "replace")
    assert process.returncode == 0, text
    assert re.search(r"transactions sent\s+\[#+\]\s+100%", text), text
    assert "fakeproc demo: 12 transactions" in text
