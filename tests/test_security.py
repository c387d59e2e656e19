"""SPEC §6 for a security reviewer, top to bottom. Routes are enumerated from `app.url_map`, so a
route added later is checked without anyone adding it here:

1. Basic auth on every processor route of a connector with a password;
2. the admin token on every control-API route and method but `/api/health`;
3. login on every admin page and CSRF on every admin form;
4. `fakeproc serve` beyond loopback with no admin credentials: a random token, printed once,
   required by the API and the panel;
5. credentials compared in constant time (`hmac.compare_digest`, through `security.same`);
6. the admin session cookie: Secure under `serve --cert/--key`, HttpOnly and SameSite=Lax always.

No card data at rest is test_data_hygiene.py's; fuzzing the same surfaces is test_fuzz.py's,
test_schemathesis.py's and test_rules_fuzz.py's.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from fakeproc import cli, server

from conftest import ServeGroup, ServeProcess, card_payload, free_port

USERNAME, PASSWORD = "twilio", "pr0cessor-pw"
TOKEN = "adm1n-t0ken"
ADMIN_PASSWORD = "letmein-42"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def routes(app: Any, prefix: str = "/") -> list[tuple[str, str, Any]]:
    """(rule, method, werkzeug Rule) for every route under `prefix`, static files aside."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith(prefix):
            continue
        found += [(rule.rule, method, rule) for method in sorted(rule.methods - {"HEAD",
                                                                                  "OPTIONS"})]
    return sorted(found, key=lambda item: item[:2])


def url_for_rule(rule: str, samples: dict[str, str]) -> str:
    """The rule with each placeholder filled from `samples` (`<any(csv, json):kind>` too)."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        assert name in samples, f"no sample value for <{name}> in {rule}: add one"
        return samples[name]

    return _PLACEHOLDER.sub(fill, rule)


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# -- 1. Basic auth on every processor route ------------------------------------------------------

def _processor_routes(app: Any) -> list[tuple[str, str, Any]]:
    """Everything outside the control API and the panel is the processor endpoint."""
    return [(rule, method, r) for rule, method, r in routes(app)
            if not rule.startswith(("/api/", "/admin"))]


@pytest.fixture
def locked(app, client):
    """Default and a pinned connector, each with a username and a password."""
    assert client.patch("/api/connectors/Default", json={
        "username": USERNAME, "password": PASSWORD}).status_code == 200
    assert client.post("/api/connectors", json={
        "unique_name": "Locked", "username": "locked", "password": "other-pw"}).status_code == 201
    return client


def test_the_processor_routes_are_the_ones_this_module_knows(app):
    """Each POST route is a payment route; the one GET is the redirect to the panel."""
    found = {(rule, method) for rule, method, _ in _processor_routes(app)}
    assert ("/", "GET") in found
    assert {method for _, method in found - {("/", "GET")}} == {"POST"}
    assert len(found) == 7, found


def test_home_redirects_and_carries_no_payment(locked):
    response = locked.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")


@pytest.mark.parametrize("attempt", ["none", "wrong password", "wrong username", "bearer",
                                     "empty password", "not base64"])
def test_every_processor_route_refuses_wrong_credentials(app, locked, attempt):
    headers = {
        "none": {},
        "wrong password": basic(USERNAME, PASSWORD + "x"),
        "wrong username": basic(USERNAME + "x", PASSWORD),
        "bearer": {"Authorization": f"Bearer {PASSWORD}"},
        "empty password": basic(USERNAME, ""),
        "not base64": {"Authorization": "Basic !!!"},
    }[attempt]
    for rule, method, werkzeug_rule in _processor_routes(app):
        if method != "POST":
            continue
        url = url_for_rule(rule, {"connector": "Locked"})
        path_method = (werkzeug_rule.defaults or {}).get("path_method")
        body = card_payload(method="tokenize", amount=...) if path_method == "tokenize" \
            else card_payload()
        response = locked.post(url, json=body, headers=headers)
        assert response.status_code == 401, (url, response.get_data())
        assert response.headers["WWW-Authenticate"].startswith("Basic"), url
        assert response.mimetype == "application/json", url
        id_key = "token_id" if path_method == "tokenize" else "charge_id"
        assert response.json == {id_key: None, "error_code": "unauthorized",
                                 "error_message": response.json["error_message"]}, url
        assert response.json["error_message"]
    assert locked.get("/api/transactions").json["data"] == []  # nothing refused was recorded


def test_every_processor_route_takes_its_connectors_credentials(app, locked):
    for rule, method, werkzeug_rule in _processor_routes(app):
        if method != "POST":
            continue
        pinned = "<connector>" in rule
        url = url_for_rule(rule, {"connector": "Locked"})
        path_method = (werkzeug_rule.defaults or {}).get("path_method")
        body = card_payload(method="tokenize", amount=...) if path_method == "tokenize" \
            else card_payload()
        credentials = basic("locked", "other-pw") if pinned else basic(USERNAME, PASSWORD)
        response = locked.post(url, json=body, headers=credentials)
        assert response.status_code == 200 and response.json["error_code"] is None, url
        # Another connector's valid credentials are not this connector's.
        other = basic(USERNAME, PASSWORD) if pinned else basic("locked", "wrong")
        assert locked.post(url, json=card_payload(), headers=other).status_code == 401, url


# -- 2. The admin token on every control-API route ----------------------------------------------

PUBLIC_API = {("/api/health", "GET")}


@pytest.fixture
def guarded(make_app):
    """A server with an admin token, and one of each thing a route can name."""
    client = make_app(ADMIN_TOKEN=TOKEN).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client.post("/", json=card_payload(transaction_id="tx-guarded"))
    rule = client.post("/api/rules", json={"action": {"type": "approve"}}, headers=auth)
    client.post("/api/connectors", json={"unique_name": "Shop"}, headers=auth)
    samples = {"transaction_id": "tx-guarded", "unique_name": "Shop",
               "rule_id": str(rule.json["id"])}
    return client, auth, samples


def _state(client: Any, auth: dict[str, str]) -> list[Any]:
    return [client.get(path, headers=auth).json
            for path in ("/api/transactions", "/api/rules", "/api/connectors")]


def _send(client: Any, method: str, url: str, headers: dict[str, str]) -> Any:
    json_body = {} if method in ("POST", "PATCH") else None
    return client.open(url, method=method, json=json_body, headers=headers)


@pytest.mark.parametrize("attempt", ["none", "wrong token", "basic", "token in the query",
                                     "empty bearer", "token as the scheme"])
def test_every_control_api_route_and_method_needs_the_token(make_app, guarded, attempt):
    client, auth, samples = guarded
    headers = {"none": {}, "wrong token": {"Authorization": f"Bearer {TOKEN}x"},
               "basic": basic("admin", TOKEN), "token in the query": {},
               "empty bearer": {"Authorization": "Bearer "},
               "token as the scheme": {"Authorization": TOKEN}}[attempt]
    before = _state(client, auth)
    checked = []
    for rule, method, _ in routes(make_app(), "/api/"):
        if (rule, method) in PUBLIC_API:
            continue
        url = url_for_rule(rule, samples)
        if attempt == "token in the query":
            url += f"?token={TOKEN}&access_token={TOKEN}"
        response = _send(client, method, url, headers)
        assert response.status_code == 401, (method, url, response.get_data())
        assert set(response.json) == {"error"}, (method, url)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, url)
        checked.append((rule, method))
    assert len(checked) >= 15  # the enumeration really found the API
    assert _state(client, auth) == before  # nothing refused changed anything


def test_with_the_token_every_route_answers_and_only_health_is_public(make_app, guarded):
    client, auth, samples = guarded
    public = set()
    for rule, method, _ in routes(make_app(), "/api/"):
        url = url_for_rule(rule, samples)
        if _send(client, method, url, {}).status_code != 401:
            public.add((rule, method))
        assert _send(client, method, url, auth).status_code != 401, (method, url)
    assert public == PUBLIC_API


# -- 3. Login on every admin page, CSRF on every admin form -------------------------------------

OPEN_ADMIN = {"/admin/login"}  # where the login happens


@pytest.fixture
def panel(make_app):
    """A panel with a password, a transaction, a rule and a second connector to point at."""
    app = make_app(ADMIN_PASSWORD=ADMIN_PASSWORD)
    client = app.test_client()
    client.post("/", json=card_payload(transaction_id="tx-panel"))
    rule_id = client.post("/api/rules", json={"action": {"type": "approve"}}).json["id"]
    client.post("/api/connectors", json={"unique_name": "Other"})
    samples = {"transaction_id": "tx-panel", "unique_name": "Other", "rule_id": str(rule_id),
               "kind": "csv"}
    return app, client, samples


def _csrf_token(client: Any, page: str, **options: Any) -> str:
    match = _CSRF.search(client.get(page, **options).get_data(as_text=True))
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def _panel_state(client: Any) -> list[Any]:
    return [client.get(path).json for path in ("/api/rules", "/api/connectors")]


def test_every_admin_page_sends_a_visitor_to_the_login(panel):
    app, client, samples = panel
    pages = [(rule, method) for rule, method, _ in routes(app, "/admin")
             if method == "GET" and rule not in OPEN_ADMIN]
    assert len(pages) >= 10
    for rule, _ in pages:
        url = url_for_rule(rule, samples)
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login?next="), url
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 401, url


def test_every_admin_form_is_refused_before_login_even_with_a_valid_csrf_token(panel):
    app, client, samples = panel
    before = _panel_state(client)
    token = _csrf_token(client, "/admin/login")
    forms = [rule for rule, method, _ in routes(app, "/admin")
             if method == "POST" and rule not in OPEN_ADMIN]
    assert len(forms) >= 8
    for rule in forms:
        url = url_for_rule(rule, samples)
        response = client.post(url, data={"csrf_token": token, "confirm": "reset",
                                          "action": "decline", "count": "1"})
        assert response.status_code == 401, url
    assert _panel_state(client) == before


def test_after_login_every_page_opens_and_every_form_needs_its_csrf_token(panel):
    app, client, samples = panel
    token = _csrf_token(client, "/admin/login")
    assert client.post("/admin/login", data={"csrf_token": token,
                                             "password": ADMIN_PASSWORD}).status_code == 302
    before = _panel_state(client)
    for rule, method, _ in routes(app, "/admin"):
        url = url_for_rule(rule, samples)
        if method == "GET":  # the sample is real, and the login holds
            response = client.get(url)
            assert response.status_code in (200, 302), url
            assert "/admin/login" not in response.headers.get("Location", ""), url
            continue
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token + "x"}):
            response = client.post(url, data={**data, "confirm": "reset", "action": "decline",
                                              "count": "1", "password": ADMIN_PASSWORD})
            assert response.status_code == 400, (url, data)
            assert "CSRF" in response.get_data(as_text=True), url
    assert _panel_state(client) == before
    assert client.get("/admin/").status_code == 200  # still logged in: logout needs it too


# -- 4. Beyond loopback with no admin credentials -----------------------------------------------

_PRINTED = re.compile(r"admin token for this run: (\S+)")


@pytest.mark.slow
def test_beyond_loopback_each_server_makes_its_own_token_prints_it_once_and_requires_it(
        tmp_path: Path):
    """Three processes listening on every address (traffic stays on 127.0.0.1), two workers
    each: two with no admin credentials, one with FAKEPROC_ADMIN_TOKEN. test_control_api.py
    checks the API of one; here: printed once, random per run, the panel too, and a configured
    token is used instead."""
    database = f"sqlite:///{tmp_path / 'open.db'}"
    group = ServeGroup(tmp_path, host="0.0.0.0")
    group.started = [ServeProcess(database, tmp_path / f"serve-{i}.log", host="0.0.0.0",
                                  FAKEPROC_WORKERS="2", **env)
                     for i, env in enumerate([{}, {}, {"FAKEPROC_ADMIN_TOKEN": TOKEN}])]
    try:
        *made, configured = [process.wait_ready() for process in group.started]
        tokens = []
        for served in made:
            printed = _PRINTED.findall(served.log())
            assert len(printed) == 1, served.log()  # once, by the master, not per worker
            tokens.append(printed[0])
            _requires(served.url, printed[0])
            panel = requests.get(served.url + "/admin/", allow_redirects=False, timeout=30)
            assert panel.status_code == 302 and "/admin/login" in panel.headers["Location"]
        assert tokens[0] != tokens[1] and min(len(t) for t in tokens) >= 24
        assert "admin token for this run" not in configured.log()
        assert TOKEN not in configured.log()
        _requires(configured.url, TOKEN)
    finally:
        group.stop()


def _requires(url: str, token: str) -> None:
    api = url + "/api/rules"
    assert requests.get(api, timeout=30).status_code == 401
    wrong = {"Authorization": f"Bearer {token[:-1]}"}
    assert requests.get(api, headers=wrong, timeout=30).status_code == 401
    right = {"Authorization": f"Bearer {token}"}
    assert requests.get(api, headers=right, timeout=30).status_code == 200
    assert requests.get(url + "/api/health", timeout=30).status_code == 200


# -- 5. Constant-time comparisons ---------------------------------------------------------------

@pytest.fixture
def compared(monkeypatch) -> list[tuple[bytes, bytes]]:
    """Every pair `hmac.compare_digest` sees; `security.same` must be the only way secrets are
    compared, so replacing it (or a call to it) with `==` makes these tests fail."""
    pairs: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        pairs.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return pairs


def _hex_digest(value: Any) -> bool:
    return isinstance(value, bytes) and re.fullmatch(rb"[0-9a-f]{64}", value) is not None


@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
def test_basic_auth_compares_username_and_password_digest_in_constant_time(locked, compared,
                                                                         password):
    compared.clear()
    response = locked.post("/", json=card_payload(), headers=basic(USERNAME, password))
    assert response.status_code == (200 if password == PASSWORD else 401)
    assert (USERNAME.encode(), USERNAME.encode()) in compared
    # The password is kept only as a keyed digest; the digests are what is compared.
    assert any(_hex_digest(a) and _hex_digest(b) for a, b in compared), compared
    assert not any(password.encode() in (a, b) for a, b in compared)


@pytest.mark.parametrize("given", [TOKEN, "wrong-token"])
def test_the_admin_token_is_compared_in_constant_time(make_app, compared, given):
    client = make_app(ADMIN_TOKEN=TOKEN).test_client()
    compared.clear()
    response = client.get("/api/rules", headers={"Authorization": f"Bearer {given}"})
    assert response.status_code == (200 if given == TOKEN else 401)
    assert (given.encode(), TOKEN.encode()) in compared


@pytest.mark.parametrize("given", [ADMIN_PASSWORD, "guess"])
def test_the_admin_login_is_compared_in_constant_time(make_app, compared, given):
    client = make_app(ADMIN_PASSWORD=ADMIN_PASSWORD).test_client()
    token = _csrf_token(client, "/admin/login")
    compared.clear()
    response = client.post("/admin/login", data={"csrf_token": token, "password": given})
    assert response.status_code == (302 if given == ADMIN_PASSWORD else 200)
    assert (given.encode(), ADMIN_PASSWORD.encode()) in compared


# -- 6. The session cookie --------------------------------------------------------------------

@pytest.fixture
def serve_config(monkeypatch, tmp_path: Path) -> Iterator[Any]:
    """Run the real `fakeproc serve` command up to the point where gunicorn would start, and
    return the app settings and gunicorn options it chose."""
    captured: dict[str, Any] = {}

    class NoServer:
        def __init__(self, options: dict[str, Any], app_config: dict[str, Any]):
            captured.update(options=options, app_config=app_config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "Server", NoServer)
    logger = logging.getLogger("fakeproc")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def run(*args: str) -> dict[str, Any]:
        captured.clear()
        result = CliRunner().invoke(cli.main, ["serve", "--port", str(free_port()),
                                               "--database-url",
                                               f"sqlite:///{tmp_path / 'tls.db'}", *args])
        assert result.exit_code == 0, result.output
        return captured

    try:
        yield run
    finally:  # serve points the fakeproc logger at stderr; the rest of the suite needs it back
        logger.handlers[:], logger.level, logger.propagate = saved


def _session_cookie(make_app: Any, app_config: dict[str, Any]) -> str:
    app = make_app(**app_config, ADMIN_PASSWORD=ADMIN_PASSWORD)
    client = app.test_client()
    https = {"base_url": "https://localhost"}
    token = _csrf_token(client, "/admin/login", **https)
    response = client.post("/admin/login", **https, data={
        "csrf_token": token, "password": ADMIN_PASSWORD},
        headers={"Referer": "https://localhost/admin/login"})  # CSRF over HTTPS checks it
    assert response.status_code == 302
    (cookie,) = [value for name, value in response.headers.items()
                 if name == "Set-Cookie" and value.startswith("session=")]
    return cookie


def test_under_tls_the_session_cookie_is_secure_http_only_and_same_site(make_app, serve_config,
                                                                       tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not parsed before gunicorn starts")
    key.write_text("not parsed before gunicorn starts")
    chosen = serve_config("--cert", str(cert), "--key", str(key))
    assert (chosen["options"]["certfile"], chosen["options"]["keyfile"]) == (str(cert), str(key))
    attributes = {part.strip().split("=")[0].lower(): part.strip()
                  for part in _session_cookie(make_app, chosen["app_config"]).split(";")}
    assert "secure" in attributes and "httponly" in attributes
    assert attributes["samesite"] == "SameSite=Lax"


def test_without_tls_the_session_cookie_is_not_secure(make_app, serve_config):
    chosen = serve_config()
    assert "certfile" not in chosen["options"]
    cookie = _session_cookie(make_app, chosen["app_config"])
    parts = [part.strip().lower() for part in cookie.split(";")]
    assert "secure" not in parts
    assert "httponly" in parts and "samesite=lax" in parts
