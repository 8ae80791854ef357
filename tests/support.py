"""Helpers shared by test modules (import as `from support import ...`)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

ADMIN_PASSWORD = "admin-pass-for-tests"


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()  # tests authenticate explicitly, per request
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def json_of(resp: Any) -> Any:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    return resp.json()
