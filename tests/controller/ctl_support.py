"""Controller test helpers: polling, and deployment rows written the way the API writes them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from modeldeck.db import Database
from modeldeck.deployments.tables import Deployment
from modeldeck.groups.tables import Group
from modeldeck.instance_types.tables import InstanceType

IMAGE = "modeldeck/sklearn-server:1"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; return its value (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}; last value {value!r}")
        time.sleep(interval)



def seed_group(db: Database, *, name: str = "ds", enabled: bool = True) -> int:
    with db.write() as s:
        group = Group(name=name, deployments_enabled=enabled)
        s.add(group)
        s.flush()
        if s.query(InstanceType).filter_by(name="cpu-1").first() is None:
            s.add(InstanceType(name="cpu-1", cpu=1.0, memory=2**30, gpu=0, is_global=True))
        return group.id


def insert_deployment(db: Database, deployment_id: str, group_id: int, **spec: Any) -> None:
    values: dict[str, Any] = {
        "name": deployment_id, "instance_type": "cpu-1", "replicas": 1, "image": IMAGE,
        "model_uri": "file:///models/iris", "env": {}, "created_by": "alice", "updated_by": "alice",
    }
    values.update(spec)
    with db.write() as s:
        s.add(Deployment(id=deployment_id, group_id=group_id, **values))


def change_spec(db: Database, deployment_id: str, **spec: Any) -> int:
    """What an API update does to the row: new spec values and a bumped generation."""
    with db.write() as s:
        s.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id)
            .values(generation=Deployment.generation + 1, version=Deployment.version + 1, **spec)
        )
        row = s.get(Deployment, deployment_id)
        assert row is not None
        return row.generation


def row_of(db: Database, deployment_id: str) -> Deployment | None:
    with db.read() as s:
        return s.get(Deployment, deployment_id)
