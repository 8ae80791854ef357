"""Test data written straight into the tables, and a real HTTP server for concurrency tests."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from modeldeck.auth.security import hash_token, new_token
from modeldeck.auth.tables import ApiToken, User
from modeldeck.db import Database
from modeldeck.groups.tables import Group
from modeldeck.instance_types.tables import InstanceType
from modeldeck.quantities import parse_memory
from modeldeck.secrets.tables import ImagePullSecret

Headers = dict[str, str]


def platform_db(client: TestClient) -> Database:
    db: Database = client.app.state.platform.db  # type: ignore[attr-defined]
    return db


def make_group(
    db: Database,
    name: str,
    *,
    enabled: bool = True,
    max_deployments: int | None = None,
    cpu: float | None = None,
    memory: str | None = None,
    gpu: int | None = None,
) -> int:
    with db.write() as session:
        group = Group(
            name=name,
            display_name=name.title(),
            deployments_enabled=enabled,
            max_deployments=max_deployments,
            quota_cpu=cpu,
            quota_memory=parse_memory(memory) if memory is not None else None,
            quota_gpu=gpu,
        )
        session.add(group)
        session.flush()
        return group.id


def set_group(db: Database, name: str, **values: Any) -> None:
    with db.write() as session:
        group = session.scalars(select(Group).where(Group.name == name)).one()
        for key, value in values.items():
            setattr(group, key, value)


def make_user(db: Database, username: str, *, role: str = "user", groups: Sequence[str] = ()) -> Headers:
    """A user with an API token; returns the Bearer header (the token exists only here)."""
    token = new_token("mdk")
    with db.write() as session:
        user = User(username=username, password_hash="!unusable", role=role)
        user.groups = list(session.scalars(select(Group).where(Group.name.in_(groups))))
        assert len(user.groups) == len(groups), f"unknown group in {groups}"
        session.add(user)
        session.flush()
        session.add(ApiToken(id=secrets.token_hex(8), user_id=user.id, name="tests", token_hash=hash_token(token)))
    return {"Authorization": f"Bearer {token}"}


def make_instance_type(
    db: Database,
    name: str,
    *,
    cpu: float = 1.0,
    memory: str = "1Gi",
    gpu: int = 0,
    groups: Sequence[str] = (),
) -> None:
    """Global unless ``groups`` names the groups that may use it."""
    with db.write() as session:
        it = InstanceType(name=name, cpu=cpu, memory=parse_memory(memory), gpu=gpu, is_global=not groups)
        it.groups = list(session.scalars(select(Group).where(Group.name.in_(groups))))
        session.add(it)


def make_secret(db: Database, name: str) -> None:
    with db.write() as session:
        session.add(
            ImagePullSecret(name=name, registry_host="registry.example.com", username="u", password_encrypted="x")
        )


def body(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "Iris Model",
        "group": "team",
        "instance_type": "cpu-1",
        "replicas": 1,
        "image": "modeldeck/sklearn-server:1",
        "model_uri": "gs://seldon-models/sklearn/iris",
    }
    spec.update(overrides)
    return spec


# -- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# -- the usual cast -----------------------------------------------------------------------------


class World:
    """Groups team and other, a global instance type cpu-1 (1 core, 1Gi), and four callers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.db = platform_db(client)
        make_group(self.db, "team")
        make_group(self.db, "other")
        make_instance_type(self.db, "cpu-1", cpu=1, memory="1Gi")
        self.admin = make_user(self.db, "root", role="admin")
        self.alice = make_user(self.db, "alice", groups=("team",))
        self.carol = make_user(self.db, "carol", groups=("team",))
        self.bob = make_user(self.db, "bob", groups=("other",))

    def create(self, headers: Headers | None = None, **overrides: Any) -> dict[str, Any]:
        resp = self.client.post("/api/v1/deployments", json=body(**overrides), headers=headers or self.alice)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created
