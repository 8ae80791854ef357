"""Admission under real concurrency: a real uvicorn server, simultaneous HTTP requests from threads.

Run on SQLite by default and on PostgreSQL with MODELDECK_TEST_DATABASE_URL.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.factories import body, live_server, make_group, make_instance_type, make_user, set_group
from modeldeck.app import create_app
from modeldeck.db import Database
from modeldeck.deployments.tables import Deployment
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings

CALLERS = 10
Call = Callable[[httpx.Client], httpx.Response]


@dataclass
class Server:
    url: str
    db: Database
    headers: dict[str, str]
    admin: dict[str, str]


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    app = create_app(replace(settings, controller_enabled=False), runtime=FakeRuntime())
    with live_server(app) as url:
        db: Database = app.state.platform.db
        make_group(db, "team")
        make_instance_type(db, "cpu-1", cpu=1, memory="1Gi")
        yield Server(url, db, make_user(db, "alice", groups=("team",)), make_user(db, "root", role="admin"))


def at_once(calls: list[Call]) -> list[httpx.Response]:
    """Run every call in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            try:
                results[i] = calls[i](http)
            except BaseException as exc:
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    answers = [r for r in results if isinstance(r, httpx.Response)]
    assert len(answers) == len(calls), results
    return answers


def outcome(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else "ok") for r in responses
    )


def count(db: Database, *, running_only: bool = False) -> int:
    query = select(func.count()).select_from(Deployment)
    if running_only:
        query = query.where(Deployment.stopped.is_(False))
    with db.read() as session:
        return session.scalar(query) or 0


def post(url: str, headers: dict[str, str], payload: dict[str, Any] | None = None) -> Call:
    def call(http: httpx.Client) -> httpx.Response:
        return http.post(url, json=payload, headers=headers)

    return call


def creates(server: Server, n: int = CALLERS) -> list[Call]:
    return [post(f"{server.url}/api/v1/deployments", server.headers, body(name=f"model {i}")) for i in range(n)]


def test_concurrent_creates_respect_max_deployments(server: Server) -> None:
    set_group(server.db, "team", max_deployments=3)
    got = outcome(at_once(creates(server)))
    assert got == Counter({(201, "ok"): 3, (409, "QUOTA_EXCEEDED"): 7})
    assert count(server.db) == 3


def test_concurrent_creates_respect_cpu_quota(server: Server) -> None:
    set_group(server.db, "team", quota_cpu=3.0)
    got = outcome(at_once(creates(server)))
    assert got == Counter({(201, "ok"): 3, (409, "QUOTA_EXCEEDED"): 7})
    assert count(server.db) == 3


def test_concurrent_starts_respect_max_deployments(server: Server) -> None:
    ids = []
    with httpx.Client(timeout=60) as http:
        for call in creates(server):
            dep = call(http).json()
            ids.append(dep["id"])
            assert http.post(f"{server.url}/api/v1/deployments/{dep['id']}/stop",
                             headers=server.headers).status_code == 200
    assert count(server.db, running_only=True) == 0
    set_group(server.db, "team", max_deployments=3)
    starts = [post(f"{server.url}/api/v1/deployments/{d}/start", server.headers) for d in ids]
    got = outcome(at_once(starts))
    assert got == Counter({(200, "ok"): 3, (409, "QUOTA_EXCEEDED"): 7})
    assert count(server.db, running_only=True) == 3


def test_concurrent_creates_of_one_id_across_groups(server: Server) -> None:
    for i in range(CALLERS):
        make_group(server.db, f"g{i}")
    calls = [
        post(f"{server.url}/api/v1/deployments", server.admin, body(id="same-id", group=f"g{i}"))
        for i in range(CALLERS)
    ]
    got = outcome(at_once(calls))
    assert got == Counter({(201, "ok"): 1, (409, "CONFLICT"): CALLERS - 1})
    assert count(server.db) == 1
