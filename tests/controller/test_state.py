"""decide(): every status transition, as a table."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from modeldeck.controller.state import Decision, Desired, StartFailure, Status, Template, decide
from modeldeck.runtimes.base import Replica, ReplicaState, replica_name

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DEP = "iris-abcde"
T1 = Template(image="modeldeck/sklearn-server:1", model_uri="file:///m/1", env={"A": "1"}, cpu=1, memory=2**30, gpu=0)
T2 = replace(T1, image="modeldeck/sklearn-server:2")


def want(
    *,
    gen: int = 1,
    n: int = 1,
    t: Template = T1,
    stopped: bool = False,
    error: tuple[str, str] | None = None,
    failures: dict[int, StartFailure] | None = None,
) -> Desired:
    return Desired(DEP, gen, n, stopped, t, error, failures or {})


def rep(
    version: int,
    index: int,
    state: ReplicaState = "ready",
    *,
    t: Template | None = T1,
    restarts: int = 0,
    reason: str | None = None,
    message: str | None = None,
) -> Replica:
    return Replica(
        name=replica_name(DEP, version, index), deployment_id=DEP, version=version, index=index, state=state,
        restarts=restarts, reason=reason, message=message, template=t.hash if t else None,
    )


def name(version: int, index: int) -> str:
    return replica_name(DEP, version, index)


def refused(index: int, *, t: Template = T1, retry_in: float = 5.0) -> StartFailure:
    return StartFailure(index, t.hash, "Unschedulable", "needs 1 cpu, 0.5 free", NOW + timedelta(seconds=retry_in))


@dataclass
class Row:
    id: str
    desired: Desired
    replicas: list[Replica]
    status: str
    reason: str
    available: int
    start: list[int] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    message: tuple[str, ...] = ()  # fragments the message must contain
    previous: Status = field(default_factory=Status)


FAILED_PREV = Status("Failed", "CrashLoop", "1/1 replicas failed: ...\nboom", observed_generation=1)

ROWS = [
    Row("fresh create", want(n=2), [], "Deploying", "Progressing", 0, start=[0, 1],
        message=("0/2 replicas ready; rolling out generation 1",)),
    Row("partial ready", want(n=2), [rep(1, 0), rep(1, 1, "starting")], "Deploying", "Progressing", 1,
        message=("1/2 replicas ready",)),
    Row("all ready", want(n=2), [rep(1, 0), rep(1, 1)], "Deployed", "Available", 2, message=("2/2 replicas ready",)),
    Row("scale up keeps the running ones", want(gen=2, n=3), [rep(1, 0), rep(1, 1)], "Deploying", "Progressing", 2,
        start=[2], message=("2/3 replicas ready",)),
    Row("scale down", want(gen=2, n=1), [rep(1, 0), rep(1, 1)], "Deployed", "Available", 1, stop=[name(1, 1)]),
    Row("scale down: non-ready first, then highest index", want(gen=2, n=1),
        [rep(1, 0), rep(1, 1), rep(1, 2, "starting"), rep(1, 3)], "Deployed", "Available", 1,
        stop=[name(1, 2), name(1, 3), name(1, 1)]),
    Row("replicas-only change restarts nothing", want(gen=5, n=1), [rep(1, 0)], "Deployed", "Available", 1),
    Row("duplicate index: the ready one stays", want(gen=3), [rep(1, 0, "failed", reason="CrashLoop"), rep(3, 0)],
        "Deployed", "Available", 1, stop=[name(1, 0)]),
    Row("rolling update starts new next to old", want(gen=2, n=2, t=T2), [rep(1, 0), rep(1, 1)],
        "Deploying", "Progressing", 2, start=[0, 1],
        message=("0/2 replicas ready; previous version serving on 2 replicas; rolling out generation 2",)),
    Row("rolling update: one new ready drains one old", want(gen=2, n=2, t=T2),
        [rep(1, 0), rep(1, 1), rep(2, 0, t=T2), rep(2, 1, "starting", t=T2)], "Deploying", "Progressing", 2,
        stop=[name(1, 1)], message=("1/2 replicas ready; previous version serving on 1 replica",)),
    Row("rolling update done: old ones go", want(gen=2, n=2, t=T2),
        [rep(1, 0), rep(1, 1), rep(2, 0, t=T2), rep(2, 1, t=T2)], "Deployed", "Available", 2,
        stop=[name(1, 0), name(1, 1)]),
    Row("old non-ready replicas are dropped", want(gen=2, n=2, t=T2),
        [rep(1, 0), rep(1, 1, "failed", reason="CrashLoop"), rep(1, 2, "starting")], "Deploying", "Progressing", 1,
        start=[0, 1], stop=[name(1, 1), name(1, 2)]),
    Row("terminating replicas are neither counted nor stopped again", want(), [rep(1, 0, "terminating")],
        "Deploying", "Progressing", 0, start=[0]),
    Row("failing rollout while the previous version serves", want(gen=2, n=2, t=T2),
        [rep(1, 0), rep(1, 1),
         rep(2, 0, "failed", t=T2, reason="ModelLoadFailed", message="Traceback\nValueError: bad model"),
         rep(2, 1, "starting", t=T2)],
        "Failed", "ModelLoadFailed", 2,
        message=("1/2 replicas failed", "previous version still serving on 2 replicas", "ValueError: bad model")),
    Row("crash", want(), [rep(1, 0, "failed", restarts=1, reason="CrashLoop", message="exit 1\nboom")],
        "Failed", "CrashLoop", 0, message=(f"replica {name(1, 0)} failed (CrashLoop)", "boom")),
    Row("crash loop: restarting keeps Failed", want(), [rep(1, 0, "starting", restarts=2)],
        "Failed", "CrashLoop", 0, message=("boom",), previous=FAILED_PREV),
    Row("recovery after failure", want(), [rep(1, 0, restarts=2)], "Deployed", "Available", 1,
        previous=FAILED_PREV),
    Row("a new generation is not stuck in the old failure", want(gen=2, t=T2),
        [rep(2, 0, "starting", t=T2, restarts=1)], "Deploying", "Progressing", 0, previous=FAILED_PREV),
    Row("stop with replicas", want(gen=2, stopped=True), [rep(1, 0), rep(1, 1, "starting")],
        "Stopping", "Stopping", 0, stop=[name(1, 0), name(1, 1)], message=("draining 2 replicas",)),
    Row("stop: waiting for drains", want(gen=2, stopped=True), [rep(1, 0, "terminating")],
        "Stopping", "Stopping", 0, message=("draining 1 replica",)),
    Row("stop done", want(gen=2, stopped=True), [], "Stopped", "Stopped", 0),
    Row("start after stop", want(gen=3), [], "Deploying", "Progressing", 0, start=[0],
        previous=Status("Stopped", "Stopped", "deployment is stopped", observed_generation=2)),
    Row("group disabled stops replicas", want(error=("GroupDisabled", "not enabled for group 'ds'")), [rep(1, 0)],
        "Failed", "GroupDisabled", 0, stop=[name(1, 0)], message=("not enabled for group 'ds'; stopping 1 replica",)),
    Row("instance type gone", want(error=("InstanceTypeNotFound", "instance type 'cpu-1' does not exist")), [],
        "Failed", "InstanceTypeNotFound", 0, message=("instance type 'cpu-1' does not exist",)),
    Row("stopped wins over a config error", want(stopped=True, error=("GroupDisabled", "x")), [],
        "Stopped", "Stopped", 0),
    Row("refused start, backing off", want(failures={0: refused(0)}), [], "Failed", "Unschedulable", 0,
        message=("replica 0 could not be started (Unschedulable); retrying", "0.5 free")),
    Row("refused start, retry due: stays Failed while retrying", want(failures={0: refused(0, retry_in=-1)}), [],
        "Failed", "Unschedulable", 0, start=[0]),
    Row("refused start of another template is ignored", want(gen=2, t=T2, failures={0: refused(0, t=T1)}), [],
        "Deploying", "Progressing", 0, start=[0]),
    Row("refused start during a rollout: old keep serving", want(gen=2, t=T2, failures={0: refused(0, t=T2)}),
        [rep(1, 0)], "Failed", "Unschedulable", 1, message=("previous version still serving on 1 replica",)),
    Row("rollback to an earlier template", want(gen=3, t=T1),
        [rep(1, 0, "terminating"), rep(2, 0, t=T2)], "Deploying", "Progressing", 1, start=[0]),
    Row("replicas of a deleted namesake never serve", want(gen=1, t=T2), [rep(7, 0)], "Deploying", "Progressing", 0,
        start=[0], stop=[name(7, 0)]),
    Row("runtime without templates: generation decides", want(gen=2, t=T2), [rep(2, 0, t=None), rep(1, 1, t=None)],
        "Deployed", "Available", 1, stop=[name(1, 1)]),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_decide(row: Row) -> None:
    d = decide(row.desired, row.replicas, NOW, row.previous)
    assert (d.status, d.reason, d.available_replicas) == (row.status, row.reason, row.available), d.message
    assert d.start == row.start
    assert d.stop == row.stop
    for fragment in row.message:
        assert fragment in d.message


def test_rows_are_many_and_distinct() -> None:
    assert len(ROWS) >= 20 and len({r.id for r in ROWS}) == len(ROWS)


def test_decide_is_pure() -> None:
    replicas = [rep(1, 0), rep(1, 1, "starting")]
    before = list(replicas)
    first = decide(want(gen=2, n=2, t=T2), replicas, NOW, Status())
    assert replicas == before
    assert decide(want(gen=2, n=2, t=T2), replicas, NOW, Status()) == first


def _apply(replicas: list[Replica], d: Decision, desired: Desired) -> list[Replica]:
    stopped = set(d.stop)
    kept = [r for r in replicas if r.name not in stopped]
    return kept + [rep(desired.generation, i, "starting", t=desired.template) for i in d.start]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_rolling_update_never_drops_below_n_ready(n: int) -> None:
    """Drive decide with a tiny simulated runtime: one replica becomes ready per step."""
    replicas = [rep(1, i) for i in range(n)]
    desired = want(gen=2, n=n, t=T2)
    status = Status("Deployed", "Available", "", observed_generation=1, available_replicas=n)
    for _ in range(4 * n + 2):
        d = decide(desired, replicas, NOW, status)
        replicas = _apply(replicas, d, desired)
        assert sum(r.ready for r in replicas) >= n, d
        assert d.available_replicas >= n
        if d.status == "Deployed" and not d.start and not d.stop:
            break
        starting = [r for r in replicas if r.state == "starting"]
        if starting:
            replicas = [replace(r, state="ready") if r is starting[0] else r for r in replicas]
        status = Status(d.status, d.reason, d.message, observed_generation=2)
    assert d.status == "Deployed"
    assert sorted(r.name for r in replicas) == sorted(name(2, i) for i in range(n))
