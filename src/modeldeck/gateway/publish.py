"""The controller's ``on_change`` hook: rebuilds one deployment's route after a reconcile step.

The endpoint's access mode and client token hashes are read here, once per publish, so the gateway
never queries the database while serving.
"""

from __future__ import annotations

from collections.abc import Sequence

from modeldeck.db import Database
from modeldeck.deployments.tables import Deployment
from modeldeck.gateway.routes import Route, RouteTable
from modeldeck.metrics.store import MetricsStore
from modeldeck.runtimes.base import Replica


class RoutePublisher:
    def __init__(self, db: Database, routes: RouteTable, metrics: MetricsStore) -> None:
        self.db = db
        self.routes = routes
        self.metrics = metrics

    def __call__(self, deployment_id: str, decision: object | None, replicas: Sequence[Replica]) -> None:
        """``decision`` None: the deployment was deleted."""
        route = None if decision is None else self.route_for(deployment_id, replicas)
        self.routes.update(deployment_id, route)
        if route is None:
            self.metrics.forget(deployment_id)

    def route_for(self, deployment_id: str, replicas: Sequence[Replica]) -> Route | None:
        with self.db.read() as session:
            dep = session.get(Deployment, deployment_id)
            if dep is None:
                return None
            stopped, private, desired = dep.stopped, dep.endpoint_access == "private", dep.replicas
            clients = {c.token_hash: c.name for c in dep.clients} if private else {}
        ready = tuple((r.name, r.address) for r in replicas if r.ready and r.address)
        started = {r.name: r.started_at.timestamp() for r in replicas if r.started_at is not None}
        return Route(
            deployment_id=deployment_id,
            state="stopped" if stopped else ("ok" if ready else "not_ready"),
            replicas=ready,
            private=private,
            clients=clients,
            desired=0 if stopped else desired,
            started=started,
        )
