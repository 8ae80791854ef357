"""Shared fixtures: a real database (SQLite file, or PostgreSQL when MODELDECK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from modeldeck.app import create_app
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings

ADMIN_PASSWORD = "admin-pass-for-tests"


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = os.environ.get("MODELDECK_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'modeldeck.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        runtime="fake",
        resync_interval_s=0.2,
        drain_grace_s=0.1,
    )


@pytest.fixture
def fake_runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def client(settings: Settings, fake_runtime: FakeRuntime) -> Iterator[TestClient]:
    app = create_app(settings, runtime=fake_runtime)
    with TestClient(app) as c:
        yield c


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()  # tests authenticate explicitly, per request
    return {"Authorization": f"Bearer {resp.json()['token']}"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)


def json_of(resp: Any) -> Any:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    return resp.json()
