"""Login, logout, me, personal API tokens, and the authorization matrix of the identity & admin routes."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.factories import make_user, platform_db
from modeldeck.app import create_app
from modeldeck.auth.security import hash_token
from modeldeck.auth.tables import ApiToken
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings
from support import ADMIN_PASSWORD, _reset_postgres, json_of, login


def add_user(
    client: TestClient, admin: dict[str, str], username: str, *, groups: tuple[str, ...] = ()
) -> dict[str, str]:
    password = f"{username}-password"
    resp = client.post(
        "/api/v1/users", headers=admin, json={"username": username, "password": password, "groups": list(groups)}
    )
    assert resp.status_code == 201, resp.text
    return login(client, username, password)


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """An administrator ("root") with an API token written to the store; login itself is tested below."""
    return make_user(platform_db(client), "root", role="admin")


def tokens_in_db(client: TestClient) -> list[ApiToken]:
    with client.app.state.platform.db.read() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(ApiToken)))


# -- login / logout / me -------------------------------------------------------------------------------


def test_login_returns_token_and_sets_session_cookie(client: TestClient, settings: Settings) -> None:
    before = time.time()
    resp = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    body = json_of(resp)
    assert resp.status_code == 200
    assert body["username"] == "admin" and body["role"] == "admin" and body["token"].startswith("mds_")
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert before + settings.session_ttl_s - 5 <= expires <= time.time() + settings.session_ttl_s + 5

    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"modeldeck_session={body['token']};")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    # The cookie alone authenticates (the console's way).
    assert client.get("/api/v1/auth/me").json() == {"username": "admin", "role": "admin", "groups": []}
    client.cookies.clear()
    assert client.get("/api/v1/auth/me").status_code == 401
    # Only the hash is stored.
    rows = tokens_in_db(client)
    assert [r.token_hash for r in rows] == [hash_token(body["token"])]
    assert rows[0].kind == "session"


def test_wrong_password_and_unknown_user_get_the_same_answer(client: TestClient, admin: dict[str, str]) -> None:
    add_user(client, admin, "alice")

    def attempt(username: str, password: str) -> tuple[float, int, Any]:
        start = time.perf_counter()
        resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
        return time.perf_counter() - start, resp.status_code, resp.json()

    wrong = [attempt("alice", "not-her-password") for _ in range(2)]
    unknown = [attempt("mallory", "not-her-password") for _ in range(2)]
    odd = attempt("Not A Valid Name\x00", "whatever")
    for _, status, body in [*wrong, *unknown, odd]:
        assert status == 401
        assert body == {"error": {"code": "INVALID_CREDENTIALS", "message": "invalid username or password"}}
    assert "set-cookie" not in client.post("/api/v1/auth/login", json={"username": "x", "password": "y"}).headers
    # An unknown user still costs an argon2 verification (a missing one would be ~100x faster).
    assert statistics.median(t for t, _, _ in unknown) > 0.3 * statistics.median(t for t, _, _ in wrong)


def test_logout_revokes_the_session_and_clears_the_cookie(client: TestClient) -> None:
    token = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    assert client.get("/api/v1/auth/me").status_code == 200  # via the cookie
    resp = client.post("/api/v1/auth/logout")
    assert resp.status_code == 204
    assert 'modeldeck_session=""' in resp.headers["set-cookie"] or "Max-Age=0" in resp.headers["set-cookie"]
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert tokens_in_db(client) == []
    # Logging out again, or without any session, is harmless.
    client.cookies.clear()
    assert client.post("/api/v1/auth/logout").status_code == 204


def test_logout_with_a_personal_token_leaves_the_token_alone(client: TestClient, admin: dict[str, str]) -> None:
    token = client.post("/api/v1/tokens", headers=admin, json={"name": "ci"}).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=bearer).status_code == 204
    assert client.get("/api/v1/auth/me", headers=bearer).status_code == 200
    assert client.get("/api/v1/auth/me", headers=admin).status_code == 200


def test_expired_session_is_rejected_and_swept_at_next_login(settings: Settings) -> None:
    short = dataclasses.replace(settings, session_ttl_s=0)
    with TestClient(create_app(short, runtime=FakeRuntime())) as client:
        headers = login(client, "admin", ADMIN_PASSWORD)
        resp = client.get("/api/v1/auth/me", headers=headers)
        assert resp.status_code == 401
        assert json_of(resp)["error"]["code"] == "UNAUTHENTICATED"
        assert resp.headers["www-authenticate"] == "Bearer"
        login(client, "admin", ADMIN_PASSWORD)
        assert len(tokens_in_db(client)) == 1  # the first (expired) session was removed


def test_me_lists_groups_and_membership_changes_apply_on_the_next_request(
    client: TestClient, admin: dict[str, str]
) -> None:
    for name in ("team", "other"):
        assert client.post("/api/v1/groups", headers=admin, json={"name": name}).status_code == 201
    alice = make_user(platform_db(client), "alice", groups=("team",))
    assert client.get("/api/v1/auth/me", headers=alice).json() == {
        "username": "alice",
        "role": "user",
        "groups": ["team"],
    }
    assert client.get("/api/v1/groups/other", headers=alice).status_code == 404
    client.patch("/api/v1/groups/other", headers=admin, json={"members": ["alice"]})
    assert client.get("/api/v1/groups/other", headers=alice).status_code == 200  # same token, no re-login
    assert client.get("/api/v1/auth/me", headers=alice).json()["groups"] == ["other", "team"]
    client.patch("/api/v1/users/alice", headers=admin, json={"groups": []})
    assert client.get("/api/v1/groups/team", headers=alice).status_code == 404
    assert client.get("/api/v1/groups", headers=alice).json() == []


# -- personal API tokens -------------------------------------------------------------------------------


def test_api_token_is_shown_once_stored_hashed_and_works_as_bearer(client: TestClient, admin: dict[str, str]) -> None:
    resp = client.post("/api/v1/tokens", headers=admin, json={"name": " laptop "})
    created = json_of(resp)
    assert resp.status_code == 201
    assert set(created) == {"id", "name", "token", "created_at"}
    assert created["name"] == "laptop" and created["token"].startswith("mdk_") and len(created["token"]) > 40

    resp = client.get("/api/v1/tokens", headers=admin)
    listed = [t for t in resp.json() if t["id"] == created["id"]]
    assert listed == [{"id": created["id"], "name": "laptop", "created_at": created["created_at"], "expires_at": None}]
    assert created["token"] not in resp.text and "hash" not in resp.text

    row = next(r for r in tokens_in_db(client) if r.id == created["id"])
    assert row.token_hash == hash_token(created["token"]) and row.kind == "api" and row.expires_at is None
    assert created["token"] not in repr(vars(row))

    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/auth/me", headers=bearer).json()["username"] == "root"
    assert client.get("/api/v1/users", headers=bearer).status_code == 200  # acts with the owner's role

    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 204
    resp = client.get("/api/v1/auth/me", headers=bearer)
    assert resp.status_code == 401 and json_of(resp)["error"]["code"] == "UNAUTHENTICATED"
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 404


def test_tokens_are_private_to_their_owner(client: TestClient, admin: dict[str, str]) -> None:
    alice = add_user(client, admin, "alice")
    bob = make_user(platform_db(client), "bob")
    mine = client.post("/api/v1/tokens", headers=alice, json={"name": "mine"}).json()
    assert mine["id"] not in client.get("/api/v1/tokens", headers=bob).text
    assert [t["id"] for t in client.get("/api/v1/tokens", headers=alice).json()] == [mine["id"]]
    for other in (bob, admin):  # not even an administrator removes someone else's token
        resp = client.delete(f"/api/v1/tokens/{mine['id']}", headers=other)
        assert resp.status_code == 404 and json_of(resp)["error"]["code"] == "NOT_FOUND"
    # Console sessions are not API tokens: not listed, not deletable through /tokens.
    alice_session = hash_token(alice["Authorization"].removeprefix("Bearer "))
    session_id = next(r.id for r in tokens_in_db(client) if r.token_hash == alice_session)
    assert client.delete(f"/api/v1/tokens/{session_id}", headers=alice).status_code == 404
    for odd in ("%00", "g" * 32, "x" * 64):
        assert client.delete(f"/api/v1/tokens/{odd}", headers=alice).status_code == 404
    assert client.get("/api/v1/auth/me", headers=alice).status_code == 200
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {mine['token']}"}).status_code == 200


# -- authorization matrix ------------------------------------------------------------------------------
# One app for the whole table (module scope): the cases only add what they need, under names unique to
# the role, so they are independent of order. Keep this section last in the module: the function-scoped
# fixtures above reset the PostgreSQL schema.

ROLES = ("admin", "member", "outsider", "anonymous")


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    passwords: dict[str, str] = field(default_factory=dict)

    def as_admin(self, method: str, url: str, **kwargs: Any) -> Any:
        resp = self.client.request(method, url, headers=self.headers["admin"], **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    url = os.environ.get("MODELDECK_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    settings = Settings(
        data_dir=tmp / "data",
        database_url=url or f"sqlite:///{tmp / 'modeldeck.db'}",
        admin_password=ADMIN_PASSWORD,
        runtime="fake",
        controller_enabled=False,
    )
    with TestClient(create_app(settings, runtime=FakeRuntime())) as client:
        admin = login(client, "admin", ADMIN_PASSWORD)
        w = World(client, {"admin": admin, "anonymous": {}}, {"admin": ADMIN_PASSWORD})
        w.as_admin("POST", "/api/v1/groups", json={"name": "team"})
        w.as_admin("POST", "/api/v1/groups", json={"name": "other"})
        for role, user, group in (("member", "alice", "team"), ("outsider", "bob", "other")):
            w.headers[role] = add_user(client, admin, user, groups=(group,))
            w.passwords[role] = f"{user}-password"
        make_user(platform_db(client), "carol")
        w.as_admin(
            "POST", "/api/v1/instance-types", json={"name": "team-small", "cpu": 1, "memory": "1Gi", "groups": ["team"]}
        )
        w.as_admin("POST", "/api/v1/instance-types", json={"name": "shared", "cpu": 1, "memory": "1Gi", "global": True})
        w.as_admin(
            "POST", "/api/v1/secrets", json={"name": "regcred", "registry": "r.io", "username": "u", "password": "p"}
        )
        yield w


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route's path template, checked against the app's routes
    expect: tuple[int, int, int, int]  # admin, member, outsider, anonymous
    url: Callable[[World, str], str] | None = None  # for templates: build the URL (may create the target)
    body: Callable[[World, str], Any] | None = None
    note: str = ""

    def __str__(self) -> str:
        return f"{self.method} {self.route}{' ' + self.note if self.note else ''}"


def _fresh(kind: str, payload: Callable[[str], dict[str, Any]]) -> Callable[[World, str], str]:
    def build(w: World, role: str) -> str:
        name = f"del-{role}"
        w.as_admin("POST", f"/api/v1/{kind}", json=payload(name))
        return f"/api/v1/{kind}/{name}"

    return build


def _fresh_user(w: World, role: str) -> str:
    make_user(platform_db(w.client), f"del-{role}")
    return f"/api/v1/users/del-{role}"


def _members_token(w: World, role: str) -> str:
    resp = w.client.post("/api/v1/tokens", headers=w.headers["member"], json={"name": f"for-{role}"})
    return f"/api/v1/tokens/{resp.json()['id']}"


def _login_body(w: World, role: str) -> dict[str, str]:
    user = {"admin": "admin", "member": "alice", "outsider": "bob"}.get(role, "alice")
    return {"username": user, "password": w.passwords.get(role, "alice-password")}


ALL, AUTHED, ADMIN_ONLY_READ = (200, 200, 200, 200), (200, 200, 200, 401), (200, 403, 403, 401)
CASES = [
    Case("POST", "/api/v1/auth/login", ALL, body=_login_body),
    Case("POST", "/api/v1/auth/logout", (204, 204, 204, 204)),
    Case("GET", "/api/v1/auth/me", AUTHED),
    Case("GET", "/api/v1/tokens", AUTHED),
    Case("POST", "/api/v1/tokens", (201, 201, 201, 401), body=lambda w, r: {"name": r}),
    Case("DELETE", "/api/v1/tokens/{token_id}", (404, 204, 404, 401), url=_members_token),
    Case("GET", "/api/v1/users", ADMIN_ONLY_READ),
    Case(
        "POST",
        "/api/v1/users",
        (201, 403, 403, 401),
        body=lambda w, r: {"username": f"new-{r}", "password": "long-enough"},
    ),
    Case("GET", "/api/v1/users/{username}", ADMIN_ONLY_READ, url=lambda w, r: "/api/v1/users/carol"),
    Case(
        "PATCH",
        "/api/v1/users/{username}",
        ADMIN_ONLY_READ,
        url=lambda w, r: "/api/v1/users/carol",
        body=lambda w, r: {"role": "user"},
    ),
    Case(
        "DELETE",
        "/api/v1/users/{username}",
        (204, 403, 403, 401),
        url=_fresh_user,
    ),
    Case("GET", "/api/v1/groups", AUTHED),
    Case("POST", "/api/v1/groups", (201, 403, 403, 401), body=lambda w, r: {"name": f"new-{r}"}),
    Case("GET", "/api/v1/groups/{name}", (200, 200, 404, 401), url=lambda w, r: "/api/v1/groups/team"),
    Case(
        "PATCH",
        "/api/v1/groups/{name}",
        ADMIN_ONLY_READ,
        url=lambda w, r: "/api/v1/groups/team",
        body=lambda w, r: {"display_name": "Team"},
    ),
    Case("DELETE", "/api/v1/groups/{name}", (204, 403, 403, 401), url=_fresh("groups", lambda n: {"name": n})),
    Case("GET", "/api/v1/instance-types", AUTHED),
    Case(
        "GET",
        "/api/v1/instance-types",
        (200, 200, 404, 401),
        url=lambda w, r: "/api/v1/instance-types?group=team",
        note="?group=team",
    ),
    Case(
        "POST",
        "/api/v1/instance-types",
        (201, 403, 403, 401),
        body=lambda w, r: {"name": f"new-{r}", "cpu": 0.5, "memory": "512Mi", "global": True},
    ),
    Case(
        "GET",
        "/api/v1/instance-types/{name}",
        (200, 200, 404, 401),
        url=lambda w, r: "/api/v1/instance-types/team-small",
        note="(group type)",
    ),
    Case(
        "GET",
        "/api/v1/instance-types/{name}",
        AUTHED,
        url=lambda w, r: "/api/v1/instance-types/shared",
        note="(global type)",
    ),
    Case(
        "PATCH",
        "/api/v1/instance-types/{name}",
        ADMIN_ONLY_READ,
        url=lambda w, r: "/api/v1/instance-types/team-small",
        body=lambda w, r: {"description": "small"},
    ),
    Case(
        "DELETE",
        "/api/v1/instance-types/{name}",
        (204, 403, 403, 401),
        url=_fresh("instance-types", lambda n: {"name": n, "cpu": 1, "memory": "1Gi", "global": True}),
    ),
    Case("GET", "/api/v1/secrets", AUTHED),
    Case(
        "POST",
        "/api/v1/secrets",
        (201, 403, 403, 401),
        body=lambda w, r: {"name": f"new-{r}", "registry": "r.io", "username": "u", "password": "p"},
    ),
    Case(
        "PATCH",
        "/api/v1/secrets/{name}",
        ADMIN_ONLY_READ,
        url=lambda w, r: "/api/v1/secrets/regcred",
        body=lambda w, r: {"username": "v"},
    ),
    Case(
        "DELETE",
        "/api/v1/secrets/{name}",
        (204, 403, 403, 401),
        url=_fresh("secrets", lambda n: {"name": n, "registry": "r.io", "username": "u", "password": "p"}),
    ),
]
MY_PREFIXES = ("/api/v1/auth", "/api/v1/tokens", "/api/v1/users", "/api/v1/groups", "/api/v1/instance-types",
               "/api/v1/secrets")  # fmt: skip


def test_matrix_covers_every_identity_and_admin_route(world: World) -> None:
    paths = world.client.get("/api/v1/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(MY_PREFIXES)
        for method in operations
    }
    assert routes == {(c.method, c.route) for c in CASES}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_authorization_matrix(world: World, case: Case, role: str) -> None:
    url = case.url(world, role) if case.url else case.route
    headers = world.headers[role]
    if case.route == "/api/v1/auth/logout" and role != "anonymous":
        creds = _login_body(world, role)
        headers = login(world.client, creds["username"], creds["password"])  # a session of its own to end
    body = case.body(world, role) if case.body else None
    resp = world.client.request(case.method, url, headers=headers, json=body)
    world.client.cookies.clear()  # a login case must not authenticate the next anonymous one
    assert resp.status_code == case.expect[ROLES.index(role)], resp.text
    if resp.status_code >= 400:
        assert set(json_of(resp)["error"]) >= {"code", "message"}


# The validation tables share the module app too: they must leave nothing behind.


def test_login_rejects_malformed_bodies(world: World) -> None:
    client = world.client
    bad: list[Any] = [
        {},
        {"username": "admin"},
        {"username": "admin", "password": ADMIN_PASSWORD, "remember": True},
        {"username": 1, "password": ADMIN_PASSWORD},
        {"username": "admin", "password": ["x"]},
        {"username": "a" * 300, "password": "x"},
        [],
        "admin",
    ]
    wrong = {}
    for body in bad:
        resp = client.post("/api/v1/auth/login", json=body)
        if resp.status_code != 422 or json_of(resp)["error"]["code"] != "VALIDATION_ERROR":
            wrong[repr(body)] = (resp.status_code, resp.text)
    assert not wrong


def test_token_create_validation(world: World) -> None:
    client, headers = world.client, world.headers["outsider"]
    before = client.get("/api/v1/tokens", headers=headers).json()
    bad: list[Any] = [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 129}, {"name": 5}, {"name": None},
                      {"name": "ok", "expires": 1}, {"name": "a\x00"}, ["ok"]]  # fmt: skip
    wrong = {}
    for body in bad:
        resp = client.post("/api/v1/tokens", headers=headers, json=body)
        if resp.status_code != 422 or json_of(resp)["error"]["code"] != "VALIDATION_ERROR":
            wrong[repr(body)] = (resp.status_code, resp.text)
    assert not wrong
    assert client.get("/api/v1/tokens", headers=headers).json() == before  # nothing half-written


def test_bad_credentials_are_401(world: World) -> None:
    client = world.client
    for header in ("Bearer", "Bearer nope", "Basic YWRtaW46eA==", "Bearer mdk_" + "A" * 43, "bearer  "):
        resp = client.get("/api/v1/tokens", headers={"Authorization": header})
        assert resp.status_code == 401 and json_of(resp)["error"]["code"] == "UNAUTHENTICATED", header
    client.cookies.set("modeldeck_session", "mds_forged")
    assert client.get("/api/v1/tokens").status_code == 401
    client.cookies.clear()
