"""Image pull secrets: write-only passwords, encryption at rest, key handling, visibility, deletion."""

from __future__ import annotations

import dataclasses
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.factories import make_user, platform_db
from modeldeck.app import create_app
from modeldeck.deployments.tables import Deployment
from modeldeck.groups.tables import Group
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.secrets.crypto import SecretKeyError, _load_or_create, decrypt_password
from modeldeck.secrets.tables import ImagePullSecret
from modeldeck.settings import Settings
from support import json_of

REGCRED = {"name": "regcred", "registry": "ghcr.io", "username": "robot", "password": "s3cr3t-Passw0rd"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    """An administrator with an API token written to the store (login and its argon2 check have their own tests)."""
    return make_user(platform_db(client), "root", role="admin")


def stored(client: TestClient, name: str) -> ImagePullSecret:
    with client.app.state.platform.db.read() as session:  # type: ignore[attr-defined]
        row = session.scalar(select(ImagePullSecret).where(ImagePullSecret.name == name))
        assert row is not None
        return row


def test_password_is_write_only_and_encrypted_at_rest(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    resp = client.post("/api/v1/secrets", headers=admin, json=REGCRED)
    assert resp.status_code == 201
    created = json_of(resp)
    assert set(created) == {"name", "registry", "username", "created_at"}
    assert (created["name"], created["registry"], created["username"]) == ("regcred", "ghcr.io", "robot")

    row = stored(client, "regcred")
    assert REGCRED["password"] not in row.password_encrypted and row.password_encrypted.startswith("gAAAAA")
    assert decrypt_password(settings, row) == REGCRED["password"]
    assert decrypt_password(client.app.state.platform, row) == REGCRED["password"]  # type: ignore[attr-defined]

    key_file = settings.data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for text in (resp.text, client.get("/api/v1/secrets", headers=admin).text):
        assert "password" not in text and REGCRED["password"] not in text

    # Rotation in place re-encrypts; the key file is reused, not replaced.
    key = key_file.read_bytes()
    resp = client.patch("/api/v1/secrets/regcred", headers=admin, json={"password": "rotated-1", "username": "bot"})
    assert resp.status_code == 200 and resp.json()["username"] == "bot" and "rotated" not in resp.text
    assert decrypt_password(settings, stored(client, "regcred")) == "rotated-1"
    assert key_file.read_bytes() == key


def test_secret_key_setting_replaces_the_key_file(settings: Settings) -> None:
    keyed = dataclasses.replace(settings, secret_key="operator chosen passphrase")
    with TestClient(create_app(keyed, runtime=FakeRuntime())) as client:
        admin = make_user(platform_db(client), "root", role="admin")
        assert client.post("/api/v1/secrets", headers=admin, json=REGCRED).status_code == 201
        row = stored(client, "regcred")
    assert not (settings.data_dir / "secret.key").exists()
    assert decrypt_password(keyed, row) == REGCRED["password"]
    with pytest.raises(SecretKeyError, match="regcred"):
        decrypt_password(dataclasses.replace(settings, secret_key="another passphrase"), row)
    with pytest.raises(SecretKeyError):
        decrypt_password(settings, row)  # the (new) key file is a different key too


def test_everyone_lists_names_only_admins_see_details(client: TestClient, admin: dict[str, str]) -> None:
    for name in ("zeta", "alpha"):
        client.post("/api/v1/secrets", headers=admin, json={**REGCRED, "name": name})
    alice = make_user(platform_db(client), "alice")
    assert client.get("/api/v1/secrets", headers=alice).json() == [{"name": "alpha"}, {"name": "zeta"}]
    full = client.get("/api/v1/secrets", headers=admin).json()
    assert [(s["name"], s["registry"], s["username"]) for s in full] == [
        ("alpha", "ghcr.io", "robot"),
        ("zeta", "ghcr.io", "robot"),
    ]
    for method, url, body in (
        ("POST", "/api/v1/secrets", {**REGCRED, "name": "mine"}),
        ("PATCH", "/api/v1/secrets/alpha", {"password": "x"}),
        ("DELETE", "/api/v1/secrets/alpha", None),
    ):
        resp = client.request(method, url, headers=alice, json=body)
        assert resp.status_code == 403 and json_of(resp)["error"]["code"] == "FORBIDDEN"
    assert client.get("/api/v1/secrets").status_code == 401


def test_delete_refuses_while_a_running_deployment_uses_it(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/groups", headers=admin, json={"name": "team"})
    client.post("/api/v1/secrets", headers=admin, json=REGCRED)
    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        group_id = session.scalar(select(Group.id).where(Group.name == "team"))
        assert group_id is not None
        session.add(
            Deployment(
                id="dep-aaaaa",
                name="dep",
                group_id=group_id,
                instance_type="small",
                image="ghcr.io/acme/model:1",
                image_pull_secret="regcred",
                created_by="admin",
                updated_by="admin",
            )
        )
    resp = client.delete("/api/v1/secrets/regcred", headers=admin)
    assert resp.status_code == 409 and json_of(resp)["error"]["code"] == "CONFLICT"
    assert "1 running deployment" in resp.json()["error"]["message"]
    with client.app.state.platform.db.write() as session:  # type: ignore[attr-defined]
        dep = session.get(Deployment, "dep-aaaaa")
        assert dep is not None
        dep.stopped = True
    assert client.delete("/api/v1/secrets/regcred", headers=admin).status_code == 204
    assert client.get("/api/v1/secrets", headers=admin).json() == []
    for method, body in (("DELETE", None), ("PATCH", {"password": "x"})):
        for name in ("regcred", "Bad Name", "%00"):
            resp = client.request(method, f"/api/v1/secrets/{name}", headers=admin, json=body)
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND", (method, name)


def test_validation_table(client: TestClient, admin: dict[str, str]) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({**REGCRED, "name": "RegCred"}, "name"),
        ({**REGCRED, "name": "-x"}, "name"),
        ({**REGCRED, "name": "a_b"}, "name"),
        ({**REGCRED, "name": "x" * 64}, "name"),
        ({**REGCRED, "registry": ""}, "registry"),
        ({**REGCRED, "registry": "ghcr io"}, "registry"),
        ({**REGCRED, "registry": "r" * 256}, "registry"),
        ({**REGCRED, "username": ""}, "username"),
        ({**REGCRED, "username": 5}, "username"),
        ({**REGCRED, "password": ""}, "password"),
        ({**REGCRED, "password": None}, "password"),
        ({**REGCRED, "password": "p" * 4097}, "password"),
        ({k: v for k, v in REGCRED.items() if k != "password"}, "password"),
        ({**REGCRED, "email": "a@b.c"}, "email"),
    ]
    wrong = {}
    for body, mentioned in bad:
        resp = client.post("/api/v1/secrets", headers=admin, json=body)
        error = resp.json().get("error", {})
        if resp.status_code != 422 or error.get("code") != "VALIDATION_ERROR" or mentioned not in error["message"]:
            wrong[repr(body)] = (resp.status_code, resp.text)
    assert not wrong
    assert client.get("/api/v1/secrets", headers=admin).json() == []

    assert client.post("/api/v1/secrets", headers=admin, json=REGCRED).status_code == 201
    resp = client.post("/api/v1/secrets", headers=admin, json=REGCRED)
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "CONFLICT"
    for patch in ({"name": "other"}, {"password": None}, {"password": ""}, {"registry": "a b"}):
        resp = client.patch("/api/v1/secrets/regcred", headers=admin, json=patch)
        assert resp.status_code == 422 and json_of(resp)["error"]["code"] == "VALIDATION_ERROR", patch


def test_key_file_is_created_once_when_processes_race(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: _load_or_create(path), range(16)))
    assert len(keys) == 1 and keys == {path.read_bytes()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]  # no temporary files left
