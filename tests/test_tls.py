"""`fakeproc serve` over HTTPS (`--cert`/`--key`, with a self-signed certificate made here) and
behind a proxy (`--behind-proxy`): what TLS changes (secure cookies, no plain HTTP), what it must
not change (arrival stamps, connection faults), and when X-Forwarded-* headers count."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import TEST_SCALE, ServeProcess, card_payload, free_port

pytestmark = pytest.mark.slow

TIMEOUT = 10 * TEST_SCALE  # Twilio's 10 s connector timeout, scaled: 100 ms
API_TIMEOUT = 30
ADMIN_PASSWORD = "tls-admin-42"
SPOOFED = "198.51.100.7"  # what a client claims; the proxy appends the address it saw
CLIENT = "203.0.113.9"
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


# -- a certificate and servers ---------------------------------------------------------------

def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakeproc test")])
    now = datetime.now(timezone.utc)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        # It is its own CA: the client trusts it as the root of the chain.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                       critical=False)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Serve(ServeProcess):
    """`fakeproc serve` with extra command-line arguments; over HTTPS when given the CA to
    trust. Its `session` verifies the server against that CA."""

    def __init__(self, database_url: str, log_path: Path, *arguments: str,
                 ca: Path | None = None, **env: str):
        self.port = free_port()
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.session = client_session(str(ca) if ca else True)
        command = [sys.executable, "-m", "fakeproc", "serve", "--port", str(self.port),
                   "--workers", "1", "--database-url", database_url, *arguments]
        environment = {**_environment(), "FAKEPROC_TIME_SCALE": str(TEST_SCALE), **env}
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment)

    def wait_ready(self, timeout: float = 30.0) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fakeproc serve exited:\n{self.log()}")
            try:
                if self.session.get(self.url + "/api/health", timeout=1).ok:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up, or slow to start
                time.sleep(0.1)
        raise RuntimeError(f"fakeproc serve did not start:\n{self.log()}")

    def stop(self) -> None:
        self.session.close()
        super().stop()


def client_session(verify: str | bool) -> requests.Session:
    """A requests session that verifies against `verify` (the CA file, or the system's)."""
    session = requests.Session()
    # Else REQUESTS_CA_BUNDLE, when set, would win over the session's own `verify`.
    session.trust_env = False
    session.verify = verify
    return session


def _environment() -> dict[str, str]:
    # The test runner's own FAKEPROC_* settings must not change what these servers do.
    return {k: v for k, v in os.environ.items() if not k.startswith("FAKEPROC_")}


PROXY_TOKEN = "proxy-token-for-the-tests"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("certificate"))


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory,
            template_db: Path) -> Iterator[Any]:
    """Starts `fakeproc serve` processes on copies of the template store; stops them all."""
    processes: list[Serve] = []
    log_dir = tmp_path_factory.mktemp("serve")

    def start(*arguments: str, ca: Path | None = None, **env: str) -> Serve:
        database = log_dir / f"fakeproc-{len(processes)}.db"
        shutil.copy(template_db, database)
        process = Serve(f"sqlite:///{database}", log_dir / f"serve-{len(processes)}.log",
                        *arguments, ca=ca, **env)
        processes.append(process)
        return process.wait_ready()

    yield start
    for process in processes:  # all asked at once: each takes a moment to shut down
        process.session.close()  # an idle keep-alive connection would hold up the shutdown
        if process.process.poll() is None:
            process.process.terminate()
    for process in processes:
        process.stop()


@pytest.fixture(scope="module")
def https(started: Any, certificate: tuple[Path, Path]) -> Serve:
    cert, key = certificate
    return started("--cert", str(cert), "--key", str(key), ca=cert,
                   FAKEPROC_ADMIN_PASSWORD=ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def direct(started: Any) -> Serve:
    """Plain HTTP, no proxy declared: X-Forwarded-* must count for nothing."""
    return started(FAKEPROC_ADMIN_PASSWORD=ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def proxied(started: Any) -> Serve:
    """Behind a proxy the control API is never open: it gets a token (or makes one)."""
    served = started("--behind-proxy", FAKEPROC_ADMIN_PASSWORD=ADMIN_PASSWORD,
                     FAKEPROC_ADMIN_TOKEN=PROXY_TOKEN)
    served.session.headers["Authorization"] = f"Bearer {PROXY_TOKEN}"
    return served


@pytest.fixture
def rules(https: Serve) -> Iterator[Any]:
    """Arms rules on the HTTPS server through the control API; removes them afterwards."""
    created: list[int] = []

    def add(**rule: Any) -> dict[str, Any]:
        response = https.session.post(f"{https.url}/api/rules", json=rule, timeout=API_TIMEOUT)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
        return response.json()

    yield add
    for rule_id in created:
        https.session.delete(f"{https.url}/api/rules/{rule_id}", timeout=API_TIMEOUT)


# -- reading and writing ---------------------------------------------------------------------

def detail(server: Serve, transaction_id: str) -> dict[str, Any]:
    response = server.session.get(f"{server.url}/api/transactions/{transaction_id}",
                                  timeout=API_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def settled(server: Serve, transaction_id: str, count: int) -> dict[str, Any]:
    """The transaction once `count` attempts have all ended (a bounded poll, no fixed sleep)."""
    deadline = time.monotonic() + 10
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = detail(server, transaction_id)
        attempts = record["attempts"]
        if len(attempts) == count and all(a["delivery"] is not None for a in attempts):
            return record
        time.sleep(0.02)
    raise AssertionError(f"{transaction_id} never settled: {record}")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def raw_tls_post(server: Serve, ca: Path, body: dict[str, Any]) -> tuple[bytes, float]:
    """POST over a bare TLS socket and read until the server closes it: every byte the
    server sent, and how long it took."""
    payload = json.dumps(body).encode()
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n").encode()
    context = ssl.create_default_context(cafile=str(ca))
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as client:
        started = time.monotonic()
        client.sendall(head + payload)
        while chunk := client.recv(65536):
            received += chunk
        return received, time.monotonic() - started


def set_cookies(response: requests.Response) -> list[list[str]]:
    """Each Set-Cookie header of the response, as its `;`-separated parts."""
    return [[part.strip() for part in header.split(";")]
            for header in response.raw.headers.getlist("Set-Cookie")]


def login_page(server: Serve, **headers: str) -> tuple[requests.Session, str]:
    """A browser session that has opened the login page, and the form's CSRF token."""
    browser = client_session(server.session.verify)
    page = browser.get(f"{server.url}/admin/login", headers=headers, timeout=API_TIMEOUT)
    assert page.status_code == 200, page.text
    match = _TOKEN.search(page.text)
    assert match, "no CSRF token on the login page"
    return browser, match.group(1)


def log_in(server: Serve, **headers: str) -> requests.Response:
    browser, token = login_page(server, **headers)
    with browser:
        return browser.post(f"{server.url}/admin/login", headers=headers, timeout=API_TIMEOUT,
                            data={"csrf_token": token, "password": ADMIN_PASSWORD},
                            allow_redirects=False)


# -- HTTPS -----------------------------------------------------------------------------------

def test_a_charge_over_https_verifies_against_the_generated_certificate(https):
    body = card_payload()
    before = datetime.now(timezone.utc)
    response = https.session.post(https.url + "/", json=body, timeout=API_TIMEOUT)
    after = datetime.now(timezone.utc)
    assert response.status_code == 200
    assert response.json()["charge_id"].startswith("ch_")
    # Without the test's certificate as CA, the client refuses the server.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https.url + "/api/health", timeout=API_TIMEOUT)
    attempt, = detail(https, body["transaction_id"])["attempts"]
    # TLS connections are stamped on arrival in the app, not by the kernel: still stamped.
    assert attempt["received_at"] is not None
    assert before <= instant(attempt["received_at"]) <= after
    assert attempt["client_ip"] == "127.0.0.1" and attempt["delivery"] == "response"


def test_plain_http_to_the_https_port_gets_no_answer(https):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{https.port}/api/health", timeout=API_TIMEOUT)
    assert https.session.get(https.url + "/api/health", timeout=API_TIMEOUT).ok


def test_the_admin_session_cookie_is_secure_over_https(https):
    browser, token = login_page(https)
    with browser:
        referer = f"{https.url}/admin/login"  # under TLS, CSRF checks the Referer as well
        response = browser.post(referer, data={"csrf_token": token, "password": ADMIN_PASSWORD},
                                headers={"Referer": referer}, allow_redirects=False,
                                timeout=API_TIMEOUT)
        assert response.status_code == 302, response.text
        assert response.headers["Location"] == "/admin/"
        cookies = set_cookies(response)
        assert cookies and all(parts[0].startswith("session=") for parts in cookies)
        for parts in cookies:
            assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(parts)
        assert browser.get(f"{https.url}/admin/", timeout=API_TIMEOUT).status_code == 200


def test_a_delay_over_https_is_counted_from_arrival(https, rules):
    body = card_payload()
    rules(match={"transaction_id": body["transaction_id"]},
          action={"type": "delay", "seconds": 20})  # 200 ms here
    started = time.monotonic()
    response = https.session.post(https.url + "/", json=body, timeout=API_TIMEOUT)
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.json()["charge_id"].startswith("ch_")
    assert elapsed >= 20 * TEST_SCALE
    attempt, = detail(https, body["transaction_id"])["attempts"]
    held = instant(attempt["responded_at"]) - instant(attempt["received_at"])
    assert timedelta(seconds=20 * TEST_SCALE * 0.9) <= held < timedelta(seconds=1)
    assert attempt["late"] is True  # 200 ms is past the 100 ms timeout


def test_drop_over_https_closes_the_connection_without_a_response(https, rules, certificate):
    body = card_payload()
    rules(match={"transaction_id": body["transaction_id"]}, action={"type": "drop"})
    with pytest.raises(requests.ConnectionError) as caught:
        https.session.post(https.url + "/", json=body, timeout=API_TIMEOUT)
    assert not isinstance(caught.value, requests.Timeout)
    data, elapsed = raw_tls_post(https, certificate[0], body)
    assert data == b"" and elapsed < 5 * TIMEOUT  # closed at once, not a byte of HTTP
    record = settled(https, body["transaction_id"], 2)
    assert record["status"] == "succeeded" and record["orphaned"] is True
    assert [a["delivery"] for a in record["attempts"]] == ["dropped", "dropped"]
    assert all(a["status_code"] is None and a["received_at"] for a in record["attempts"])


def test_hang_over_https_holds_the_connection_then_closes_it(https, rules, certificate):
    body = card_payload()
    rules(match={"transaction_id": body["transaction_id"]},
          action={"type": "hang", "seconds": 30})  # 300 ms here
    with pytest.raises(requests.ReadTimeout):  # the handshake may take longer than 100 ms
        https.session.post(https.url + "/", json=body, timeout=(API_TIMEOUT, TIMEOUT))
    data, elapsed = raw_tls_post(https, certificate[0], body)
    assert data == b"" and elapsed >= 30 * TEST_SCALE
    record = settled(https, body["transaction_id"], 2)
    assert record["status"] == "failed" and record["issued"] == 0
    assert [a["delivery"] for a in record["attempts"]] == ["hung", "hung"]


def test_a_truncated_answer_over_https_stops_short_of_its_content_length(https, rules,
                                                                       certificate):
    body = card_payload()
    rules(match={"transaction_id": body["transaction_id"]},
          action={"type": "malformed", "variant": "truncated"})
    data, _ = raw_tls_post(https, certificate[0], body)
    head, _, sent = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert length and 0 < len(sent) < int(length.group(1))
    record = settled(https, body["transaction_id"], 1)
    assert record["attempts"][0]["delivery"] == "response"
    assert record["attempts"][0]["intact"] is False


@pytest.mark.parametrize("given", ["--cert", "--key"])
def test_cert_and_key_go_together(certificate, given, tmp_path):
    path = certificate[0] if given == "--cert" else certificate[1]
    done = subprocess.run(
        [sys.executable, "-m", "fakeproc", "serve", "--port", str(free_port()), given,
         str(path), "--database-url", f"sqlite:///{tmp_path / 'unused.db'}"],
        check=False, capture_output=True, text=True, timeout=60, env=_environment())
    assert done.returncode == 2  # click's usage error
    assert "--cert and --key go together" in done.stderr
    assert not (tmp_path / "unused.db").exists()  # refused before touching a store


# -- behind a proxy --------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-For": f"{SPOOFED}, {CLIENT}", "X-Forwarded-Proto": "https"}


def client_ip_of_a_charge(server: Serve, **headers: str) -> str:
    body = card_payload()
    response = server.session.post(server.url + "/", json=body, headers=headers,
                                   timeout=API_TIMEOUT)
    assert response.status_code == 200, response.text
    attempt, = detail(server, body["transaction_id"])["attempts"]
    return attempt["client_ip"]


def test_without_behind_proxy_forwarded_headers_are_ignored(direct):
    assert client_ip_of_a_charge(direct, **FORWARDED) == "127.0.0.1"
    # The request stays plain HTTP: no Referer needed for CSRF, and no Secure cookie.
    response = log_in(direct, **FORWARDED)
    assert response.status_code == 302, response.text
    assert all("Secure" not in parts for parts in set_cookies(response))
    home = direct.session.get(direct.url + "/", headers={**FORWARDED, "X-Forwarded-Prefix":
                                                         "/fakeproc"},
                              allow_redirects=False, timeout=API_TIMEOUT)
    assert home.status_code == 302 and home.headers["Location"] == "/admin/"


def test_behind_proxy_the_client_address_is_the_one_the_proxy_saw(proxied):
    # One proxy in front: its own entry (the last) counts, not what the client claimed.
    assert client_ip_of_a_charge(proxied, **FORWARDED) == CLIENT
    assert client_ip_of_a_charge(proxied) == "127.0.0.1"  # no header: the proxy's address


def test_behind_proxy_x_forwarded_proto_makes_the_request_https(proxied):
    """Flask-WTF holds HTTPS form posts to a same-origin https Referer (plain HTTP posts need
    none): which rule applies shows which scheme the app saw."""
    assert log_in(proxied).status_code == 302  # plain HTTP
    refused = log_in(proxied, **FORWARDED)
    assert refused.status_code == 400 and "referrer header is missing" in refused.text
    host = f"127.0.0.1:{proxied.port}"
    assert log_in(proxied, **FORWARDED, Referer=f"http://{host}/admin/login").status_code == 400
    assert log_in(proxied, **FORWARDED, Referer=f"https://{host}/admin/login").status_code == 302


def test_behind_proxy_x_forwarded_host_and_prefix_are_honoured(proxied):
    public = {**FORWARDED, "X-Forwarded-Host": "pay.example.com"}
    assert log_in(proxied, **public,
                  Referer="https://pay.example.com/admin/login").status_code == 302
    home = proxied.session.get(proxied.url + "/", headers={"X-Forwarded-Prefix": "/fakeproc"},
                               allow_redirects=False, timeout=API_TIMEOUT)
    assert home.status_code == 302 and home.headers["Location"] == "/fakeproc/admin/"


def test_behind_a_tls_proxy_the_cookie_is_secure_when_configured(make_app, monkeypatch):
    """What the README tells proxy users: FAKEPROC_SESSION_COOKIE_SECURE=true."""
    monkeypatch.setenv("FAKEPROC_SESSION_COOKIE_SECURE", "true")
    client = make_app(PROXY_FIX=True).test_client()
    page = client.get("/admin/login", headers=FORWARDED)
    assert page.status_code == 200
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "Secure" in [p.strip() for p in cookie.split(";")]
