"""The gateway's in-memory view of every deployment: where to send requests and who may send them.

Written when the controller publishes (a handful of times per change and per resync), read on every
request with one dict lookup. Each update replaces the whole entry, so readers never see a half-made
route.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

RouteState = Literal["ok", "stopped", "not_ready"]


@dataclass(frozen=True)
class Route:
    deployment_id: str
    state: RouteState = "ok"
    # (replica name, "host:port") of every ready replica: old and new ones during a rollout.
    replicas: tuple[tuple[str, str], ...] = ()
    private: bool = False
    clients: Mapping[str, str] = field(default_factory=dict)  # sha256 hex of token -> client name
    desired: int = 0  # replicas the spec asks for (0 when stopped)
    started: Mapping[str, float] = field(default_factory=dict)  # replica name -> unix start time, if known


class Entry:
    """A route compiled for the hot path."""

    __slots__ = ("addresses", "clients", "deployment_id", "private", "route", "state")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.deployment_id = route.deployment_id
        self.addresses = tuple(addr for _, addr in route.replicas)
        self.state: RouteState = route.state if route.state != "ok" or self.addresses else "not_ready"
        self.private = route.private
        # Names go into an upstream header verbatim: drop any that could break the header.
        self.clients = {
            digest: name.encode() for digest, name in route.clients.items() if _header_safe(name)
        }

    def client_of(self, authorization: bytes | None) -> bytes | None:
        """The client named by ``Basic client:token`` or ``Bearer token``, or None."""
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(b" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        name: bytes | None = None
        if scheme == b"bearer":
            token = credentials
        elif scheme == b"basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return None
            name, sep, token = decoded.partition(b":")
            if not sep:
                return None
        else:
            return None
        client = self.clients.get(hashlib.sha256(token).hexdigest())
        if client is None or (name is not None and name != client):
            return None
        return client


def _header_safe(name: str) -> bool:
    return name.isascii() and name.isprintable() and bool(name)


class RouteTable:
    def __init__(self) -> None:
        self._entries: dict[bytes, Entry] = {}

    def update(self, deployment_id: str, route: Route | None) -> None:
        """Install (or with None remove) the route of one deployment."""
        key = deployment_id.encode()
        if route is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = Entry(route)

    def entry(self, key: bytes) -> Entry | None:
        return self._entries.get(key)

    def get(self, deployment_id: str) -> Route | None:
        entry = self._entries.get(deployment_id.encode())
        return entry.route if entry is not None else None

    def ids(self) -> list[str]:
        return [e.deployment_id for e in list(self._entries.values())]

    def targets(self) -> dict[str, list[tuple[str, str, float | None]]]:
        """Deployment -> (name, address, start time) of its ready replicas (for the metrics sampler)."""
        return {
            e.deployment_id: [(name, addr, e.route.started.get(name)) for name, addr in e.route.replicas]
            for e in list(self._entries.values())
        }
