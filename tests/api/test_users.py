"""User administration: create, read, update, delete; passwords, roles, groups and sessions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from modeldeck.auth.tables import User
from support import ADMIN_PASSWORD, json_of, login


def user_row(client: TestClient, username: str) -> User | None:
    with client.app.state.platform.db.read() as session:  # type: ignore[attr-defined]
        return session.scalar(select(User).where(User.username == username))


def make_groups(client: TestClient, admin: dict[str, str], *names: str) -> None:
    for name in names:
        assert client.post("/api/v1/groups", headers=admin, json={"name": name}).status_code == 201


def test_user_lifecycle(client: TestClient, admin: dict[str, str]) -> None:
    make_groups(client, admin, "team", "vision")
    resp = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "alice.o-k_1", "password": "correct horse", "groups": ["vision", "team", "team"]},
    )
    created = json_of(resp)
    assert resp.status_code == 201
    assert set(created) == {"username", "role", "groups", "created_at"}
    assert created["username"] == "alice.o-k_1" and created["role"] == "user"
    assert created["groups"] == ["team", "vision"]

    row = user_row(client, "alice.o-k_1")
    assert row is not None and row.password_hash.startswith("$argon2")
    assert "correct horse" not in row.password_hash

    listed = client.get("/api/v1/users", headers=admin).json()
    assert [u["username"] for u in listed] == ["admin", "alice.o-k_1"]
    assert client.get("/api/v1/users/alice.o-k_1", headers=admin).json() == created

    resp = client.patch("/api/v1/users/alice.o-k_1", headers=admin, json={"role": "admin", "groups": ["vision"]})
    assert resp.status_code == 200
    assert resp.json()["role"] == "admin" and resp.json()["groups"] == ["vision"]
    alice = login(client, "alice.o-k_1", "correct horse")
    assert client.get("/api/v1/users", headers=alice).status_code == 200  # now an administrator

    assert client.patch("/api/v1/users/alice.o-k_1", headers=admin, json={}).json()["role"] == "admin"
    assert client.delete("/api/v1/users/alice.o-k_1", headers=admin).status_code == 204
    assert client.get("/api/v1/users/alice.o-k_1", headers=admin).status_code == 404
    assert client.get("/api/v1/auth/me", headers=alice).status_code == 401  # her tokens went with her
    group = client.get("/api/v1/groups/vision", headers=admin).json()
    assert group["members"] == []
    for text in (client.get("/api/v1/users", headers=admin).text, resp.text):
        assert "password" not in text and "$argon2" not in text


def test_validation_table(client: TestClient, admin: dict[str, str]) -> None:
    make_groups(client, admin, "team")
    ok: dict[str, Any] = {"username": "bob", "password": "long-enough"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({**ok, "username": "Bob"}, "username"),
        ({**ok, "username": "-bob"}, "username"),
        ({**ok, "username": ".bob"}, "username"),
        ({**ok, "username": ""}, "username"),
        ({**ok, "username": "b" * 64}, "username"),
        ({**ok, "username": "bob smith"}, "username"),
        ({**ok, "username": "bob\n"}, "username"),
        ({**ok, "username": "bøb"}, "username"),
        ({**ok, "username": 7}, "username"),
        ({"password": "long-enough"}, "username"),
        ({**ok, "password": "short"}, "password"),
        ({**ok, "password": 12345678}, "password"),
        ({**ok, "password": "x" * 1025}, "password"),
        ({"username": "bob"}, "password"),
        ({**ok, "role": "root"}, "role"),
        ({**ok, "role": None}, "role"),
        ({**ok, "groups": "team"}, "groups"),
        ({**ok, "groups": [1]}, "groups"),
        ({**ok, "groups": ["team", "ghosts", "nobody"]}, "ghosts, nobody"),
        ({**ok, "is_admin": True}, "is_admin"),
    ]
    wrong = {}
    for body, mentioned in bad:
        resp = client.post("/api/v1/users", headers=admin, json=body)
        error = resp.json().get("error", {})
        if resp.status_code != 422 or error.get("code") != "VALIDATION_ERROR" or mentioned not in error["message"]:
            wrong[repr(body)] = (resp.status_code, resp.text)
    not_objects: list[Any] = [[], "bob", None]
    for not_an_object in not_objects:
        resp = client.post("/api/v1/users", headers=admin, json=not_an_object)
        if resp.status_code != 422:
            wrong[repr(not_an_object)] = (resp.status_code, resp.text)
    assert not wrong
    assert [u["username"] for u in client.get("/api/v1/users", headers=admin).json()] == ["admin"]

    assert client.post("/api/v1/users", headers=admin, json=ok).status_code == 201
    for patch in ({"username": "robert"}, {"password": "short"}, {"role": None}, {"groups": None},
                  {"groups": ["ghosts"]}, {"role": "superuser"}):  # fmt: skip
        resp = client.patch("/api/v1/users/bob", headers=admin, json=patch)
        assert resp.status_code == 422 and json_of(resp)["error"]["code"] == "VALIDATION_ERROR", patch


def test_duplicates_conflict_and_unknown_users_are_404(client: TestClient, admin: dict[str, str]) -> None:
    body = {"username": "bob", "password": "long-enough"}
    assert client.post("/api/v1/users", headers=admin, json=body).status_code == 201
    resp = client.post("/api/v1/users", headers=admin, json={**body, "role": "admin"})
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    assert "bob" in resp.json()["error"]["message"]
    assert client.get("/api/v1/users/bob", headers=admin).json()["role"] == "user"
    requests: list[tuple[str, Any]] = [("GET", None), ("PATCH", {"role": "user"}), ("DELETE", None)]
    for method, patch in requests:
        for name in ("ghost", "NOT-VALID", "x" * 200, "%00"):
            resp = client.request(method, f"/api/v1/users/{name}", headers=admin, json=patch)
            assert resp.status_code == 404 and json_of(resp)["error"]["code"] == "NOT_FOUND", (method, name)


def test_admin_cannot_delete_themselves_or_demote_the_last_admin(client: TestClient, admin: dict[str, str]) -> None:
    resp = client.delete("/api/v1/users/admin", headers=admin)
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    resp = client.patch("/api/v1/users/admin", headers=admin, json={"role": "user"})
    assert resp.status_code == 409 and "last administrator" in resp.json()["error"]["message"]
    assert client.get("/api/v1/auth/me", headers=admin).json()["role"] == "admin"

    # With a second administrator, demoting either is fine; the last one left is protected again.
    client.post("/api/v1/users", headers=admin, json={"username": "root2", "password": "long-enough", "role": "admin"})
    assert client.patch("/api/v1/users/admin", headers=admin, json={"role": "user"}).status_code == 200
    assert client.get("/api/v1/users", headers=admin).status_code == 403  # takes effect on the next request
    root2 = login(client, "root2", "long-enough")
    assert client.patch("/api/v1/users/root2", headers=root2, json={"role": "user"}).status_code == 409
    assert client.delete("/api/v1/users/admin", headers=root2).status_code == 204


def test_password_change_revokes_sessions_but_not_api_tokens(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/users", headers=admin, json={"username": "alice", "password": "first-password"})
    laptop = login(client, "alice", "first-password")
    phone = login(client, "alice", "first-password")
    token = client.post("/api/v1/tokens", headers=laptop, json={"name": "ci"}).json()["token"]
    api = {"Authorization": f"Bearer {token}"}

    resp = client.patch("/api/v1/users/alice", headers=admin, json={"password": "second-password"})
    assert resp.status_code == 200 and "password" not in resp.text
    for headers in (laptop, phone):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert client.get("/api/v1/auth/me", headers=api).status_code == 200
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": "first-password"}).status_code == 401
    )
    login(client, "alice", "second-password")
    row = user_row(client, "alice")
    assert row is not None and row.password_hash.startswith("$argon2")

    # An administrator changing their own password keeps the session they did it from.
    other = login(client, "admin", ADMIN_PASSWORD)
    assert client.patch("/api/v1/users/admin", headers=admin, json={"password": "brand-new-pass"}).status_code == 200
    assert client.get("/api/v1/auth/me", headers=admin).status_code == 200
    assert client.get("/api/v1/auth/me", headers=other).status_code == 401
