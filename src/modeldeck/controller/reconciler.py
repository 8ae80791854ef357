"""One idempotent reconcile step per deployment: observe → read desired → decide → persist → publish → act.

Publishing comes before acting so that the gateway stops routing to a replica before it is asked to
drain; acting adds nothing routable (a started replica is not ready yet). No database transaction
is open while the runtime is called.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modeldeck.context import Platform
from modeldeck.controller import store
from modeldeck.controller.state import Decision, Desired, StartFailure, decide
from modeldeck.db import utcnow
from modeldeck.runtimes.base import PermanentError, Replica, ReplicaSpec, TemporaryError

log = logging.getLogger(__name__)

# (deployment_id, decision, replicas): decision None means the deployment was deleted and is gone.
# ``replicas`` are the ones that stay after this step (not terminating, not being stopped): during a
# rolling update the ready ones among them are old and new replicas alike.
ChangeHook = Callable[[str, Decision | None, list[Replica]], None]

FAST_RECHECK_S = 0.25  # while Deploying/Stopping: notice readiness and drains quickly
TRANSITION_RECHECK_S = 0.1  # a replica is starting or draining: its change is imminent
FAILED_RECHECK_S = 1.0  # a Failed deployment with replicas may recover by itself
START_RETRY_BASE_S = 2.0
START_RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class Outcome:
    decision: Decision | None  # None: the deployment is not in the database
    wrote: bool  # status columns written
    requeue_after: float | None  # seconds until this deployment wants another step (None: resync)


class Reconciler:
    """Holds what must outlive one step: refused starts (to back off) and what was last published."""

    def __init__(self, platform: Platform, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.platform = platform
        self.clock = clock
        self.on_change: list[ChangeHook] = []
        self._lock = threading.Lock()
        self._start_failures: dict[str, dict[int, StartFailure]] = {}
        self._published: dict[str, object] = {}
        # (deployment, action) -> not before: an action the runtime answered with TemporaryError
        self._held: dict[tuple[str, str], datetime] = {}

    def reconcile_once(self, deployment_id: str, *, leader: bool = True) -> Outcome:
        """``leader=False`` (another process reconciles): observe, decide and publish only."""
        runtime = self.platform.runtime
        replicas = runtime.observe(deployment_id)
        now = self.clock()
        with self._lock:
            failures = dict(self._start_failures.get(deployment_id, {}))
        with self.platform.db.read() as session:
            seen = store.load(
                session,
                deployment_id,
                readiness_timeout_s=self.platform.settings.readiness_timeout_s,
                start_failures=failures,
            )
        if seen is None:
            return self._gone(deployment_id, replicas, leader=leader)

        desired = seen.desired
        decision = decide(desired, replicas, now, seen.previous)
        if not leader:
            self._publish(deployment_id, desired.generation, decision, replicas)
            return Outcome(decision, False, None)

        acting = bool(decision.start or decision.stop)
        observed = seen.previous.observed_generation if acting else desired.generation
        wrote = self._persist(deployment_id, seen.columns, store.status_values(decision, replicas, observed), now)
        self._publish(deployment_id, desired.generation, decision, replicas)
        requeue = self._act(desired, decision, now)
        if acting and requeue.complete and observed != desired.generation:
            wrote = self._persist(deployment_id, {}, {"observed_generation": desired.generation}, now) or wrote

        after = requeue.after
        if decision.status in ("Deploying", "Stopping") or acting:  # held actions wait their retry_after
            moving = acting or any(r.state in ("starting", "terminating") for r in replicas)
            fast = TRANSITION_RECHECK_S if moving else FAST_RECHECK_S
            after = min(after, fast) if after is not None else fast
        elif decision.status == "Failed" and replicas:
            after = min(after, FAILED_RECHECK_S) if after is not None else FAILED_RECHECK_S
        return Outcome(decision, wrote, after)

    # -- steps -----------------------------------------------------------------------------------
    def _persist(
        self, deployment_id: str, current: Mapping[str, object], wanted: Mapping[str, object], now: datetime
    ) -> bool:
        values = store.changes(current, wanted)
        if not values:
            return False
        with self.platform.db.write() as session:
            store.write_status(session, deployment_id, values, now)
        return True

    def _act(self, desired: Desired, decision: Decision, now: datetime) -> _Requeue:
        runtime = self.platform.runtime
        requeue = _Requeue()
        with self._lock:  # forget expired holds, including those of actions no longer wanted
            for key in [k for k, until in self._held.items() if k[0] == desired.deployment_id and until <= now]:
                del self._held[key]
        for name in decision.stop:
            if self._is_held(desired.deployment_id, f"stop:{name}", now, requeue):
                continue
            try:
                runtime.stop_replica(name, grace_s=self.platform.settings.drain_grace_s)
            except TemporaryError as exc:
                log.warning("stopping %s: %s; retrying in %.1fs", name, exc, exc.retry_after)
                self._hold(desired.deployment_id, f"stop:{name}", now, exc.retry_after, requeue)
        for index in decision.start:
            spec = _replica_spec(desired, index)
            if self._is_held(desired.deployment_id, f"start:{spec.name}", now, requeue):
                continue
            try:
                runtime.start_replica(spec)
            except TemporaryError as exc:
                log.warning("starting %s: %s; retrying in %.1fs", spec.name, exc, exc.retry_after)
                self._hold(desired.deployment_id, f"start:{spec.name}", now, exc.retry_after, requeue)
            except PermanentError as exc:
                attempts = self._record_failure(desired, index, exc, now)
                log.warning("starting %s refused (%s, attempt %d): %s", spec.name, exc.reason, attempts,
                            exc.message)
                requeue.now()  # decide again at once so the failure shows
            else:
                self._clear_failure(desired.deployment_id, index)
        self._prune_failures(desired)
        with self._lock:
            failures = self._start_failures.get(desired.deployment_id, {})
            retry_at = min((f.retry_at for f in failures.values()), default=None)
        if retry_at is not None:
            requeue.later(max(0.0, (retry_at - now).total_seconds()))
        return requeue

    def _gone(self, deployment_id: str, replicas: Sequence[Replica], *, leader: bool) -> Outcome:
        """Deleted from the database: drain what is left, then forget its logs and tell the subscribers."""
        if not leader:
            if not replicas:
                self._publish_removal(deployment_id)
            return Outcome(None, False, None)
        live = [r for r in replicas if r.state != "terminating"]
        if replicas:
            self._publish(deployment_id, -1, Decision("Stopping", "Deleted", "deployment deleted", 0), [])
        for r in live:
            self.platform.runtime.stop_replica(r.name, grace_s=self.platform.settings.drain_grace_s)
        if replicas:
            return Outcome(None, False, FAST_RECHECK_S)
        self.platform.runtime.remove_logs(deployment_id)
        with self._lock:
            self._start_failures.pop(deployment_id, None)
            for key in [k for k in self._held if k[0] == deployment_id]:
                del self._held[key]
        self._publish_removal(deployment_id)
        return Outcome(None, False, None)

    # -- publish ---------------------------------------------------------------------------------
    def _publish(
        self, deployment_id: str, generation: int, decision: Decision, replicas: Sequence[Replica]
    ) -> None:
        """Call the hooks when anything they may care about changed: any spec change (a new client,
        the access mode), the status, or the replicas that stay."""
        stopping = set(decision.stop)
        staying = [r for r in replicas if r.state != "terminating" and r.name not in stopping]
        key = (generation, decision.status, decision.reason, decision.message, decision.available_replicas,
               tuple((r.name, r.state, r.address) for r in staying))
        with self._lock:
            if self._published.get(deployment_id) == key:
                return
            self._published[deployment_id] = key
        self._call_hooks(deployment_id, decision, staying)

    def _publish_removal(self, deployment_id: str) -> None:
        with self._lock:
            self._published.pop(deployment_id, None)
        self._call_hooks(deployment_id, None, [])

    def _call_hooks(self, deployment_id: str, decision: Decision | None, replicas: list[Replica]) -> None:
        for hook in list(self.on_change):
            try:
                hook(deployment_id, decision, replicas)
            except Exception:
                log.exception("on_change hook %r failed for %s", hook, deployment_id)

    # -- temporary errors ------------------------------------------------------------------------
    def _hold(self, deployment_id: str, action: str, now: datetime, seconds: float, requeue: _Requeue) -> None:
        with self._lock:
            self._held[(deployment_id, action)] = now + timedelta(seconds=seconds)
        requeue.temporary(seconds)

    def _is_held(self, deployment_id: str, action: str, now: datetime, requeue: _Requeue) -> bool:
        with self._lock:
            until = self._held.get((deployment_id, action))
            if until is None:
                return False
            if until <= now:
                del self._held[(deployment_id, action)]
                return False
        requeue.temporary((until - now).total_seconds())
        return True

    # -- refused starts --------------------------------------------------------------------------
    def _record_failure(self, desired: Desired, index: int, exc: PermanentError, now: datetime) -> int:
        with self._lock:
            failures = self._start_failures.setdefault(desired.deployment_id, {})
            before = failures.get(index)
            attempts = before.attempts + 1 if before and before.template == desired.template.hash else 1
            delay = min(START_RETRY_MAX_S, START_RETRY_BASE_S * 2 ** (attempts - 1))
            failures[index] = StartFailure(
                index=index,
                template=desired.template.hash,
                reason=exc.reason,
                message=exc.message,
                retry_at=now + timedelta(seconds=delay),
                attempts=attempts,
            )
            return attempts

    def _clear_failure(self, deployment_id: str, index: int) -> None:
        with self._lock:
            self._start_failures.get(deployment_id, {}).pop(index, None)

    def _prune_failures(self, desired: Desired) -> None:
        """Refused starts of another template, of a stopped deployment or beyond the replica count no longer count."""
        with self._lock:
            failures = self._start_failures.get(desired.deployment_id)
            if failures is None:
                return
            for index, failure in list(failures.items()):
                if (desired.stopped or desired.config_error or index >= desired.replicas
                        or failure.template != desired.template.hash):
                    del failures[index]
            if not failures:
                del self._start_failures[desired.deployment_id]


@dataclass
class _Requeue:
    after: float | None = None
    complete: bool = True  # every action was carried out (no temporary error)

    def later(self, seconds: float) -> None:
        self.after = seconds if self.after is None else min(self.after, seconds)

    def temporary(self, retry_after: float) -> None:
        self.later(retry_after)
        self.complete = False

    def now(self) -> None:
        self.after = 0.0


def _replica_spec(desired: Desired, index: int) -> ReplicaSpec:
    t = desired.template
    return ReplicaSpec(
        deployment_id=desired.deployment_id,
        version=desired.generation,
        index=index,
        image=t.image,
        model_uri=t.model_uri,
        env=dict(t.env),
        cpu=t.cpu,
        memory=t.memory,
        gpu=t.gpu,
        image_pull_secret=t.image_pull_secret,
        readiness_timeout_s=t.readiness_timeout_s,
        template=t.hash,
    )


def reconciler_for(platform: Platform) -> Reconciler:
    """The platform's one Reconciler (its hooks and memory are shared by the loop and by callers)."""
    found = platform.extras.get("controller.reconciler")
    if not isinstance(found, Reconciler):
        found = platform.extras["controller.reconciler"] = Reconciler(platform)
    return found


def reconcile_once(platform: Platform, deployment_id: str) -> Outcome:
    return reconciler_for(platform).reconcile_once(deployment_id)
