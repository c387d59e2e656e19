"""The `fakeproc` command as a new user meets it: it says exactly what it does, writes files
only where asked, refuses a busy port and bad settings in one line (exit 2), prints a banner
that tells the truth, and never leaves the panel or the API open to other machines."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from fakeproc.config import package_version

from conftest import TEST_SCALE, ServeGroup, card_payload, free_port

pytestmark = pytest.mark.slow

COMMANDS = ["call", "check", "db", "demo", "pay", "serve"]


def environment(**extra: str) -> dict[str, str]:
    """The user's environment without the test runner's own FAKEPROC_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}
    return {**clean, **extra}


def fakeproc(*args: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakeproc", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=True, env=environment(**env))


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# -- commands that only talk create nothing --------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--help"], ["--version"], ["-h"], *([command, "--help"] for command in COMMANDS),
    ["db", "upgrade", "--help"],
    ["pay", "http://127.0.0.1:9/", "--card", "4111111111111111", "--expiry", "12/30",
     "--amount", "10.00", "--retries", "0"],
    ["check", "http://127.0.0.1:9/"],
], ids=lambda args: " ".join(args[:3]))
def test_commands_that_only_talk_create_no_file(tmp_path, args):
    done = fakeproc(*args, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert files_in(tmp_path) == [], done.stdout + done.stderr


def test_version_is_fakeproc_s_own(tmp_path):
    done = fakeproc("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"fakeproc {package_version()}"


def test_top_level_help_lists_fakeproc_s_commands_only(tmp_path):
    done = fakeproc("--help", cwd=tmp_path)
    listed = re.findall(r"^  (\w+)  ", done.stdout.split("Commands:")[1], re.MULTILINE)
    assert listed == COMMANDS
    for flask_option in ("--app", "--env-file", "--debug"):
        assert flask_option not in done.stdout


# -- files where the user asked --------------------------------------------------------------

@pytest.mark.parametrize("given,where", [
    ("sqlite:///rel.db", "rel.db"),
    ("sqlite:///nested/rel.db", "nested/rel.db"),
    ("data.db", "data.db"),
], ids=["url", "url-in-a-folder", "plain-path"])
def test_a_relative_sqlite_store_lands_in_the_current_directory(tmp_path, given, where):
    done = fakeproc("db", "upgrade", cwd=tmp_path, FAKEPROC_DATABASE_URL=given)
    assert done.returncode == 0, done.stderr
    store = tmp_path / where
    assert store.is_file() and store.stat().st_size > 0
    assert store.with_name(store.name + ".lock").exists()  # the lock beside it, as before


# -- bad settings: one line, exit 2, nothing started -----------------------------------------

BAD = [
    ({"FAKEPROC_TIME_SCALE": "0"}, [], "FAKEPROC_TIME_SCALE"),
    ({"FAKEPROC_TIME_SCALE": "-1"}, [], "FAKEPROC_TIME_SCALE"),
    ({"FAKEPROC_TIME_SCALE": "fast"}, [], "FAKEPROC_TIME_SCALE"),
    ({"FAKEPROC_TIME_SCALE": "nan"}, [], "FAKEPROC_TIME_SCALE"),
    ({}, ["--time-scale", "0"], "--time-scale"),
    ({"FAKEPROC_ADMIN_REFRESH_SECONDS": "abc"}, [], "FAKEPROC_ADMIN_REFRESH_SECONDS"),
    ({"FAKEPROC_AUTO_MIGRATE": "maybe"}, [], "FAKEPROC_AUTO_MIGRATE"),
    ({"FAKEPROC_MAX_CONTENT_LENGTH": "big"}, [], "FAKEPROC_MAX_CONTENT_LENGTH"),
    ({"FAKEPROC_INFLIGHT_POLL_MAX": "0"}, [], "FAKEPROC_INFLIGHT_POLL_MAX"),
    ({"FAKEPROC_SESSION_COOKIE_SECURE": "perhaps"}, [], "FAKEPROC_SESSION_COOKIE_SECURE"),
    ({"FAKEPROC_PORT": "70000"}, [], "FAKEPROC_PORT"),
    ({}, ["--port", "0"], "--port"),
    ({}, ["--port", "65536"], "--port"),
    ({"FAKEPROC_WORKERS": "many"}, [], "FAKEPROC_WORKERS"),
    ({"FAKEPROC_DATABASE_URL": "mysql://db/shop"}, [], "FAKEPROC_DATABASE_URL"),
    ({"FAKEPROC_DATABASE_URL": "not a url://"}, [], "FAKEPROC_DATABASE_URL"),
    ({"FAKEPROC_DATABASE_URL": "postgresql+psycopg://qa:s3cret@127.0.0.1:9/shop"}, [],
     "cannot use the database postgresql+psycopg://qa:***@127.0.0.1:9/shop"),
    ({}, ["--database-url", "/proc/version/fakeproc.db"], "cannot use the database"),
    # What each accepts is said in words, whichever way the value came.
    ({"FAKEPROC_PORT": "abc"}, [], "FAKEPROC_PORT=abc is not valid: a whole number from 1 to "
     "65535"),
    ({"FAKEPROC_PROXY_FIX": "maybe"}, [], "FAKEPROC_PROXY_FIX=maybe is not valid: true or false"),
    ({}, ["--time-scale", "fast"], "--time-scale is not valid: a number greater than 0"),
    # A driver that is not installed, a port that is not a number, a store only one process
    # could see: refused before anything starts, the password never quoted.
    ({"FAKEPROC_DATABASE_URL": "postgresql+asyncpg://qa@127.0.0.1/shop"}, [],
     "FAKEPROC_DATABASE_URL=postgresql+asyncpg://qa@127.0.0.1/shop is not valid"),
    ({"FAKEPROC_DATABASE_URL": "postgresql+psycopg://qa:s3cret@127.0.0.1:abc/shop"}, [],
     "FAKEPROC_DATABASE_URL="),
    ({"FAKEPROC_DATABASE_URL": "sqlite:///:memory:"}, [],
     "FAKEPROC_DATABASE_URL=sqlite:///:memory: is not valid"),
]


@pytest.mark.parametrize("env,args,named", BAD, ids=[
    "-".join([*env, *args]) + f"-{i}" for i, (env, args, _) in enumerate(BAD)])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, env, args, named):
    started = time.monotonic()
    port = [] if "FAKEPROC_PORT" in env or "--port" in args else ["--port", str(free_port())]
    done = fakeproc("serve", *port, *args, cwd=tmp_path, timeout=20, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "s3cret" not in done.stderr
    assert done.stdout == "" and files_in(tmp_path) == []  # nothing started, nothing written
    assert time.monotonic() - started < 10


def test_a_bad_setting_stops_the_demo_too(tmp_path):
    done = fakeproc("demo", "--count", "1", cwd=tmp_path, FAKEPROC_TIME_SCALE="0")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "FAKEPROC_TIME_SCALE" in done.stderr and files_in(tmp_path) == []


@pytest.mark.parametrize("refused", [
    {"FAKEPROC_ADMIN_REFRESH_SECONDS": "soon"},  # a setting of the app
    {"FAKEPROC_TIME_SCALE": "0"},  # a setting that is also an option of serve
], ids=["app-setting", "option"])
def test_an_unknown_variable_gets_a_warning_naming_the_closest(tmp_path, refused):
    done = fakeproc("serve", "--port", str(free_port()), cwd=tmp_path,
                    FAKEPROC_TIME_SCAL="0.01", **refused)
    assert done.stderr.splitlines()[0] == (
        "fakeproc: warning: FAKEPROC_TIME_SCAL is not a fakeproc setting and is ignored; did "
        "you mean FAKEPROC_TIME_SCALE?")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 2


def test_a_store_out_of_reach_is_one_line_for_db_commands_too(tmp_path):
    for command in ("current", "upgrade"):
        done = fakeproc("db", command, cwd=tmp_path,
                        FAKEPROC_DATABASE_URL="postgresql+psycopg://qa:s3cret@127.0.0.1:9/shop")
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(
            "fakeproc: cannot use the database postgresql+psycopg://qa:***@127.0.0.1:9/shop: ")
        assert "s3cret" not in done.stderr


# -- one server per port ---------------------------------------------------------------------

def serve_command(port: int, database: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fakeproc", "serve", "--port", str(port), "--workers", "1",
            "--database-url", f"sqlite:///{database}", *args]


def test_a_second_fakeproc_on_a_busy_port_exits_2_and_the_first_loses_nothing(tmp_path):
    group = ServeGroup(tmp_path)
    (first,) = group(f"sqlite:///{tmp_path / 'first.db'}")
    try:
        bodies = [card_payload() for _ in range(10)]
        for body in bodies[:5]:
            assert requests.post(first.url + "/", json=body, timeout=30).ok
        started = time.monotonic()
        second = subprocess.run(serve_command(first.port, tmp_path / "second.db"),
                                capture_output=True, text=True, timeout=30,
                                env=environment(FAKEPROC_TIME_SCALE=str(TEST_SCALE)))
        assert time.monotonic() - started < 5
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"fakeproc: port {first.port} is taken: another fakeproc (pid "
            f"{first.process.pid}) is serving on it"], second.stderr
        assert not (tmp_path / "second.db").exists()
        for body in bodies[5:]:
            assert requests.post(first.url + "/", json=body, timeout=30).ok
        listed = requests.get(first.url + "/api/transactions", timeout=30).json()["data"]
        assert {t["transaction_id"] for t in listed} == {b["transaction_id"] for b in bodies}
    finally:
        group.stop()


def test_a_port_any_other_process_listens_on_is_refused(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(serve_command(port, tmp_path / "x.db"), capture_output=True,
                              text=True, timeout=30, env=environment())
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"fakeproc: port {port} is already in use on 127.0.0.1: another process listens "
        "there"]
    assert not (tmp_path / "x.db").exists()


# -- the banner ------------------------------------------------------------------------------

def test_the_banner_says_what_runs_where(tmp_path):
    group = ServeGroup(tmp_path)
    (served,) = group(f"sqlite:///{tmp_path / 'banner.db'}")
    try:
        log = served.log()
    finally:
        group.stop()
    base = f"http://127.0.0.1:{served.port}"
    assert f"fakeproc {package_version()} is serving" in log
    assert f"  processor  {base}/" in log
    assert f"  admin      {base}/admin/   (open)" in log
    assert f"  API        {base}/api/   (open)" in log
    assert f"  database   SQLite, file {tmp_path / 'banner.db'}" in log
    assert "  time       scale 0.01: Twilio's 10 s connector timeout lasts 0.1 s" in log
    assert "  workers    1 (gunicorn, gevent)" in log
    assert "Listening at" not in log and all(line.strip() for line in log.splitlines())


def wait_until_healthy(port: int, seconds: float = 30) -> None:
    """Until the server on `port` answers its health check (the first worker is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):  # not up, or slow to start
            time.sleep(0.02)


def test_ctrl_c_ends_the_server_without_a_traceback(tmp_path):
    port = free_port()
    with open(tmp_path / "quit.log", "wb") as log:
        # A session of its own, so that SIGINT reaches master and worker as a terminal's does.
        server = subprocess.Popen(serve_command(port, tmp_path / "quit.db"), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  env=environment(FAKEPROC_TIME_SCALE=str(TEST_SCALE)))
        try:
            wait_until_healthy(port)
            os.killpg(server.pid, signal.SIGINT)
            assert server.wait(10) == 0
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
    text = (tmp_path / "quit.log").read_text()
    assert "is serving" in text and "Traceback" not in text and "SystemExit" not in text, text


def test_stopping_while_workers_still_boot_ends_every_process_at_once(tmp_path):
    """A stop sent the moment the first of four workers answers reaches workers still
    starting: none of them may outlive it until the master kills it (5 s later, logged as
    "Worker was sent SIGKILL")."""
    for round_ in range(3):
        port = free_port()
        log_path = tmp_path / f"stop-{round_}.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                serve_command(port, tmp_path / f"stop-{round_}.db", "--workers", "4"),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=environment(FAKEPROC_TIME_SCALE=str(TEST_SCALE)))
            try:
                wait_until_healthy(port)
                server.send_signal(signal.SIGINT)  # `kill -INT <pid>`: the master alone
                stopping = time.monotonic()
                assert server.wait(10) == 0
                took = time.monotonic() - stopping
            finally:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(5)
        text = log_path.read_text()
        assert "SIGKILL" not in text and took < 3, f"stopped in {took:.1f} s:\n{text}"


@pytest.mark.postgres
def test_the_banner_names_a_postgresql_store_without_its_password(tmp_path, postgres_url):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(password="s3cret-db")
    group = ServeGroup(tmp_path)
    try:
        (served,) = group(url.render_as_string(hide_password=False))
        log = served.log()
    except RuntimeError as error:  # trust auth: the password is ignored by the server
        raise AssertionError(str(error)) from None
    finally:
        group.stop()
    assert f"  database   PostgreSQL, database {url.database} on {url.host}:{url.port}" in log
    assert "s3cret-db" not in log


# -- reachable from elsewhere means locked ---------------------------------------------------

TOKEN_LINE = re.compile(r"admin token for this run: (\S+)")
PASSWORD_LINE = re.compile(r"admin password for this run: (\S+)")


def test_behind_a_proxy_on_loopback_neither_panel_nor_api_is_open(tmp_path):
    group = ServeGroup(tmp_path)
    try:
        (served,) = group(f"sqlite:///{tmp_path / 'p.db'}", FAKEPROC_PROXY_FIX="true")
        log = served.log()
        token, password = TOKEN_LINE.findall(log), PASSWORD_LINE.findall(log)
        assert len(token) == 1 and len(password) == 1, log
        api = served.url + "/api/rules"
        assert requests.get(api, timeout=30).status_code == 401
        assert requests.get(api, timeout=30, headers={
            "Authorization": f"Bearer {token[0]}"}).status_code == 200
        panel = requests.get(served.url + "/admin/", allow_redirects=False, timeout=30)
        assert panel.status_code == 302 and "/admin/login" in panel.headers["Location"]
        # The processor endpoint keeps its connector's own (absent) credentials.
        assert requests.post(served.url + "/", json=card_payload(), timeout=30).ok
    finally:
        group.stop()


def test_beyond_loopback_a_panel_password_alone_leaves_no_open_api(tmp_path):
    group = ServeGroup(tmp_path, host="0.0.0.0")
    try:
        (served,) = group(f"sqlite:///{tmp_path / 'b.db'}", FAKEPROC_ADMIN_PASSWORD="qa-pass")
        log = served.log()
        (token,) = TOKEN_LINE.findall(log)
        assert not PASSWORD_LINE.findall(log) and "qa-pass" not in log
        assert requests.get(served.url + "/api/transactions", timeout=30).status_code == 401
        assert requests.get(served.url + "/api/transactions", timeout=30, headers={
            "Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        group.stop()


def test_beyond_loopback_a_token_alone_gets_the_panel_its_own_password(tmp_path):
    group = ServeGroup(tmp_path, host="0.0.0.0")
    try:
        (served,) = group(f"sqlite:///{tmp_path / 'c.db'}", FAKEPROC_ADMIN_TOKEN="qa-token")
        (password,) = PASSWORD_LINE.findall(served.log())
        assert not TOKEN_LINE.findall(served.log()) and "qa-token" not in served.log()
        session = requests.Session()
        page = session.get(served.url + "/admin/login", timeout=30).text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        with_token = session.post(served.url + "/admin/login", allow_redirects=False,
                                  data={"csrf_token": csrf, "password": "qa-token"}, timeout=30)
        assert with_token.status_code == 200  # refused: the token is not the panel's password
        logged = session.post(served.url + "/admin/login", allow_redirects=False,
                              data={"csrf_token": csrf, "password": password}, timeout=30)
        assert logged.status_code == 302 and logged.headers["Location"].endswith("/admin/")
    finally:
        group.stop()
