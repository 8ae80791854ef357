"""reconcile_once against the real database and the fake runtime, one step at a time (no loop)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from ctl_support import change_spec, insert_deployment, row_of, seed_group
from sqlalchemy import delete, update

from modeldeck.context import Platform
from modeldeck.controller.reconciler import Reconciler, reconcile_once, reconciler_for
from modeldeck.controller.state import Decision
from modeldeck.db import utcnow
from modeldeck.deployments.tables import Deployment
from modeldeck.groups.tables import Group
from modeldeck.instance_types.tables import InstanceType
from modeldeck.runtimes.base import Replica
from modeldeck.runtimes.fake import FakeRuntime, fake_address

DEP = "iris-abcde"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rec(platform: Platform, clock: Clock) -> Reconciler:
    return Reconciler(platform, clock=clock)


@pytest.fixture
def group_id(platform: Platform) -> int:
    return seed_group(platform.db)


def status(platform: Platform, deployment_id: str = DEP) -> tuple[str, str]:
    row = row_of(platform.db, deployment_id)
    assert row is not None
    return row.status, row.reason


def test_create_then_deployed_and_no_write_when_nothing_changed(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    fake_runtime.set_ready(False)
    insert_deployment(platform.db, DEP, group_id, replicas=2)

    first = rec.reconcile_once(DEP)
    assert first.decision is not None and first.decision.start == [0, 1]
    assert fake_runtime.started == [f"{DEP}-g1-r0", f"{DEP}-g1-r1"]
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason, row.observed_generation) == ("Deploying", "Progressing", 1)
    assert first.requeue_after is not None and first.requeue_after <= 0.5

    second = rec.reconcile_once(DEP)
    assert second.decision is not None and second.decision.start == []  # idempotent: no restarts
    row = row_of(platform.db, DEP)
    assert row is not None
    assert [r["state"] for r in row.replicas_status] == ["starting", "starting"]
    assert row.message == "0/2 replicas ready; rolling out generation 1"

    fake_runtime.set_ready(True)
    assert rec.reconcile_once(DEP).wrote
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.message, row.available_replicas) == ("Deployed", "2/2 replicas ready", 2)
    assert [r["ready"] for r in row.replicas_status] == [True, True]
    assert {r["version"] for r in row.replicas_status} == {1}
    changed_at = row.status_changed_at

    again = rec.reconcile_once(DEP)
    assert not again.wrote and again.requeue_after is None
    row = row_of(platform.db, DEP)
    assert row is not None and row.status_changed_at == changed_at
    assert fake_runtime.started == [f"{DEP}-g1-r0", f"{DEP}-g1-r1"]


def test_crash_fails_with_reason_and_log_lines_then_recovers(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    insert_deployment(platform.db, DEP, group_id)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")

    fake_runtime.crash(DEP, reason="CrashLoop", message="exit code 1\nKeyError: 'petal_width'")
    out = rec.reconcile_once(DEP)
    assert out.requeue_after is not None  # a failed deployment with replicas is re-checked
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason, row.available_replicas) == ("Failed", "CrashLoop", 0)
    assert "KeyError: 'petal_width'" in row.message and f"{DEP}-g1-r0" in row.message
    assert row.replicas_status[0]["restarts"] == 1

    fake_runtime.recover(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")
    assert fake_runtime.started == [f"{DEP}-g1-r0"]


def test_refused_start_fails_backs_off_and_retries(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, clock: Clock, group_id: int
) -> None:
    fake_runtime.fail_start("Unschedulable", "needs 1 cpu, 0.25 free", deployment_id=DEP)
    insert_deployment(platform.db, DEP, group_id)
    first = rec.reconcile_once(DEP)
    assert first.requeue_after == 0.0  # decide again at once so the failure shows
    row = row_of(platform.db, DEP)
    assert row is not None and row.observed_generation == 1

    second = rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason) == ("Failed", "Unschedulable")
    assert "0.25 free" in row.message
    assert second.decision is not None and second.decision.start == []  # backing off
    assert second.requeue_after is not None and 0 < second.requeue_after <= 2.0

    fake_runtime.fail_start(None, deployment_id=DEP)  # capacity freed
    clock.now += timedelta(seconds=3)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")
    assert fake_runtime.started == [f"{DEP}-g1-r0"]


def test_temporary_error_keeps_deploying_and_waits_retry_after(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, clock: Clock, group_id: int
) -> None:
    fake_runtime.refuse_start_temporarily(30.0, DEP)
    insert_deployment(platform.db, DEP, group_id)
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason, row.observed_generation) == ("Deploying", "Progressing", 0)

    fake_runtime.refuse_start_temporarily(None, DEP)
    rec.reconcile_once(DEP)  # still within retry_after: no new attempt
    assert fake_runtime.started == []
    clock.now += timedelta(seconds=31)
    rec.reconcile_once(DEP)
    assert fake_runtime.started == [f"{DEP}-g1-r0"]
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None and (row.status, row.observed_generation) == ("Deployed", 1)


def test_rolling_update_keeps_serving_and_replicas_only_change_restarts_nothing(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    insert_deployment(platform.db, DEP, group_id, replicas=2)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")

    gen = change_spec(platform.db, DEP, replicas=3)  # replicas only: scale, no restart
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert fake_runtime.started == [f"{DEP}-g1-r0", f"{DEP}-g1-r1", f"{DEP}-g{gen}-r2"]
    assert fake_runtime.stopped == []
    assert status(platform) == ("Deployed", "Available")

    fake_runtime.set_ready(False)
    gen = change_spec(platform.db, DEP, image="modeldeck/sklearn-server:2")
    rec.reconcile_once(DEP)
    new = [f"{DEP}-g{gen}-r{i}" for i in range(3)]
    assert fake_runtime.started[-3:] == new
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.available_replicas, row.observed_generation) == ("Deploying", 3, gen)
    assert "previous version serving on 3 replicas" in row.message

    for name in new:
        fake_runtime.mark_ready(name)
        rec.reconcile_once(DEP)
        ready = [r for r in fake_runtime.observe(DEP) if r.ready]
        assert len(ready) == 3
    assert status(platform) == ("Deployed", "Available")
    assert [r.name for r in fake_runtime.observe(DEP)] == new
    assert all(fake_runtime.spec_of(n).image == "modeldeck/sklearn-server:2" for n in new)


def test_stop_drains_then_stopped_and_start_again(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    insert_deployment(platform.db, DEP, group_id, replicas=2)
    rec.reconcile_once(DEP)
    fake_runtime.hold_termination(True)
    change_spec(platform.db, DEP, stopped=True)
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.message) == ("Stopping", "draining 2 replicas")
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None and row.status == "Stopping"
    assert [r["state"] for r in row.replicas_status] == ["terminating", "terminating"]
    fake_runtime.finish_termination(DEP)
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.available_replicas, row.replicas_status) == ("Stopped", 0, [])

    gen = change_spec(platform.db, DEP, stopped=False)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")
    assert {r.name for r in fake_runtime.observe(DEP)} == {f"{DEP}-g{gen}-r0", f"{DEP}-g{gen}-r1"}


def test_config_errors_fail_and_stop_replicas(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    insert_deployment(platform.db, DEP, group_id)
    rec.reconcile_once(DEP)
    with platform.db.write() as s:
        s.execute(update(Group).where(Group.id == group_id).values(deployments_enabled=False))
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason) == ("Failed", "GroupDisabled")
    assert "'ds'" in row.message
    assert fake_runtime.observe(DEP) == []

    with platform.db.write() as s:
        s.execute(update(Group).where(Group.id == group_id).values(deployments_enabled=True))
        s.execute(update(InstanceType).where(InstanceType.name == "cpu-1").values(is_global=False))
    rec.reconcile_once(DEP)
    row = row_of(platform.db, DEP)
    assert row is not None
    assert (row.status, row.reason) == ("Failed", "InstanceTypeNotFound")
    assert "not available to group 'ds'" in row.message

    with platform.db.write() as s:
        s.execute(delete(InstanceType).where(InstanceType.name == "cpu-1"))
    rec.reconcile_once(DEP)
    assert status(platform) == ("Failed", "InstanceTypeNotFound")

    change_spec(platform.db, DEP, image_pull_secret="registry-creds")
    seed_group(platform.db, name="other")  # puts cpu-1 back (global)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Failed", "ImagePullSecretNotFound")
    change_spec(platform.db, DEP, image_pull_secret=None)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert status(platform) == ("Deployed", "Available")


def test_deleted_deployment_is_drained_logs_removed_and_removal_published(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    calls: list[tuple[str, str | None, list[str]]] = []

    def hook(deployment_id: str, decision: Decision | None, replicas: list[Replica]) -> None:
        calls.append((deployment_id, decision.status if decision else None, [r.name for r in replicas]))

    rec.on_change.append(hook)
    insert_deployment(platform.db, DEP, group_id)
    rec.reconcile_once(DEP)
    assert fake_runtime.read_logs(DEP)
    fake_runtime.hold_termination(True)
    with platform.db.write() as s:
        s.execute(delete(Deployment).where(Deployment.id == DEP))

    out = rec.reconcile_once(DEP)
    assert out.decision is None and out.requeue_after is not None
    assert [r.state for r in fake_runtime.observe(DEP)] == ["terminating"]
    assert fake_runtime.read_logs(DEP)  # logs stay readable while draining
    fake_runtime.finish_termination()
    rec.reconcile_once(DEP)
    assert fake_runtime.observe(DEP) == [] and fake_runtime.read_logs(DEP) == ""
    assert calls[-1] == (DEP, None, [])
    assert calls[-2] == (DEP, "Stopping", [])


def test_hooks_called_on_change_only_and_their_errors_do_not_break_a_step(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    seen: list[tuple[str, list[str]]] = []

    def broken(*_: object) -> None:
        raise RuntimeError("subscriber bug")

    def record(_id: str, d: Decision | None, reps: list[Replica]) -> None:
        seen.append((d.status if d else "-", [r.address or "" for r in reps]))

    rec.on_change.extend([broken, record])
    fake_runtime.set_ready(False)
    insert_deployment(platform.db, DEP, group_id)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    rec.reconcile_once(DEP)
    assert seen == [("Deploying", []), ("Deploying", [""])]  # the started replica appears at the next step
    seen.clear()
    rec.reconcile_once(DEP)
    assert seen == []
    fake_runtime.set_ready(True)
    rec.reconcile_once(DEP)
    assert seen == [("Deployed", [fake_address(f"{DEP}-g1-r0")])]
    change_spec(platform.db, DEP, endpoint_access="private")  # the gateway must re-read the access mode
    rec.reconcile_once(DEP)
    assert seen[1:] == [("Deployed", [fake_address(f"{DEP}-g1-r0")])]


def test_follower_observes_and_publishes_but_never_acts_or_writes(
    platform: Platform, rec: Reconciler, fake_runtime: FakeRuntime, group_id: int
) -> None:
    published: list[str] = []
    rec.on_change.append(lambda _id, d, _r: published.append(d.status if d else "removed"))
    insert_deployment(platform.db, DEP, group_id)
    out = rec.reconcile_once(DEP, leader=False)
    assert out.decision is not None and out.decision.start == [0]
    assert not out.wrote and fake_runtime.started == []
    assert status(platform) == ("Deploying", "Created")
    assert published == ["Deploying"]


def test_reconcile_once_function_shares_the_platform_reconciler(
    platform: Platform, fake_runtime: FakeRuntime, group_id: int
) -> None:
    assert reconciler_for(platform) is reconciler_for(platform)
    insert_deployment(platform.db, DEP, group_id)
    reconcile_once(platform, DEP)
    reconcile_once(platform, DEP)
    assert status(platform) == ("Deployed", "Available")
    row = row_of(platform.db, DEP)
    assert row is not None and row.replicas_status[0]["name"] == f"{DEP}-g1-r0"
