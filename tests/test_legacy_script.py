"""The pre-6.5 community script this project grew from, ported to Python 3, against the emulator;
and bulkusers' own ``--api legacy`` sending passwords as that API took them (the md5 ``hash``).

The script (Sisense community, "How to create, read, update, delete users (python)") signs every
request with a fresh ``x-api-key`` JWT of ``{"iat", "email", "password"}`` made with the REST API
secret, and calls ``GET /api/users``, ``POST /api/users`` (``active`` as text, the password as
md5 ``hash``, no ``roleId``), ``PUT /api/users/<email>``, ``GET /api/users?search=`` and
``POST /api/users/delete``. Ported with urllib (requests is no dependency of this project).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import jwt
import pytest
from click.testing import Result

from bulkusers.emulator import EmulatorSettings
from tests.conftest import GROUPS, Served, read_report, serve, write_csv

RunCli = Callable[..., Result]
REST_API_TOKEN = "200491aab08ac9e519a751d3392a3643-test"  # the REST API secret
EMAIL, PASSWORD = "admin@example.com", "Admin-Pass-1"
NEW_EMAIL, NEW_PASSWORD = "script.user@example.com", "Script-Pass-1"


@pytest.fixture
def legacy() -> Iterator[Served]:
    """An emulator accepting the x-api-key JWT signed with the script's REST API secret."""
    yield from serve(EmulatorSettings(groups=GROUPS, api_secret=REST_API_TOKEN, users=5))


class Script:
    """The community script's two helpers, ported: one fresh JWT per request."""

    def __init__(self, base_url: str, email: str = EMAIL, password: str = PASSWORD) -> None:
        self.base_url, self.email, self.password = base_url, email, password
        self.keys: list[str] = []

    def create_jwt_token(self) -> str:
        """An HS256 JWT of a fresh iat, the email and the password, URL-encoded."""
        payload = {"iat": int(time.time()), "email": self.email, "password": self.password}
        return quote_plus(jwt.encode(payload, REST_API_TOKEN))

    def send_request(self, path: str, http_method: str, params: dict[str, str] | None = None,
                     payload: Any = None) -> tuple[int, Any]:
        """One request with the x-api-key header; status and parsed JSON (None when empty)."""
        key = self.create_jwt_token()
        self.keys.append(key)
        headers = {"x-api-key": key}
        data = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(payload).encode()
        url = self.base_url + path + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, data=data, headers=headers, method=http_method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
                return response.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            body = error.read()
            return error.code, json.loads(body) if body else None


def login_status(served: Served, username: str, password: str) -> int:
    """Status of a v1 form login with these credentials."""
    data = urlencode({"username": username, "password": password}).encode()
    request = urllib.request.Request(served.url + "/api/v1/authentication/login", data=data,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_community_script_runs_against_the_emulator(legacy: Served) -> None:
    """The script's sequence works as on a pre-6.5 server: list, create a Viewer from an md5
    hash whose password then signs in, update by email, search, delete by id."""
    script = Script(legacy.url)
    status, users = script.send_request("/api/users", "GET")
    assert status == 200
    assert EMAIL in {u["email"] for u in users}

    new_user = [{"email": NEW_EMAIL, "active": "true",
                 "hash": hashlib.md5(NEW_PASSWORD.encode()).hexdigest()}]
    status, created = script.send_request("/api/users", "POST", payload=new_user)
    assert status == 200
    assert isinstance(created, dict)  # the v0.9 specification's answer: one user object
    assert (created["email"], created["userName"]) == (NEW_EMAIL, NEW_EMAIL)
    assert (created["roleName"], created["active"]) == ("consumer", True)
    assert "hash" not in created
    assert login_status(legacy, NEW_EMAIL, NEW_PASSWORD) == 200
    assert login_status(legacy, NEW_EMAIL, "Wrong-Pass") == 401
    as_new_user = Script(legacy.url, NEW_EMAIL, NEW_PASSWORD)
    status, me = as_new_user.send_request("/api/users/loggedin", "GET")
    assert (status, me["email"]) == (200, NEW_EMAIL)

    status, _ = script.send_request(f"/api/users/{NEW_EMAIL}", "PUT",
                                    payload={"firstName": "Script", "lastName": "User"})
    assert status == 200

    status, found = script.send_request("/api/users", "GET", params={"search": NEW_EMAIL})
    assert status == 200
    assert [(u["email"], u["firstName"], u["lastName"]) for u in found] == [
        (NEW_EMAIL, "Script", "User")]
    for needle in ("SCRIPT.USER", "script", "uSeR@"):
        _, found = script.send_request("/api/users", "GET", params={"search": needle})
        assert created["_id"] in {u["_id"] for u in found}, needle

    status, body = script.send_request("/api/users/delete", "POST", payload=[created["_id"]])
    assert (status, body) == (200, None)
    assert script.send_request("/api/users", "GET", params={"search": NEW_EMAIL}) == (200, [])
    assert len(script.keys) == 9  # one freshly signed key per request, as the script does
    signed = [r for r in legacy.emulator.requests if not r.path.startswith("/api/v1/")]
    assert len(signed) == 10  # the script's 9 and the new user's own loggedin call
    assert all(r.status in (200, 201) for r in signed)


def test_the_script_can_update_by_username_or_id_and_set_a_new_hash(legacy: Served) -> None:
    """PUT /api/users/{userName or id} works too; a new md5 hash replaces the password."""
    script = Script(legacy.url)
    _, created = script.send_request("/api/users", "POST", payload=[
        {"email": "second@example.com", "userName": "second", "active": "true",
         "hash": hashlib.md5(b"First-Pass-1").hexdigest()}])
    assert script.send_request("/api/users/second", "PUT", payload={"lastName": "Two"})[0] == 200
    status, _ = script.send_request(f"/api/users/{created['_id']}", "PUT", payload={
        "hash": hashlib.md5(b"Second-Pass-2").hexdigest()})
    assert status == 200
    assert login_status(legacy, "second", "Second-Pass-2") == 200
    assert login_status(legacy, "second", "First-Pass-1") == 401
    assert legacy.emulator.store.find_user("second@example.com").last_name == "Two"


@pytest.mark.parametrize(("body", "status"), [
    ([{"email": "h1@example.com", "hash": "not-an-md5"}], 400),
    ([{"email": "h2@example.com", "active": "maybe"}], 400),
    ([{"email": "h3@example.com", "active": "false", "hash": "null"}], 200),
])
def test_the_v09_create_checks_hash_and_active(legacy: Served, body: list[dict[str, str]],
                                               status: int) -> None:
    """A hash that is not md5 hex, or an active that is not true/false, is refused (400)."""
    answer = Script(legacy.url).send_request("/api/users", "POST", payload=body)
    assert answer[0] == status
    user = legacy.emulator.store.user_by_email(body[0]["email"])
    assert (user is not None) is (status == 200)
    if user is not None:
        assert user["active"] is False


def test_v1_create_ignores_hash(legacy: Served) -> None:
    """The v1 create knows no ``hash``: it sets no password."""
    store = legacy.emulator.store
    admin = store.user_by_email(EMAIL)
    assert admin is not None
    token = legacy.host.call(lambda: store.issue_token(admin["_id"]))
    request = urllib.request.Request(
        legacy.url + "/api/v1/users", method="POST",
        data=json.dumps({"email": "v1@example.com", "roleId": store.role_ids["consumer"],
                         "hash": hashlib.md5(b"Pw-123456").hexdigest()}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    assert login_status(legacy, "v1@example.com", "Pw-123456") == 401


def test_bulkusers_legacy_sends_passwords_as_md5_hash(legacy: Served, run_cli: RunCli,
                                                      tmp_path: Path) -> None:
    """--api legacy creates users with the md5 hash of their password (which then signs in),
    and a deactivation's new random password goes as a hash too."""
    auth = ["--url", legacy.url, "--api", "legacy", "--api-secret", REST_API_TOKEN,
            "--username", EMAIL, "--password", PASSWORD]
    source = write_csv(tmp_path / "people.csv", ("Email", "Role", "Password"),
                       [["ann@acme.example", "Viewer", "Ann-Pass-1"],
                        ["bob@acme.example", "Designer", "Bob-Pass-1"]])
    result = run_cli("import", str(source), *auth, "--report", str(tmp_path / "1.csv"))
    assert result.exit_code == 0, result.output
    store = legacy.emulator.store
    for email, password in (("ann@acme.example", "Ann-Pass-1"), ("bob@acme.example",
                                                                 "Bob-Pass-1")):
        user = store.users[store.find_user(email).id]
        assert user.password_hash == "md5$" + hashlib.md5(password.encode()).hexdigest()
        assert login_status(legacy, email, password) == 200
    leavers = write_csv(tmp_path / "leavers.csv", ("Email",), [["ann@acme.example"]])
    result = run_cli("deactivate", str(leavers), *auth, "--yes", "--report",
                     str(tmp_path / "2.csv"))
    assert result.exit_code == 0, result.output
    assert [line["status"] for line in read_report(tmp_path / "2.csv")] == ["deactivated"]
    ann = store.users[store.find_user("ann@acme.example").id]
    assert ann.password_hash is not None
    assert ann.password_hash.startswith("md5$")
    assert login_status(legacy, "ann@acme.example", "Ann-Pass-1") == 401
    for secret in (REST_API_TOKEN, PASSWORD, "Ann-Pass-1",
                   hashlib.md5(b"Ann-Pass-1").hexdigest()):
        assert secret not in result.output
        assert secret not in (tmp_path / "1.csv").read_text(encoding="utf-8-sig")
