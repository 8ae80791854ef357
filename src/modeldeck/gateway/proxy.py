"""The gateway: ``/deployment/<id>/<rest>`` -> ``http://<ready replica>/<rest>``, as raw ASGI.

Per request: one dict lookup for the route, a SHA-256 and a dict lookup for private endpoints, the
least-loaded replica, a pooled connection, the request head built once, the body streamed through
(no buffering beyond what has arrived), counters updated at the end. No database, no framework.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI

from modeldeck.auth.deps import SESSION_COOKIE
from modeldeck.gateway.routes import Entry, RouteTable
from modeldeck.gateway.upstream import (
    ConnectFailed,
    UpstreamBroken,
    UpstreamConnection,
    UpstreamPool,
    UpstreamTimeout,
)
from modeldeck.metrics.store import MetricsStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/deployment/"
_PREFIX_LEN = len(PREFIX)
# Request headers that describe the client's hop, or that the gateway sets itself.
_SKIP_REQUEST = frozenset(
    {
        b"host", b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te",
        b"trailer", b"transfer-encoding", b"upgrade", b"expect", b"content-length", b"x-forwarded-user",
        b"authorization", b"x-forwarded-for", b"cookie",
    }
)
# The console's session cookie (Path=/) reaches /deployment/... too: a model's code must never see it.
_SESSION_COOKIE = SESSION_COOKIE.encode() + b"="
_STALE_RETRIES = 3
_JSON = (b"content-type", b"application/json")
_CHALLENGE = (b"www-authenticate", b'Basic realm="modeldeck"')


class Gateway:
    """The ASGI app for ``/deployment/...`` paths."""

    def __init__(
        self,
        routes: RouteTable,
        metrics: MetricsStore,
        *,
        max_body_bytes: int,
        upstream_timeout_s: float,
        pool: UpstreamPool | None = None,
    ) -> None:
        self.routes = routes
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.timeout = upstream_timeout_s
        self.pool = pool or UpstreamPool(connect_timeout_s=min(5.0, upstream_timeout_s))
        self.inflight: dict[str, int] = {}  # address -> requests in flight through this gateway
        self._turn = 0

    def close(self) -> None:
        self.pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        slash = raw.find(b"/", _PREFIX_LEN)
        if slash < 0:
            key, rest = raw[_PREFIX_LEN:], b"/"
        else:
            key, rest = raw[_PREFIX_LEN:slash], raw[slash:]
        entry = self.routes.entry(key)
        if entry is None:
            await _error(send, 404, "NOT_FOUND", "no such deployment")
            return
        status = await self._handle(entry, rest, scope, receive, send)
        self.metrics.stats(entry.deployment_id).record(status, time.perf_counter() - start)

    async def _handle(self, entry: Entry, rest: bytes, scope: Scope, receive: Receive, send: Send) -> int:
        lines: list[bytes] = []
        authorization: bytes | None = None
        content_length: int | None = None
        forwarded_for = b""
        for name, value in scope["headers"]:
            if name in _SKIP_REQUEST:
                if name == b"authorization":
                    authorization = value
                    if not entry.private:
                        lines += (b"authorization: ", value, b"\r\n")
                elif name == b"content-length":
                    try:
                        content_length = int(value)
                    except ValueError:
                        return await _error(send, 400, "BAD_REQUEST", "invalid content-length")
                elif name == b"x-forwarded-for":
                    forwarded_for = value + b", "
                elif name == b"cookie":
                    kept = b"; ".join(
                        c for c in (p.strip() for p in value.split(b";")) if c and not c.startswith(_SESSION_COOKIE)
                    )
                    if kept:
                        lines += (b"cookie: ", kept, b"\r\n")
                continue
            lines += (name, b": ", value, b"\r\n")
        if entry.private:
            user = entry.client_of(authorization)
            if user is None:
                why = "client credentials required" if authorization is None else "invalid client credentials"
                return await _error(send, 401, "UNAUTHENTICATED", why, _CHALLENGE)
            lines += (b"x-forwarded-user: ", user, b"\r\n")
        if entry.state != "ok":
            if entry.state == "stopped":
                return await _error(send, 503, "DEPLOYMENT_STOPPED", "the deployment is stopped")
            return await _error(send, 503, "NOT_READY", "no ready replica")
        client = scope.get("client")
        if client:
            lines += (b"x-forwarded-for: ", forwarded_for, client[0].encode(), b"\r\n")
        if content_length is not None and content_length > self.max_body_bytes:
            return await _error(send, 413, "PAYLOAD_TOO_LARGE", "request body too large")

        message = await receive()
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        chunked = False
        if content_length is not None:
            lines += (b"content-length: ", b"%d" % content_length, b"\r\n")
        elif more_body:
            chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        elif body or scope["method"] not in ("GET", "HEAD"):
            lines += (b"content-length: ", b"%d" % len(body), b"\r\n")
        if len(body) > self.max_body_bytes:
            return await _error(send, 413, "PAYLOAD_TOO_LARGE", "request body too large")
        lines.append(b"\r\n")
        query: bytes = scope.get("query_string", b"")
        request_line = b"%s %s%s%s HTTP/1.1\r\nhost: " % (
            scope["method"].encode(), rest, b"?" if query else b"", query
        )
        first = (b"%x\r\n%s\r\n" % (len(body), body)) if chunked and body else body
        headers = b"".join(lines)

        tried: set[str] | None = None
        stale_retries = 0
        while True:
            address = self._pick(entry.addresses, tried)
            if address is None:
                return await _error(send, 502, "UPSTREAM_UNAVAILABLE", "no replica could be reached")
            inflight = self.inflight
            inflight[address] = inflight.get(address, 0) + 1
            try:
                conn = self.pool.take(address)
                if conn is None:
                    try:
                        conn = await self.pool.connect(address)
                    except ConnectFailed:
                        tried = tried or set()
                        tried.add(address)
                        continue
                conn.expect_body = scope["method"] != "HEAD"
                conn.write(b"".join((request_line, address.encode(), b"\r\n", headers, first)))
                try:
                    if more_body:
                        status = await self._stream_body(conn, receive, len(body), chunked)
                        if status:
                            conn.abort()
                            return await _error(send, status, "PAYLOAD_TOO_LARGE", "request body too large")
                    while not conn.head_done:
                        await conn.wait(self.timeout)
                except UpstreamBroken as exc:
                    conn.abort()
                    if exc.stale and not more_body and stale_retries < _STALE_RETRIES:
                        stale_retries += 1
                        continue
                    return await _error(send, 502, "BAD_GATEWAY", "the replica closed the connection")
                except UpstreamTimeout:
                    return await _error(send, 504, "UPSTREAM_TIMEOUT", "the replica did not answer in time")
                return await self._respond(conn, send)
            finally:
                left = inflight[address] - 1
                if left:
                    inflight[address] = left
                else:
                    del inflight[address]

    async def _stream_body(self, conn: UpstreamConnection, receive: Receive, sent: int, chunked: bool) -> int:
        """Forwards the rest of the request body; 413 when it grows past the limit, else 0."""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise UpstreamBroken("client went away")
            chunk: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            sent += len(chunk)
            if sent > self.max_body_bytes:
                return 413
            if chunked:
                if chunk:
                    conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if not more:
                    conn.write(b"0\r\n\r\n")
            elif chunk:
                conn.write(chunk)
            await conn.drain()
        return 0

    async def _respond(self, conn: UpstreamConnection, send: Send) -> int:
        status = conn.status
        await send({"type": "http.response.start", "status": status, "headers": conn.headers})
        try:
            while True:
                data = conn.take()
                if conn.complete and not conn.chunks:
                    await send({"type": "http.response.body", "body": data})
                    break
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                if not conn.chunks and not conn.complete:
                    await conn.wait(self.timeout)
        except (UpstreamBroken, UpstreamTimeout):
            conn.abort()
            # The status line is gone: ending without completing the response makes the server drop
            # the client connection, so the client sees a truncated response, not a complete one.
            return 502
        self.pool.release(conn)
        return status

    def _pick(self, addresses: tuple[str, ...], tried: set[str] | None) -> str | None:
        """Least outstanding requests; ties go round-robin so equal replicas share the load."""
        n = len(addresses)
        if n == 1:
            address = addresses[0]
            return None if tried and address in tried else address
        inflight = self.inflight
        self._turn = turn = (self._turn + 1) % n
        best: str | None = None
        best_load = -1
        for i in range(n):
            address = addresses[(turn + i) % n]
            if tried and address in tried:
                continue
            load = inflight.get(address, 0)
            if best is None or load < best_load:
                best, best_load = address, load
        return best


class FastAPIWithGateway(FastAPI):
    """FastAPI, except that ``/deployment/...`` goes straight to the gateway: no middleware, telemetry
    hooks or route matching on the hot path (measured: benchmarks/README.md, section Gateway)."""

    gateway: Gateway | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway
        if gateway is not None and scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await gateway(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _error(send: Send, status: int, code: str, message: str, *extra: tuple[bytes, bytes]) -> int:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [_JSON, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status
