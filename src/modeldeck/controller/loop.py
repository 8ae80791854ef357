"""The thin loop around reconcile_once: change notifications, a resync timer, per-deployment backoff.

It runs on the event loop the API and the gateway share, so every step runs in a worker thread; one
deployment is never reconciled concurrently with itself. The first resync (at start) reconciles every
deployment in the database and every deployment the runtime still runs: that is the recovery after a
server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from sqlalchemy import select

from modeldeck.context import Platform
from modeldeck.controller.leader import LeaderLease
from modeldeck.controller.reconciler import ChangeHook, Outcome, reconciler_for
from modeldeck.deployments.tables import Deployment

log = logging.getLogger(__name__)

MAX_CONCURRENT = 3  # reconcile steps at once; one more worker is left for the resync
ERROR_BACKOFF_BASE_S = 0.5
ERROR_BACKOFF_MAX_S = 10.0
STOP_WAIT_S = 10.0


class ControllerLoop:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.reconciler = reconciler_for(platform)
        self.lease = LeaderLease(platform.db)
        self.leader = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._next_resync = 0.0
        self._early_wakes: set[str] = set()
        self._early_lock = threading.Lock()
        self._due: dict[str, float] = {}  # deployment -> monotonic time of its next step
        self._not_before: dict[str, float] = {}  # error backoff
        self._errors: dict[str, int] = {}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.steps = 0  # reconcile steps finished (ok or not), for tests and metrics

    @property
    def on_change(self) -> list[ChangeHook]:
        """Subscribers (gateway routes, metrics): called from a worker thread; keep them quick."""
        return self.reconciler.on_change

    def wake(self, deployment_id: str) -> None:
        """Reconcile ``deployment_id`` soon. Thread-safe: request handlers call it after a commit."""
        loop = self._loop
        if loop is None:
            with self._early_lock:
                self._early_wakes.add(deployment_id)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing: the next start resyncs anyway
            loop.call_soon_threadsafe(self._mark, deployment_id, 0.0)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(MAX_CONCURRENT + 1, thread_name_prefix="modeldeck-controller")
        self._event = asyncio.Event()
        self.leader = await self._loop.run_in_executor(self._executor, self.lease.check)
        self._next_resync = 0.0  # at once: startup recovery
        with self._early_lock:
            early, self._early_wakes = self._early_wakes, set()
        for deployment_id in early:
            self._mark(deployment_id, 0.0)
        self._task = asyncio.create_task(self._run(), name="modeldeck-controller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._resync_task is not None:
            self._resync_task.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=STOP_WAIT_S)
        loop, executor = self._loop, self._executor
        self._loop = None
        if loop is not None and executor is not None:
            await loop.run_in_executor(executor, self.lease.release)
            executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None
        self.leader = False
        self._due.clear()

    # -- scheduling ------------------------------------------------------------------------------
    def _mark(self, deployment_id: str, delay: float) -> None:
        at = max(time.monotonic() + delay, self._not_before.get(deployment_id, 0.0))
        self._due[deployment_id] = min(at, self._due.get(deployment_id, at))
        if self._event is not None:
            self._event.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end reconciliation for good
                log.exception("controller loop iteration failed")
                await asyncio.sleep(1.0)

    async def _tick(self) -> None:
        assert self._event is not None
        now = time.monotonic()
        if now >= self._next_resync and (self._resync_task is None or self._resync_task.done()):
            self._next_resync = now + self.platform.settings.resync_interval_s
            self._resync_task = asyncio.create_task(self._resync())
        wake_at = self._next_resync
        for deployment_id, at in sorted(self._due.items(), key=lambda item: item[1]):
            if deployment_id in self._in_flight:
                continue  # runs again once the current step ends
            if len(self._in_flight) >= MAX_CONCURRENT:
                break  # a finishing step sets the event
            if at > now:
                wake_at = min(wake_at, at)
                continue
            del self._due[deployment_id]
            self._in_flight[deployment_id] = asyncio.create_task(self._reconcile(deployment_id))
        self._event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=max(0.0, wake_at - time.monotonic()))

    async def _resync(self) -> None:
        assert self._loop is not None
        try:
            leader, ids = await self._loop.run_in_executor(self._executor, self._resync_blocking)
        except Exception:
            log.exception("controller resync failed")
            return
        if leader != self.leader:
            log.info("controller: %s", "leading: reconciling" if leader else "following: observing only")
        self.leader = leader
        for deployment_id in ids:
            self._mark(deployment_id, 0.0)

    def _resync_blocking(self) -> tuple[bool, set[str]]:
        leader = self.lease.check()
        with self.platform.db.read() as session:
            ids = set(session.scalars(select(Deployment.id)))
        return leader, ids | self.platform.runtime.deployments()

    async def _reconcile(self, deployment_id: str) -> None:
        assert self._loop is not None
        step = partial(self.reconciler.reconcile_once, deployment_id, leader=self.leader)
        try:
            outcome: Outcome = await self._loop.run_in_executor(self._executor, step)
        except Exception:
            errors = self._errors[deployment_id] = self._errors.get(deployment_id, 0) + 1
            delay = min(ERROR_BACKOFF_MAX_S, ERROR_BACKOFF_BASE_S * 2 ** (errors - 1))
            log.exception("reconciling %s failed (%d in a row); retrying in %.1fs", deployment_id, errors, delay)
            self._not_before[deployment_id] = time.monotonic() + delay
            self._mark(deployment_id, delay)
        else:
            self._errors.pop(deployment_id, None)
            self._not_before.pop(deployment_id, None)
            if outcome.requeue_after is not None:
                self._mark(deployment_id, outcome.requeue_after)
        finally:
            self.steps += 1
            self._in_flight.pop(deployment_id, None)
            if self._event is not None:
                self._event.set()
