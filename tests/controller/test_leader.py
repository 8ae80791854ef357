"""One leader reconciles: a PostgreSQL advisory lock on a dedicated connection; SQLite has one process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from ctl_support import wait_for
from fastapi.testclient import TestClient

from api.factories import World, body
from modeldeck.app import create_app
from modeldeck.controller.leader import LeaderLease
from modeldeck.db import Database
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings


@pytest.fixture
def pg_url(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("leader election needs PostgreSQL (MODELDECK_TEST_DATABASE_URL)")
    return database_url


def test_sqlite_process_always_leads(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/one.db")
    lease = LeaderLease(db)
    assert lease.check() and lease.check()
    lease.release()
    assert lease.check()
    db.dispose()


@pytest.fixture
def two_dbs(pg_url: str) -> Iterator[tuple[Database, Database]]:
    a, b = Database(pg_url), Database(pg_url)
    yield a, b
    a.dispose()
    b.dispose()


def test_only_one_lease_holder_and_takeover(two_dbs: tuple[Database, Database]) -> None:
    first, second = LeaderLease(two_dbs[0], key=4242), LeaderLease(two_dbs[1], key=4242)
    assert first.check()
    assert not second.check()
    assert first.check() and not second.check()  # holding is stable
    first.release()
    assert second.check()
    assert not first.check()
    second.release()


def test_a_lost_connection_loses_the_lease(two_dbs: tuple[Database, Database]) -> None:
    first, second = LeaderLease(two_dbs[0], key=4343), LeaderLease(two_dbs[1], key=4343)
    assert first.check()
    assert first._conn is not None
    first._conn.invalidate()  # the server ends the session, as on a network loss or a crash
    assert second.check()  # the lock went with the session
    assert not first.check()  # a silently reconnected session must not pass for the holder
    assert first.held is False
    second.release()
    first.release()


def test_followers_never_act_and_take_over(settings: Settings, pg_url: str) -> None:
    leader_rt, follower_rt = FakeRuntime(), FakeRuntime()
    with ExitStack() as leader_process:
        leader = leader_process.enter_context(TestClient(create_app(settings, runtime=leader_rt)))
        world = World(leader)
        with TestClient(create_app(settings, runtime=follower_rt)) as follower:
            assert leader.app.state.controller.leader  # type: ignore[attr-defined]
            assert not follower.app.state.controller.leader  # type: ignore[attr-defined]
            seen: list[str] = []
            follower.app.state.controller.on_change.append(  # type: ignore[attr-defined]
                lambda _id, d, _r: seen.append(d.status if d else "removed")
            )
            resp = follower.post("/api/v1/deployments", json=body(), headers=world.alice)  # any process serves the API
            assert resp.status_code == 201, resp.text
            dep_id = resp.json()["id"]
            leader.app.state.platform.wake(dep_id)  # type: ignore[attr-defined]  # as its resync would
            wait_for(lambda: len(leader_rt.observe(dep_id)) == 1)
            status = lambda: follower.get(f"/api/v1/deployments/{dep_id}", headers=world.alice).json()  # noqa: E731
            wait_for(lambda: status()["status"] == "Deployed")
            assert seen  # followers publish what they observe (their own gateway needs routes)
            steps = follower.app.state.controller.steps  # type: ignore[attr-defined]
            wait_for(lambda: follower.app.state.controller.steps >= steps + 3)  # type: ignore[attr-defined]
            assert follower_rt.started == [] and status()["status"] == "Deployed"  # it neither acted nor wrote

            leader_process.close()  # the leader's server stops; its lock goes with its connection
            wait_for(lambda: follower.app.state.controller.leader)  # type: ignore[attr-defined]
            wait_for(lambda: len(follower_rt.observe(dep_id)) == 1)
