"""Shared fixtures: a real database (SQLite file, or PostgreSQL when MODELDECK_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modeldeck.app import create_app
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings
from support import ADMIN_PASSWORD, _reset_postgres, login


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


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)
