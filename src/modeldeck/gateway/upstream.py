"""A small HTTP/1.1 client for the gateway: keep-alive connections per replica address, responses
parsed by httptools inside an asyncio Protocol (no stream wrappers, no per-request task).

A connection serves one exchange at a time. The gateway writes the request head and body, waits for
the response head, then drains body chunks as they arrive; reading pauses while the client lags.
"""

from __future__ import annotations

import asyncio

import httptools

# Response headers that describe this hop only; the gateway's server adds its own framing, date and
# server headers (a copy would duplicate them).
_HOP_RESPONSE = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"trailer", b"upgrade",
     b"date", b"server"}
)
_READ_HIGH_WATER = 256 * 1024
# Upstream timeouts are checked by one sweeper at this granularity rather than a timer per request
# (a libuv timer costs ~3 µs to arm and cancel; a deadline costs a float).
SWEEP_INTERVAL_S = 0.1


class UpstreamError(Exception):
    pass


class ConnectFailed(UpstreamError):
    """No connection could be made: the request never left, another replica may take it."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamBroken(UpstreamError):
    """The connection failed after it was made. ``stale``: a pooled connection closed by the upstream
    before it sent a single byte back (it never saw the request; safe to send again)."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, address: str) -> None:
        self.pool = pool
        self.address = address
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.deadline = 0.0
        self.busy = True  # serving an exchange (False while pooled)
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.head_done = False
        self.complete = False
        self.framed = False  # content-length or chunked: the end is known without closing
        self.keep_alive = True
        self.expect_body = True
        self.got_bytes = False
        self.reading_paused = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- protocol callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes on an idle connection (a "408" before closing, say): not ours to parse
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"invalid response from {self.address}: {exc}"))
            self.abort()
            return
        if self.buffered > _READ_HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _HOP_RESPONSE:
            if name == b"transfer-encoding":
                self.framed = True
            return
        if name == b"content-length":
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.head_done = True
        if not self.expect_body:  # HEAD: the parser would wait for a body that never comes
            self.complete = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if not self.complete and self.error is None:
            if self.head_done and not self.framed:
                self.complete = True  # body delimited by the close
                self.keep_alive = False
            else:
                self.error = UpstreamBroken(
                    f"connection to {self.address} closed", stale=self.reused and not self.got_bytes
                )
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- used by the gateway ------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain
            self._drain = None


    def take(self) -> bytes:
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    async def wait(self, timeout: float) -> None:
        """Until something happens: response head or body data arrives, the response completes, the
        connection fails, or ``timeout`` passes (UpstreamTimeout)."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        self.deadline = self.loop.time() + timeout
        waiting = self.pool.waiting
        waiting.add(self)
        if self.pool.sweeper is None:
            self.pool.start_sweeper()
        try:
            await waiter
        finally:
            waiting.discard(self)
            self.waiter = None
        if self.error is not None:
            raise self.error

    def timed_out(self) -> None:
        self._fail(UpstreamTimeout(f"{self.address} did not answer in time"))
        self.abort()

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class UpstreamPool:
    """Idle keep-alive connections per address, newest first. A connection idle longer than
    ``idle_timeout_s`` is dropped rather than reused, to stay under the upstream's own keep-alive
    timeout (uvicorn closes after 5 s)."""

    def __init__(
        self, *, connect_timeout_s: float = 5.0, idle_timeout_s: float = 4.0, max_idle_per_address: int = 64
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_idle = max_idle_per_address
        self._idle: dict[str, list[UpstreamConnection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.waiting: set[UpstreamConnection] = set()  # connections awaiting the upstream
        self.sweeper: asyncio.Task[None] | None = None

    def start_sweeper(self) -> None:
        self.sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        try:
            while self.waiting:
                await asyncio.sleep(SWEEP_INTERVAL_S)
                now = self.loop.time()
                for conn in [c for c in self.waiting if c.deadline <= now]:
                    conn.timed_out()
        finally:
            self.sweeper = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def take(self, address: str) -> UpstreamConnection | None:
        """An idle connection to ``address``, or None (then ``connect``)."""
        idle = self._idle.get(address)
        if idle:
            now = self.loop.time()
            while idle:
                conn = idle.pop()
                if now - conn.idle_since < self.idle_timeout_s and not conn.closed:
                    conn.busy = True
                    return conn
                conn.abort()
        return None

    def release(self, conn: UpstreamConnection) -> None:
        if conn.closed or not conn.complete or not conn.keep_alive or conn.chunks:
            conn.abort()
            return
        conn.reset()
        conn.busy = False
        conn.reused = True
        conn.idle_since = self.loop.time()
        idle = self._idle.setdefault(conn.address, [])
        if len(idle) >= self.max_idle:
            conn.abort()
        else:
            idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)
            if not idle:
                del self._idle[conn.address]

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        self.waiting.clear()
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.abort()
        self._idle.clear()
        self._loop = None  # the next use may run on another loop (a restarted server, tests)

    async def connect(self, address: str) -> UpstreamConnection:
        host, _, port = address.rpartition(":")
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: UpstreamConnection(self, address), host.strip("[]"), int(port)
                ),
                self.connect_timeout_s,
            )
        except (OSError, ValueError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {address}: {exc or type(exc).__name__}") from exc
        return conn
